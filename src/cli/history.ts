/**
 * `fetchquant history <RUN>`: the audit of one run from Temporal itself — every sample workflow of that
 * run across batches, each activity with every attempt (host, end, error: the workers report each failed
 * attempt to the sample by an attemptFailed signal), timing, and the Web UI link.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { RUN_ACCESSION } from '../config/schema.js';
import { webUiWorkflowUrl } from '../ids.js';
import { parseSampleHistory, type RunAudit } from '../report/audit.js';
import { EXIT, UsageError } from './args.js';
import { openSession } from './context.js';

export type { ActivityAudit, RunAudit } from '../report/audit.js';

/** The audit of a sample workflow execution as visibility lists it, from its history's events. */
export function auditListed(wf: WorkflowExecutionInfo, events: Parameters<typeof parseSampleHistory>[0]): RunAudit {
  return parseSampleHistory(events, {
    workflowId: wf.workflowId,
    runId: wf.runId,
    status: wf.status.name,
    start: wf.startTime.toISOString(),
    close: wf.closeTime?.toISOString(),
    searchAttributes: wf.typedSearchAttributes,
  });
}

/** Audits of every sample workflow execution the visibility query finds, oldest first. */
export async function auditQuery(client: Client, query: string, keep: (wf: WorkflowExecutionInfo) => boolean = () => true): Promise<RunAudit[]> {
  const audits: RunAudit[] = [];
  for await (const wf of client.workflow.list({ query })) {
    if (!keep(wf)) continue;
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    audits.push(auditListed(wf, history.events ?? []));
  }
  return audits.sort((a, b) => a.start.localeCompare(b.start));
}

export async function auditRun(client: Client, run: string): Promise<RunAudit[]> {
  if (!RUN_ACCESSION.test(run)) throw new UsageError(`not a run accession: ${JSON.stringify(run)}`);
  return auditQuery(client, `WorkflowType = 'sampleWorkflow' AND RunAccession = '${run}'`);
}

export function renderAudit(audits: RunAudit[], uiUrl: string | null, namespace: string): string {
  const lines: string[] = [];
  for (const a of audits) {
    lines.push(`${a.workflowId}  ${a.status}  stage=${a.stage ?? '?'}  host=${a.host ?? '?'}  ${a.start} -> ${a.close ?? 'running'}${a.restarts ? `  host restarts=${a.restarts}` : ''}`);
    if (uiUrl) lines.push(`  ${webUiWorkflowUrl(uiUrl, namespace, a.workflowId)}`);
    if (a.stages.length) lines.push(`  stages: ${a.stages.map((s) => `${s.stage}${s.host ? `@${s.host}` : ''}${s.end ? ` ${((Date.parse(s.end) - Date.parse(s.start)) / 1000).toFixed(2)}s` : ''}`).join(' -> ')}`);
    for (const x of a.activities) {
      const dur = x.startedAt && x.endedAt ? `${((Date.parse(x.endedAt) - Date.parse(x.startedAt)) / 1000).toFixed(2)}s` : '';
      lines.push(`  ${x.scheduledAt}  ${x.activity.padEnd(14)} attempt ${x.attempt}  host ${x.host ?? '?'}  ${x.outcome} ${dur}${x.error ? `  error: ${x.error}` : ''}`);
      // Every attempt when there was more than one: Temporal itself keeps only the last failure.
      if (x.attempts.length > 1) {
        for (const t of x.attempts) lines.push(`      attempt ${t.attempt}  host ${t.host ?? '?'}  ${t.outcome}${t.at ? ` at ${t.at}` : ''}${t.error ? `  error: ${t.type ? `[${t.type}] ` : ''}${t.error}` : ''}`);
      }
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
