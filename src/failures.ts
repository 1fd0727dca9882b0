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

/** Preflight found less free disk than --min-free-gb: the batch fails at once. */
export const InsufficientDisk = 'InsufficientDisk';
