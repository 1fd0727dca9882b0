/** Activity options derived from batch options: why each timeout is what it is. */
import { ActivityCancellationType, type ActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import { FailureType, NON_RETRYABLE } from '../failures.js';
import type { SampleOptions } from '../types.js';

const sec = (s: number) => Math.max(1, Math.round(s * 1000));

/** maxRetries is "retries per step", so attempts = retries + 1; back-off doubles up to 100x the first wait. */
export function retryPolicy(o: Pick<SampleOptions, 'maxRetries' | 'retryInitialSec'>): RetryPolicy {
  return {
    initialInterval: sec(o.retryInitialSec),
    backoffCoefficient: 2,
    maximumInterval: sec(o.retryInitialSec * 100),
    maximumAttempts: o.maxRetries + 1,
    nonRetryableErrorTypes: [...NON_RETRYABLE],
  };
}

/**
 * The batch's and the species' own calls (discover, preflight, describe the species, list runs, the index):
 * one of them failing ends the batch or the species, so a lost worker (kill -9, handed back as WorkerLost) or
 * a timeout must not use up a small --max-retries: at least 10 attempts (with --max-retries 0 the first lost
 * worker failed the whole batch). Typed non-retryable failures still stop at once.
 */
export function bookkeepingActivityOptions(o: Pick<SampleOptions, 'maxRetries' | 'retryInitialSec'>): ActivityOptions {
  return { startToCloseTimeout: '2 minutes', retry: { ...retryPolicy(o), maximumAttempts: Math.max(10, o.maxRetries + 1) } };
}

/** Short host-free calls (archive metadata, allocation): a minute is plenty even behind a rate limit. */
export function sharedActivityOptions(o: Pick<SampleOptions, 'maxRetries' | 'retryInitialSec'>): ActivityOptions {
  return { startToCloseTimeout: '2 minutes', retry: retryPolicy(o) };
}

/**
 * How long a killed worker's running activities wait before they are retried (the SDK sends heartbeats at
 * most every 0.8 x this). 60 s made each kill -9 cost about a minute of idle slots in the B4 benchmark.
 */
export const HOST_HEARTBEAT_TIMEOUT_SEC = 20;

/**
 * Checks of local reads (convertSra, verifyReads): a typed failure means the reads are bad and the sample
 * fetches them again, so none of those is retried in place; a lost worker (heartbeat timeout) is, because
 * the reads on disk are still good.
 */
export function readCheckRetry(o: Pick<SampleOptions, 'maxRetries' | 'retryInitialSec'>): RetryPolicy {
  return { ...retryPolicy(o), nonRetryableErrorTypes: Object.values(FailureType) };
}

/**
 * File work pinned to one host. scheduleToStart = hostLostTimeout: if nobody polls the host's queue that
 * long, the host is gone and the sample restarts elsewhere (ScheduleToStart timeouts are never retried).
 * Heartbeat timeout follows the stall timeout so a dead worker is noticed about as fast as a dead stream.
 */
export function hostActivityOptions(taskQueue: string, o: SampleOptions): ActivityOptions {
  return {
    taskQueue,
    scheduleToStartTimeout: sec(o.hostLostTimeoutSec),
    startToCloseTimeout: sec(o.processTimeoutSec + 60),
    heartbeatTimeout: sec(Math.min(HOST_HEARTBEAT_TIMEOUT_SEC, Math.max(5, o.stallTimeoutSec))),
    retry: retryPolicy(o),
    // On cancellation wait until the activity has really stopped (its tool killed), so the clean-up that
    // follows cannot race a kallisto or fasterq-dump still writing.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
}

/**
 * Continue-as-new threshold (history events) of the long-lived workflows: species, batch and the source
 * pacer. Their histories are replayed whole whenever the worker's cache loses them: a restarted worker, and
 * *every* workflow task the server refuses with UnhandledCommand, which is what a continue-as-new meets
 * while samples keep signalling (sdk-core `handle_wft_reporting_errs` evicts the run on that answer). A
 * replay costs about 0.9 ms per event here (2 cores, idle). In CI's 10,000-sample run species of ~4,550
 * events took 13 s per task (each replay alone, or interleaved with the other species': CI's log does not
 * say), longer than the 10 s task timeout: every retry replayed again and timed out again, for ever
 * (docs/architecture.md, "Replay budget").
 */
export const LONG_LIVED_MAX_EVENTS = 500;

/** Replay budget per long-lived workflow: LONG_LIVED_MAX_EVENTS events take ~0.45 s idle; ~6x margin for load. */
const REPLAY_BUDGET_SEC = 3;

/**
 * Workflow task timeout of the long-lived workflows of a batch of `species` species. A restarted worker
 * replays all of them at once, interleaved on its one workflow thread, so each one's first task takes about
 * the sum of their replays: species + the batch + the pacer. Temporal's default (10 s) is kept as the floor
 * and its cap (120 s, the server's MaxWorkflowTaskStartToCloseTimeout) as the ceiling. Only tasks that were
 * running on a killed worker wait this long; samples keep the default.
 */
export function longLivedTaskTimeoutSec(species: number): number {
  return Math.min(120, Math.max(10, (Math.max(0, species) + 2) * REPLAY_BUDGET_SEC));
}

/**
 * The same where the number of species is not known: a batch started before it is planned (--skip-plan,
 * `start`) and the pacer, which any number of batches share. As for 8 species: 30 s.
 */
export const UNKNOWN_SPECIES_TASK_TIMEOUT_MS = longLivedTaskTimeoutSec(8) * 1000;
