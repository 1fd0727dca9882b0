/**
 * B1 (throughput vs the bound and vs `xargs -P`), B2 (reaction time) and B4 (recovery cost) of
 * docs/benchmarks.md with the real CLI, worker, activities and tools against the loopback mirror under a
 * bandwidth cap. One Temporal dev server and one mirror for all scenarios, run one after the other in
 * the same process so every ratio compares runs on the same machine minutes apart:
 *   1. fetchquant, clean            (B1, B2 from its histories)
 *   2. the baseline script          (B1)
 *   3. fetchquant, kill -9 N times  (B4)
 * Usage: node dist/bench/real.js [--quick] [--out bench/results/real.json]
 */
import { HOST_HEARTBEAT_TIMEOUT_SEC } from '../src/workflows/options.js';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { batchWorkflowId } from '../src/ids.js';
import { DEFAULTS, SPECIES_DEFAULTS } from '../src/config/schema.js';
import { decideQuantThreads, hostCores } from '../src/cores.js';
import { startMirror } from '../src/mirror/server.js';
import { freePort, startEmbeddedServer } from '../src/server/embedded.js';
import { runBaseline } from './real/baseline.js';
import { fileBytesServed, runFetchquant, type FetchquantRun } from './real/fetchquant.js';
import { fetchquantB1 } from './real/b1.js';
import { baselineDownloadSpans, baselineLastQuantSec, baselineQuantSecs, dist, linkFigures, reactionFigures, round, utilisation } from './real/figures.js';
import { readBatchHistories } from './real/histories.js';
import type { RealFigures } from './real/types.js';
import { Prng } from '../src/mirror/prng.js';
import { makeScenario, neededBytes, neededFiles, prepareDataset, workloadOf, type Scenario } from './real/workload.js';

export type { Anomaly, RealFigures } from './real/types.js';

const PKG = fileURLToPath(new URL('../../', import.meta.url));

function provenanceOf(sc: Scenario): { present: number; workflowRuns: Set<string> } {
  let present = 0;
  const workflowRuns = new Set<string>();
  for (const sp of sc.species) {
    for (const r of sp.runs) {
      const p = join(sp.quantDir, r.run, `${r.run}_fetchquant.json`);
      if (!existsSync(p)) continue;
      present++;
      const prov = JSON.parse(readFileSync(p, 'utf8')) as { workflowId: string; runId: string };
      workflowRuns.add(`${prov.workflowId} ${prov.runId}`);
    }
  }
  return { present, workflowRuns };
}

/** Figures of a run that did not finish its batch would be meaningless: stop with its log's tail. */
function mustSucceed(run: FetchquantRun): void {
  if (run.exitCode === 0) return;
  const tail = readFileSync(run.logFile, 'utf8').split('\n').slice(-30).join('\n');
  throw new Error(`fetchquant run exited ${run.exitCode} (log ${run.logFile}):\n${tail}`);
}

export async function measureReal(o: { quick?: boolean; log?: (line: string) => void }): Promise<RealFigures> {
  const log = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const quick = o.quick ?? false;
  const w = workloadOf(quick);
  const dataset = await prepareDataset(w, log);
  const runs = dataset.species.flatMap((s) => s.runs);
  const needed = neededBytes(dataset);
  const work = mkdtempSync(join(tmpdir(), 'fq-real-'));
  const stateDir = join(work, 'temporal');
  const server = await startEmbeddedServer({ stateDir, port: await freePort(), headless: true });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  const mirror = await startMirror({ dataset, bandwidthBytesPerSec: w.bandwidthBytesPerSec, latencyMs: w.latencyMs });
  // The product's defaults: what a user gets. A killed worker's tasks are retried after the host
  // activities' heartbeat timeout, min(60, max(5, stall timeout)) s, so that sets B4's cost per kill.
  const stallTimeoutSec = w.stallTimeoutSec ?? DEFAULTS.stallTimeoutSec;
  const extraFlags = w.stallTimeoutSec === null ? [] : ['--stall-timeout', String(w.stallTimeoutSec)];
  const speciesIds = dataset.species.map((s) => s.speciesId);
  const stamp = Date.now().toString(36);
  const ideal = needed / w.bandwidthBytesPerSec;
  // fetchquant runs with its defaults, so kallisto's -t comes from this host's cores: the baseline gets the same.
  const kallistoT = decideQuantThreads(hostCores(), {}).kallistoThreads;
  const load = () => Math.round(loadavg()[0]! * 100) / 100;
  const logs: string[] = [];
  const keepLog = (file: string, name: string) => {
    const dest = join(PKG, 'bench', 'results', 'tmp', `real-${stamp}-${name}.log`);
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(file, dest);
    logs.push(dest);
  };
  log(`workload: ${runs.length} runs, ${(needed / 1e6).toFixed(1)} MB at ${(w.bandwidthBytesPerSec / 1e6).toFixed(2)} MB/s = ${ideal.toFixed(0)} s of network; ${w.totalThreads} threads`);
  try {
    // 1. fetchquant, clean
    log(`B1: fetchquant run (clean); load ${load()}`);
    const loadClean: [number, number] = [load(), 0];
    const clean = await makeScenario(dataset, join(work, 'clean'));
    mirror.resetStats();
    const b1Batch = `bench-b1-${stamp}`;
    const fq = await runFetchquant({ scenario: clean, mirror, address: server.address, namespace: server.namespace, batchId: b1Batch, threads: w.totalThreads, hostId: 'bench-real', extraFlags, log });
    const fqServed = fileBytesServed(mirror);
    loadClean[1] = load();
    keepLog(fq.logFile, 'clean');
    log(`  makespan ${fq.makespanSec.toFixed(1)} s, exit ${fq.exitCode}`);
    mustSucceed(fq);
    const t1 = await readBatchHistories(client, b1Batch, batchWorkflowId(b1Batch), speciesIds);

    // 2. the baseline
    log(`B1: baseline (xargs -P ${w.totalThreads} curl + fasterq-dump + kallisto + rm)`);
    const base = await makeScenario(dataset, join(work, 'baseline'));
    mirror.resetStats();
    const loadBase: [number, number] = [load(), 0];
    const bl = await runBaseline({ dataset, scenario: base, baseUrl: mirror.baseUrl, threads: w.totalThreads, kallistoThreads: kallistoT, fragmentSd: SPECIES_DEFAULTS.fragmentSd });
    const blServed = fileBytesServed(mirror);
    loadBase[1] = load();
    log(`  makespan ${bl.makespanSec.toFixed(1)} s, exit ${bl.exitCode}, ${bl.failed.length} failed`);

    // 3. fetchquant with kill -9 at random moments of the clean run's span
    log(`B4: fetchquant run, kill -9 x ${w.kills}`);
    const crash = await makeScenario(dataset, join(work, 'crash'));
    mirror.resetStats();
    const rng = new Prng(w.seed * 7919 + (Date.now() % 1000));
    // One kill in each equal share of 10-85 % of the samples done, at a random point inside it: by
    // progress, not by clock, so each kill lands after the previous one's recovery.
    const killAfterDone = Array.from({ length: w.kills }, (_, i) => {
      const share = 0.75 / w.kills;
      return Math.max(1, Math.round((0.1 + share * i + rng.next() * share) * runs.length));
    });
    const b4Batch = `bench-b4-${stamp}`;
    const loadCrash: [number, number] = [load(), 0];
    const cr = await runFetchquant({ scenario: crash, mirror, address: server.address, namespace: server.namespace, batchId: b4Batch, threads: w.totalThreads, hostId: 'bench-real', extraFlags, killAfterDone, log });
    const crServed = fileBytesServed(mirror);
    loadCrash[1] = load();
    keepLog(cr.logFile, 'crash');
    log(`  makespan ${cr.makespanSec.toFixed(1)} s, exit ${cr.exitCode}, ${cr.starts} starts`);
    mustSucceed(cr);
    const t4 = await readBatchHistories(client, b4Batch, batchWorkflowId(b4Batch), speciesIds);

    const lastQ = baselineLastQuantSec(bl) ?? { run: '?', sec: 0 };
    const lowerBoundSec = ideal + lastQ.sec;
    const fqB1 = fetchquantB1(fq, t1, w.totalThreads, fqServed, needed, w.bandwidthBytesPerSec);
    const blSpans = baselineDownloadSpans(bl);
    const blU = { ...utilisation(blSpans, w.totalThreads), ...linkFigures(blSpans, bl.startedAt, bl.endedAt, needed, w.bandwidthBytesPerSec) };
    const sizeOf = new Map<string, number>(runs.flatMap((r) => neededFiles(r).map((f) => [`${r.run}/${f.name}.part`, f.bytes] as const)));
    const sraSize = new Map<string, number>(runs.map((r) => [`${r.run}/${r.run}.sra.part`, r.sra.bytes] as const));
    const partial = cr.kills.reduce((n, k) => n + k.partBytes, 0);
    const whole = cr.kills.reduce((n, k) => n + k.parts.reduce((m, p) => m + (sizeOf.get(p) ?? sraSize.get(p) ?? 0), 0), 0);
    const prov = provenanceOf(crash);
    const executions = new Map<string, number>();
    for (const s of t4.samples) executions.set(s.run, (executions.get(s.run) ?? 0) + 1);
    const runsOf = crash.species.flatMap((s) => s.runs.map((r) => r.run));
    const again = t4.samples.filter((s) => s.audit.activities.filter((a) => a.activity === 'download').length > 1).map((s) => s.run);
    const sizeOfRun = new Map(runs.map((r) => [r.run, neededFiles(r).reduce((n, f) => n + f.bytes, 0)]));

    return {
      quick,
      loadAvg1m: { clean: loadClean, baseline: loadBase, crash: loadCrash },
      logs: logs.map((l) => l.slice(PKG.length)),
      workload: {
        species: dataset.species.length,
        runsPerSpecies: dataset.species.map((s) => s.runs.length),
        runs: runs.length,
        pairedRuns: runs.filter((r) => r.layout === 'paired').length,
        sraOnlyRuns: runs.filter((r) => r.sraOnly).length,
        spotsPerRun: runs[0]!.reads,
        neededBytes: needed,
        largestDownloadBytes: Math.max(...runs.map((r) => neededFiles(r).reduce((n, f) => n + f.bytes, 0))),
        bandwidthCapBytesPerSec: w.bandwidthBytesPerSec,
        latencyMs: w.latencyMs,
        totalThreads: w.totalThreads,
        kallistoThreads: kallistoT,
        extraFlags,
      },
      b1: {
        lowerBoundSec: round(lowerBoundSec)!,
        lastQuantSec: round(lastQ.sec)!,
        fetchquant: { ...fqB1, makespanOverLowerBound: round(fq.makespanSec / lowerBoundSec)!, makespanOverBaseline: round(fq.makespanSec / bl.makespanSec)! },
        baseline: {
          ...blU,
          makespanSec: round(bl.makespanSec)!,
          exitCode: bl.exitCode,
          failedRuns: bl.failed.length,
          makespanOverLowerBound: round(bl.makespanSec / lowerBoundSec)!,
          fileBytesServed: blServed,
          peakReadsBytes: bl.disk.peakBytes,
          peakReadsBoundBytes: w.totalThreads * bl.disk.largestRunBytes,
          largestRunOnDiskBytes: bl.disk.largestRunBytes,
          quantSec: dist(baselineQuantSecs(bl).map((x) => round(x)!)),
        },
      },
      b2: reactionFigures(t1, dataset.species[0]!.speciesId),
      b4: {
        kills: cr.kills.length,
        killAtSec: cr.kills.map((k) => round(k.atSec, 1)!),
        killAtSamplesDone: cr.kills.map((k) => k.samplesDone),
        downloadsInProgressAtKills: cr.kills.map((k) => k.partFiles),
        partialBytesAtKills: partial,
        wholeFileBytesInProgressAtKills: whole,
        fileBytesServed: crServed,
        extraBytes: crServed - needed,
        extraBytesOverPartialBytes: round(partial > 0 ? (crServed - needed) / partial : 0)!,
        makespanSec: round(cr.makespanSec)!,
        cleanMakespanSec: round(fq.makespanSec)!,
        extraMakespanSec: round(cr.makespanSec - fq.makespanSec)!,
        extraMakespanPerKillSec: round(cr.kills.length ? (cr.makespanSec - fq.makespanSec) / cr.kills.length : 0)!,
        exitCode: cr.exitCode,
        samplesDone: t4.samples.filter((s) => s.audit.stage === 'done').length,
        samplesLost: runsOf.length - prov.present,
        samplesQuantifiedTwice: runsOf.filter((r) => (executions.get(r) ?? 0) > 1).length + (prov.present - prov.workflowRuns.size),
        sampleWorkflowExecutions: t4.samples.length,
        quantActivityReruns: t4.samples.filter((s) => s.quantAttempts > 1).length,
        downloadRetries: t4.samples.filter((s) => s.downloadAttempts > 1).length,
        samplesDownloadedAgain: again.length,
        bytesOfSamplesDownloadedAgain: again.reduce((n, r) => n + (sizeOfRun.get(r) ?? 0), 0),
        restartStartupSec: cr.startupsSec.map((x) => round(x, 1)!),
        workflowTaskTimeouts: [...t4.samples.map((x) => x.workflowTasks), t4.parentWorkflowTasks].reduce((n, x) => n + x.timeouts, 0),
        heartbeatTimeoutSec: Math.min(HOST_HEARTBEAT_TIMEOUT_SEC, Math.max(5, stallTimeoutSec)),
      },
    };
  } finally {
    await mirror.stop();
    await connection.close();
    await server.stop();
    if (!process.env.FQ_BENCH_KEEP) rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  }
}

const isMain = process.argv[1]?.endsWith('real.js');
if (isMain) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' } } });
  const figures = await measureReal({ quick: values.quick ?? false });
  const text = JSON.stringify(figures, null, 2);
  process.stdout.write(`${text}\n`);
  const out = values.out ?? join(PKG, 'bench', 'results', values.quick ? 'real-quick.json' : 'real.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${text}\n`);
  process.exit(0);
}
