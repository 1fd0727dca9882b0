/**
 * `fetchquant history <RUN>`: the audit of one run from Temporal itself — every sample workflow of that
 * run across batches, each activity with its attempts, worker host, timing and error, and the Web UI link.
 */
import type { Client } from '@temporalio/client';
import { RUN_ACCESSION } from '../config/schema.js';
import { webUiWorkflowUrl } from '../ids.js';
import { EXIT, UsageError } from './args.js';
import { openSession } from './context.js';

export interface ActivityAudit {
  activity: string;
  scheduledAt: string;
  startedAt?: string;
  endedAt?: string;
  attempt: number;
  host?: string;
  outcome: 'completed' | 'failed' | 'timed out' | 'cancelled' | 'running';
  error?: string;
  summary?: string;
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
  restarts: number;
}

const ts = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  t ? new Date(Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString() : undefined;

export async function auditRun(client: Client, run: string): Promise<RunAudit[]> {
  const audits: RunAudit[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowType = 'sampleWorkflow' AND RunAccession = '${run}'` })) {
    const handle = client.workflow.getHandle(wf.workflowId, wf.runId);
    const history = await handle.fetchHistory();
    const byScheduled = new Map<string, ActivityAudit>();
    let restarts = 0;
    for (const e of history.events ?? []) {
      const id = String(e.eventId);
      if (e.activityTaskScheduledEventAttributes) {
        const a = e.activityTaskScheduledEventAttributes;
        byScheduled.set(id, { activity: a.activityType?.name ?? '?', scheduledAt: ts(e.eventTime)!, attempt: 1, outcome: 'running', host: a.taskQueue?.name?.split('@')[1] });
      } else if (e.activityTaskStartedEventAttributes) {
        const a = e.activityTaskStartedEventAttributes;
        const x = byScheduled.get(String(a.scheduledEventId));
        if (x) {
          x.startedAt = ts(e.eventTime);
          x.attempt = a.attempt ?? 1;
          x.host = a.identity?.split('@')[1]?.split('/')[0] ?? x.host;
          if (a.lastFailure?.message) x.error = a.lastFailure.message;
        }
      } else if (e.activityTaskCompletedEventAttributes) {
        const x = byScheduled.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId));
        if (x) Object.assign(x, { outcome: 'completed', endedAt: ts(e.eventTime) });
      } else if (e.activityTaskFailedEventAttributes) {
        const a = e.activityTaskFailedEventAttributes;
        const x = byScheduled.get(String(a.scheduledEventId));
        if (x) Object.assign(x, { outcome: 'failed', endedAt: ts(e.eventTime), error: a.failure?.message ?? x.error });
      } else if (e.activityTaskTimedOutEventAttributes) {
        const a = e.activityTaskTimedOutEventAttributes;
        const x = byScheduled.get(String(a.scheduledEventId));
        if (x) {
          Object.assign(x, { outcome: 'timed out', endedAt: ts(e.eventTime), error: a.failure?.message ?? 'timed out' });
          if (/schedule.?to.?start/i.test(a.failure?.timeoutFailureInfo?.timeoutType?.toString() ?? '') || a.failure?.timeoutFailureInfo?.timeoutType === 2) restarts++;
        }
      } else if (e.activityTaskCanceledEventAttributes) {
        const x = byScheduled.get(String(e.activityTaskCanceledEventAttributes.scheduledEventId));
        if (x) Object.assign(x, { outcome: 'cancelled', endedAt: ts(e.eventTime) });
      }
    }
    const sa = wf.searchAttributes ?? {};
    const first = (k: string) => (Array.isArray(sa[k]) ? String((sa[k] as unknown[])[0]) : undefined);
    audits.push({
      workflowId: wf.workflowId,
      runId: wf.runId,
      status: wf.status.name,
      start: wf.startTime.toISOString(),
      close: wf.closeTime?.toISOString(),
      host: first('WorkerHost'),
      stage: first('SampleStage'),
      activities: [...byScheduled.values()],
      restarts,
    });
  }
  return audits.sort((a, b) => a.start.localeCompare(b.start));
}

export function renderAudit(audits: RunAudit[], uiUrl: string | null, namespace: string): string {
  const lines: string[] = [];
  for (const a of audits) {
    lines.push(`${a.workflowId}  ${a.status}  stage=${a.stage ?? '?'}  host=${a.host ?? '?'}  ${a.start} -> ${a.close ?? 'running'}${a.restarts ? `  host restarts=${a.restarts}` : ''}`);
    if (uiUrl) lines.push(`  ${webUiWorkflowUrl(uiUrl, namespace, a.workflowId)}`);
    for (const x of a.activities) {
      const dur = x.startedAt && x.endedAt ? `${((Date.parse(x.endedAt) - Date.parse(x.startedAt)) / 1000).toFixed(2)}s` : '';
      lines.push(`  ${x.scheduledAt}  ${x.activity.padEnd(14)} attempt ${x.attempt}  host ${x.host ?? '?'}  ${x.outcome} ${dur}${x.error ? `  error: ${x.error}` : ''}`);
    }
  }
  return lines.join('\n');
}

export async function cmdHistory(values: Record<string, unknown>, positionals: string[], out: (l: string) => void): Promise<number> {
  const run = positionals[0];
  if (!run || !RUN_ACCESSION.test(run)) throw new UsageError(`history: expected a run accession matching ${RUN_ACCESSION.source}, got ${JSON.stringify(run ?? null)}`);
  const session = await openSession(values, 'attach');
  try {
    const audits = await auditRun(session.client, run);
    if (audits.length === 0) {
      out(`no sample workflow for ${run} in namespace ${session.target.namespace}`);
      return EXIT.samplesFailed;
    }
    out(values.json ? JSON.stringify(audits, null, 2) : renderAudit(audits, session.uiUrl, session.target.namespace));
    return EXIT.ok;
  } finally {
    await session.close();
  }
}
