/**
 * verifyReads: the gate between download and quant (docs/architecture.md §5.2 "integrity"). kallisto exits 0 on a
 * truncated .gz and on mates of unequal length, and spins forever on a corrupted one, so every file is
 * gzip-tested and counted before it gets here; mates must agree, and agree with the source's count when known.
 * The counts come from the check record the download (or conversion) wrote while it wrote the file
 * (src/tools/fastq.ts); a file without a record that still matches it on disk is gzip-tested and counted
 * here, once, so nothing unverified ever reaches kallisto.
 */
import { isAbsolute } from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { FailureType } from '../failures.js';
import { countFastq, readCheckRecord } from '../tools/fastq.js';
import type { ReadSet } from '../types.js';
import type { Activities } from './contract.js';
import { activityHooks, withHeartbeat } from './heartbeat.js';

const name = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/** The count made while the file was written, when its record still matches the file; else a count now. */
async function countOnce(path: string, opts: { signal: AbortSignal; onProgress: (n: number) => void }): Promise<number> {
  const rec = await readCheckRecord(path);
  if (rec && rec.records !== null) return rec.records;
  return countFastq(path, opts);
}

export type VerifyInput = Parameters<Activities['verifyReads']>[0];

/**
 * The download or the conversion that has just written the reads checks them too (issue 15: one round trip
 * less per sample): the ReadSet when they pass, null when they do not — then the workflow asks verifyReads,
 * which fails with the reason as it always did. Only a cancellation is thrown.
 */
export async function verifiedInStep(input: VerifyInput): Promise<ReadSet | null> {
  return verifyReadSet(input).catch((err: unknown) => {
    if (err instanceof CancelledFailure) throw err;
    return null;
  });
}

export function createReadActivities(): Pick<Activities, 'verifyReads'> {
  return { verifyReads: verifyReadSet };
}

async function verifyReadSet({ run, files, layout, expectedReads, unpairedReads }: VerifyInput): Promise<ReadSet> {
  if (!RUN_ACCESSION.test(run)) {
    throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: `invalid run accession ${JSON.stringify(run)}`, nonRetryable: true });
  }
  const want = layout === 'paired' ? 2 : 1;
  if (files.length !== want || files.some((f) => !isAbsolute(f))) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      nonRetryable: true,
      message: `run ${run}: ${layout} reads need ${want} absolute FASTQ path(s), got ${JSON.stringify(files)}`,
    });
  }
  const hooks = activityHooks();
  const progress: Record<string, number> = {};
  const counts = await withHeartbeat(hooks, () =>
    // Mates are read in parallel: gunzip runs on libuv's thread pool, so two files take the time of one.
    Promise.all(
      files.map((f) =>
        countOnce(f, { signal: hooks.signal, onProgress: (n) => (progress[name(f)] = n) }).catch((err: unknown) => {
          if (err instanceof ApplicationFailure) {
            throw ApplicationFailure.create({ type: err.type ?? FailureType.TruncatedReads, message: `run ${run}: ${err.message}` });
          }
          throw err;
        }),
      ),
    ),
  );
  const [first, second] = counts as [number, number | undefined];
  if (layout === 'paired' && first !== second) {
    throw ApplicationFailure.create({
      type: FailureType.TruncatedReads,
      message: `run ${run}: mates differ: ${name(files[0]!)} has ${first} reads, ${name(files[1]!)} has ${second}`,
    });
  }
  if (first === 0) {
    throw ApplicationFailure.create({ type: FailureType.TruncatedReads, message: `run ${run}: ${name(files[0]!)} holds no reads` });
  }
  const held = `${files.map(name).join(' and ')} ${files.length === 1 ? 'holds' : 'hold'} ${first} reads${layout === 'paired' ? ' per mate' : ''}`;
  const bad = (message: string) => ApplicationFailure.create({ type: FailureType.TruncatedReads, message: `run ${run}: ${message}` });
  // The source's count is spots: a 3-file run's unpaired reads are in it (ENA read_count, fasterq-dump --split-3).
  if (layout === 'paired' && typeof unpairedReads === 'number') {
    if (expectedReads !== null && first + unpairedReads !== expectedReads) {
      throw bad(`${held} plus ${unpairedReads} unpaired = ${first + unpairedReads} spots, the source reports ${expectedReads}`);
    }
    return { layout, files, reads: first, ...(unpairedReads > 0 ? { unpairedReads } : {}) };
  }
  if (layout === 'paired' && unpairedReads === null) {
    if (expectedReads === null) return { layout, files, reads: first };
    if (first > expectedReads) throw bad(`${held}, more than the ${expectedReads} spots the source reports (unpaired reads included)`);
    return { layout, files, reads: first, unpairedReads: expectedReads - first };
  }
  if (expectedReads !== null && first !== expectedReads) throw bad(`${held}, the source reports ${expectedReads}`);
  return { layout, files, reads: first };
}
