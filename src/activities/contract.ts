/**
 * The activity interface the workflows program against (`import type` only from workflows).
 * Implementations live beside this file and are assembled by createActivities() in ./index.ts.
 *
 * Queue placement:
 *  - SHARED (task queue `fetchquant`): discoverBatch, listRuns, allocate, preflightDisk, resolveSource,
 *    ensureIndex (batch-level fail-fast), janitor's listInFlight.
 *  - LOCAL (the worker running the sample's workflow task): claimHost.
 *  - HOST (task queue `fetchquant@<host>`): everything that reads or writes a sample's files.
 */
import type { BatchOptions } from '../config/schema.js';
import type {
  BatchPlan,
  DiskGrant,
  DownloadResult,
  JanitorReport,
  Layout,
  Provenance,
  ChainedQuant,
  ProvenanceDraft,
  QuantAfter,
  QuantResult,
  ReadSet,
  RunMeta,
  RunPage,
  SampleOptions,
  SampleOutcome,
  SourcePlan,
  Tell,
} from '../types.js';

/** What convertSra returns. */
export interface ConvertResult {
  files: string[];
  layout: Layout;
  unpairedReads?: number;
  verified?: ReadSet;
  told?: true;
  chained?: ChainedQuant;
}

export interface SpeciesDemand {
  speciesId: string;
  /** runs of this species not yet downloaded and verified (queued + downloading) */
  remaining: number;
}

export interface Activities {
  // ---- shared queue ----
  /** Find, validate and snapshot species configs. Throws InvalidInput listing every problem. */
  discoverBatch(input: { options: BatchOptions; batchId: string }): Promise<BatchPlan>;
  /** A page of a species' run snapshot; runs already done on disk are returned in `skipped`. */
  listRuns(input: { runListPath: string; quantDir: string; cursor: number; limit: number }): Promise<RunPage>;
  /** docs/architecture.md §5.1 allocation. Order of `species` is config order (the tie-breaker). */
  allocate(input: { totalThreads: number; species: SpeciesDemand[] }): Promise<Record<string, number>>;
  /** Free space under dir; throws InsufficientDisk when below minFreeGb. */
  preflightDisk(input: { dir: string; minFreeGb: number }): Promise<{ host: string; freeBytes: number }>;
  /** ENA first, then SRA (in `options.sources` order). Throws RunNotFound when no source has it. */
  resolveSource(input: { run: RunMeta; options: SampleOptions }): Promise<SourcePlan>;
  /** Returns the host id of the worker that picked this task up (a local activity: the workflow's own worker). */
  claimHost(): Promise<{ hostId: string }>;
  /** Check or build a kallisto index once (never concurrently on one host). Throws IndexError. */
  /** onlyIfBuilt: build nothing; `missing` when there is no index yet (a local activity must not build for minutes) */
  ensureIndex(input: { indexPath: string; fastaPaths: string[]; timeoutSec: number; onlyIfBuilt?: boolean }): Promise<{ indexPath: string; built: boolean; missing?: true }>;

  // ---- host queue ----
  /**
   * checkDone, then (not done) resolveSource, ensureIndex and one reserveDisk, in one round trip on the
   * sample's host. `grant.granted` false: wait and call reserveDisk again.
   */
  prepareSample(input: {
    run: RunMeta;
    options: SampleOptions;
    quantDir: string;
    readsDir: string;
    indexPath: string;
    fastaPaths: string[];
    /**
     * Run as a local activity, in the workflow task that claimed the host (src/workflows/sample.ts
     * PREPARE_LOCALLY_PATHS): with no index on this host yet it stops at once (`deferred`) and the sample asks
     * the host activity, which builds it while heartbeating.
     */
    quick?: boolean;
  }): Promise<{ done: true } | { done: false; plan: SourcePlan; grant: DiskGrant } | { done: false; deferred: 'index' }>;
  /** finalize then deleteReads, in one round trip: the sample is published and its reads are gone. */
  publish(input: { run: string; quantDir: string; tmpDir: string; provenance: Provenance; runDir: string; keepReads?: boolean }): Promise<{ dir: string; removedBytes: number }>;
  /** True iff abundance and provenance files of the run exist. */
  checkDone(input: { quantDir: string; run: string }): Promise<boolean>;
  /** Admission: grant iff free - reserved(others) - bytes >= minFreeGb. Idempotent per run. */
  reserveDisk(input: { run: string; dir: string; bytes: number; minFreeGb: number }): Promise<DiskGrant>;
  /** Download every file of the plan into runDir, verified by size and md5; resumes from bytes on disk. */
  /** minFreeGb: the disk floor the transfer keeps while it writes (stops with DiskFloor, bytes kept); none if absent */
  /** verify: also check the reads as verifyReads would, and return them as `verified` when they pass (FASTQ plans) */
  /** plainReads: a .fastq.gz may be kept inflated (RUN_1.fastq) when the disk has room; absent: kept as fetched */
  /** quantAfter (needs verify and tell): once verified and the species told, the quant step too (`chained`) */
  download(input: { plan: SourcePlan; runDir: string; stallTimeoutSec: number; maxBp?: number | null; minFreeGb?: number; verify?: boolean; plainReads?: boolean; tell?: Tell; quantAfter?: QuantAfter }): Promise<DownloadResult>;
  /**
   * vdb-validate + fasterq-dump --split-3 (temp dir in runDir) + one counting pass (+ gzip only when the disk needs it); removes the .sra. Returns FASTQ paths (.fastq or .fastq.gz).
   * fastaReads: reads deleted after quant: FASTA (.fasta or .fasta.gz), no qualities (kallisto reads none); absent: FASTQ.
   */
  /** unpairedReads: reads of a paired run that fasterq-dump --split-3 wrote to RUN.fastq (not quantified) */
  /** verify: also check the reads against the source's count as verifyReads would; `verified` when they pass */
  /** quantAfter: as download's */
  convertSra(input: { run: string; sraPath: string; runDir: string; threads: number | null; timeoutSec: number; fastaReads?: boolean; verify?: { expectedReads: number | null }; tell?: Tell; quantAfter?: QuantAfter }): Promise<ConvertResult>;
  /**
   * gzip test, mate counts equal, counts against expectedReads (spots) when known. Throws TruncatedReads.
   * unpairedReads: absent = the run has exactly these files (pairs/reads must equal spots); a number = that
   * many unpaired reads were counted elsewhere (pairs + unpaired must equal spots); null = the source lists
   * unpaired reads that were not fetched (pairs must not exceed spots).
   */
  verifyReads(input: { run: string; files: string[]; layout: Layout; expectedReads: number | null; unpairedReads?: number | null }): Promise<ReadSet>;
  /**
   * kallisto quant into a temp dir under quantDir, under the host's quant limit; verifies run_info. With
   * `publish`, then also what `publish` does (provenance from the draft, rename, reads deleted), in the same
   * round trip; an attempt that finds the run published by an earlier one returns that (src/activities/sample-steps.ts).
   */
  quant(input: {
    run: string;
    indexPath: string;
    reads: ReadSet;
    quantDir: string;
    fragmentLength: number;
    fragmentSd: number;
    /** null: decided from this host's cores with quantThreads (src/cores.ts) */
    kallistoThreads: number | null;
    quantThreads: number | null;
    timeoutSec: number;
    /** `tell`: once published, signal the species sampleFinished(outcome) from here (src/activities/sample-steps.ts) */
    publish?: { provenance: ProvenanceDraft; runDir: string; keepReads?: boolean; tell?: Tell & { outcome: SampleOutcome } };
  }): Promise<QuantResult>;
  /** Writes the provenance file into tmpDir and renames tmpDir to <quantDir>/<RUN> atomically. */
  finalize(input: { run: string; quantDir: string; tmpDir: string; provenance: Provenance }): Promise<{ dir: string }>;
  /**
   * Removes <readsDir>/getfastq/<RUN> entirely and releases the run's disk reservation; with quantDir,
   * also the unpublished <quantDir>/.<RUN>.tmp of a sample that ends without finalize. `keep` (the config's
   * keep_fastq/clean_fastq asked to keep the reads): only the reservation is released.
   */
  deleteReads(input: { run: string; runDir: string; quantDir?: string; keep?: boolean }): Promise<{ removedBytes: number }>;
  /** Records free space; below the threshold removes orphaned partial downloads (never runs in `inFlight`). */
  janitorSweep(input: { readsDirs: string[]; autoCleanupThresholdGb: number; inFlight: string[]; execute: boolean }): Promise<JanitorReport>;
  /** Status of workflows by id (latest run); the result of completed ones. For the batch's sweep. */
  describeWorkflows(input: { workflowIds: string[] }): Promise<Record<string, { status: string; result?: unknown }>>;
  /** Runs of sample workflows still running on this host (visibility query), for the janitor. */
  listInFlight(input: { hostId: string }): Promise<string[]>;
}
