/**
 * The folded quant step (src/activities/sample-steps.ts): with a `publish` part it runs quant, then finalize
 * with the provenance completed from what quant found, then deleteReads; an attempt that finds the run
 * published by an earlier one (its worker died before reporting) does not run kallisto again on reads that
 * are gone, and answers with the figures on disk. Without `publish`, it is quant alone (older histories).
 */
import { describe, expect, it } from '@jest/globals';
import { createSampleSteps } from '../../src/activities/sample-steps.js';
import type { Activities } from '../../src/activities/contract.js';
import type { Provenance, ProvenanceDraft, QuantResult } from '../../src/types.js';

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
