/**
 * The folded quant step (src/activities/sample-steps.ts): with a `publish` part it runs quant, then finalize
 * with the provenance completed from what quant found, then deleteReads; an attempt that finds the run
 * published by an earlier one (its worker died before reporting) does not run kallisto again on reads that
 * are gone, and answers with the figures on disk. Without `publish`, it is quant alone (older histories).
 */
import { describe, expect, it } from '@jest/globals';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { createSampleSteps, quantAfter } from '../../src/activities/sample-steps.js';
import type { Activities } from '../../src/activities/contract.js';
import type { Provenance, ProvenanceDraft, QuantAfter, QuantResult } from '../../src/types.js';

const figures = { nProcessed: 10, nPseudoaligned: 9, pPseudoaligned: 90, kallistoVersion: '0.48.1', command: ['kallisto', 'quant'] };
const draft: ProvenanceDraft = {
  run: 'SRR0000001',
  species: 'Sp sp',
  source: { source: 'ena', run: 'SRR0000001', layout: 'single', files: [], expectedReads: 10, reserveBytes: 1 },
  files: [],
  reads: 10,
  host: 'h',
  stages: [{ stage: 'quantifying', host: 'h', startedAt: '2026-01-01T00:00:00.000Z' }],
  restarts: 0,
  workflowId: 'w',
  runId: 'r',
};

function parts(onDisk: { done: boolean }) {
  const calls: string[] = [];
  const finalized: Provenance[] = [];
  const p = {
    async checkDone() {
      calls.push('checkDone');
      return onDisk.done;
    },
    async resolveSource() {
      throw new Error('not used');
    },
    async ensureIndex() {
      throw new Error('not used');
    },
    async reserveDisk() {
      throw new Error('not used');
    },
    async quant(input: { run: string }): Promise<QuantResult> {
      calls.push(`quant ${'publish' in input ? 'with publish' : 'alone'}`);
      return { ...figures, tmpDir: '/q/.SRR0000001.tmp' };
    },
    async finalize({ provenance }: { provenance: Provenance }) {
      calls.push('finalize');
      finalized.push(provenance);
      onDisk.done = true;
      return { dir: '/q/SRR0000001' };
    },
    async deleteReads({ keep }: { keep?: boolean }) {
      calls.push(keep ? 'deleteReads (keep)' : 'deleteReads');
      return { removedBytes: keep ? 0 : 123 };
    },
    async publishedQuant() {
      calls.push('publishedQuant');
      return onDisk.done ? figures : null;
    },
  } as unknown as Parameters<typeof createSampleSteps>[0];
  return { steps: createSampleSteps(p), calls, finalized };
}

const quantInput = {
  run: 'SRR0000001',
  indexPath: '/i.idx',
  reads: { layout: 'single' as const, files: ['/r/getfastq/SRR0000001/SRR0000001.fastq.gz'], reads: 10 },
  quantDir: '/q',
  fragmentLength: 200,
  fragmentSd: 20,
  kallistoThreads: 1,
  quantThreads: 1,
  timeoutSec: 60,
};
const publish = { provenance: draft, runDir: '/r/getfastq/SRR0000001' };

describe('the folded quant step', () => {
  it('quant, then finalize with the completed provenance, then deleteReads', async () => {
    const { steps, calls, finalized } = parts({ done: false });
    const r = await (steps.quant as Activities['quant'])({ ...quantInput, publish });
    expect(calls).toEqual(['checkDone', 'quant alone', 'finalize', 'deleteReads']);
    expect(r.published).toEqual({ dir: '/q/SRR0000001', removedBytes: 123 });
    expect(r.nProcessed).toBe(10);
    const prov = finalized[0]!;
    expect(prov).toMatchObject({ ...draft, quant: figures, tools: { kallisto: '0.48.1' } });
    expect(Date.parse(prov.finishedAt)).not.toBeNaN();
    expect('tmpDir' in prov.quant).toBe(false);
  });

  it('keeps the reads when the config says so', async () => {
    const { steps, calls } = parts({ done: false });
    await (steps.quant as Activities['quant'])({ ...quantInput, publish: { ...publish, keepReads: true } });
    expect(calls.at(-1)).toBe('deleteReads (keep)');
  });

  it('a retry after an attempt that published: no kallisto, the figures on disk, reads deleted (again)', async () => {
    const { steps, calls } = parts({ done: true });
    const r = await (steps.quant as Activities['quant'])({ ...quantInput, publish });
    expect(calls).toEqual(['checkDone', 'publishedQuant', 'finalize', 'deleteReads']);
    expect(r.published).toEqual({ dir: '/q/SRR0000001', removedBytes: 123, earlier: true });
    expect(r.kallistoVersion).toBe('0.48.1');
  });

  it('without publish: quant alone, nothing published (the step before the fold)', async () => {
    const { steps, calls } = parts({ done: false });
    const r = await (steps.quant as Activities['quant'])(quantInput);
    expect(calls).toEqual(['quant alone']);
    expect(r.published).toBeUndefined();
  });
});

/**
 * The quant a download or conversion runs once its reads are verified and the species told (quantAfter, samples
 * of `paths: 4`): the draft completed with what only the step knows, a quant failure reported rather than thrown.
 */
describe('the quant after a verifying step (quantAfter)', () => {
  const downloading = { stage: 'downloading' as const, host: 'h', startedAt: '2026-01-01T00:00:00.000Z', attempt: 1 };
  const after = (extra: Partial<QuantAfter> = {}): QuantAfter => ({
    quant: { run: 'SRR0000001', indexPath: '/i.idx', quantDir: '/q', kallistoThreads: 1, quantThreads: 1, timeoutSec: 60, publish: { ...publish, provenance: { ...draft, reads: 0, stages: [{ ...downloading }] } } },
    fragment: { single: { length: 250, sd: 25 }, paired: { length: 200, sd: 20 } },
    ...extra,
  });
  const verified = { layout: 'paired' as const, files: ['/r/a_1.fastq', '/r/a_2.fastq'], reads: 7, unpairedReads: 2 };
  const files = [{ path: '/r/a_1.fastq', bytes: 10, md5: 'm1' }];

  it('quantifies the verified reads with the layout\'s -l/-s and publishes a provenance that records them, the files and the stage times', async () => {
    const { steps, finalized } = parts({ done: false });
    let asked: Parameters<Activities['quant']>[0] | undefined;
    const quant: Activities['quant'] = async (input) => {
      asked = input;
      return steps.quant(input);
    };
    const before = Date.now();
    const a = after({ maxBp: 1000, bytesFetchedBefore: 5 });
    const outcome = { run: 'SRR0000001', speciesId: 'sp', state: 'done' as const, host: 'h', source: 'ena' as const, bytes: 5 };
    a.quant.publish.tell = { speciesWorkflowId: 'fetchquant/b/sp', outcome };
    const r = await quantAfter(quant, { quantAfter: a }, { verified, told: true as const }, { files, downsampled: { maxBp: 1000, reads: 7, bases: 700 }, bytesFetched: 20 });
    expect(asked).toMatchObject({ reads: verified, fragmentLength: 200, fragmentSd: 20 });
    // the species is told the bytes of the whole sample: those before the step and the step's own
    expect(asked!.publish!.tell!.outcome).toEqual({ ...outcome, bytes: 25 });
    expect(r.chained && 'quant' in r.chained && r.chained.quant.published?.dir).toBe('/q/SRR0000001');
    const at = r.chained!.verifiedAt;
    expect(Date.parse(at)).toBeGreaterThanOrEqual(before - 1);
    const prov = finalized[0]!;
    expect(prov).toMatchObject({ reads: 7, unpairedReads: 2, files, downsampling: { maxBp: 1000, downsampled: true, reads: 7, bytesFetched: 25 } });
    expect(prov.stages).toEqual([
      { ...downloading, endedAt: at },
      { stage: 'quantifying', host: 'h', startedAt: at },
    ]);
  });

  it('runs nothing when not asked, when the reads are not verified, or when the species was not told', async () => {
    let ran = 0;
    const quant: Activities['quant'] = async () => {
      ran++;
      throw new Error('not to be run');
    };
    const r1 = await quantAfter(quant, {}, { verified, told: true as const });
    const r2 = await quantAfter(quant, { quantAfter: after() }, { told: true as const });
    const r3 = await quantAfter(quant, { quantAfter: after() }, { verified });
    expect([r1, r2, r3].map((r) => r.chained)).toEqual([undefined, undefined, undefined]);
    expect(ran).toBe(0);
  });

  it("reports a quant failure with its type (the reads stay verified; the sample quantifies them itself) and lets a cancellation or a lost worker's stop through", async () => {
    const failing = (err: Error): Activities['quant'] => async () => {
      throw err;
    };
    const r = await quantAfter(failing(ApplicationFailure.create({ type: 'ToolFailed', message: 'kallisto exited 1' })), { quantAfter: after() }, { verified, told: true as const });
    expect(r.chained).toMatchObject({ error: { message: 'kallisto exited 1', type: 'ToolFailed' } });
    expect(r).toMatchObject({ verified, told: true });
    const idx = await quantAfter(failing(ApplicationFailure.nonRetryable('index broken', 'IndexError')), { quantAfter: after() }, { verified, told: true as const });
    expect(idx.chained).toMatchObject({ error: { type: 'IndexError', nonRetryable: true } });
    await expect(quantAfter(failing(new CancelledFailure('cancelled')), { quantAfter: after() }, { verified, told: true as const })).rejects.toBeInstanceOf(CancelledFailure);
    await expect(quantAfter(failing(ApplicationFailure.create({ type: 'WorkerLost', message: 'taken over' })), { quantAfter: after() }, { verified, told: true as const })).rejects.toThrow('taken over');
  });
});
