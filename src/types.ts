/**
 * Data that crosses the determinism line (workflow <-> activity). Pure types only.
 * Everything here is small: ids, paths, counts — never file lists of a whole species or file contents.
 */
import type { BatchOptions, Source } from './config/schema.js';

export type Layout = 'single' | 'paired';

/** One species as discovered from its amalgkit YAML, all paths absolute. */
export interface SpeciesPlan {
  speciesId: string;
  /** `Genus species` (first of species_list, or from the file stem) */
  name: string;
  configPath: string;
  readsDir: string;
  quantDir: string;
  indexPath: string;
  /** transcriptome FASTA(s) to build a missing index from; may be empty */
  fastaPaths: string[];
  /** Snapshot of this species' runs (TSV: run, layout, nominal_length, spots) written at discovery. */
  runListPath: string;
  fragmentLength: number;
  fragmentSd: number;
  totalRuns: number;
  /** runs already done (abundance + provenance on disk) at discovery time */
  doneRuns: number;
  /** what the species' amalgkit config asks of each run (absent in plans of older releases) */
  amalgkit?: AmalgkitRunSettings;
}

/** Per-species settings from amalgkit config fields (docs/amalgkit.md), carried to each sample. */
export interface AmalgkitRunSettings {
  /** steps.getfastq.max_bp: stop each download once the reads hold this many bases; null = whole run */
  maxBp: number | null;
  /** steps.quant.keep_fastq: yes / clean_fastq: no */
  keepReads: boolean;
  /** fetchquant.fragment_length given: single-end -l/-s come from the config, not amalgkit's rule */
  fragmentFromConfig: boolean;
  /** sources this species may use (batch --sources filtered by steps.getfastq.ena/aws/gcp/ncbi) */
  sources: Source[];
  /** SRA Data Locator services allowed (s3, gs, ncbi) */
  sraServices: string[];
  /**
   * the services the config allows whatever --sources says: where a run missing at the allowed sources may be
   * looked up (never fetched) to tell "not yet synchronised" from "unknown" (docs/park.md); [] = never ask SRA
   */
  sraProbeServices?: string[];
}

export interface BatchPlan {
  batchId: string;
  /** the batch's output dir, absolute */
  outputDir: string;
  species: SpeciesPlan[];
  /** skipped configs (template/test stems, filtered by --species/--max-species), for the log */
  notes: string[];
}

/** A run and what the run table knew about it. */
export interface RunMeta {
  run: string;
  layout?: Layout;
  nominalLength?: number;
  spots?: number;
  /** total_bases of the run table, when it has one: the start order's size (not in the run snapshot) */
  bases?: number;
}

export interface RunPage {
  runs: RunMeta[];
  /** runs in this page already done on disk */
  skipped: string[];
  /** cursor for the next page, or null at the end */
  nextCursor: number | null;
}

/** Options a sample needs; a subset of BatchOptions so a sample's input stays small. */
export type SampleOptions = SampleOptionsBase & {
  /** SRA Data Locator services this species may download from (s3, gs, ncbi); absent = any */
  sraServices?: string[];
  /** the SRA services a not-yet-available lookup may ask (AmalgkitRunSettings.sraProbeServices) */
  sraProbeServices?: string[];
  /** park instead of failing (docs/park.md); absent in samples started before parking existed */
  parkWaitSec?: number;
  parkDeadlineSec?: number;
};
type SampleOptionsBase = Pick<
  BatchOptions,
  | 'maxRetries'
  | 'processTimeoutSec'
  | 'minFreeGb'
  | 'kallistoThreads'
  | 'quantThreads'
  | 'sources'
  | 'enaPortalUrl'
  | 'enaFileScheme'
  | 'sraLocateUrl'
  | 'hostLostTimeoutSec'
  | 'diskWaitSec'
  | 'retryInitialSec'
  | 'stallTimeoutSec'
>;

export interface SampleInput {
  batchId: string;
  speciesId: string;
  speciesName: string;
  /** workflow id of the species workflow that receives this sample's signals */
  speciesWorkflowId: string;
  run: RunMeta;
  readsDir: string;
  quantDir: string;
  indexPath: string;
  fastaPaths: string[];
  fragmentLength: number;
  fragmentSd: number;
  options: SampleOptions;
  amalgkit?: AmalgkitRunSettings;
  /**
   * Which sample code paths its species asks for (src/workflows/sample.ts SAMPLE_PATHS): from 1 on, every
   * patch settled by then is taken without a patched() call, so the history carries none of their markers;
   * from 2 on prepareSample runs as a local activity (PREPARE_LOCALLY_PATHS); from 3 on the first claim's
   * search attributes go with the first stage in one upsert (ONE_FIRST_UPSERT_PATHS).
   * Absent in samples started by older releases: those ask patched() as they always did.
   */
  paths?: number;
}

/** One remote file of a run, as the source describes it. */
export interface RemoteFile {
  url: string;
  /** local file name inside the run's reads dir, e.g. SRR000001_1.fastq.gz or SRR000001.sra */
  name: string;
  bytes: number | null;
  md5: string | null;
  /** 1 or 2 for paired mates, 0 for single-end reads or an .sra */
  mate: 0 | 1 | 2;
}

/** Where a run's reads come from. */
export interface SourcePlan {
  source: Source;
  run: string;
  layout: Layout;
  files: RemoteFile[];
  /** reads (spots) the source reports, when it does */
  expectedReads: number | null;
  /** bytes to reserve on disk (an SRA run reserves ~3x: sra + fastq + temp) */
  reserveBytes: number;
  /**
   * A paired run's unpaired reads the source lists beside the mates (ENA's `RUN.fastq.gz`): not fetched,
   * not quantified, but counted in expectedReads (ENA's read_count counts spots). Recorded in provenance.
   */
  unpaired?: RemoteFile;
  /** what a reader of the provenance should know about this copy (e.g. an SRA Lite copy has no quality scores) */
  notes?: string[];
  /** the SRA Data Locator service the copy comes from (s3, gs, ncbi, …): which cloud copy was chosen */
  service?: string;
}

export interface LocalFile {
  path: string;
  bytes: number;
  /** of the file at path; when inflatedFrom is set, of that file (the archive's .gz as received) */
  md5: string;
  /**
   * A download kept plain (src/activities/download.ts): path holds the inflated bytes of the archive's
   * file `name` (`bytes` long, md5 above), written as it arrived and counted; the .gz itself is not kept.
   */
  inflatedFrom?: { name: string; bytes: number };
}

export interface DownloadResult {
  files: LocalFile[];
  /** set when the download stopped at max_bp: the files hold the run's first `reads` reads (whole records) */
  downsampled?: { maxBp: number; reads: number; bases: number };
  /** bytes actually transferred by this attempt chain (a resume fetches only the rest) */
  bytesFetched: number;
  /** bytes found on disk and kept when the attempt started */
  resumedFromBytes: number;
  /** the reads, checked as verifyReads checks them, when the workflow asked for it and they passed */
  verified?: ReadSet;
  /** the step told the species the reads are verified (readsVerified), as the input's `tell` asked */
  told?: true;
  /** what the step did after verifying, when its input asked for `quantAfter` (src/activities/sample-steps.ts) */
  chained?: ChainedQuant;
}

/**
 * Asked of a download or conversion by samples of `paths: 4` (src/workflows/sample.ts CHAIN_QUANT_PATHS): once
 * its reads are verified and the species told, the same step runs the quant step (quant + publish), so a clean
 * sample has no activity task and no workflow task between its reads and its quant. What the sample cannot know
 * before the reads exist (the reads, their layout, the files, the stage times) the step fills in.
 */
export interface QuantAfter {
  /** the quant step's input but its reads and kallisto's -l/-s */
  quant: {
    run: string;
    indexPath: string;
    quantDir: string;
    kallistoThreads: number | null;
    quantThreads: number | null;
    timeoutSec: number;
    /** as the quant step's `publish`; the step completes the draft's reads, files, stages and downsampling */
    publish: { provenance: ProvenanceDraft; runDir: string; keepReads?: boolean; tell?: Tell & { outcome: SampleOutcome } };
  };
  /** kallisto's -l/-s for each layout the verified reads may turn out to have */
  fragment: Record<Layout, { length: number; sd: number }>;
  /** steps.getfastq.max_bp (the provenance's downsampling record) */
  maxBp?: number;
  /** bytes the sample fetched before this step (the outcome told to the species counts this step's too) */
  bytesFetchedBefore?: number;
}

/**
 * The quant part of a step asked for `quantAfter`: its result (published), or why it failed (the reads stay
 * verified on disk, and the sample quantifies them in a step of its own). verifiedAt: when quant could begin.
 */
export type ChainedQuant = { verifiedAt: string; quant: QuantResult } | { verifiedAt: string; error: { message: string; type?: string; nonRetryable?: boolean } };

/** Where a sample's step tells its species what it did (src/activities/sample-steps.ts). */
export interface Tell {
  speciesWorkflowId: string;
}

/** Verified reads, ready for quant. */
export interface ReadSet {
  layout: Layout;
  /** fastq.gz paths: one (single) or two (paired, _1 then _2) */
  files: string[];
  reads: number;
  /** a paired run's unpaired reads (spots - pairs), not quantified; absent when the run has none */
  unpairedReads?: number;
}

export interface QuantResult {
  nProcessed: number;
  nPseudoaligned: number;
  pPseudoaligned: number;
  kallistoVersion: string;
  command: string[];
  /** temporary directory holding abundance + run_info, renamed into place by finalize */
  tmpDir: string;
  /**
   * Set when the quant step also published (its input carried `publish`): provenance written, the dir
   * renamed into place, the reads deleted. `earlier`: an attempt before this one had published already
   * (figures above read back from the provenance on disk). Unset: the workflow publishes (older histories).
   * `told`: the step signalled the species sampleFinished, as its input's `publish.tell` asked.
   */
  published?: { dir: string; removedBytes: number; earlier?: true; told?: true };
}

/** What the sample knows of the provenance before quant; the quant step adds quant, tools and finishedAt. */
export type ProvenanceDraft = Omit<Provenance, 'quant' | 'tools' | 'finishedAt'>;

export interface DiskGrant {
  granted: boolean;
  freeBytes: number;
  reservedBytes: number;
  neededBytes: number;
}

export type SampleStage =
  | 'queued'
  | 'waiting-for-disk'
  | 'downloading'
  | 'converting'
  | 'quantifying'
  | 'deleting'
  | 'done'
  | 'failed'
  | 'skipped'
  /** no source can serve the run now: waiting on a durable timer (docs/park.md) */
  | 'parked';

export interface StageRecord {
  stage: SampleStage;
  host: string | null;
  startedAt: string;
  endedAt?: string;
  attempt?: number;
  error?: string;
}

export interface SampleOutcome {
  run: string;
  speciesId: string;
  state: 'done' | 'failed' | 'skipped';
  reason?: string;
  /** failure type name from the taxonomy (failures.ts) */
  failureType?: string;
  host?: string;
  source?: Source;
  bytes?: number;
}

/** Everything the provenance file records; written by finalize. */
export interface Provenance {
  run: string;
  species: string;
  source: SourcePlan;
  files: LocalFile[];
  reads: number;
  /** unpaired reads of a paired run the source counts in its spots (ENA's RUN.fastq.gz, fasterq-dump's RUN.fastq) */
  unpairedReads?: number;
  quant: Omit<QuantResult, 'tmpDir'>;
  host: string;
  stages: StageRecord[];
  restarts: number;
  workflowId: string;
  runId: string;
  tools: Record<string, string>;
  finishedAt: string;
  /** steps.getfastq.max_bp was set: whether the run was cut, at how many reads, and which checks applied */
  downsampling?: { maxBp: number; downsampled: boolean; reads?: number; bases?: number; bytesFetched: number; integrity: string };
}

export interface JanitorReport {
  host: string;
  dir: string;
  freeBytes: number;
  removed: string[];
  freedBytes: number;
  kept: string[];
}
