/**
 * Shared parts of the end-to-end tests: their set-up (useE2eWorld), real `fetchquant worker` processes,
 * what a dataset's samples left on disk, and "every sample done exactly once" from both the files and the
 * server's visibility.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from '@jest/globals';
import type { Client } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import type { Activities } from '../../src/activities/contract.js';
import { batchWorkflowId, sampleWorkflowId, TASK_QUEUE } from '../../src/ids.js';
import type { Dataset, SyntheticRun, SyntheticSpecies } from '../../src/mirror/fixtures.js';
import type { Mirror, MirrorOptions } from '../../src/mirror/server.js';
import { findTemporalCli } from '../../src/server/temporal-cli.js';
import type { Provenance, SampleOutcome } from '../../src/types.js';
import { startWorker, type RunningWorker } from '../../src/worker.js';
import type { BatchResult } from '../../src/workflows/batch.js';
import { batchProgressQuery } from '../../src/workflows/messages.js';
import { testTemporal, type TestTemporal } from './temporal.js';
import { startMirrorWorld, type DatasetSpec, type MirrorWorld } from './world.js';

export const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');

export interface CliWorker {
  hostId: string;
  proc: ResultPromise;
  pid: number;
  /** everything it printed so far (stdout + stderr) */
  output(): string;
}

/** `fetchquant worker --host-id <id>` against the test server; resolves once it polls. */
export async function startCliWorker(hostId: string, env: Record<string, string>, timeoutMs = 60_000, args: string[] = []): Promise<CliWorker> {
  const proc = execa('node', [CLI, 'worker', '--host-id', hostId, ...args], { env, reject: false, all: true });
  let text = '';
  proc.all!.on('data', (d: Buffer) => (text += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${hostId} not polling after ${timeoutMs} ms:\n${text}`)), timeoutMs);
    proc.all!.on('data', () => {
      // its own line, not the SDK's "No workflows registered, not polling for workflow tasks" warning
      if (/ polling fetchquant /.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void proc.then((r) => {
      clearTimeout(timer);
      reject(new Error(`worker ${hostId} exited (${r.exitCode ?? r.signal}) before polling:\n${text}`));
    });
  });
  return { hostId, proc, pid: proc.pid!, output: () => text };
}

/** kill -9, and wait until the process is gone. */
export async function killHard(w: CliWorker): Promise<void> {
  w.proc.kill('SIGKILL');
  await w.proc;
}

/** Every file and directory under root, relative ('dir/' for directories). */
export function walk(root: string, rel = ''): string[] {
  if (!existsSync(join(root, rel))) return [];
  const out: string[] = [];
  for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(e.isDirectory() ? `${p}/` : p);
    if (e.isDirectory()) out.push(...walk(root, p));
  }
  return out;
}

export const readsDirOf = (d: Dataset, sp: SyntheticSpecies) => join(d.outputDir, sp.speciesId, 'fastq');
export const quantDirOf = (d: Dataset, sp: SyntheticSpecies) => join(d.outputDir, sp.speciesId, 'quant');
export const runDirOf = (d: Dataset, sp: SyntheticSpecies, run: string) => join(readsDirOf(d, sp), 'getfastq', run);
export const provenanceOf = (d: Dataset, sp: SyntheticSpecies, run: string) => join(quantDirOf(d, sp), run, `${run}_fetchquant.json`);

export function eachRun(d: Dataset): { sp: SyntheticSpecies; r: SyntheticRun }[] {
  return d.species.flatMap((sp) => sp.runs.map((r) => ({ sp, r })));
}

export function countDone(d: Dataset): number {
  return eachRun(d).filter(({ sp, r }) => existsSync(provenanceOf(d, sp, r.run))).length;
}

/**
 * Every sample done exactly once: outputs verified on disk, a provenance naming the one sample workflow of
 * the batch, exactly one sampleWorkflow execution per run that completed with state done, and no reads,
 * partial files or quant temp dirs left anywhere under the output dir. Returns the provenances.
 */
export async function expectEverySampleDoneOnce(client: Client, d: Dataset, batchId: string): Promise<Map<string, Provenance>> {
  const provs = new Map<string, Provenance>();
  for (const { sp, r } of eachRun(d)) {
    const dir = join(quantDirOf(d, sp), r.run);
    const info = JSON.parse(readFileSync(join(dir, `${r.run}_run_info.json`), 'utf8'));
    expect([r.run, info.n_processed]).toEqual([r.run, r.reads]);
    expect(readFileSync(join(dir, `${r.run}_abundance.tsv`), 'utf8')).toMatch(/^target_id\tlength\teff_length\test_counts\ttpm\n/);
    const prov = JSON.parse(readFileSync(provenanceOf(d, sp, r.run), 'utf8')) as Provenance;
    expect([r.run, prov.run, prov.reads, prov.workflowId]).toEqual([r.run, r.run, r.reads, sampleWorkflowId(batchId, sp.speciesId, r.run)]);
    // The bytes quantified are the archive's, from the source the provenance names: ENA for a run it holds,
    // unless the plan says why not (the source pacer spilled it while ENA was saturated or backing off, ENA's
    // API could not answer, or ENA's copy stayed bad: src/activities/source.ts, src/workflows/sample.ts).
    // Spills are timing: a CI chaos run sent one of 200 ENA runs to SRA after kills and faults had ENA
    // backing off.
    const notes = prov.source.notes ?? [];
    if (r.sraOnly || prov.source.source === 'sra') {
      expect([r.run, prov.source.source, prov.files.map((f) => f.md5)]).toEqual([r.run, 'sra', [r.sra.md5]]);
      if (!r.sraOnly) expect([r.run, notes.some((n) => /was saturated \(source pacer\): spilled to sra|bad copy before this one|^asked sra because /.test(n))]).toEqual([r.run, true]);
    } else {
      expect([r.run, prov.source.source, prov.files.map((f) => f.md5)]).toEqual([r.run, 'ena', r.fastq.map((f) => f.md5)]);
    }
    provs.set(r.run, prov);

    // A sample's outputs are published, and its species told, by its quant step; the workflow completes in the
    // task after it (after a server restart, a while later: a full run here listed one as RUNNING).
    // `fetchquant run` waits for that (waitForBatchQuiet); so does this check, on the result, before it counts
    // the executions.
    const outcome = (await client.workflow.getHandle(prov.workflowId, prov.runId).result()) as SampleOutcome;
    expect([r.run, outcome.state]).toEqual([r.run, 'done']);
    const executions: { runId: string; status: string }[] = [];
    for await (const wf of client.workflow.list({ query: `RunAccession = '${r.run}' AND WorkflowType = 'sampleWorkflow'` })) {
      // visibility finds the executions; their status comes from the history service (visibility is written behind it)
      const d = await client.workflow.getHandle(wf.workflowId, wf.runId).describe();
      executions.push({ runId: wf.runId, status: d.status.name });
    }
    expect([r.run, executions]).toEqual([r.run, [{ runId: prov.runId, status: 'COMPLETED' }]]);
  }
  for (const sp of d.species) {
    const getfastq = join(readsDirOf(d, sp), 'getfastq');
    expect([sp.speciesId, existsSync(getfastq) ? readdirSync(getfastq) : []]).toEqual([sp.speciesId, []]);
  }
  const leftovers = walk(d.outputDir).filter((p) => /\.part$|\.fastq(\.gz)?$|\.sra$|\/\.[SED]RR\d+\.tmp\/$/.test(p));
  expect(leftovers).toEqual([]);
  return provs;
}

/** The batch input fields that point a batch at a mirror-served dataset. */
export function mirrorInput(
  dataset: Pick<Dataset, 'configDir' | 'outputDir'>,
  mirror: Pick<Mirror, 'enaPortalUrl' | 'sraLocateUrl' | 'enaFileScheme'>,
) {
  return {
    configDir: dataset.configDir,
    outputDir: dataset.outputDir,
    enaPortalUrl: mirror.enaPortalUrl,
    sraLocateUrl: mirror.sraLocateUrl,
    enaFileScheme: mirror.enaFileScheme,
  };
}

/** A small batch's JSON input against the mirror, as a user hands it to `temporal workflow start --input`. */
export function smallMirrorBatchInput(dataset: Parameters<typeof mirrorInput>[0], mirror: Parameters<typeof mirrorInput>[1]) {
  return { ...mirrorInput(dataset, mirror), minFreeGb: 0.1, totalThreads: 3, monitorIntervalSec: 0.5, checkIntervalSec: 2 };
}

/**
 * A batch started and awaited with the Temporal CLI alone, as a user without fetchquant's CLI would:
 * `temporal workflow start --type batchWorkflow --input <json>`, then `temporal workflow result`. Its result.
 */
export async function temporalCliBatch(t: Pick<TestTemporal, 'address' | 'namespace'>, workflowId: string, input: unknown): Promise<BatchResult> {
  const temporal = findTemporalCli()!;
  const conn = ['--address', t.address, '--namespace', t.namespace];
  await execa(temporal, ['workflow', 'start', ...conn, '--type', 'batchWorkflow', '--task-queue', 'fetchquant', '--workflow-id', workflowId, '--input', JSON.stringify(input)]);
  const result = await execa(temporal, ['workflow', 'result', ...conn, '--workflow-id', workflowId, '--output', 'json'], { timeout: 180_000 });
  const parsed = JSON.parse(result.stdout);
  return parsed.result ?? parsed;
}

/**
 * A batch over a mirror-served dataset with the short intervals every end-to-end test uses (retries,
 * monitor, disk waits, one kallisto thread); `options` adds or overrides batch options.
 */
export function startMirrorBatch(
  client: Client,
  batchId: string,
  dataset: Pick<Dataset, 'configDir' | 'outputDir'>,
  mirror: Pick<Mirror, 'enaPortalUrl' | 'sraLocateUrl' | 'enaFileScheme'>,
  options: Record<string, unknown>,
) {
  return client.workflow.start('batchWorkflow', {
    taskQueue: TASK_QUEUE,
    workflowId: batchWorkflowId(batchId),
    args: [
      {
        ...mirrorInput(dataset, mirror),
        retryInitialSec: 0.2,
        monitorIntervalSec: 0.5,
        checkIntervalSec: 2,
        diskWaitSec: 0.5,
        minFreeGb: 0.01,
        kallistoThreads: 1,
        processTimeoutSec: 120,
        ...options,
      },
    ],
  });
}

/**
 * A batch's result, or after `withinMs` a failure saying where every open workflow of the batch stands (its
 * type, and each pending activity with its attempt and last failure), then what `alsoSay` adds (a worker's
 * output), instead of a bare jest timeout.
 */
export async function resultOrWhereItStands(client: Client, batchId: string, withinMs: number, alsoSay?: () => string): Promise<BatchResult> {
  const handle = client.workflow.getHandle(batchWorkflowId(batchId));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), withinMs)));
  try {
    const first = await Promise.race([handle.result() as Promise<BatchResult>, late]);
    if (first !== 'late') return first;
  } finally {
    clearTimeout(timer);
  }
  const lines: string[] = [];
  for await (const w of client.workflow.list({ query: `ExecutionStatus = "Running" AND BatchId = "${batchId}"` })) {
    const d = await client.workflow.getHandle(w.workflowId).describe();
    const pending = (d.raw.pendingActivities ?? []).map((a) => `${a.activityType?.name} attempt ${a.attempt} ${a.state}${a.lastFailure?.message ? ` last failure: ${a.lastFailure.message}` : ''}`);
    lines.push(`${w.workflowId} (${w.type}): ${pending.length ? pending.join('; ') : 'no pending activity'}`);
  }
  const progress = await handle.query(batchProgressQuery).then(
    (p) => JSON.stringify(p.species.map((x) => ({ id: x.speciesId, status: x.status, done: x.done, failed: x.failed, downloading: x.downloading, processing: x.processing, parked: x.parked?.map((r) => r.run) }))),
    (err: unknown) => `(no progress: ${String(err)})`,
  );
  throw new Error(`batch ${batchId} not finished after ${withinMs} ms; species ${progress}; open workflows:\n${lines.join('\n') || '(none listed)'}${alsoSay ? `\n${alsoSay()}` : ''}`);
}

/** What an end-to-end test runs against: its own namespace, a mirror-served dataset, its workers. */
export interface E2eWorld extends MirrorWorld {
  t: TestTemporal;
  /** the in-process worker, when the options asked for one */
  worker?: RunningWorker;
  /** `fetchquant worker --host-id <hostId>` on t's namespace (startCliWorker), killed (-9) after the tests */
  cliWorker(hostId: string): Promise<CliWorker>;
}

export interface E2eWorldOptions {
  /** the namespace's label (testTemporal) */
  label: string;
  /** the temp dir's prefix, the dataset and the mirror's options (startMirrorWorld) */
  prefix: string;
  data: DatasetSpec;
  mirror?: (dataset: Dataset) => Omit<MirrorOptions, 'dataset'>;
  /** an in-process worker with this host id: real activities, or those `activities` makes */
  worker?: { hostId: string; activities?: (world: E2eWorld) => Activities };
  /** beforeAll's timeout; jest's own when unset */
  timeoutMs?: number;
}

/**
 * Registers the beforeAll and afterAll of the describe block it is called in: before the tests a fresh
 * namespace, the mirror world and the worker asked for; after them the workers (processes killed, the
 * in-process one shut down), then the mirror and the temp dir, then the connections. beforeAll fills in
 * the object returned.
 */
export function useE2eWorld(o: E2eWorldOptions): E2eWorld {
  const processes: CliWorker[] = [];
  const world = {
    async cliWorker(hostId: string) {
      const w = await startCliWorker(hostId, { TEMPORAL_ADDRESS: world.t.address, TEMPORAL_NAMESPACE: world.t.namespace });
      processes.push(w);
      return w;
    },
  } as E2eWorld;
  beforeAll(async () => {
    world.t = await testTemporal(o.label);
    Object.assign(world, await startMirrorWorld(o.prefix, o.data, o.mirror));
    if (o.worker) {
      const { t } = world;
      const activities = o.worker.activities?.(world);
      world.worker = await startWorker({
        connection: t.native,
        client: t.client,
        namespace: t.namespace,
        hostId: o.worker.hostId,
        janitor: false,
        shutdownGraceTimeMs: 1000,
        ...(activities ? { activities } : {}),
      });
    }
  }, o.timeoutMs);
  afterAll(async () => {
    for (const w of processes) await killHard(w).catch(() => undefined);
    await world.worker?.shutdown();
    await world.stop?.();
    await world.t?.close();
  });
  return world;
}
