/**
 * Orchestration overhead and scale (docs/benchmarks.md B3, and the figures of the workflow-core issue):
 * fast in-memory activities so only Temporal + our workflows are measured, on the embedded dev server, or
 * on a server given by address (temporal-server on PostgreSQL from scripts/cluster.sh: `npm run bench`
 * measures both side by side when the cluster runs).
 * Usage: node dist/bench/orchestration.js [--species 2 --runs 2000 --threads 24 --max-history-events N --restart-at 0.5 --out F]
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { freePort, startEmbeddedServer, type EmbeddedServer } from '../src/server/embedded.js';
import { setupNamespace } from '../src/server/setup.js';
import { startWorker } from '../src/worker.js';
import { batchWorkflowId, speciesWorkflowId } from '../src/ids.js';
import type { BatchResult } from '../src/workflows/batch.js';
import { createFastActivities, newLog } from '../test/helpers/fast-activities.js';
import { slotMoves, tailSlotsFreed } from './real/figures.js';
import { readSpeciesSignals } from './real/histories.js';
import { cpuOf } from './b5/cpu.js';
import { counterDelta, scrapeCounters } from './b5/server-metrics.js';

export interface OrchestrationFigures {
  /** which server: 'dev server (SQLite)' or 'temporal-server + PostgreSQL' */
  server?: string;
  species: number;
  runsPerSpecies: number;
  samples: number;
  totalThreads: number;
  makespanSec: number;
  samplesPerSec: number;
  eventsPerSampleHistory: { mean: number; max: number };
  largestHistory: { workflowId: string; events: number };
  speciesRuns: Record<string, number>;
  largestSpeciesRunEvents: number;
  batchEvents: number;
  /** workflow executions (all runs) whose history passed Temporal's 10,240-event warning */
  historiesOver10240: number;
  /** runs never published, and runs published more than once (both must be 0) */
  lostRuns: number;
  duplicatedRuns: number;
  /** sp0's tail slots freed -> setThreads elsewhere, ms */
  reallocationDelayMs: number[];
  /**
   * CPU per sample, ms: the worker (this process: worker, in-memory activities, the bench's client) and the
   * embedded Temporal server (its process; absent for a server given by address). The fixed costs of
   * issue 15 item 3, with the tools' work taken out.
   */
  cpuMsPerSample?: { worker: number; server: number | null };
  /** the embedded server's `service_requests` and `persistence_requests` counters per sample, largest first */
  serverRequestsPerSample?: Record<string, number>;
  /** workflow tasks of the species and batch runs that timed out / failed: each one meant a whole replay */
  longLivedTasks?: { timedOut: number; failed: number; causes?: Record<string, number> };
  /** samples done when the worker was replaced (restartAt), else null */
  restartedAfter?: number | null;
}

async function historyLengths(client: Client, query: string): Promise<{ id: string; runId: string; events: number }[]> {
  const out: { id: string; runId: string; events: number }[] = [];
  for await (const wf of client.workflow.list({ query })) out.push({ id: wf.workflowId, runId: wf.runId, events: wf.historyLength ?? 0 });
  return out;
}

/** Workflow tasks of these runs that timed out or failed (UnhandledCommand, say): each one cost a whole replay. */
async function failedTasks(client: Client, runs: { id: string; runId: string }[]): Promise<{ timedOut: number; failed: number; causes: Record<string, number> }> {
  let timedOut = 0;
  let failed = 0;
  const causes: Record<string, number> = {};
  for (const r of runs) {
    for (const e of (await client.workflow.getHandle(r.id, r.runId).fetchHistory()).events ?? []) {
      if (e.workflowTaskTimedOutEventAttributes) timedOut++;
      const f = e.workflowTaskFailedEventAttributes;
      if (f) {
        failed++;
        const kind = `${r.id.split('/').length > 2 ? 'species' : 'batch'}: ${f.cause ?? '?'} ${(f.failure?.message ?? '').slice(0, 80)}`;
        causes[kind] = (causes[kind] ?? 0) + 1;
      }
    }
  }
  return { timedOut, failed, causes };
}

/** A namespace of the cluster for B3 alone: its worker must not take the tasks of other batches there. */
export const CLUSTER_BENCH_NAMESPACE = 'fetchquant-bench';

export async function measureOrchestration(o: {
  species: number;
  runs: number;
  firstRuns?: number;
  threads: number;
  log?: (line: string) => void;
  /** an existing server (its namespace gets the search attributes); default: a fresh embedded dev server */
  target?: { address: string; namespace: string; label: string };
  /**
   * Replace the worker once this fraction of the samples is done: the new one has an empty cache and
   * replays every open workflow at once (species, batch, pacer and samples), as after a crash.
   */
  restartAt?: number;
  /** fail when no sample finishes for this long (a livelocked batch ends the run instead of hanging it) */
  stallSec?: number;
  /** the batch option (default: the batch's own default) */
  maxHistoryEvents?: number;
}): Promise<OrchestrationFigures> {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    /* installed */
  }
  let stateDir: string | null = null;
  let server: EmbeddedServer | null = null;
  let address: string;
  let namespace: string;
  if (o.target) {
    ({ address, namespace } = o.target);
  } else {
    stateDir = mkdtempSync(join(tmpdir(), 'fq-bench-'));
    server = await startEmbeddedServer({ stateDir, port: await freePort(), metricsPort: await freePort(), headless: true, ...(process.env.FQ_BENCH_PRAGMAS ? { sqlitePragmas: JSON.parse(process.env.FQ_BENCH_PRAGMAS) } : {}), ...(process.env.FQ_BENCH_DYNCONFIG ? { dynamicConfig: JSON.parse(process.env.FQ_BENCH_DYNCONFIG) } : {}) });
    ({ address, namespace } = server);
  }
  const connection = await Connection.connect({ address });
  if (o.target) {
    const setup = await setupNamespace(connection, namespace, 1);
    // A production server caches search attributes (common/searchattribute/manager.go: 60 s): wait out a
    // fresh registration so the batch does not spend its first minute failing workflow tasks.
    if (setup.added.length) {
      o.log?.(`B3: registered search attributes on ${namespace}; waiting 65 s for the server's cache`);
      await new Promise((r) => setTimeout(r, 65_000));
    }
  }
  const native = await NativeConnection.connect({ address });
  const client = new Client({ connection, namespace });
  // A batch id of its own on a shared server (its earlier runs stay in visibility); every query below names it.
  const batchId = o.target ? `bench-${Date.now()}` : 'bench';
  const ofBatch = `BatchId = '${batchId}'`;
  // Species of different sizes so one finishes first and its slots move.
  const world = { species: Array.from({ length: o.species }, (_, i) => ({ id: `sp${i}`, runs: i === 0 ? (o.firstRuns ?? Math.max(1, Math.round(o.runs / 4))) : o.runs })), downloadMs: 0, quantMs: 0 };
  const log = newLog();
  const newWorker = () => startWorker({ connection: native, client, namespace, hostId: 'bench', activities: createFastActivities(world, 'bench', log), janitor: false });
  let worker = await newWorker();
  let restartedAfter: number | null = null;
  try {
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    const server0 = server ? cpuOf(server.pid) : null;
    const metricsPort = server?.restartOptions.metricsPort ?? 0;
    const counters0 = metricsPort ? await scrapeCounters(metricsPort) : null;
    const h = await client.workflow.start('batchWorkflow', {
      taskQueue: 'fetchquant',
      workflowId: batchWorkflowId(batchId),
      args: [{ totalThreads: o.threads, checkIntervalSec: 30, monitorIntervalSec: 5, retryInitialSec: 0.1, hostLostTimeoutSec: 60, ...(o.maxHistoryEvents ? { maxHistoryEvents: o.maxHistoryEvents } : {}) }],
    });
    const total = world.species.reduce((n, s) => n + s.runs, 0);
    const doneCount = () => log.events.filter((e) => e.kind === 'delete').length;
    let lastDone = 0;
    let lastMoveAt = Date.now();
    let lastLogAt = Date.now();
    let restarting = false;
    let stalled: (err: Error) => void = () => undefined;
    const stall = new Promise<never>((_, reject) => (stalled = reject));
    const progress = setInterval(() => {
      const done = doneCount();
      if (done !== lastDone) [lastDone, lastMoveAt] = [done, Date.now()];
      if (Date.now() - lastLogAt >= 60_000) {
        lastLogAt = Date.now();
        o.log?.(`${done}/${total} samples after ${Math.round((Date.now() - t0) / 1000)} s`);
      }
      if (o.stallSec && Date.now() - lastMoveAt > o.stallSec * 1000) stalled(new Error(`no sample finished for ${o.stallSec} s (${done}/${total} done): the batch is stuck`));
      if (o.restartAt !== undefined && restartedAfter === null && !restarting && done >= o.restartAt * total) {
        restarting = true;
        void (async () => {
          await worker.shutdown();
          worker = await newWorker();
          restartedAfter = done;
          o.log?.(`worker replaced after ${done} samples: every open workflow replays`);
        })().catch((err: unknown) => stalled(err as Error));
      }
    }, 1000);
    const result = (await Promise.race([h.result(), stall]).finally(() => clearInterval(progress))) as BatchResult;
    const makespanSec = (Date.now() - t0) / 1000;
    const samples = result.totals.done;
    const cpu1 = process.cpuUsage(cpu0);
    const server1 = server && server0 !== null ? cpuOf(server.pid) : null;
    const requests = metricsPort ? counterDelta(counters0, await scrapeCounters(metricsPort)) : [];
    const perSample = (n: number) => Math.round((n / Math.max(1, samples)) * 100) / 100;
    // What the server was asked per sample (RPCs and SQLite requests, largest first): where its CPU goes.
    const serverRequestsPerSample = Object.fromEntries(requests.slice(0, 40).map(([k, v]) => [k, perSample(v)]));
    const cpuMsPerSample = {
      worker: Math.round(((cpu1.user + cpu1.system) / 1000 / Math.max(1, samples)) * 10) / 10,
      server: server1 !== null && server0 !== null ? Math.round((((server1 - server0) * 1000) / Math.max(1, samples)) * 10) / 10 : null,
    };

    const sampleLens = await historyLengths(client, `${ofBatch} AND WorkflowType = 'sampleWorkflow'`);
    const speciesRuns: Record<string, number> = {};
    let largestSpeciesRunEvents = 0;
    const longLived: { id: string; runId: string }[] = [];
    for (const s of world.species) {
      const runs = await historyLengths(client, `WorkflowId = '${speciesWorkflowId(batchId, s.id)}'`);
      speciesRuns[s.id] = runs.length;
      longLived.push(...runs);
      for (const r of runs) largestSpeciesRunEvents = Math.max(largestSpeciesRunEvents, r.events);
    }
    const all = await historyLengths(client, `${ofBatch} AND WorkflowType != 'sampleWorkflow'`);
    longLived.push(...(await historyLengths(client, `WorkflowId = '${batchWorkflowId(batchId)}'`)));
    const longLivedTasks = await failedTasks(client, longLived);
    const historiesOver10240 = [...all, ...sampleLens].filter((x) => x.events > 10_240).length;
    // Exactly once: every run of the world published (finalize) once.
    const published = new Map<string, number>();
    for (const e of log.events) if (e.kind === 'finalize' && e.run) published.set(e.run, (published.get(e.run) ?? 0) + 1);
    const expectedRuns = world.species.reduce((a, s) => a + s.runs, 0);
    const lostRuns = expectedRuns - published.size;
    const duplicatedRuns = [...published.values()].filter((n) => n > 1).length;
    const largest = [...all, ...sampleLens].sort((a, b) => b.events - a.events)[0]!;
    const batchEvents = all.filter((x) => x.id === batchWorkflowId(batchId)).reduce((a, x) => Math.max(a, x.events), 0);

    // Reallocation: every slot sp0 frees for good (a verified download after its last sample started) ->
    // the first setThreads another species receives. Same definition as B2's tail figure.
    const sig = await readSpeciesSignals(client, batchId, world.species.map((s) => s.id));
    const tail = tailSlotsFreed(sig.speciesSignals, 'sp0', sig.lastChildStarted.get('sp0') ?? 0);
    const { moved } = slotMoves(sig.speciesSignals, 'sp0');
    const delays = tail.map(moved).filter((x): x is number => x !== null);
    const lens = sampleLens.map((x) => x.events);
    return {
      server: o.target?.label ?? 'dev server (SQLite)',
      species: o.species,
      runsPerSpecies: o.runs,
      samples,
      totalThreads: o.threads,
      makespanSec,
      samplesPerSec: samples / makespanSec,
      eventsPerSampleHistory: { mean: lens.reduce((a, b) => a + b, 0) / Math.max(1, lens.length), max: Math.max(...lens) },
      largestHistory: { workflowId: largest.id, events: largest.events },
      speciesRuns,
      largestSpeciesRunEvents,
      batchEvents,
      historiesOver10240,
      lostRuns,
      duplicatedRuns,
      reallocationDelayMs: delays,
      cpuMsPerSample,
      ...(requests.length ? { serverRequestsPerSample } : {}),
      longLivedTasks,
      restartedAfter,
    };
  } finally {
    await worker.shutdown();
    await native.close();
    await connection.close();
    await server?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1]?.endsWith('orchestration.js');
if (isMain) {
  const { values } = parseArgs({ options: { species: { type: 'string' }, runs: { type: 'string' }, 'first-runs': { type: 'string' }, threads: { type: 'string' }, out: { type: 'string' }, 'max-history-events': { type: 'string' }, 'restart-at': { type: 'string' } } });
  const figures = await measureOrchestration({
    species: Number(values.species ?? 2),
    runs: Number(values.runs ?? 2000),
    firstRuns: values['first-runs'] ? Number(values['first-runs']) : undefined,
    threads: Number(values.threads ?? 24),
    ...(values['max-history-events'] ? { maxHistoryEvents: Number(values['max-history-events']) } : {}),
    ...(values['restart-at'] ? { restartAt: Number(values['restart-at']) } : {}),
  });
  const text = JSON.stringify(figures, null, 2);
  process.stdout.write(`${text}\n`);
  if (values.out) {
    mkdirSync(dirname(values.out), { recursive: true });
    writeFileSync(values.out, text);
  }
  process.exit(0);
}
