/**
 * Host activities in flight, recorded on disk, so that a worker started after one was killed with -9 can
 * hand their attempts back at once instead of leaving them to the heartbeat timeout (up to 20 s, during
 * which the host's slots sit idle).
 *
 * Each attempt's record holds its task token. Failing an attempt by task token is exact: the token names
 * that attempt, so if the server has already timed it out (and perhaps started the next attempt),
 * the call is refused with NotFound and nothing else is touched. Failing by activity id would not be:
 * it could hit a newer attempt that is running.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, ActivityInterceptorsFactory, Next } from '@temporalio/worker';
import { WORKER_LOST } from './failures.js';
import { HUMAN_LINE, retryLine } from './human.js';
import { attemptFailedSignal, type AttemptReport } from './workflows/messages.js';
import { deadWorkerRecords, stateRoot, writeWorkerRecord } from './state-dir.js';

/** The retry of a handed-back attempt waits only this long (the retry policy's back-off is for real failures). */
export const RETRY_AFTER_WORKER_LOST_MS = 200;

export function attemptsDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(stateRoot(env), 'activity-attempts');
}

interface AttemptRecord {
  workerPid: number;
  namespace: string;
  hostId: string;
  taskToken: string;
  workflowId: string;
  /** absent in records of workers before it was kept */
  workflowType?: string;
  activityType: string;
  activityId: string;
  attempt: number;
}

let seq = 0;

/** Records every attempt this worker runs, and forgets it when the attempt ends (however it ends). */
export function recordAttempts(hostId: string, env: NodeJS.ProcessEnv = process.env): ActivityInterceptorsFactory {
  return (ctx: Context) => ({
    inbound: {
      async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
        const i = ctx.info;
        const r: AttemptRecord = {
          workerPid: process.pid,
          namespace: i.namespace,
          hostId,
          taskToken: i.base64TaskToken,
          workflowId: i.workflowExecution?.workflowId ?? '',
          workflowType: i.workflowType,
          activityType: i.activityType,
          activityId: i.activityId,
          attempt: i.attempt,
        };
        // null (unwritable state dir) costs only the fast hand-back after a crash
        const file = writeWorkerRecord(attemptsDir(env), `${Date.now()}-${++seq}`, r);
        try {
          return await next(input);
        } finally {
          if (file) rmSync(file, { force: true });
        }
      },
    },
  });
}

export interface ReclaimedAttempt {
  workflowId: string;
  activityType: string;
  attempt: number;
  workerPid: number;
  /** false: the server had already ended that attempt */
  failed: boolean;
}

/**
 * Fails (retryably, type WorkerLost) the attempts that dead workers of this machine recorded for this
 * namespace, and forgets them. Records of live workers and of other namespaces are left alone.
 */
export async function reclaimDeadAttempts(client: Client, namespace: string, env: NodeJS.ProcessEnv = process.env): Promise<ReclaimedAttempt[]> {
  const out: ReclaimedAttempt[] = [];
  for (const { file, workerPid, record: r } of deadWorkerRecords<AttemptRecord>(attemptsDir(env), /^\d+-\d+-\d+\.json$/)) {
    if (!r) {
      rmSync(file, { force: true });
      continue;
    }
    if (r.namespace !== namespace) continue;
    let failed = true;
    const message = `worker ${r.workerPid} on host ${r.hostId} was killed during this attempt; retrying`;
    try {
      await client.activity.fail(
        Buffer.from(r.taskToken, 'base64'),
        ApplicationFailure.create({
          type: WORKER_LOST,
          message,
          // Nothing went wrong with the work itself: retry now, not after the policy's back-off.
          nextRetryDelay: RETRY_AFTER_WORKER_LOST_MS,
        }),
      );
    } catch {
      failed = false; // NotFound: the attempt ended already (timed out, or completed before the kill)
    }
    if (failed && r.workflowType === 'sampleWorkflow') {
      const report = { activity: r.activityType, activityId: r.activityId, attempt: r.attempt, host: r.hostId, at: new Date().toISOString(), error: message, type: WORKER_LOST, retrying: true };
      await sendReport(client, r.workflowId, report);
    }
    rmSync(file, { force: true });
    out.push({ workflowId: r.workflowId, activityType: r.activityType, attempt: r.attempt, workerPid, failed });
  }
  return out;
}

/** The run a sample workflow works on (`fetchquant/<batch>/<species>/<RUN>`), else the workflow id. */
function subjectOf(workflowId: string, workflowType: string | undefined): string {
  return workflowType === 'sampleWorkflow' ? (workflowId.split('/').pop() ?? workflowId) : workflowId;
}

/** Whether Temporal will schedule another attempt after this one failed with `err`. */
export function willRetry(err: unknown, info: Pick<Context['info'], 'attempt' | 'retryPolicy'>): boolean {
  const app = err instanceof ApplicationFailure ? err : null;
  if (app?.nonRetryable) return false;
  const type = app?.type ?? (err as Error)?.name;
  if (type && info.retryPolicy?.nonRetryableErrorTypes?.includes(type)) return false;
  const max = info.retryPolicy?.maximumAttempts ?? 0;
  return !max || info.attempt < max;
}

/** Signals to a closed workflow or an unreachable server must not hold up the attempt's failure. */
async function sendReport(client: Client, workflowId: string, report: AttemptReport): Promise<void> {
  const give = new Promise<void>((r) => setTimeout(r, 5000).unref());
  await Promise.race([client.workflow.getHandle(workflowId).signal(attemptFailedSignal, report).catch(() => undefined), give]);
}

/**
 * Every failed attempt of an activity, said once: a human line on the terminal when Temporal will retry
 * it (a final failure is the sample's to report, with its outcome), and, for a sample's activities, an
 * `attemptFailed` signal to the sample, so its history keeps each attempt's error and host (Temporal keeps
 * only the last failure). Cancellations are not failures of the work and are not reported.
 */
export function reportAttempts(hostId: string, client: Client): ActivityInterceptorsFactory {
  return (ctx: Context) => ({
    inbound: {
      async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
        try {
          return await next(input);
        } catch (err) {
          if (err instanceof CancelledFailure || ctx.cancellationSignal.aborted) throw err;
          const i = ctx.info;
          const retrying = willRetry(err, i);
          const error = (err as Error)?.message ?? String(err);
          const type = err instanceof ApplicationFailure ? (err.type ?? undefined) : (err as Error)?.name;
          const workflowId = i.workflowExecution?.workflowId ?? '';
          if (retrying) {
            const line = retryLine(subjectOf(workflowId, i.workflowType), i.activityType, i.attempt, i.retryPolicy?.maximumAttempts || null, hostId, error);
            ctx.log.warn('activity attempt failed; Temporal retries it', { [HUMAN_LINE]: line });
          }
          // With maximumAttempts 1 the sample retries the step itself: each attempt is its own activity and
          // its history keeps every failure already.
          if (i.workflowType === 'sampleWorkflow' && workflowId && i.retryPolicy?.maximumAttempts !== 1) {
            await sendReport(client, workflowId, { activity: i.activityType, activityId: i.activityId, attempt: i.attempt, host: hostId, at: new Date().toISOString(), error, type, retrying });
          }
          throw err;
        }
      },
    },
  });
}
