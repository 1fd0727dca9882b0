/**
 * `fetchquant report`: reads a batch back from Temporal itself (visibility for its samples, each sample's
 * history for stages, attempts, hosts and disk readings) and writes a summary TSV and a self-contained HTML
 * timeline. Nothing is read from the output dir, so a report can be made from any machine that reaches
 * the server, for a batch still running too.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { DEFAULTS, resolveBatchOptions, type BatchOptions } from '../config/schema.js';
import { batchWorkflowId } from '../ids.js';
import { buildReport } from '../report/model.js';
import { renderHtml } from '../report/html.js';
import { renderTsv } from '../report/tsv.js';
import { EXIT, UsageError } from './args.js';
import { openSession } from './context.js';
import { batchIdOf } from './control.js';
import { auditQuery } from './history.js';

/** Batch ids go into a visibility query between quotes: only the characters our ids are made of. */
const BATCH_ID = /^[A-Za-z0-9._-]+$/;

/** The batch's input (first event of its latest run: continue-as-new carries the original input first). */
async function batchInput(client: Client, namespace: string, workflowId: string): Promise<Partial<BatchOptions> | null> {
  try {
    const res = await client.workflowService.getWorkflowExecutionHistory({ namespace, execution: { workflowId }, maximumPageSize: 1 });
    const payload = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    return payload ? (defaultPayloadConverter.fromPayload<Partial<BatchOptions>>(payload as never) ?? {}) : {};
  } catch (err) {
    const e = err as { code?: number; message?: string };
    if (e.code === 5 || /not found/i.test(e.message ?? '')) return null;
    throw err;
  }
}

/**
 * Start of the batch's latest execution chain: a batch re-run with the same id (the resume of a finished
 * batch) starts new sample workflows; the report describes the latest run, following continue-as-new back.
 */
async function chainStart(client: Client, workflowId: string): Promise<number> {
  const runs: { start: number; status: string }[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}' AND WorkflowType = 'batchWorkflow'` })) {
    runs.push({ start: wf.startTime.getTime(), status: wf.status.name });
  }
  runs.sort((a, b) => b.start - a.start);
  let start = runs[0]?.start ?? 0;
  for (const r of runs.slice(1)) {
    if (r.status !== 'CONTINUED_AS_NEW') break;
    start = r.start;
  }
  return start;
}

export async function cmdReport(values: Record<string, unknown>, out: (l: string) => void): Promise<number> {
  const batchId = batchIdOf(values);
  if (!BATCH_ID.test(batchId)) throw new UsageError(`report: --batch-id ${JSON.stringify(batchId)} may hold only letters, digits, '.', '_' and '-'`);
  const session = await openSession(values, 'attach');
  try {
    const { client, target } = session;
    const workflowId = batchWorkflowId(batchId);
    const input = await batchInput(client, target.namespace, workflowId);
    if (input === null) {
      throw new UsageError(
        `report: no batch ${workflowId} in namespace ${target.namespace} at ${target.address}; name it with --batch-id ID or the --output-dir DIR it was run with`,
      );
    }
    const { options } = resolveBatchOptions(input, 'batch input');
    const since = await chainStart(client, workflowId);
    // A second of slack: a sample started in the same instant as the batch's run must not be dropped.
    const audits = await auditQuery(client, `BatchId = '${batchId}' AND WorkflowType = 'sampleWorkflow'`, (wf) => wf.startTime.getTime() >= since - 1000);
    const report = buildReport(batchId, audits, { minFreeGb: options.minFreeGb });
    const outputDir = resolve((values['output-dir'] as string | undefined) ?? input.outputDir ?? DEFAULTS.outputDir);
    const outDir = resolve((values['out-dir'] as string | undefined) ?? join(outputDir, 'reports'));
    mkdirSync(outDir, { recursive: true });
    const tsvPath = join(outDir, `fetchquant-report-${batchId}.tsv`);
    const htmlPath = join(outDir, `fetchquant-report-${batchId}.html`);
    writeFileSync(tsvPath, renderTsv(report.rows));
    writeFileSync(htmlPath, renderHtml(report));
    out(tsvPath);
    out(htmlPath);
    if (report.rows.length === 0) process.stderr.write(`fetchquant: batch ${batchId} has no sample workflows yet; the report is empty\n`);
    return EXIT.ok;
  } finally {
    await session.close();
  }
}
