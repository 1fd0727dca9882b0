/**
 * fasterq-dump (sra-toolkit 3.0.3) on a local .sra, fully offline.
 * --split-3: mates to <RUN>_1/_2.fastq, unmated reads to <RUN>.fastq (single-end runs give only that one);
 *   the seed's conversion without split concatenated mates.
 * -t: temp files are about the size of the output and would land in the cwd otherwise; they go on the
 *   disk we reserved for the run.
 * -f: a retried attempt overwrites the previous attempt's outputs (without it fasterq-dump fails, rc 3).
 * --fasta (reads deleted after quant, issue 15): the same reads without their qualities, which kallisto 0.48
 *   never reads (its abundance.tsv and run_info.json come out the same; test/tools/convert.test.ts). The
 *   QUALITY column is then never decoded: about half fasterq-dump's CPU and half the bytes written, counted and
 *   parsed (docs/benchmarks.md, "FASTA from fasterq-dump"). Names end in .fasta; one line per sequence, never
 *   wrapped (sra-tools 3.0.3, 300-base reads tried), so a record is 2 lines. Reads a config keeps stay FASTQ.
 */
import { runTool, type RunToolOptions, type ToolResult } from './process.js';

export const FASTERQ_DUMP = 'fasterq-dump';

export interface FasterqDumpInput {
  sraPath: string;
  outDir: string;
  tmpDir: string;
  threads: number;
  /** FASTA instead of FASTQ (no qualities): for reads deleted once quantified */
  fasta?: boolean;
}

export function fasterqDumpArgs(q: FasterqDumpInput): string[] {
  if (!Number.isInteger(q.threads) || q.threads < 1) throw new Error(`fasterq-dump: threads must be an integer >= 1 (got ${q.threads})`);
  return [q.sraPath, '--split-3', ...(q.fasta ? ['--fasta'] : []), '-e', String(q.threads), '-O', q.outDir, '-t', q.tmpDir, '-f'];
}

/** The extension of fasterq-dump's output files: `.fasta` with --fasta, else `.fastq`. */
export function splitExt(fasta: boolean | undefined): '.fasta' | '.fastq' {
  return fasta ? '.fasta' : '.fastq';
}

/** What --split-3 produced, by file name. */
export interface SplitOutputs {
  layout: 'single' | 'paired';
  /** the files to keep, mate 1 first */
  keep: string[];
  /** unmated reads beside the mates: not used for quant (amalgkit does the same) */
  discard: string[];
}

/** Classifies fasterq-dump's output names for a run (`ext`: splitExt's); null when it produced nothing usable. Pure. */
export function classifySplit(run: string, names: string[], ext: '.fasta' | '.fastq' = '.fastq'): SplitOutputs | null {
  const has = (n: string) => names.includes(n);
  const single = `${run}${ext}`;
  const m1 = `${run}_1${ext}`;
  const m2 = `${run}_2${ext}`;
  if (has(m1) && has(m2)) return { layout: 'paired', keep: [m1, m2], discard: has(single) ? [single] : [] };
  // One mate file without the other is not a run we can quantify correctly.
  if (has(m1) || has(m2)) return null;
  if (has(single)) return { layout: 'single', keep: [single], discard: [] };
  return null;
}

export function fasterqDump(q: FasterqDumpInput, opts: RunToolOptions): Promise<ToolResult> {
  return runTool(FASTERQ_DUMP, fasterqDumpArgs(q), opts);
}
