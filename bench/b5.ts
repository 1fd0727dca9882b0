/**
 * B5 of docs/benchmarks.md, the CPU-bound regime: the loopback mirror uncapped (and at 100 MB/s), runs of
 * 100+ MB of FASTQ, a transcriptome of realistic size (bench/b5/dataset.ts). In one run, side by side per
 * network setting: fetchquant (the real CLI, worker and tools on a Temporal dev server), the `xargs -P`
 * baseline (bench/baseline.sh: curl + fasterq-dump + the same kallisto arguments + rm) and the bound
 * (the baseline's kallisto CPU-seconds / cores, or bytes / cap when that is larger), with CPU per process
 * kind: the fetchquant process's threads (main, libuv pool, V8 workers, Temporal core), its GC pauses,
 * its tools by name, the Temporal server, the mirror (it stands in for the network; same cost both sides).
 *
 * Usage: npm run bench -- b5 [--runs 12] [--min-mb 100] [--max-mb 180] [--genes 13000] [--net uncapped,100]
 *        [--cores N] [--total-threads N] [--given-threads] [--fetchquant-dir DIR] [--label NAME] [--repeat N]
 *   --cores N            run everything under `taskset -c 0..N-1` (B5 at 1 core: --cores 1)
 *   --fetchquant-dir DIR measure another built checkout's CLI (DIR/dist/src/cli.js), e.g. an older commit
 *                        (--fetchquant-commit names it when DIR is not a git checkout)
 *   --given-threads      give fetchquant --quant-threads/--kallisto-threads as src/cores.ts decides them for
 *                        the cores here (a user who set them); by default it gets neither and decides itself,
 *                        as a user who sets none (the default since session 27; --auto-threads said so before)
 *   --repeat N           N pairs per network, the side that goes first alternating; the pair of the median
 *                        fetchquant / baseline is reported, with every pair's ratio beside it
 *   --prepare-only       generate (or find cached) the transcriptome, index and runs, measure nothing
 *   --readme             rewrite README's B5 table from bench/results/b5-*.json, measure nothing
 * Results: bench/results/b5[-<label>].{json,md}.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decideQuantThreads } from '../src/cores.js';
import { SPECIES_DEFAULTS } from '../src/config/schema.js';
import { freePort, startEmbeddedServer } from '../src/server/embedded.js';
import { describeMachine, type Machine } from './machine.js';
import { prepareB5, B5_FULL, type B5Spec } from './b5/dataset.js';
import { countKallisto, cpuOf, idlePhases, ownCpuSec, parseTimesLine, pollTree, r2, sampleIdle, UNPLACED, type IdlePhases, type TreeCpu } from './b5/cpu.js';
import { counterDelta, scrapeCounters, workflowCensus } from './b5/server-metrics.js';
import { runBaseline } from './real/baseline.js';
import { makeScenario, neededBytes, type Scenario } from './real/workload.js';

const PKG = fileURLToPath(new URL('../../', import.meta.url));
/** not compiled: CommonJS, preloaded with -r (see the file) */
const PROBE = fileURLToPath(new URL('../../bench/b5/probe.cjs', import.meta.url));
const MIRROR_MAIN = fileURLToPath(new URL('../src/mirror/main.js', import.meta.url));

export interface B5Options {
  spec: B5Spec;
  /** MB/s caps; 0 = uncapped */
  nets: number[];
  totalThreads: number;
  autoThreads: boolean;
  fetchquantDir: string;
  /** what --fetchquant-dir holds when it is not a git checkout (e.g. `git archive ba82d74`) */
  fetchquantCommit?: string;
  label: string;
  /** pairs per network (fetchquant and the baseline, their order alternating); the median pair is reported */
  repeat?: number;
  log: (l: string) => void;
}

export interface SideFigures {
  makespanSec: number;
  exitCode: number | null;
  /** CPU seconds by kind (see renderB5) */
  cpu: Record<string, number>;
  cpuTotalSec: number;
  notes: Record<string, unknown>;
}

export interface NetFigures {
  capMBps: number;
  boundSec: number;
  boundKind: 'kallisto CPU / cores' | 'transfer';
  kallistoCpuSec: number;
  transferSec: number;
  fetchquant: SideFigures;
  baseline: SideFigures;
  fetchquantOverBaseline: number;
  fetchquantOverBound: number;
  baselineOverBound: number;
  loadAvg1m: { before: number; after: number };
  /** with --repeat > 1: every pair in the order run; the figures above are the pair of the median ratio */
  pairs?: PairFigures[];
}

export interface PairFigures {
  first: 'fetchquant' | 'baseline';
  fetchquantSec: number;
  baselineSec: number;
  fetchquantOverBaseline: number;
  fetchquantOverBound: number;
  fetchquantIdleSec: number | null;
  baselineIdleSec: number | null;
}

/** Reads every file under dir once (symbolic links followed, each file once), so that no side pays for a cold cache. */
export function warmPageCache(dir: string): { bytes: number; sec: number } {
  const t0 = Date.now();
  const seen = new Set<string>();
  const buf = Buffer.allocUnsafe(8 << 20);
  let bytes = 0;
  const walk = (p: string) => {
    const real = realpathSync(p);
    if (seen.has(real)) return;
    seen.add(real);
    const st = statSync(real);
    if (st.isDirectory()) {
      for (const e of readdirSync(real)) walk(join(real, e));
      return;
    }
    if (!st.isFile()) return;
    const fd = openSync(real, 'r');
    try {
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) bytes += n;
    } finally {
      closeSync(fd);
    }
  };
  walk(dir);
  return { bytes, sec: r2((Date.now() - t0) / 1000) };
}

/** The pair whose fetchquant / baseline is the median (of an even count the upper middle one: the less flattering). */
export function medianPair<T extends { fetchquantOverBaseline: number }>(pairs: T[]): T {
  if (pairs.length === 0) throw new Error('no pairs');
  const sorted = [...pairs].sort((a, b) => a.fetchquantOverBaseline - b.fetchquantOverBaseline);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export interface B5Results {
  machine: Machine;
  label: string;
  cores: number;
  fetchquant: { dir: string; commit: string; flags: string[] };
  workload: { runs: number; sraOnly: number; paired: number; fastqBytes: number; downloadBytes: number; transcripts: number; transcriptomeMb: number; totalThreads: number; kallistoThreads: number; quantThreads: number };
  nets: NetFigures[];
  durationSec: number;
}

const load = () => r2(loadavg()[0]!);

function gitCommit(dir: string): string {
  const r = spawnSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

async function startMirrorProcess(root: string, capMBps: number): Promise<{ pid: number; urls: { enaPortalUrl: string; sraLocateUrl: string; enaFileScheme: string; baseUrl: string }; stop(): Promise<void> }> {
  const args = [MIRROR_MAIN, '--root', root, ...(capMBps > 0 ? ['--bandwidth', String(capMBps * 1_000_000)] : [])];
  const child = spawn('node', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const urls = await new Promise<{ enaPortalUrl: string; sraLocateUrl: string; enaFileScheme: string; baseUrl: string }>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) res(JSON.parse(buf.slice(0, nl)));
    });
    child.once('exit', (c) => rej(new Error(`mirror exited ${c}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { pid: child.pid!, urls, stop: async () => (child.kill('SIGTERM'), await exited) };
}

/** What bench/b5/probe.cjs writes at the CLI's exit. */
interface Probe {
  selfUserSec: number;
  selfSystemSec: number;
  childrenUserSec: number | null;
  childrenSystemSec: number | null;
  gc: { ms: number; count: number };
  eventLoopUtilization: number;
  maxRssMB: number;
  platformTids: number[];
  poolTids: number[];
  threads: { tid: number; comm: string; cpuSec: number }[];
}

/**
 * Idle and steal seconds of the cores this bench runs on (/proc/stat's cpuN lines, USER_HZ 100): idle time
 * while a side runs is time nothing of it could use; steal is time the hypervisor gave another guest. Both
 * tell a slow side that waited apart from one that worked (B5 is compared run against run).
 */
export function coreTimes(cores: number, stat = (() => { try { return readFileSync('/proc/stat', 'utf8'); } catch { return ''; } })()): { idleSec: number; stealSec: number; busySec: number } | null {
  let idle = 0;
  let steal = 0;
  let busy = 0;
  let seen = 0;
  for (const line of stat.split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m || Number(m[1]) >= cores) continue;
    const [user = 0, nice = 0, system = 0, idl = 0, iowait = 0, irq = 0, softirq = 0, st = 0] = m[2]!.trim().split(/\s+/).map(Number);
    idle += idl + iowait;
    steal += st;
    busy += user + nice + system + irq + softirq;
    seen++;
  }
  return seen === 0 ? null : { idleSec: idle / 100, stealSec: steal / 100, busySec: busy / 100 };
}

function coreTimesSince(cores: number, before: ReturnType<typeof coreTimes>): Record<string, number> | null {
  const after = coreTimes(cores);
  if (!before || !after) return null;
  return { idleSec: r2(after.idleSec - before.idleSec), stealSec: r2(after.stealSec - before.stealSec), busySec: r2(after.busySec - before.busySec) };
}

/** The class of a thread of the CLI (probe.cjs tells Node's unnamed threads apart by when they started). */
export function threadClass(tid: number, comm: string, pid: number, platform: Set<number>, pool: Set<number>): string {
  if (tid === pid) return 'main thread';
  if (platform.has(tid)) return 'V8 platform threads (concurrent GC, JIT)';
  if (pool.has(tid)) return 'libuv thread pool (fs, zlib, crypto)';
  if (comm.startsWith('tokio')) return 'Temporal core SDK (Rust)';
  if (comm === 'node') return 'worker threads (workflow code; file checks since b6d58c7)';
  return `other threads (${comm})`;
}

/**
 * What the cores did while one side ran, as its notes: idle and steal (`cores`), where the idle fell
 * (`idlePhases`), and kallisto already running as it started (`kallistoAtStart`): a bench killed mid-run can
 * leave its baseline's behind, and they take the cores from every later side (seen in session 25); said in the
 * log at once and in the report.
 */
function watchCores(cores: number, log: (l: string) => void): { stop(): Record<string, unknown> } {
  const before = coreTimes(cores);
  const sampler = sampleIdle(() => coreTimes(cores)?.idleSec ?? null);
  const stray = sampler.first?.kallisto ?? countKallisto();
  if (stray > 0) log(`B5: WARNING: ${stray} kallisto process(es) already running before this side started; its figures are not comparable (pkill -f "kallisto quant")`);
  return {
    stop: () => ({ cores: coreTimesSince(cores, before), idlePhases: idlePhases(sampler.stop(), cores), ...(stray > 0 ? { kallistoAtStart: stray } : {}) }),
  };
}

/** One fetchquant batch through the real CLI, with the probe preloaded and its tree polled. */
async function runFetchquantSide(o: { cli: string; scenario: Scenario; urls: { enaPortalUrl: string; sraLocateUrl: string; enaFileScheme: string }; address: string; namespace: string; serverPid: number; metricsPort: number; mirrorPid: number; flags: string[]; batchId: string; work: string }): Promise<SideFigures> {
  const probeOut = join(o.work, `${o.batchId}.probe.json`);
  // FQ_B5_NODE_ARGS: extra node flags for the fetchquant side only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  // (NODE_OPTIONS refuses --cpu-prof, and would profile the mirror and the bench too).
  const nodeArgs = (process.env.FQ_B5_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const args = [
    ...nodeArgs,
    '-r', PROBE, o.cli, 'run',
    '--config-dir', o.scenario.configDir,
    '--output-dir', join(o.scenario.dir, 'out'),
    '--batch-id', o.batchId,
    '--ena-portal-url', o.urls.enaPortalUrl,
    '--sra-locate-url', o.urls.sraLocateUrl,
    '--ena-file-scheme', o.urls.enaFileScheme,
    '--min-free-gb', '1',
    ...o.flags,
  ];
  const env = { ...process.env, TEMPORAL_ADDRESS: o.address, TEMPORAL_NAMESPACE: o.namespace, FETCHQUANT_HOST_ID: 'bench-b5', FETCHQUANT_STATE_DIR: join(o.work, 'state'), FQ_B5_PROBE_OUT: probeOut };
  const logFile = join(o.scenario.dir, 'fetchquant.log');
  const logStream = createWriteStream(logFile);
  const counters0 = await scrapeCounters(o.metricsPort);
  const server0 = cpuOf(o.serverPid) ?? 0;
  const mirror0 = cpuOf(o.mirrorPid) ?? 0;
  const t0 = Date.now();
  const child = spawn('node', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let runningAt: number | null = null;
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    logStream.write(d);
    buf = (buf + d.toString()).slice(-300);
    if (runningAt === null && /batch \S+ running/.test(buf)) runningAt = Date.now();
  });
  child.stderr!.on('data', (d: Buffer) => logStream.write(d));
  const poll = pollTree(() => child.pid ?? null);
  const exitCode = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const makespanSec = (Date.now() - t0) / 1000;
  const tree: TreeCpu = poll.stop();
  await new Promise<void>((r) => logStream.end(() => r()));
  const serverSec = (cpuOf(o.serverPid) ?? server0) - server0;
  const mirrorSec = (cpuOf(o.mirrorPid) ?? mirror0) - mirror0;
  const serverRequests = counterDelta(counters0, await scrapeCounters(o.metricsPort));
  const census = await workflowCensus(o.address, o.namespace, new Date(t0 - 1000)).catch((err: unknown) => ({ error: { [(err as Error).message]: 1 } }));
  const probe = existsSync(probeOut)
    ? (JSON.parse(readFileSync(probeOut, 'utf8')) as Probe)
    : null;
  if (exitCode !== 0) process.stderr.write(`fetchquant exited ${exitCode}; log ${logFile}:\n${readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n')}\n`);
  const cpu: Record<string, number> = {};
  // The process itself, per thread class: the probe's reading at exit for threads alive then, the poller's
  // last reading for threads that ended earlier; what neither saw is the difference to the exact total.
  const perThread = new Map<number, { comm: string; cpuSec: number }>(tree.threads);
  for (const t of probe?.threads ?? []) perThread.set(t.tid, { comm: t.comm, cpuSec: Math.max(t.cpuSec, perThread.get(t.tid)?.cpuSec ?? 0) });
  const platform = new Set(probe?.platformTids ?? []);
  const pool = new Set(probe?.poolTids ?? []);
  const threadsByName: Record<string, number> = {};
  let seenSelf = 0;
  for (const [tid, t] of perThread) {
    const k = threadClass(tid, t.comm, child.pid!, platform, pool);
    cpu[`fetchquant: ${k}`] = (cpu[`fetchquant: ${k}`] ?? 0) + t.cpuSec;
    threadsByName[t.comm] = (threadsByName[t.comm] ?? 0) + t.cpuSec;
    seenSelf += t.cpuSec;
  }
  const self = probe ? probe.selfUserSec + probe.selfSystemSec : seenSelf;
  if (self > seenSelf + 0.05) cpu['fetchquant: threads that ended between polls'] = self - seenSelf;
  // PerformanceObserver gives GC pauses in wall time: on a loaded machine that overstates their CPU.
  if (probe) cpu['fetchquant: GC pauses on the main thread (wall time, part of the main thread)'] = probe.gc.ms / 1000;
  const childrenExact = probe && probe.childrenUserSec !== null ? probe.childrenUserSec + (probe.childrenSystemSec ?? 0) : null;
  let polledChildren = 0;
  for (const [comm, v] of Object.entries(tree.children)) {
    // Debian's fasterq-dump is a wrapper that runs fasterq-dump-orig (comm truncated to 15 characters)
    const name = comm.startsWith('fasterq-dump') ? 'fasterq-dump' : comm;
    cpu[`tool: ${name}`] = (cpu[`tool: ${name}`] ?? 0) + v.cpuSec;
    polledChildren += v.cpuSec;
  }
  if (childrenExact !== null && childrenExact > polledChildren + 0.05) cpu[UNPLACED] = childrenExact - polledChildren;
  cpu['Temporal server'] = serverSec;
  cpu['mirror (the network)'] = mirrorSec;
  const total = self + (childrenExact ?? polledChildren) + serverSec;
  return {
    makespanSec: r2(makespanSec),
    exitCode,
    cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, r2(v)])),
    cpuTotalSec: r2(total),
    notes: {
      startupSec: runningAt === null ? null : r2((runningAt - t0) / 1000),
      gcPauses: probe?.gc.count ?? null,
      eventLoopUtilization: probe ? r2(probe.eventLoopUtilization) : null,
      maxRssMB: probe ? Math.round(probe.maxRssMB) : null,
      processes: Object.fromEntries(Object.entries(tree.children).map(([k, v]) => [k, v.processes])),
      threadsByName: Object.fromEntries(Object.entries(threadsByName).map(([k, v]) => [k, r2(v)])),
      // what the server was asked while this side ran (bench/b5/server-metrics.ts)
      serverRequests: Object.fromEntries(serverRequests),
      workflowCensus: census,
      log: logFile,
    },
  };
}

async function runBaselineSide(o: { scenario: Scenario; dataset: Awaited<ReturnType<typeof prepareB5>>['dataset']; baseUrl: string; threads: number; kallistoThreads: number; mirrorPid: number; serverPid: number; work: string; name: string }): Promise<SideFigures & { kallistoCpuSec: number }> {
  const cpuLog = join(o.work, `${o.name}.cpu.log`);
  writeFileSync(cpuLog, '');
  const mirror0 = cpuOf(o.mirrorPid) ?? 0;
  const server0 = cpuOf(o.serverPid) ?? 0;
  const bl = await runBaseline({ dataset: o.dataset, scenario: o.scenario, baseUrl: o.baseUrl, threads: o.threads, kallistoThreads: o.kallistoThreads, fragmentSd: SPECIES_DEFAULTS.fragmentSd, cpuLog });
  const mirrorSec = (cpuOf(o.mirrorPid) ?? mirror0) - mirror0;
  // Not the baseline's: the idle Temporal server's own background work over the same span, for reference.
  const serverIdleSec = (cpuOf(o.serverPid) ?? server0) - server0;
  const cpu: Record<string, number> = {};
  for (const line of readFileSync(cpuLog, 'utf8').split('\n')) {
    const [, tool, ...rest] = line.split(' ');
    if (!tool) continue;
    cpu[`tool: ${tool}`] = (cpu[`tool: ${tool}`] ?? 0) + parseTimesLine(rest.join(' '));
  }
  const totalLine = existsSync(`${cpuLog}.total`) ? readFileSync(`${cpuLog}.total`, 'utf8').trim().split('\n').pop()! : '';
  const total = parseTimesLine(totalLine);
  const tools = Object.values(cpu).reduce((n, x) => n + x, 0);
  if (total > tools) cpu['bash, xargs, date, rm'] = total - tools;
  cpu['mirror (the network)'] = mirrorSec;
  return {
    makespanSec: r2(bl.makespanSec),
    exitCode: bl.exitCode,
    cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, r2(v)])),
    cpuTotalSec: r2(total),
    kallistoCpuSec: cpu['tool: kallisto'] ?? 0,
    notes: { failedRuns: bl.failed, temporalServerIdleCpuSec: r2(serverIdleSec), temporalServerIdleCpuPerSec: r2(serverIdleSec / bl.makespanSec) },
  };
}

export async function measureB5(o: B5Options): Promise<B5Results> {
  const t0 = Date.now();
  const data = await prepareB5(o.spec, o.log);
  const { dataset } = data;
  const runs = dataset.species.flatMap((s) => s.runs);
  const cores = availableParallelism();
  const plan = decideQuantThreads(cores, {});
  // FQ_B5_FLAGS: more fetchquant flags for an experiment (e.g. "--skip-plan"); the report names them.
  const extra = (process.env.FQ_B5_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const flags = ['--total-threads', String(o.totalThreads), ...(o.autoThreads ? [] : ['--quant-threads', String(plan.quantThreads), '--kallisto-threads', String(plan.kallistoThreads)]), ...extra];
  const cli = join(resolve(o.fetchquantDir), 'dist', 'src', 'cli.js');
  if (!existsSync(cli)) throw new Error(`--fetchquant-dir ${o.fetchquantDir}: no ${cli} (build that checkout first: npm run build)`);
  const fastqBytes = Object.values(data.fastqBytes).reduce((n, x) => n + x, 0);
  const download = neededBytes(dataset);
  const machine = describeMachine();
  // read now: the checkout may move while the bench runs (the CLI already started runs what was built)
  const fqCommit = o.fetchquantCommit ?? gitCommit(o.fetchquantDir);
  machine.note = [machine.note, `B5 ${o.label}`, `${cores} cores usable`].filter(Boolean).join(' · ');
  // Whichever side ran first used to read the runs and the index from disk and the other from the page cache:
  // in session 21's first --repeat run the first fetchquant (always first before --repeat) took 33.7 s, the
  // next ones 28.4 and 30.5 s. Both sides start from a warm cache now.
  const warm = warmPageCache(dataset.root);
  o.log(`B5: page cache warmed: ${(warm.bytes / 1e9).toFixed(2)} GB of runs, index and transcriptome read in ${warm.sec} s`);
  const work = mkdtempSync(join(tmpdir(), 'fq-b5-'));
  const server = await startEmbeddedServer({ stateDir: join(work, 'temporal'), port: await freePort(), metricsPort: await freePort(), headless: true });
  o.log(`B5: ${runs.length} runs, ${(fastqBytes / 1e9).toFixed(2)} GB FASTQ (${(download / 1e9).toFixed(2)} GB to fetch), ${data.transcripts} transcripts; ${cores} cores; fetchquant ${o.fetchquantDir} ${flags.join(' ')}; baseline xargs -P ${o.totalThreads} -t ${plan.kallistoThreads}`);
  const nets: NetFigures[] = [];
  try {
    for (const cap of o.nets) {
      const mirror = await startMirrorProcess(dataset.root, cap);
      try {
        const name = cap > 0 ? `${cap}MBps` : 'uncapped';
        const repeat = Math.max(1, o.repeat ?? 1);
        const pairs: NetFigures[] = [];
        // Pairs alternate which side goes first, so a machine that slows or speeds up over minutes (B5's
        // noise, docs/benchmarks.md) weighs on both sides alike; the pair of the median ratio is reported.
        for (let i = 0; i < repeat; i++) {
          const tag = repeat > 1 ? `${name}-${i + 1}` : name;
          const before = load();
          const runFq = async () => {
            o.log(`B5 ${tag}: fetchquant (load ${load()})`);
            const watch = watchCores(cores, o.log);
            const fq = await runFetchquantSide({ cli, scenario: await makeScenario(dataset, join(work, `fq-${tag}`)), urls: mirror.urls, address: server.address, namespace: server.namespace, serverPid: server.pid, metricsPort: server.restartOptions?.metricsPort ?? 0, mirrorPid: mirror.pid, flags, batchId: `b5-${tag}-${Date.now().toString(36)}`, work });
            Object.assign(fq.notes, watch.stop());
            o.log(`  ${fq.makespanSec} s, exit ${fq.exitCode}, ${fq.cpuTotalSec} CPU-s`);
            if (!process.env.FQ_BENCH_KEEP) rmSync(join(work, `fq-${tag}`, 'out'), { recursive: true, force: true });
            return fq;
          };
          const runBl = async () => {
            o.log(`B5 ${tag}: baseline xargs -P ${o.totalThreads} (load ${load()})`);
            const watch = watchCores(cores, o.log);
            const bl = await runBaselineSide({ scenario: await makeScenario(dataset, join(work, `bl-${tag}`)), dataset, baseUrl: mirror.urls.baseUrl, threads: o.totalThreads, kallistoThreads: plan.kallistoThreads, mirrorPid: mirror.pid, serverPid: server.pid, work, name: tag });
            Object.assign(bl.notes, watch.stop());
            o.log(`  ${bl.makespanSec} s, exit ${bl.exitCode}, ${bl.cpuTotalSec} CPU-s`);
            if (!process.env.FQ_BENCH_KEEP) rmSync(join(work, `bl-${tag}`), { recursive: true, force: true });
            return bl;
          };
          const fqFirst = i % 2 === 0;
          let fq: SideFigures;
          let bl: Awaited<ReturnType<typeof runBl>>;
          if (fqFirst) {
            fq = await runFq();
            bl = await runBl();
          } else {
            bl = await runBl();
            fq = await runFq();
          }
          const transferSec = cap > 0 ? download / (cap * 1e6) : 0;
          const kallistoBound = bl.kallistoCpuSec / cores;
          const boundSec = Math.max(kallistoBound, transferSec);
          const { kallistoCpuSec, ...baseline } = bl;
          pairs.push({
            capMBps: cap,
            boundSec: r2(boundSec),
            boundKind: transferSec > kallistoBound ? 'transfer' : 'kallisto CPU / cores',
            kallistoCpuSec: r2(kallistoCpuSec),
            transferSec: r2(transferSec),
            fetchquant: { ...fq, notes: { ...fq.notes, first: fqFirst } },
            baseline,
            fetchquantOverBaseline: r2(fq.makespanSec / bl.makespanSec),
            fetchquantOverBound: r2(fq.makespanSec / boundSec),
            baselineOverBound: r2(bl.makespanSec / boundSec),
            loadAvg1m: { before, after: load() },
          });
          o.log(`  pair ${i + 1}/${repeat}: fetchquant / baseline ${pairs[pairs.length - 1]!.fetchquantOverBaseline}`);
        }
        const chosen = medianPair(pairs);
        const idle = (side: SideFigures) => (side.notes.cores as { idleSec: number } | null | undefined)?.idleSec ?? null;
        nets.push(
          repeat > 1
            ? {
                ...chosen,
                pairs: pairs.map((p) => ({
                  first: p.fetchquant.notes.first ? 'fetchquant' : 'baseline',
                  fetchquantSec: p.fetchquant.makespanSec,
                  baselineSec: p.baseline.makespanSec,
                  fetchquantOverBaseline: p.fetchquantOverBaseline,
                  fetchquantOverBound: p.fetchquantOverBound,
                  fetchquantIdleSec: idle(p.fetchquant),
                  baselineIdleSec: idle(p.baseline),
                })),
              }
            : chosen,
        );
      } finally {
        await mirror.stop();
      }
    }
  } finally {
    await server.stop();
    if (!process.env.FQ_BENCH_KEEP) rmSync(work, { recursive: true, force: true });
    else o.log(`kept ${work}`);
  }
  return {
    machine,
    label: o.label,
    cores,
    fetchquant: { dir: resolve(o.fetchquantDir), commit: fqCommit, flags },
    workload: {
      runs: runs.length,
      sraOnly: runs.filter((r) => r.sraOnly).length,
      paired: runs.filter((r) => r.layout === 'paired').length,
      fastqBytes,
      downloadBytes: download,
      transcripts: data.transcripts,
      transcriptomeMb: r2(data.transcriptomeBases / 1e6),
      totalThreads: o.totalThreads,
      kallistoThreads: plan.kallistoThreads,
      quantThreads: plan.quantThreads,
    },
    nets,
    durationSec: r2((Date.now() - t0) / 1000),
  };
}

export function renderB5(r: B5Results): string {
  const m = r.machine;
  const w = r.workload;
  const gb = w.fastqBytes / 1e9;
  const out: string[] = [];
  out.push(`# B5 — the CPU-bound regime (${r.label})`, '');
  out.push(`${m.date} · ${m.cores} × ${m.cpu}, ${r.cores} usable · ${m.memoryGiB} GiB · ${m.os} · Node ${m.node} · ${m.temporal} · kallisto ${m.kallisto} · ${m.fasterqDump} · load ${m.loadAverage1m} at start · ${Math.round(r.durationSec / 60)} min in all`, '');
  out.push(
    `fetchquant: ${r.fetchquant.dir} at ${r.fetchquant.commit}, \`${r.fetchquant.flags.join(' ')}\`; bench at ${m.commit}. ` +
      `Workload: ${w.runs} runs (${w.paired} paired, ${w.sraOnly} SRA-only), ${(w.fastqBytes / 1e9).toFixed(2)} GB of FASTQ, ${(w.downloadBytes / 1e9).toFixed(2)} GB to fetch; ` +
      `index of ${w.transcripts} transcripts (${w.transcriptomeMb} Mb). Baseline: \`xargs -P ${w.totalThreads}\`, kallisto \`-t ${w.kallistoThreads}\`.`,
    '',
  );
  out.push('| network | fetchquant | baseline | bound | fetchquant / baseline | fetchquant / bound | baseline / bound | load (before → after) |', '|---|---|---|---|---|---|---|---|');
  for (const n of r.nets) {
    out.push(`| ${n.capMBps > 0 ? `${n.capMBps} MB/s` : 'uncapped'}${n.pairs ? ` (median of ${n.pairs.length} pairs)` : ''} | ${n.fetchquant.makespanSec} s | ${n.baseline.makespanSec} s | ${n.boundSec} s (${n.boundKind}) | **${n.fetchquantOverBaseline}** | **${n.fetchquantOverBound}** | ${n.baselineOverBound} | ${n.loadAvg1m.before} → ${n.loadAvg1m.after} |`);
  }
  out.push('');
  for (const n of r.nets) {
    if (!n.pairs) continue;
    out.push(
      `Pairs, ${n.capMBps > 0 ? `${n.capMBps} MB/s` : 'uncapped'}, in the order run (fetchquant / baseline, makespans, idle core-seconds of each side): ` +
        n.pairs.map((p) => `${p.fetchquantOverBaseline} (${p.first} first; ${p.fetchquantSec} s / ${p.baselineSec} s; idle ${p.fetchquantIdleSec ?? '–'} / ${p.baselineIdleSec ?? '–'})`).join(', ') +
        `. The tables below are the median pair's.`,
      '',
    );
  }
  for (const n of r.nets) {
    out.push(`## CPU seconds, ${n.capMBps > 0 ? `${n.capMBps} MB/s` : 'uncapped'} (per GB of FASTQ in brackets)`, '', '| where | fetchquant | baseline |', '|---|---|---|');
    const keys = [...new Set([...Object.keys(n.fetchquant.cpu), ...Object.keys(n.baseline.cpu)])];
    const cell = (v: number | undefined) => (v === undefined ? '–' : `${v} (${r2(v / gb)})`);
    for (const k of keys) out.push(`| ${k} | ${cell(n.fetchquant.cpu[k])} | ${cell(n.baseline.cpu[k])} |`);
    out.push(`| **total (without the mirror)** | **${cell(n.fetchquant.cpuTotalSec)}** | **${cell(n.baseline.cpuTotalSec)}** |`);
    out.push(`| each side's own: all but kallisto, fasterq-dump and the unplaced | ${cell(ownCpuSec(n.fetchquant.cpu, n.fetchquant.cpuTotalSec))} | ${cell(ownCpuSec(n.baseline.cpu, n.baseline.cpuTotalSec))} |`);
    out.push(`| per sample: fetchquant process + Temporal server | ${r2(((n.fetchquant.cpuTotalSec - Object.entries(n.fetchquant.cpu).filter(([k]) => k.startsWith('tool')).reduce((s, [, v]) => s + v, 0)) / w.runs))} s | – |`);
    out.push('', `The Temporal server idle (during the baseline): ${n.baseline.notes.temporalServerIdleCpuPerSec ?? '–'} CPU-s per second of wall time. fetchquant start-up (CLI start → batch running): ${n.fetchquant.notes.startupSec ?? '–'} s; GC pauses ${n.fetchquant.notes.gcPauses ?? '–'}; event-loop utilisation ${n.fetchquant.notes.eventLoopUtilization ?? '–'}; max RSS ${n.fetchquant.notes.maxRssMB ?? '–'} MB; kallisto CPU in the baseline ${n.kallistoCpuSec} s.`, '');
    const coresOf = (side: SideFigures) => side.notes.cores as { idleSec: number; stealSec: number } | null | undefined;
    const fqC = coresOf(n.fetchquant);
    const blC = coresOf(n.baseline);
    if (fqC && blC) out.push(`The cores used, while each side ran: idle ${fqC.idleSec} s (fetchquant) and ${blC.idleSec} s (baseline), stolen by the hypervisor ${fqC.stealSec} s and ${blC.stealSec} s.`, '');
    const phasesOf = (side: SideFigures) => side.notes.idlePhases as IdlePhases | undefined;
    const fqP = phasesOf(n.fetchquant);
    const blP = phasesOf(n.baseline);
    const said = (p: IdlePhases) => `${p.startSec} before the first kallisto (at ${p.firstKallistoAt ?? '–'} s), ${p.middleSec} while kallisto could fill the cores, ${p.endSec} after the last moment it did (from ${p.endFrom ?? '–'} s)`;
    const stray = [n.fetchquant, n.baseline].map((x) => (x.notes.kallistoAtStart as number | undefined) ?? 0);
    if (stray.some((x) => x > 0)) out.push(`**Not comparable**: kallisto processes not of this bench were running as a side started (fetchquant ${stray[0]}, baseline ${stray[1]}).`, '');
    if (fqP && blP) out.push(`Where the idle core-seconds fell (sampled every 0.1 s): fetchquant ${said(fqP)}; baseline ${said(blP)}.`, '');
    const reqs = Object.entries((n.fetchquant.notes.serverRequests ?? {}) as Record<string, number>);
    if (reqs.length > 0) {
      const per = (v: number) => r2(v / w.runs);
      const rpc = reqs.filter(([k]) => k.startsWith('service_requests ')).slice(0, 10);
      const db = reqs.filter(([k]) => k.startsWith('persistence_requests ')).slice(0, 10);
      const sum = (xs: Array<[string, number]>) => xs.reduce((t, [, v]) => t + v, 0);
      out.push(
        `Temporal server requests per sample while fetchquant ran: ${per(sum(reqs.filter(([k]) => k.startsWith('service_requests '))))} RPCs (most: ${rpc.map(([k, v]) => `${k.split(' ')[1]} ${per(v)}`).join(', ')}); ` +
          `${per(sum(reqs.filter(([k]) => k.startsWith('persistence_requests '))))} persistence requests (most: ${db.map(([k, v]) => `${k.split(' ')[1]} ${per(v)}`).join(', ')}).`,
        '',
      );
    }
    const census = (n.fetchquant.notes.workflowCensus ?? {}) as Record<string, Record<string, number>>;
    if (Object.keys(census).length > 0) {
      out.push(
        `Workflow tasks by workflow type (runs, events, workflow tasks completed): ${Object.entries(census)
          .map(([t, c]) => `${t} ${c.runs ?? 0} / ${c.events ?? 0} / ${c.workflow_task_completed ?? 0}`)
          .join('; ')}.`,
        '',
      );
    }
  }
  out.push('Raw figures: the `.json` beside this file. Method: docs/benchmarks.md (B5).', '');
  return out.join('\n');
}

/** "AMD EPYC 7B13" -> "AMD EPYC", "Intel(R) Xeon(R) Processor" -> "Intel Xeon": rows of different machines told apart. */
export function cpuShort(model: string): string {
  const words = model.replace(/\((R|TM)\)/g, '').split(/\s+/).filter(Boolean);
  return words.slice(0, 2).join(' ') || 'unknown CPU';
}

/** README's B5 lines (between `<!-- b5:begin -->` and `<!-- b5:end -->`), one per results file. */
export function renderReadmeB5(all: B5Results[]): string {
  const lines = ['| B5 run | network | fetchquant | `xargs -P` | bound | fq / xargs | fq / bound | CPU-s per GB of FASTQ (fq / xargs) |', '|---|---|---|---|---|---|---|---|'];
  for (const r of all) {
    const gb = r.workload.fastqBytes / 1e9;
    for (const n of r.nets) {
      lines.push(
        `| ${r.label}: ${r.machine.date.slice(0, 16).replace('T', ' ')} UTC, fetchquant ${r.fetchquant.commit}, ${r.cores} of ${r.machine.cores} cores (${cpuShort(r.machine.cpu)}), ${n.pairs ? `median of ${n.pairs.length} pairs (${n.pairs.map((p) => p.fetchquantOverBaseline).join(', ')})` : `load ${n.loadAvg1m.before}`} | ${n.capMBps > 0 ? `${n.capMBps} MB/s` : 'uncapped'} | ${n.fetchquant.makespanSec} s | ${n.baseline.makespanSec} s | ${n.boundSec} s | **${n.fetchquantOverBaseline}** | **${n.fetchquantOverBound}** | ${r2(n.fetchquant.cpuTotalSec / gb)} / ${r2(n.baseline.cpuTotalSec / gb)} |`,
      );
    }
  }
  return lines.join('\n');
}

/** Rewrites README's B5 block from bench/results/b5-*.json. */
function writeReadme(resultsDir: string): void {
  const files = readdirSync(resultsDir).filter((f) => /^b5-.*\.json$/.test(f)).sort();
  const all = files.map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as B5Results);
  const readme = join(PKG, 'README.md');
  const text = readFileSync(readme, 'utf8');
  const a = text.indexOf('<!-- b5:begin');
  const b = text.indexOf('<!-- b5:end -->');
  if (a < 0 || b < a) throw new Error('README.md has no <!-- b5:begin --> … <!-- b5:end --> block');
  const head = text.slice(a, text.indexOf('\n', a) + 1);
  writeFileSync(readme, text.slice(0, a) + head + renderReadmeB5(all) + '\n' + text.slice(b));
  process.stderr.write(`bench: README.md B5 block rewritten from ${files.join(', ')}\n`);
}

/** `npm run bench -- b5 …` (bench/run.ts hands over here). */
export async function b5Main(argv: string[]): Promise<void> {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      runs: { type: 'string' }, 'min-mb': { type: 'string' }, 'max-mb': { type: 'string' }, genes: { type: 'string' }, seed: { type: 'string' },
      net: { type: 'string' }, cores: { type: 'string' }, 'total-threads': { type: 'string' }, 'auto-threads': { type: 'boolean' }, 'given-threads': { type: 'boolean' },
      'fetchquant-dir': { type: 'string' }, 'fetchquant-commit': { type: 'string' }, label: { type: 'string' }, 'out-dir': { type: 'string' }, 'prepare-only': { type: 'boolean' }, readme: { type: 'boolean' }, repeat: { type: 'string' },
    },
  });
  const log = (l: string) => process.stderr.write(`bench: ${l}\n`);
  const cores = values.cores ? Number(values.cores) : null;
  if (cores !== null && !process.env.FQ_B5_TASKSET) {
    // Everything (server, mirror, fetchquant, baseline, tools) inherits the affinity mask.
    const r = spawnSync('taskset', ['-c', cores > 1 ? `0-${cores - 1}` : '0', process.execPath, process.argv[1]!, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, FQ_B5_TASKSET: String(cores) } });
    process.exit(r.status ?? 1);
  }
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  if (values.repeat !== undefined && !(Number.isInteger(Number(values.repeat)) && Number(values.repeat) >= 1)) {
    throw new Error(`--repeat must be a whole number of pairs, 1 or more; got '${values.repeat}'`);
  }
  const spec: B5Spec = { ...B5_FULL, runs: num(values.runs, B5_FULL.runs), minMB: num(values['min-mb'], B5_FULL.minMB), maxMB: num(values['max-mb'], B5_FULL.maxMB), genes: num(values.genes, B5_FULL.genes), seed: num(values.seed, B5_FULL.seed) };
  const outDir = values['out-dir'] ?? join(PKG, 'bench', 'results');
  if (values.readme) {
    writeReadme(outDir);
    return;
  }
  if (values['prepare-only']) {
    await prepareB5(spec, log);
    return;
  }
  const usable = availableParallelism();
  const label = values.label ?? `${usable}core${usable > 1 ? 's' : ''}`;
  const results = await measureB5({
    spec,
    nets: (values.net ?? 'uncapped,100').split(',').map((s) => (s.trim() === 'uncapped' ? 0 : Number(s))),
    totalThreads: num(values['total-threads'], 2 * usable),
    autoThreads: !values['given-threads'],
    fetchquantDir: values['fetchquant-dir'] ?? PKG,
    ...(values['fetchquant-commit'] ? { fetchquantCommit: values['fetchquant-commit'] } : {}),
    label,
    repeat: num(values.repeat, 1),
    log,
  });
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `b5-${label}`);
  writeFileSync(`${base}.json`, JSON.stringify(results, null, 2) + '\n');
  const md = renderB5(results);
  writeFileSync(`${base}.md`, md);
  process.stdout.write(md);
}
