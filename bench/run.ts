/**
 * `npm run bench`: B1–B4 of docs/benchmarks.md in one go, written to bench/results/bench.{json,md} with the
 * machine they ran on. Figures, not pass/fail: every comparison is made within this one run.
 *   B1, B2, B4  bench/real.ts           real CLI, worker, tools and the bandwidth-capped mirror
 *   B3          bench/orchestration.ts  in-memory activities, the embedded server, 1,000 and 10,000 samples;
 *               the same on temporal-server + PostgreSQL when scripts/cluster.sh's cluster is up
 *   B5          bench/b5.ts             CPU-bound: uncapped mirror, 100+ MB runs, ~21,000 transcripts; run alone:
 *               `npm run bench -- b5 [options]` (bench/b5.ts lists them), results in bench/results/b5-<label>.*
 * Usage: node dist/bench/run.js [--quick] [--only b1,b3] [--b3 1000,10000] [--out-dir bench/results]
 * With --only, the sections not re-measured are kept from the existing results file, labelled with their run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { describeMachine, type Machine } from './machine.js';
import { CLUSTER_BENCH_NAMESPACE, measureOrchestration, type OrchestrationFigures } from './orchestration.js';
import { measureReal, type RealFigures } from './real.js';
import { dist } from './real/figures.js';
import { clusterEnv, clusterRunning } from '../test/helpers/cluster.js';

export interface BenchResults {
  machine: Machine;
  quick: boolean;
  real?: RealFigures;
  b3?: (OrchestrationFigures & { label: string })[];
  durationSec: number;
  /** Sections kept from an earlier run when `--only` re-measured the others: where and when they were measured. */
  keptFrom?: { real?: Machine; b3?: Machine };
}

/**
 * `--only` re-measures some sections; the others are kept from the previous results file (if it has them), each
 * labelled with the machine line of the run that measured it, so one table can hold a quiet B1 and a long B3.
 */
export function mergeKept(fresh: BenchResults, previous: BenchResults | undefined): BenchResults {
  if (!previous || previous.quick !== fresh.quick) return fresh;
  const keptFrom = { ...fresh.keptFrom };
  const merged: BenchResults = { ...fresh };
  if (!fresh.real && previous.real) {
    merged.real = previous.real;
    keptFrom.real = previous.keptFrom?.real ?? previous.machine;
  }
  if (!fresh.b3 && previous.b3) {
    merged.b3 = previous.b3;
    keptFrom.b3 = previous.keptFrom?.b3 ?? previous.machine;
  }
  if (keptFrom.real || keptFrom.b3) merged.keptFrom = keptFrom;
  return merged;
}
/**
 * temporal-server + PostgreSQL from scripts/cluster.sh, if it runs (B3 is measured there too, in a namespace
 * of its own); `scripts/cluster.sh up` first to include it.
 */
function clusterTarget(log: (l: string) => void): { address: string; namespace: string; label: string } | null {
  if (!clusterRunning()) {
    log('B3: no cluster running (scripts/cluster.sh up to measure temporal-server + PostgreSQL as well): dev server only');
    return null;
  }
  const env = clusterEnv();
  return { address: env.TEMPORAL_ADDRESS!, namespace: CLUSTER_BENCH_NAMESPACE, label: 'temporal-server + PostgreSQL' };
}

const keptLine = (m: Machine | undefined) =>
  m ? [`Kept from an earlier run: ${m.date} · commit ${m.commit} · load ${m.loadAverage1m} at start.`, ''] : [];

/** B3 workloads: four species, the first smaller so its threads move when it finishes. */
export const B3_SIZES = { full: [1_000, 10_000], quick: [200, 1_000] };
function b3Workload(samples: number) {
  const first = Math.round(samples * 0.16);
  return { species: 4, firstRuns: first, runs: Math.round((samples - first) / 3), threads: 24 };
}

const MB = (b: number | null | undefined) => (b == null ? '–' : `${(b / 1e6).toFixed(1)} MB`);
const n = (x: number | null | undefined, digits = 2) => (x == null ? '–' : Number(x.toFixed(digits)).toString());
const ms = (d: { p50: number | null; p99: number | null; max: number | null } | undefined) =>
  d ? `p50 ${n(d.p50, 0)} ms, p99 ${n(d.p99, 0)} ms, max ${n(d.max, 0)} ms` : '–';

export function renderMarkdown(r: BenchResults): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(`# fetchquant benchmarks${r.quick ? ' (quick)' : ''}`, '');
  out.push(`${m.date} · commit ${m.commit} · ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB · ${m.os} · Node ${m.node} · ${m.temporal} · kallisto ${m.kallisto} · ${m.fasterqDump} · load ${m.loadAverage1m} at start · ${Math.round(r.durationSec / 60)} min in all${m.note ? ` · ${m.note}` : ''}`, '');
  const rows = (title: string, items: [string, string][]) => {
    out.push(`## ${title}`, '', '| figure | value |', '|---|---|');
    for (const [k, v] of items) out.push(`| ${k} | ${v} |`);
    out.push('');
  };
  const real = r.real;
  if (real) {
    const w = real.workload;
    const f = real.b1.fetchquant;
    const b = real.b1.baseline;
    out.push(
      `Workload: ${w.species} species, ${w.runs} runs (${w.pairedRuns} paired, ${w.sraOnlyRuns} SRA-only), ${MB(w.neededBytes)} to fetch, ` +
        `mirror capped at ${MB(w.bandwidthCapBytesPerSec)}/s with ${w.latencyMs} ms latency, ${w.totalThreads} threads.`,
      '',
      ...keptLine(r.keptFrom?.real),
    );
    rows('B1 — throughput against the bound and against xargs -P', [
      ['lower bound (bytes / cap + last quant)', `${n(real.b1.lowerBoundSec, 1)} s`],
      ['fetchquant makespan', `${n(f.makespanSec, 1)} s (${f.samplesDone} done, exit ${f.exitCode})`],
      ['baseline `xargs -P` makespan', `${n(b.makespanSec, 1)} s (exit ${b.exitCode}, ${b.failedRuns} failed)`],
      ['fetchquant / lower bound', n(f.makespanOverLowerBound)],
      ['fetchquant / baseline', n(f.makespanOverBaseline)],
      ['baseline / lower bound', n(b.makespanOverLowerBound)],
      ['slot utilisation (download activity busy / threads × phase)', `${n(f.slotUtilisation)} (baseline ${n(b.slotUtilisation)})`],
      ['peak reads on disk vs bound', `${MB(f.peakReadsBytes)} of ${MB(f.peakReadsBoundBytes)} (baseline ${MB(b.peakReadsBytes)} of ${MB(b.peakReadsBoundBytes)})`],
      ['bytes served by the mirror', `${MB(f.fileBytesServed)} (baseline ${MB(b.fileBytesServed)}; needed ${MB(w.neededBytes)})`],
    ]);
    const b2 = real.b2;
    rows('B2 — reaction time', [
      [
        'reads verified → quant started',
        // older results have no count; samples of paths 4 quantify in the verifying step: no round trip to measure
        b2.quantifiedInStep
          ? `${b2.quantifiedInStep} of ${b2.samples} samples quantified in the step that verified their reads (no round trip; the wait for a quant slot is not in the history)${b2.verifyToQuantStartMs.n ? `; the others ${ms(b2.verifyToQuantStartMs)}` : ''}`
          : ms(b2.verifyToQuantStartMs),
      ],
      [`small species (${b2.smallSpecies}) frees its last slot → others get setThreads`, Object.entries(b2.lastSlotFreedToSetThreadsMs).map(([k, v]) => `${k} ${v == null ? '–' : `${v} ms`}`).join(', ')],
      ['every tail slot freed → setThreads elsewhere', ms(b2.tailSlotFreedToSetThreadsMs)],
      ['the seed (polling every 60 s / 300 s), expected', `${b2.seedExpectedReactionSec.every60s.mean} s / ${b2.seedExpectedReactionSec.every300s.mean} s`],
    ]);
  }
  if (r.b3?.length) {
    out.push('## B3 — orchestration overhead and scale (in-memory activities)', '', ...keptLine(r.keptFrom?.b3));
    out.push('| server | samples | threads | makespan | samples/s | events per sample | largest history | species runs (CAN) | batch events | over 10,240 | lost / twice | slot freed → setThreads elsewhere | CPU per sample: worker / server |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const x of r.b3) {
      out.push(
        `| ${x.server ?? 'dev server (SQLite)'} | ${x.samples} | ${x.totalThreads} | ${n(x.makespanSec, 1)} s | ${n(x.samplesPerSec)} | ${n(x.eventsPerSampleHistory.mean, 1)} | ${x.largestHistory.events} (${x.largestHistory.workflowId.split('/').pop()}) | ${Object.values(x.speciesRuns).join(' / ')} | ${x.batchEvents} | ${x.historiesOver10240} | ${x.lostRuns} / ${x.duplicatedRuns} | ${x.reallocationDelayMs.length ? ms(dist(x.reallocationDelayMs)) : '–'} | ${x.cpuMsPerSample ? `${x.cpuMsPerSample.worker} ms / ${x.cpuMsPerSample.server ?? '–'} ms` : '–'} |`,
      );
    }
    const servers = [...new Set(r.b3.map((x) => x.server ?? 'dev server (SQLite)'))];
    for (const srv of servers) {
      const of = r.b3.filter((x) => (x.server ?? 'dev server (SQLite)') === srv);
      if (of.length < 2) continue;
      const [a, z] = [of[0]!, of[of.length - 1]!];
      out.push('', `${srv}: cost per sample from ${a.samples} to ${z.samples} samples: ${n(1000 / a.samplesPerSec, 0)} → ${n(1000 / z.samplesPerSec, 0)} ms of makespan per sample; events per sample ${n(a.eventsPerSampleHistory.mean, 1)} → ${n(z.eventsPerSampleHistory.mean, 1)}.`);
    }
    out.push('');
  }
  if (real) {
    const k = real.b4;
    rows('B4 — recovery cost (worker killed -9 during a B1 run)', [
      ['kills (seconds after start)', `${k.kills} (${k.killAtSec.map((s) => n(s, 1)).join(', ')})`],
      ['extra bytes downloaded', `${MB(k.extraBytes)} (partial files at the kills ${MB(k.partialBytesAtKills)}; whole files in progress ${MB(k.wholeFileBytesInProgressAtKills)})`],
      ['extra makespan', `${n(k.extraMakespanSec, 1)} s (${n(k.extraMakespanPerKillSec, 1)} s per kill; heartbeat timeout ${k.heartbeatTimeoutSec} s)`],
      ['samples lost / quantified twice', `${k.samplesLost} / ${k.samplesQuantifiedTwice} (${k.samplesDone} done, ${k.sampleWorkflowExecutions} sample workflows)`],
    ]);
  }
  out.push('Raw figures: `bench.json` beside this file.', '');
  return out.join('\n');
}

const isMain = process.argv[1]?.endsWith('/bench/run.js');
if (isMain && process.argv[2] === 'b5') {
  const { b5Main } = await import('./b5.js');
  await b5Main(process.argv.slice(3));
  process.exit(0);
} else if (isMain) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' }, b3: { type: 'string' }, 'out-dir': { type: 'string' } } });
  const only = new Set((values.only ?? 'b1,b2,b3,b4').split(',').map((s) => s.trim().toLowerCase()));
  const quick = Boolean(values.quick);
  const outDir = values['out-dir'] ?? join(process.cwd(), 'bench', 'results');
  const log = (l: string) => process.stderr.write(`bench: ${l}\n`);
  const t0 = Date.now();
  const results: BenchResults = { machine: describeMachine(), quick, durationSec: 0 };
  if (['b1', 'b2', 'b4'].some((b) => only.has(b))) {
    log('B1, B2, B4: real tools against the bandwidth-capped mirror');
    results.real = await measureReal({ quick, log });
  }
  if (only.has('b3')) {
    results.b3 = [];
    const sizes = values.b3 ? values.b3.split(',').map(Number) : quick ? B3_SIZES.quick : B3_SIZES.full;
    const cluster = clusterTarget(log);
    for (const samples of sizes) {
      log(`B3: ${samples} samples with in-memory activities on the dev server`);
      results.b3.push({ label: `${samples}`, ...(await measureOrchestration({ ...b3Workload(samples), log })) });
      if (cluster) {
        log(`B3: ${samples} samples with in-memory activities on ${cluster.label} at ${cluster.address}`);
        results.b3.push({ label: `${samples} cluster`, ...(await measureOrchestration({ ...b3Workload(samples), log, target: cluster })) });
      }
    }
  }
  results.durationSec = (Date.now() - t0) / 1000;
  mkdirSync(outDir, { recursive: true });
  const name = quick ? 'bench-quick' : 'bench';
  const file = join(outDir, `${name}.json`);
  const merged = mergeKept(results, existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as BenchResults) : undefined);
  writeFileSync(file, JSON.stringify(merged, null, 2) + '\n');
  const md = renderMarkdown(merged);
  writeFileSync(join(outDir, `${name}.md`), md);
  process.stdout.write(md);
  process.exit(0);
}
