/**
 * The failure taxonomy: one name, one meaning, one retry decision each.
 * Activities throw ApplicationFailure with `type` set to one of these names; retry policies
 * list the non-retryable ones so Temporal never retries what cannot get better.
 * Pure: imported by workflows and activities alike.
 */

export const FailureType = {
  /** The run is unknown at every configured source. */
  RunNotFound: 'RunNotFound',
  /** A config, run table, option or accession is invalid. */
  InvalidInput: 'InvalidInput',
  /** The kallisto index is missing and cannot be built, or building it failed. */
  IndexError: 'IndexError',
  /** Connection refused/reset, DNS, a stalled stream. */
  NetworkError: 'NetworkError',
  /** HTTP 5xx or 429 (Retry-After honoured by the activity before it fails). */
  ServerError: 'ServerError',
  /** Size or md5 differs from the source's; the partial file is deleted before the retry. */
  ChecksumMismatch: 'ChecksumMismatch',
  /** gzip test failed, mate counts differ, or read count differs from the source's. */
  TruncatedReads: 'TruncatedReads',
  /** An external tool failed or timed out (fasterq-dump, vdb-validate, kallisto). */
  ToolFailed: 'ToolFailed',
  /** kallisto ran but the result is wrong (n_processed != reads, nothing pseudoaligned). */
  QuantInvalid: 'QuantInvalid',
  /** A required tool is not installed on the worker's host. */
  ToolMissing: 'ToolMissing',
} as const;

/**
 * An attempt whose worker was killed, handed back by the next worker on that machine (activity-attempts.ts).
 * Deliberately not a FailureType: those are final for read checks, and this one must be retried like the
 * heartbeat timeout it stands in for.
 */
export const WORKER_LOST = 'WorkerLost';
/**
 * A download stopped at the disk floor (--min-free-gb) while writing, its good bytes kept: the sample waits
 * for disk, as at admission, and resumes; not a fault of the work, so it uses no retry.
 */
export const DISK_FLOOR = 'DiskFloor';
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/**
 * The run is not at any allowed source yet, but another archive has it (runs reach ENA from SRA only after
 * the archives' daily exchange): a park, not a failure. Thrown non-retryable so the step does not spin; kept
 * out of FailureType so the retry policies of recorded histories stay as they were.
 */
export const NOT_YET_AVAILABLE = 'NotYetAvailable';
/** A parked run still unavailable when --park-deadline ran out: the sample fails with this type and the reason. */
export const PARKED_PAST_DEADLINE = 'ParkedPastDeadline';

/**
 * Failures that park a run instead of failing its sample (docs/park.md): no source can serve it *now* —
 * an archive down or answering 5xx/429 beyond every retry, the network to it gone, or the run not yet
 * synchronised to the allowed source.
 */
export function isParkable(type: string | undefined | null): boolean {
  return type === FailureType.ServerError || type === FailureType.NetworkError || type === NOT_YET_AVAILABLE;
}

/** Failures that retrying cannot fix. Everything else is retried with back-off. */
export const NON_RETRYABLE: readonly FailureType[] = [
  FailureType.RunNotFound,
  FailureType.InvalidInput,
  FailureType.IndexError,
  FailureType.ToolMissing,
];

export function isRetryable(type: string | undefined | null): boolean {
  return !NON_RETRYABLE.includes(type as FailureType);
}

/**
 * Something outside fetchquant is missing or broken (a tool, the Temporal server, the worker): the CLI says what
 * to install or start and exits 3. The one error type for exit 3 (bad input, exit 2, is InvalidInputError).
 */
export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
}

/**
 * An error and the causes it wraps, outermost first: Temporal's failures (WorkflowFailedError > ActivityFailure >
 * ApplicationFailure), the client's ServiceError and fetch's errors all nest theirs. Bounded, cycle-safe.
 */
export function causeChain(err: unknown, maxDepth = 10): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e != null && chain.length < maxDepth && !chain.includes(e); e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

/** The innermost cause of an error (the error itself when it wraps none). */
export function rootCause(err: unknown): unknown {
  return causeChain(err).at(-1) ?? err;
}

/** Preflight found less free disk than --min-free-gb: the batch fails at once. */
export const InsufficientDisk = 'InsufficientDisk';
