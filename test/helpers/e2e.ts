/**
 * Shared parts of the crash, server-crash and several-hosts end-to-end tests: real `fetchquant worker`
 * processes, what a dataset's samples left on disk, and "every sample done exactly once" from both the
 * files and the server's visibility.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from '@jest/globals';
import type { Client } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import { batchWorkflowId, sampleWorkflowId, TASK_QUEUE } from '../../src/ids.js';
import { generateDataset, type Dataset, type SyntheticRun, type SyntheticSpecies } from '../../src/mirror/fixtures.js';
import { startMirror, type Mirror, type MirrorOptions } from '../../src/mirror/server.js';
import type { Provenance, SampleOutcome } from '../../src/types.js';

export const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');

export interface CliWorker {
  hostId: string;
  proc: ResultPromise;
  pid: number;
  /** everything it printed so far (stdout + stderr) */
  output(): string;
}

/** `fetchquant worker --host-id <id>` against the test server; resolves once it polls. */
export async function startCliWorker(hostId: string, env: Record<string, string>, timeoutMs = 60_000): Promise<CliWorker> {
  const proc = execa('node', [CLI, 'worker', '--host-id', hostId], { env, reject: false, all: true });
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
    // the bytes quantified are the archive's
    expect([r.run, prov.files.map((f) => f.md5)]).toEqual([r.run, r.sraOnly ? [r.sra.md5] : r.fastq.map((f) => f.md5)]);
    provs.set(r.run, prov);

    const executions: { runId: string; status: string }[] = [];
    for await (const wf of client.workflow.list({ query: `RunAccession = '${r.run}' AND WorkflowType = 'sampleWorkflow'` })) {
      executions.push({ runId: wf.runId, status: wf.status.name });
    }
    expect([r.run, executions]).toEqual([r.run, [{ runId: prov.runId, status: 'COMPLETED' }]]);
    const outcome = (await client.workflow.getHandle(prov.workflowId, prov.runId).result()) as SampleOutcome;
    expect([r.run, outcome.state]).toEqual([r.run, 'done']);
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

/** A synthetic dataset in a fresh temp dir, served by the loopback mirror; stop() stops it and removes the dir. */
export interface MirrorWorld {
  root: string;
  dataset: Dataset;
  mirror: Mirror;
  stop(): Promise<void>;
}

/** `mirror` gets the generated dataset (fault plans name its runs). */
export async function startMirrorWorld(
  prefix: string,
  data: Omit<Parameters<typeof generateDataset>[0], 'root'>,
  mirror: (dataset: Dataset) => Omit<MirrorOptions, 'dataset'> = () => ({}),
): Promise<MirrorWorld> {
  const root = await mkdtemp(join(tmpdir(), `fq-${prefix}-`));
  const remove = () => rmSync(root, { recursive: true, force: true });
  try {
    const dataset = await generateDataset({ root, ...data });
    const m = await startMirror({ dataset, ...mirror(dataset) });
    return {
      root,
      dataset,
      mirror: m,
      stop: async () => {
        await m.stop();
        remove();
      },
    };
  } catch (err) {
    remove();
    throw err;
  }
}
