/**
 * A sample workflow's history -> its audit: activities (attempts, host, error, timing), stage spans (from the
 * workflow's own SampleStage/WorkerHost upserts, so the report shows exactly what the Web UI shows), disk
 * admission readings and the outcome. Pure: works on history events, so recorded histories unit-test it.
 */
import { defaultPayloadConverter, type TypedSearchAttributes } from '@temporalio/common';
import { SA } from '../search-attributes.js';
import type { temporal } from '@temporalio/proto';
import type { ChainedQuant, DiskGrant, SampleOutcome, SampleStage, SourcePlan, DownloadResult } from '../types.js';
import { attemptFailedSignal, type AttemptReport } from '../workflows/messages.js';

type Event = temporal.api.history.v1.IHistoryEvent;
type Payload = temporal.api.common.v1.IPayload;

/** One attempt of one activity: what its worker reported (attemptFailed signal), else what Temporal kept. */
export interface AttemptAudit {
  attempt: number;
  host?: string;
  /** when the attempt ended */
  at?: string;
  outcome: 'completed' | 'failed' | 'timed out' | 'cancelled' | 'running';
  error?: string;
  type?: string;
}

export interface ActivityAudit {
  activity: string;
  activityId?: string;
  scheduledAt: string;
  startedAt?: string;
  endedAt?: string;
  /** the attempt that ended (or is running): attempts before it failed and were retried by Temporal */
  attempt: number;
  host?: string;
  outcome: 'completed' | 'failed' | 'timed out' | 'cancelled' | 'running';
  error?: string;
  summary?: string;
  /** timed out waiting for its host (ScheduleToStart): the sample restarted elsewhere */
  hostLost?: boolean;
  /** the failure of the attempt before the last one, as Temporal kept it */
  lastFailure?: string;
  /** every attempt, first to last (the earlier ones from the workers' attemptFailed reports) */
  attempts: AttemptAudit[];
}

/** One stretch of time a sample spent in one stage, on one host. */
export interface StageSpan {
  stage: SampleStage;
  host: string | null;
  start: string;
  /** absent while the sample is still in this stage */
  end?: string;
}

/** What reserveDisk saw on a host: the numbers behind "waiting-for-disk". */
export interface DiskReading {
  at: string;
  host: string | null;
  granted: boolean;
  freeBytes: number;
  reservedBytes: number;
  neededBytes: number;
}

export interface RunAudit {
  workflowId: string;
  runId: string;
  status: string;
  start: string;
  close?: string;
  host?: string;
  stage?: string;
  activities: ActivityAudit[];
  /** times the sample started over because its host was lost (ScheduleToStart timeouts) */
  restarts: number;
  stages: StageSpan[];
  disk: DiskReading[];
  outcome?: SampleOutcome;
  source?: string;
  /** bytes fetched by completed downloads (the outcome's count when the sample finished) */
  bytes: number;
}

export interface WorkflowMeta {
  workflowId: string;
  runId: string;
  status: string;
  start: string;
  close?: string;
  searchAttributes?: TypedSearchAttributes;
}

type Time = { seconds?: unknown; nanos?: number | null } | null | undefined;
export const ts = (t: Time): string | undefined =>
  t ? new Date(Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString() : undefined;

function decode<T>(p: Payload | null | undefined): T | undefined {
  if (!p) return undefined;
  try {
    return defaultPayloadConverter.fromPayload<T>(p as never);
  } catch {
    // An encrypted or foreign payload: the audit goes on without that detail.
    return undefined;
  }
}

/** `fetchquant@host-1/30128` -> `host-1` (the worker identity our workers set). */
function hostOfIdentity(identity: string | null | undefined): string | undefined {
  return identity?.split('@')[1]?.split('/')[0] || undefined;
}

/** SCHEDULE_TO_START is enum value 2; recorded JSON histories spell it out. */
function isScheduleToStart(t: unknown): boolean {
  return t === 2 || /SCHEDULE_TO_START/i.test(String(t ?? ''));
}

/**
 * Every attempt of one activity: the workers' reports of failed attempts, then the attempt that ended it
 * (or runs). An attempt nobody reported (its worker died, or it timed out) shows what Temporal kept: the
 * previous attempt's failure on the next attempt's start, or that it is unknown.
 */
function attemptsOf(x: ActivityAudit, reports: AttemptReport[]): AttemptAudit[] {
  const mine = new Map<number, AttemptReport>();
  for (const r of reports) if (r.activityId === x.activityId && r.activity === x.activity) mine.set(r.attempt, r);
  const out: AttemptAudit[] = [];
  for (let n = 1; n < x.attempt; n++) {
    const r = mine.get(n);
    if (r) out.push({ attempt: n, host: r.host, at: r.at, outcome: 'failed', error: r.error, type: r.type });
    else out.push({ attempt: n, outcome: 'failed', error: n === x.attempt - 1 && x.lastFailure ? x.lastFailure : 'not reported (worker lost, or timed out)' });
  }
  const last = mine.get(x.attempt);
  out.push({ attempt: x.attempt, host: last?.host ?? x.host, at: x.endedAt ?? last?.at, outcome: x.outcome, error: x.outcome === 'completed' ? undefined : (x.error ?? last?.error), type: last?.type });
  return out;
}

export function parseSampleHistory(events: Event[], meta: WorkflowMeta, now = new Date().toISOString()): RunAudit {
  const byScheduled = new Map<string, ActivityAudit>();
  const stages: StageSpan[] = [];
  // Positions in the history, not times: a local claimHost puts the new host's upsert in the same workflow
  // task (same timestamp) as the stage change that ended the previous host's stage.
  const hostAt: { idx: number; host: string }[] = [];
  const stageEndIdx: number[] = [];
  const disk: DiskReading[] = [];
  let restarts = 0;
  let outcome: SampleOutcome | undefined;
  let source: string | undefined;
  let bytes = 0;
  const reports: AttemptReport[] = [];
  /** prepareSample's result, from its activity or its local activity's marker: the disk grant and the source */
  type Prepared = { done: boolean; plan?: SourcePlan; grant?: DiskGrant; deferred?: string };
  const notePrepared = (prep: Prepared | undefined, at: string, host: string | undefined) => {
    if (prep?.grant) disk.push({ at, host: host ?? null, ...prep.grant });
    if (prep?.plan) source = prep.plan.source;
  };
  for (const [idx, e] of events.entries()) {
    const at = ts(e.eventTime) ?? now;
    if (e.upsertWorkflowSearchAttributesEventAttributes) {
      const f = e.upsertWorkflowSearchAttributesEventAttributes.searchAttributes?.indexedFields ?? {};
      const host = decode<string>(f.WorkerHost);
      if (typeof host === 'string') hostAt.push({ idx, host });
      const stage = decode<SampleStage>(f.SampleStage);
      // Samples of paths 3 on (src/workflows/sample.ts ONE_FIRST_UPSERT_PATHS) send the first claim with the
      // first stage they enter: the sample was queued from its start until then.
      if (typeof stage === 'string' && stages.length === 0 && stage !== 'queued' && f.RunAccession) stages.push({ stage: 'queued', host: null, start: ts(events[0]?.eventTime) ?? at });
      if (typeof stage === 'string') {
        const last = stages[stages.length - 1];
        if (last && !last.end) {
          last.end = at;
          stageEndIdx[stages.length - 1] = idx;
        }
        stages.push({ stage, host: null, start: at });
      }
    } else if (e.markerRecordedEventAttributes?.markerName === 'core_local_activity') {
      // A local activity (prepareSample of samples of paths 2 on): its type in the marker's data, its result beside.
      const d = e.markerRecordedEventAttributes.details ?? {};
      type Stamp = { seconds?: number | string; nanos?: number } | null | undefined;
      const m = decode<{ activity_type?: string; activity_id?: string; attempt?: number; original_schedule_time?: Stamp; complete_time?: Stamp }>(d.data?.payloads?.[0]);
      if (m?.activity_type === 'claimHost') {
        // the host from the claim itself: its search attribute may come later in the same workflow task (paths 3)
        const claimed = decode<{ hostId?: string }>(d.result?.payloads?.[0])?.hostId;
        if (typeof claimed === 'string') hostAt.push({ idx, host: claimed });
        continue;
      }
      if (m?.activity_type !== 'prepareSample') continue;
      const iso = (t: Stamp) => (t?.seconds !== undefined ? new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString() : at);
      const prep = decode<Prepared>(d.result?.payloads?.[0]);
      const host = hostAt[hostAt.length - 1]?.host;
      const [from, to] = [iso(m.original_schedule_time), iso(m.complete_time)];
      byScheduled.set(`local-${e.eventId}`, { activity: 'prepareSample (local)', activityId: m.activity_id, scheduledAt: from, startedAt: from, endedAt: to, attempt: m.attempt ?? 1, outcome: prep ? 'completed' : 'failed', host, attempts: [] });
      notePrepared(prep, at, host);
    } else if (e.activityTaskScheduledEventAttributes) {
      const a = e.activityTaskScheduledEventAttributes;
      byScheduled.set(String(e.eventId), { activity: a.activityType?.name ?? '?', activityId: a.activityId ?? undefined, scheduledAt: at, attempt: 1, outcome: 'running', host: a.taskQueue?.name?.split('@')[1], attempts: [] });
    } else if (e.activityTaskStartedEventAttributes) {
      const a = e.activityTaskStartedEventAttributes;
      const x = byScheduled.get(String(a.scheduledEventId));
      if (x) {
        x.startedAt = at;
        x.attempt = a.attempt ?? 1;
        x.host = hostOfIdentity(a.identity) ?? x.host;
        if (a.lastFailure?.message) x.error = x.lastFailure = a.lastFailure.message;
      }
    } else if (e.activityTaskCompletedEventAttributes) {
      const a = e.activityTaskCompletedEventAttributes;
      const x = byScheduled.get(String(a.scheduledEventId));
      if (!x) continue;
      Object.assign(x, { outcome: 'completed', endedAt: at });
      const result = decode<unknown>(a.result?.payloads?.[0]);
      if (x.activity === 'reserveDisk' && result) disk.push({ at, host: x.host ?? null, ...(result as DiskGrant) });
      if (x.activity === 'resolveSource' && result) source = (result as SourcePlan).source;
      // the folded first step (checkDone + resolveSource + ensureIndex + reserveDisk) carries both
      if (x.activity === 'prepareSample') notePrepared(result as Prepared | undefined, at, x.host);
      if (x.activity === 'download' && result) bytes += (result as DownloadResult).bytesFetched ?? 0;
      // Samples of paths 4 (src/workflows/sample.ts CHAIN_QUANT_PATHS) quantify inside the step that verified the
      // reads, with no stage upsert: quantifying began when the step says it verified them.
      const chained = (x.activity === 'download' || x.activity === 'convertSra') && result ? (result as { chained?: ChainedQuant }).chained : undefined;
      if (chained && 'quant' in chained) {
        const open = stages[stages.length - 1];
        if (open && !open.end) {
          open.end = chained.verifiedAt;
          stageEndIdx[stages.length - 1] = idx;
        }
        stages.push({ stage: 'quantifying', host: null, start: chained.verifiedAt });
        // ...and the quant it ran is listed as a step of its own, from then until the step completed
        byScheduled.set(`chained-${e.eventId}`, { activity: `quant (in ${x.activity})`, scheduledAt: chained.verifiedAt, startedAt: chained.verifiedAt, endedAt: at, attempt: 1, outcome: 'completed', host: x.host, attempts: [] });
      }
    } else if (e.activityTaskFailedEventAttributes) {
      const a = e.activityTaskFailedEventAttributes;
      const x = byScheduled.get(String(a.scheduledEventId));
      if (x) Object.assign(x, { outcome: 'failed', endedAt: at, error: a.failure?.message ?? x.error });
    } else if (e.activityTaskTimedOutEventAttributes) {
      const a = e.activityTaskTimedOutEventAttributes;
      const x = byScheduled.get(String(a.scheduledEventId));
      if (x) {
        Object.assign(x, { outcome: 'timed out', endedAt: at, error: a.failure?.message ?? 'timed out' });
        if (isScheduleToStart(a.failure?.timeoutFailureInfo?.timeoutType)) {
          restarts++;
          x.hostLost = true;
        }
      }
    } else if (e.activityTaskCanceledEventAttributes) {
      const x = byScheduled.get(String(e.activityTaskCanceledEventAttributes.scheduledEventId));
      if (x) Object.assign(x, { outcome: 'cancelled', endedAt: at });
    } else if (e.workflowExecutionSignaledEventAttributes?.signalName === attemptFailedSignal.name) {
      const r = decode<AttemptReport>(e.workflowExecutionSignaledEventAttributes.input?.payloads?.[0]);
      if (r && typeof r.attempt === 'number') reports.push(r);
    } else if (e.workflowExecutionCompletedEventAttributes) {
      outcome = decode<SampleOutcome>(e.workflowExecutionCompletedEventAttributes.result?.payloads?.[0]);
    } else if (e.workflowExecutionFailedEventAttributes) {
      // A failed sample (since patch FAIL_LOUD) carries its outcome in the failure's details.
      const f = e.workflowExecutionFailedEventAttributes.failure;
      outcome = decode<SampleOutcome>(f?.applicationFailureInfo?.details?.payloads?.[0]) ?? outcome;
    }
  }
  for (const x of byScheduled.values()) x.attempts = attemptsOf(x, reports);
  // A stage's host is the one claimed before the stage ended: the `queued` stretch belongs to the host
  // that picked the sample up at its end (claimHost runs inside it, or just before it as a local activity).
  for (const [i, s] of stages.entries()) {
    const until = stageEndIdx[i] ?? Infinity;
    for (const h of hostAt) if (h.idx <= until) s.host = h.host;
  }
  const last = stages[stages.length - 1];
  // A closed workflow (cancelled, terminated) leaves its last stage open: it ended when the workflow did.
  if (last && !last.end && meta.close && !['done', 'failed', 'skipped'].includes(last.stage)) last.end = meta.close;
  return {
    workflowId: meta.workflowId,
    runId: meta.runId,
    status: meta.status,
    start: meta.start,
    close: meta.close,
    host: meta.searchAttributes?.get(SA.WorkerHost) ?? hostAt[hostAt.length - 1]?.host,
    stage: meta.searchAttributes?.get(SA.SampleStage) ?? last?.stage,
    activities: [...byScheduled.values()],
    restarts,
    stages,
    disk,
    outcome,
    source: outcome?.source ?? source,
    bytes: outcome?.bytes ?? bytes,
  };
}
