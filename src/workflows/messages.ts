/** Every signal, query and update of fetchquant's workflows, with the shapes they carry. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { SampleOutcome, SampleStage, StageRecord } from '../types.js';

export interface SpeciesProgress {
  speciesId: string;
  name: string;
  status: 'pending' | 'indexing' | 'running' | 'done' | 'failed';
  threads: number;
  total: number;
  done: number;
  skipped: number;
  failed: number;
  /** samples holding a download slot (downloading or converting) */
  downloading: number;
  /** samples past download (quant, delete) */
  processing: number;
  /** runs still to download: queued + downloading; what the allocator divides slots by */
  remaining: number;
  bytes: number;
  reason?: string;
  /** runs parked (no source can serve them now), with when each is tried again (docs/park.md) */
  parked?: ParkedRun[];
}

export interface ParkedRun {
  run: string;
  /** ISO time of the next try */
  until: string;
  /** ISO time it was first parked; it fails at this + parkDeadlineSec */
  since: string;
  reason: string;
}

export interface SpeciesReport extends SpeciesProgress {
  failures: { run: string; reason: string; failureType?: string }[];
  finished: boolean;
}

export interface BatchProgress {
  batchId: string;
  paused: boolean;
  totalThreads: number;
  allocation: Record<string, number>;
  species: SpeciesProgress[];
  startedAt: string;
  updatedAt: string;
}

// ---- batch ----
/** Change the global download budget; answers with the new allocation. */
export const setTotalThreadsUpdate = defineUpdate<Record<string, number>, [number]>('setTotalThreads');
/** Stop starting new downloads; samples in flight finish. */
export const pauseSignal = defineSignal('pause');
/** Undo pause: the allocation is restored within one workflow task. */
export const resumeSignal = defineSignal('resume');
export const batchProgressQuery = defineQuery<BatchProgress>('progress');
/** A species reports its counts (on finishing, and whenever its remaining runs fall below its allotment). */
export const speciesReportSignal = defineSignal<[SpeciesReport]>('speciesReport');

// ---- species ----
/** The batch's allotment of download slots for this species. */
export const setThreadsSignal = defineSignal<[number]>('setThreads');
export const speciesProgressQuery = defineQuery<SpeciesProgress>('progress');
/**
 * The batch has the species' final report and will send it nothing more: the species may close (it waits
 * for this, docs/architecture.md, "A parent closes quietly").
 */
export const reportReceivedSignal = defineSignal('reportReceived');
/** A sample's reads are verified on disk: its download slot is free. */
export const readsVerifiedSignal = defineSignal<[string, number]>('readsVerified');
/** A sample ended (done, failed or skipped). Sent by id so it reaches the species' current run. */
export const sampleFinishedSignal = defineSignal<[SampleOutcome]>('sampleFinished');
/** A sample parked (ParkedRun) or woke up (null): a parked run holds no download slot. */
export const sampleParkedSignal = defineSignal<[string, ParkedRun | null]>('sampleParked');

// ---- sample ----
export interface SampleStatus {
  run: string;
  stage: SampleStage;
  host: string | null;
  restarts: number;
  history: StageRecord[];
  /** failed activity attempts, as reported by the workers that ran them (absent from older workers) */
  attempts?: AttemptReport[];
}
export const stageQuery = defineQuery<SampleStatus>('stage');
/** Wake a parked sample now (`fetchquant resume-parked`): it tries its sources again at once. */
export const resumeParkedSignal = defineSignal('resumeParked');

/**
 * One failed attempt of one of the sample's activities, sent by the worker that ran it (its activity
 * interceptor) before the failure goes back to the server. Temporal keeps only an activity's last failure;
 * these signals keep every attempt's error, host and time in the sample's own history (and the Web UI).
 */
export interface AttemptReport {
  activity: string;
  activityId: string;
  attempt: number;
  host: string;
  /** when the attempt ended (ISO) */
  at: string;
  error: string;
  type?: string;
  /** false when Temporal will not retry it (non-retryable, or the last attempt) */
  retrying: boolean;
}
export const attemptFailedSignal = defineSignal<[AttemptReport]>('attemptFailed');

// ---- source pacer (one per namespace; src/workflows/pacer.ts) ----
export type PaceSource = 'ena' | 'sra';
/** The ceilings a worker knows for a source (documented limits, FETCHQUANT_*_REQUESTS_PER_SEC). */
export interface PaceLimits {
  maxConcurrency: number;
  maxRatePerSec: number;
}
export interface PermitRequest {
  source: PaceSource;
  /** who holds it (host and activity), for status */
  holder: string;
  /** the permit expires this long after the grant unless renewed */
  leaseSec: number;
  /** how long the pacer may hold the call waiting for a permit (capped at 20 s) */
  waitMs?: number;
  limits?: PaceLimits;
}
export type PermitAnswer =
  | { granted: true; leaseId: string; limit: number; ratePerSec: number; inFlight: number }
  | { granted: false; retryInMs: number; reason: string; limit: number; inFlight: number };
/** What a download met at its source, given back with its permit: the pacer's AIMD input. */
export interface PermitOutcome {
  /** 429 answers */
  throttled: number;
  /** 5xx answers and network errors */
  serverErrors: number;
  stalled: boolean;
  /** the longest Retry-After seen (ms) */
  retryAfterMs?: number;
}
export interface SourcePace {
  source: PaceSource;
  limit: number;
  maxLimit: number;
  inFlight: number;
  waiting: number;
  ratePerSec: number;
  maxRatePerSec: number;
  pausedUntil: string | null;
  throttled: number;
  serverErrors: number;
  stalls: number;
  /** download permits granted, and API tokens granted */
  granted: number;
  tokensGranted: number;
  lastChange: string | null;
}
export const acquirePermitUpdate = defineUpdate<PermitAnswer, [PermitRequest]>('acquirePermit');
export const releasePermitSignal = defineSignal<[{ leaseId: string; source?: PaceSource; outcome: PermitOutcome }]>('releasePermit');
export const renewPermitsSignal = defineSignal<[{ leaseIds: string[]; leaseSec: number }]>('renewPermits');
/** Up to `want` API requests' worth of tokens from the source's shared bucket (waits up to waitMs for one). */
export const takeTokensUpdate = defineUpdate<{ granted: number; ratePerSec: number; retryInMs?: number }, [{ source: PaceSource; want: number; waitMs?: number; limits?: PaceLimits }]>('takeTokens');
export const paceQuery = defineQuery<SourcePace[]>('pace');
/** An API request of this source got 429 (sent by the worker that got it): pause and back off for everyone. */
export const throttledSignal = defineSignal<[{ source: PaceSource; retryAfterMs?: number | null }]>('throttled');
/**
 * The source pacer's protocol as one set: src/workflows/pacer.ts answers every message of it and
 * src/pacing.ts sends every one, so both ends name them from here.
 */
export const pacerMessages = {
  acquirePermit: acquirePermitUpdate,
  releasePermit: releasePermitSignal,
  renewPermits: renewPermitsSignal,
  takeTokens: takeTokensUpdate,
  pace: paceQuery,
  throttled: throttledSignal,
} as const;
