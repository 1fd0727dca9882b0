/**
 * Orchestration overhead and scale (docs/benchmarks.md B3, and the figures of the workflow-core issue):
 * fast in-memory activities so only Temporal + our workflows are measured, on the embedded dev server.
 * Usage: node dist/bench/orchestration.js [--species 2 --runs 2000 --threads 24 --out bench/results/b3.json]
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { freePort, startEmbeddedServer } from '../src/server/embedded.js';
import { startWorker } from '../src/worker.js';
import { batchWorkflowId, speciesWorkflowId } from '../src/ids.js';
import type { BatchResult } from '../src/workflows/batch.js';
import { createFastActivities, newLog } from '../test/helpers/fast-activities.js';
import { slotMoves, tailSlotsFreed } from './real/figures.js';
import { readSpeciesSignals } from './real/histories.js';

export interface OrchestrationFigures {
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
}

async function historyLengths(client: Client, query: string): Promise<{ id: string; events: number }[]> {
  const out: { id: string; events: number }[] = [];
  for await (const wf of client.workflow.list({ query })) out.push({ id: wf.workflowId, events: wf.historyLength ?? 0 });
  return out;
}

export async function measureOrchestration(o: { species: number; runs: number; firstRuns?: number; threads: number; log?: (line: string) => void }): Promise<OrchestrationFigures> {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    /* installed */
  }
  const stateDir = mkdtempSync(join(tmpdir(), 'fq-bench-'));
  const server = await startEmbeddedServer({ stateDir, port: await freePort(), headless: true, ...(process.env.FQ_BENCH_PRAGMAS ? { sqlitePragmas: JSON.parse(process.env.FQ_BENCH_PRAGMAS) } : {}) });
  const native = await NativeConnection.connect({ address: server.address });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: 'default' });
  // Species of different sizes so one finishes first and its slots move.
  const world = { species: Array.from({ length: o.species }, (_, i) => ({ id: `sp${i}`, runs: i === 0 ? (o.firstRuns ?? Math.max(1, Math.round(o.runs / 4))) : o.runs })), downloadMs: 0, quantMs: 0 };
  const log = newLog();
  const worker = await startWorker({ connection: native, client, namespace: 'default', hostId: 'bench', activities: createFastActivities(world, 'bench', log), janitor: false });
  try {
    const t0 = Date.now();
    const h = await client.workflow.start('batchWorkflow', {
      taskQueue: 'fetchquant',
      workflowId: batchWorkflowId('bench'),
      args: [{ totalThreads: o.threads, checkIntervalSec: 30, monitorIntervalSec: 5, retryInitialSec: 0.1, hostLostTimeoutSec: 60 }],
    });
    const total = world.species.reduce((n, s) => n + s.runs, 0);
    const progress = setInterval(() => {
      const done = log.events.filter((e) => e.kind === 'delete').length;
      o.log?.(`${done}/${total} samples after ${Math.round((Date.now() - t0) / 1000)} s`);
    }, 60_000);
    const result = (await h.result().finally(() => clearInterval(progress))) as BatchResult;
    const makespanSec = (Date.now() - t0) / 1000;
    const samples = result.totals.done;

    const sampleLens = await historyLengths(client, `WorkflowType = 'sampleWorkflow'`);
    const speciesRuns: Record<string, number> = {};
    let largestSpeciesRunEvents = 0;
    for (const s of world.species) {
      const runs = await historyLengths(client, `WorkflowId = '${speciesWorkflowId('bench', s.id)}'`);
      speciesRuns[s.id] = runs.length;
      for (const r of runs) largestSpeciesRunEvents = Math.max(largestSpeciesRunEvents, r.events);
    }
    const all = await historyLengths(client, `WorkflowType != 'sampleWorkflow'`);
    const historiesOver10240 = [...all, ...sampleLens].filter((x) => x.events > 10_240).length;
    // Exactly once: every run of the world published (finalize) once.
    const published = new Map<string, number>();
    for (const e of log.events) if (e.kind === 'finalize' && e.run) published.set(e.run, (published.get(e.run) ?? 0) + 1);
    const expectedRuns = world.species.reduce((a, s) => a + s.runs, 0);
    const lostRuns = expectedRuns - published.size;
    const duplicatedRuns = [...published.values()].filter((n) => n > 1).length;
    const largest = [...all, ...sampleLens].sort((a, b) => b.events - a.events)[0]!;
    const batchEvents = all.filter((x) => x.id === batchWorkflowId('bench')).reduce((a, x) => Math.max(a, x.events), 0);

    // Reallocation: every slot sp0 frees for good (a verified download after its last sample started) ->
    // the first setThreads another species receives. Same definition as B2's tail figure.
    const sig = await readSpeciesSignals(client, 'bench', world.species.map((s) => s.id));
    const tail = tailSlotsFreed(sig.speciesSignals, 'sp0', sig.lastChildStarted.get('sp0') ?? 0);
    const { moved } = slotMoves(sig.speciesSignals, 'sp0');
    const delays = tail.map(moved).filter((x): x is number => x !== null);
    const lens = sampleLens.map((x) => x.events);
    return {
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
    };
  } finally {
    await worker.shutdown();
    await native.close();
    await connection.close();
    await server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1]?.endsWith('orchestration.js');
if (isMain) {
  const { values } = parseArgs({ options: { species: { type: 'string' }, runs: { type: 'string' }, 'first-runs': { type: 'string' }, threads: { type: 'string' }, out: { type: 'string' } } });
  const figures = await measureOrchestration({ species: Number(values.species ?? 2), runs: Number(values.runs ?? 2000), firstRuns: values['first-runs'] ? Number(values['first-runs']) : undefined, threads: Number(values.threads ?? 24) });
  const text = JSON.stringify(figures, null, 2);
  process.stdout.write(`${text}\n`);
  if (values.out) {
    mkdirSync(dirname(values.out), { recursive: true });
    writeFileSync(values.out, text);
  }
  process.exit(0);
}
