/**
 * What verifyReads is asked about a run's reads (src/activities/reads.ts): the workflow builds it after a
 * download or conversion, and the download or conversion itself builds the same when it checks its own output
 * (src/workflows/sample.ts, VERIFIED_IN_STEP). Pure: the workflow bundle imports it.
 */
import type { DownloadResult, Layout, SourcePlan } from './types.js';

export interface ReadsCheck {
  run: string;
  files: string[];
  layout: Layout;
  expectedReads: number | null;
  unpairedReads?: number | null;
}

/**
 * The check of FASTQ `files` fetched or converted by `plan`. A download cut at max_bp holds exactly the reads it
 * counted, whatever the archive's total. Unpaired reads of a paired run: listed by ENA but not fetched (null), or
 * counted by the conversion (a number).
 */
export function readsCheckOf(plan: SourcePlan, files: string[], layout: Layout, downsampled: DownloadResult['downsampled'], unpairedReads: number | null | undefined): ReadsCheck {
  // a cut download holds exactly the reads it counted: no unpaired reads to account for
  const unpaired = !downsampled && unpairedReads !== undefined ? { unpairedReads } : {};
  return { run: plan.run, files, layout, expectedReads: expectedReadsOf(plan, downsampled), ...unpaired };
}

/** The reads the fetched files must hold: the archive's count, or what a download cut at max_bp counted. */
export function expectedReadsOf(plan: SourcePlan, downsampled: DownloadResult['downsampled']): number | null {
  return downsampled ? downsampled.reads : plan.expectedReads;
}
