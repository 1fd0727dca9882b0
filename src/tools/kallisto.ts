/**
 * kallisto 0.48: pure argument builders and run_info.json checks, plus thin runners on runTool.
 * kallisto exits 0 on a truncated .gz and on mates of unequal length, and spins forever on a corrupted
 * .gz, so the reads are verified before (activities/reads.ts), it always runs under a timeout, and
 * run_info.json is checked after: n_processed must equal the reads we counted.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures.js';
import type { Layout } from '../types.js';
import { runTool, type RunToolOptions, type ToolResult } from './process.js';

export const KALLISTO = 'kallisto';

const invalid = (message: string) => ApplicationFailure.create({ type: FailureType.InvalidInput, message, nonRetryable: true });

export function indexArgs(indexPath: string, fastas: string[]): string[] {
  if (!indexPath) throw invalid('kallisto index: no index path');
  if (fastas.length === 0) throw invalid(`kallisto index ${indexPath}: no FASTA given`);
  return ['index', '-i', indexPath, ...fastas];
}

export interface QuantArgsInput {
  index: string;
  outDir: string;
  threads: number;
  /** one file (single) or two (paired: _1 then _2) */
  reads: string[];
  layout: Layout;
  fragmentLength: number;
  fragmentSd: number;
}

export function quantArgs(q: QuantArgsInput): string[] {
  if (!Number.isInteger(q.threads) || q.threads < 1) throw invalid(`kallisto quant: threads must be an integer >= 1 (got ${q.threads})`);
  const want = q.layout === 'paired' ? 2 : 1;
  if (q.reads.length !== want) {
    throw invalid(`kallisto quant: ${q.layout} layout needs ${want} read file(s), got ${q.reads.length}: ${q.reads.join(', ')}`);
  }
  // Exactly the command amalgkit quant 0.16 builds (quant.py build_kallisto_quant_command, docs/amalgkit.md), so
  // the same reads and index give the same abundance: no flag it does not pass (e.g. no --single-overhang).
  if (q.layout === 'paired') return ['quant', '--threads', String(q.threads), '-i', q.index, '-o', q.outDir, ...q.reads];
  // Single-end reads carry no fragment length: -l/-s as amalgkit computes them (ids.ts amalgkitFragment).
  if (!(Number.isFinite(q.fragmentLength) && q.fragmentLength > 0)) {
    throw invalid(`kallisto quant: single-end reads need a fragment length > 0 (got ${q.fragmentLength})`);
  }
  if (!(Number.isFinite(q.fragmentSd) && q.fragmentSd > 0)) {
    throw invalid(`kallisto quant: single-end reads need a fragment length sd > 0 (got ${q.fragmentSd})`);
  }
  const args = ['quant', '--threads', String(q.threads), '--index', q.index, '-o', q.outDir, '--single', '-l', String(q.fragmentLength), '-s', String(q.fragmentSd)];
  return [...args, ...q.reads];
}

export interface RunInfo {
  nProcessed: number;
  nPseudoaligned: number;
  pPseudoaligned: number;
  kallistoVersion: string;
  call: string;
}

/** Parses kallisto's run_info.json; a missing or mistyped field is a QuantInvalid naming the file. */
export function parseRunInfo(text: string, file: string): RunInfo {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw ApplicationFailure.create({ type: FailureType.QuantInvalid, message: `${file}: not JSON (${(err as Error).message})` });
  }
  const num = (k: string): number => {
    const v = j?.[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw ApplicationFailure.create({ type: FailureType.QuantInvalid, message: `${file}: field ${k} is ${JSON.stringify(v)}, expected a number` });
    }
    return v;
  };
  return {
    nProcessed: num('n_processed'),
    nPseudoaligned: num('n_pseudoaligned'),
    pPseudoaligned: num('p_pseudoaligned'),
    kallistoVersion: typeof j.kallisto_version === 'string' ? j.kallisto_version : 'unknown',
    call: typeof j.call === 'string' ? j.call : '',
  };
}

/** docs/architecture.md §5.2 verify: every read we counted was processed, and some of them pseudoaligned. */
export function verifyRunInfo(info: RunInfo, expectedReads: number, run: string): void {
  if (info.nProcessed !== expectedReads) {
    throw ApplicationFailure.create({
      type: FailureType.QuantInvalid,
      message: `run ${run}: kallisto processed ${info.nProcessed} reads, expected ${expectedReads} (the reads counted before quant)`,
    });
  }
  if (!(info.nPseudoaligned > 0)) {
    throw ApplicationFailure.create({
      type: FailureType.QuantInvalid,
      message: `run ${run}: kallisto pseudoaligned ${info.nPseudoaligned} of ${info.nProcessed} reads; expected > 0 (wrong index for this species?)`,
    });
  }
}

/**
 * What kallisto runs with beside the worker's environment: glibc's malloc asked to back its blocks with
 * transparent huge pages and to keep what it frees (GLIBC_TUNABLES glibc.malloc.hugetlb=1 and
 * glibc.malloc.trim_threshold=1 GiB; glibc 2.35 or later, ignored by older ones, no effect where THP is off).
 * Every quant first loads the whole index: with B5's 21,063-transcript index ~209,000 page faults, ~3,000 with
 * huge pages; without the trim threshold glibc hands memory back mid-run and the huge pages are split and faulted
 * again (more system time than without them). Measured on B5's 142 MB paired run: 2.84 against 3.84 CPU-s, the
 * same peak RSS and a byte-identical abundance.tsv (docs/benchmarks.md, "kallisto on huge pages").
 * A GLIBC_TUNABLES the user set that names hugetlb is left as it is (hugetlb=0 turns this off).
 */
export function kallistoEnv(current: string | undefined = process.env.GLIBC_TUNABLES): Record<string, string> {
  if (current && /(^|:)glibc\.malloc\.hugetlb=/.test(current)) return {};
  const ours = ['glibc.malloc.hugetlb=1', ...(current && /(^|:)glibc\.malloc\.trim_threshold=/.test(current) ? [] : [`glibc.malloc.trim_threshold=${1 << 30}`])];
  return { GLIBC_TUNABLES: [...(current ? [current] : []), ...ours].join(':') };
}

/** kallisto with kallistoEnv under the caller's env. */
function runKallisto(args: string[], opts: RunToolOptions): Promise<ToolResult> {
  return runTool(KALLISTO, args, { ...opts, env: { ...kallistoEnv(), ...opts.env } });
}

export function kallistoIndex(indexPath: string, fastas: string[], opts: RunToolOptions): Promise<ToolResult> {
  return runKallisto(indexArgs(indexPath, fastas), opts);
}

/** Exit 1 is accepted here: kallisto uses it for "0 reads pseudoaligned", with run_info.json written. */
export function kallistoQuant(q: QuantArgsInput, opts: RunToolOptions): Promise<ToolResult> {
  return runKallisto(quantArgs(q), { okExitCodes: [0, 1], ...opts });
}

/**
 * k-mers in a freshly built index, from `kallisto index`'s log ("... has N contigs and contains M k-mers").
 * kallisto exits 0 and writes a tiny index from a file that is not FASTA at all, so 0 means "no index".
 */
export function indexKmers(log: string): number | null {
  const m = /contains (\d+) k-mers/.exec(log);
  return m ? Number(m[1]) : null;
}
