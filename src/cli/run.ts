/**
 * `fetchquant run`: embedded server (unless one is configured) + worker + batch, with live progress;
 * exits when the batch ends. Ctrl-C stops the worker and the server gracefully; the batch stays durable
 * and running the same command again attaches to it and resumes.
 */
import { WorkflowIdConflictPolicy } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { batchWorkflowId, TASK_QUEUE, webUiWorkflowUrl } from '../ids.js';
import { connectNative } from '../server/connection.js';
import type { BatchOptions } from '../config/schema.js';
import { startWorker, defaultHostId, type RunningWorker } from '../worker.js';
import type { BatchResult } from '../workflows/batch.js';
import type { BatchProgress } from '../workflows/messages.js';
import { batchProgressQuery } from '../workflows/messages.js';
import { EXIT } from './args.js';
import { openSession, type Session } from './context.js';
import { rates, renderProgress } from './progress.js';

export interface RunHooks {
  /** printed once the batch is running (demo prints its mirror here) */
  onStarted?: (info: { workflowId: string; uiLink: string | null }) => void;
  /** print one line per sample at the end (the demo does) */
  listSamples?: boolean;
  out?: (line: string) => void;
}

export async function runBatch(values: Record<string, unknown>, options: BatchOptions, hooks: RunHooks = {}): Promise<number> {
  const out = hooks.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const session = await openSession({ ...values, 'output-dir': options.outputDir }, 'start-embedded');
  const hostId = (values['host-id'] as string | undefined) ?? defaultHostId();
  let worker: RunningWorker | null = null;
  let interrupted = false;
  const stopAll = async (closeClient: boolean) => {
    await worker?.shutdown();
    // On Ctrl-C the result long-poll is still open: closing the channel under it throws from a timer.
    if (closeClient) await session.close();
    // Our own embedded server (also one a crashed run left behind) stops with us; `fetchquant server` ones stay.
    if (session.server?.owner === 'run') await session.server.stop();
  };
  const onSignal = () => {
    if (interrupted) process.exit(EXIT.interrupted);
    interrupted = true;
    out('\ninterrupted: stopping the worker and the server; the batch is kept — run the same command again to resume');
    void stopAll(false).then(() => process.exit(EXIT.interrupted));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (session.server) out(`Temporal dev server ${session.server.started ? 'started' : 'attached'} at ${session.target.address} (state ${session.server.dbFile})`);
    const native = await connectNative(session.target);
    worker = await startWorker({
      connection: native,
      client: session.client,
      namespace: session.target.namespace,
      hostId,
      janitor: { readsDirs: [], healthCheckIntervalSec: options.healthCheckIntervalSec, autoCleanupThresholdGb: options.autoCleanupThresholdGb },
    });
    const handle = await startBatchWorkflow(session, options);
    const workflowId = handle.workflowId;
    const uiLink = session.uiUrl ? webUiWorkflowUrl(session.uiUrl, session.target.namespace, workflowId) : null;
    out(`batch ${workflowId} running${uiLink ? ` — Web UI: ${uiLink}` : ''}`);
    hooks.onStarted?.({ workflowId, uiLink });
    let result: BatchResult;
    try {
      result = await watchUntilDone(handle, out, Math.min(options.monitorIntervalSec, 10));
    } catch (err) {
      // Cancelled or terminated from elsewhere (`fetchquant cancel`, the Web UI): say so, not a stack trace.
      if (err instanceof WorkflowFailedError) {
        out(`batch ${workflowId} ended without a result: ${err.cause?.message ?? err.message}`);
        // Cancelled samples clean their files up in activities: keep this worker until they have.
        const left = await waitForBatchQuiet(session, options.batchId!, 120_000);
        if (left > 0) out(`${left} workflow(s) of the batch still running; a worker will finish their clean-up`);
        return EXIT.samplesFailed;
      }
      throw err;
    }
    out(summaryText(result));
    if (hooks.listSamples) for (const l of await sampleOutcomeLines(session, options.batchId!)) out(l);
    return result.totals.failed > 0 ? EXIT.samplesFailed : EXIT.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!interrupted) await stopAll(true);
  }
}

export async function watchUntilDone(handle: WorkflowHandle, out: (l: string) => void, everySec: number): Promise<BatchResult> {
  const tty = Boolean(process.stdout.isTTY);
  let prev: BatchProgress | null = null;
  let prevAt = Date.now();
  let lastPlain = '';
  const result = handle.result() as Promise<BatchResult>;
  let settled = false;
  void result.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled) {
    try {
      const cur = await handle.query(batchProgressQuery);
      const now = Date.now();
      const text = renderProgress(cur, rates(prev, cur, (now - prevAt) / 1000), tty);
      if (tty) process.stdout.write(`\x1b[2J\x1b[H${text}\n`);
      else if (text !== lastPlain) out(text);
      lastPlain = text;
      prev = cur;
      prevAt = now;
    } catch {
      // Not queryable yet (first task pending) or the server is restarting: try again next tick.
    }
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, everySec * 1000))]);
  }
  return result;
}

export function summaryText(r: BatchResult): string {
  const lines = [`batch ${r.batchId}: ${r.totals.done} done, ${r.totals.skipped} skipped, ${r.totals.failed} failed of ${r.totals.total}`];
  for (const s of r.species) lines.push(`  ${s.speciesId}: ${s.done} done, ${s.skipped} skipped, ${s.failed} failed${s.status === 'failed' && s.reason ? ` — ${s.reason}` : ''}`);
  if (r.failures.length) {
    lines.push('failures:');
    for (const f of r.failures) lines.push(`  ${f.species} ${f.run}: [${f.failureType ?? 'error'}] ${f.reason}`);
  }
  return lines.join('\n');
}

/** One line per sample of the batch, from visibility: run, species, final stage, host. */
export async function sampleOutcomeLines(session: Session, batchId: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const wf of session.client.workflow.list({ query: `BatchId = '${batchId}' AND WorkflowType = 'sampleWorkflow'` })) {
    const sa = wf.searchAttributes ?? {};
    const one = (k: string) => (Array.isArray(sa[k]) ? String((sa[k] as unknown[])[0]) : '?');
    const link = session.uiUrl ? `  ${webUiWorkflowUrl(session.uiUrl, session.target.namespace, wf.workflowId)}` : '';
    lines.push(`  ${one('RunAccession')}  ${one('Species')}  ${one('SampleStage')}  host ${one('WorkerHost')}${link}`);
  }
  return lines.sort();
}

/** Wait until no workflow of the batch runs any more (bounded); returns how many still run. */
export async function waitForBatchQuiet(session: Session, batchId: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { count } = await session.client.workflow.count(`BatchId = '${batchId}' AND ExecutionStatus = 'Running'`);
    if (count === 0 || Date.now() > deadline) return count;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Start the batch, or attach to it when the same id is already running (a crash, a second terminal). */
export async function startBatchWorkflow(session: Session, options: BatchOptions): Promise<WorkflowHandleWithFirstExecutionRunId> {
  return session.client.workflow.start('batchWorkflow', {
    taskQueue: TASK_QUEUE,
    workflowId: batchWorkflowId(options.batchId!),
    args: [options],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
}
