/** Commands that steer or read a running batch: start, status, watch, threads, pause, resume, cancel. */
import { resolve } from 'node:path';
import { batchWorkflowId, defaultBatchId, webUiWorkflowUrl } from '../ids.js';
import { CLI_OPTIONS, DEFAULTS } from '../config/schema.js';
import { batchProgressQuery, pauseSignal, resumeSignal, setTotalThreadsUpdate } from '../workflows/messages.js';
import { batchOptionsFromFlags, EXIT, UsageError } from './args.js';
import { openSession } from './context.js';
import { rates, renderProgress } from './progress.js';
import { startBatchWorkflow, summaryText, waitForBatchQuiet, watchUntilDone } from './run.js';

type Out = (l: string) => void;

export function batchIdOf(values: Record<string, unknown>): string {
  return (values['batch-id'] as string | undefined) ?? defaultBatchId(resolve((values['output-dir'] as string | undefined) ?? DEFAULTS.outputDir));
}

export async function cmdStart(values: Record<string, unknown>, out: Out): Promise<number> {
  const options = batchOptionsFromFlags(values);
  const session = await openSession(values, 'attach', { searchAttributes: true, out });
  try {
    const h = await startBatchWorkflow(session, options);
    const workflowId = h.workflowId;
    out(`${workflowId} (run ${h.firstExecutionRunId})`);
    if (session.uiUrl) out(webUiWorkflowUrl(session.uiUrl, session.target.namespace, workflowId));
    out('needs a worker: `fetchquant worker` on each host');
    return EXIT.ok;
  } finally {
    await session.close();
  }
}

export async function cmdStatus(values: Record<string, unknown>, out: Out, watch: boolean): Promise<number> {
  const session = await openSession(values, 'attach');
  try {
    const handle = session.client.workflow.getHandle(batchWorkflowId(batchIdOf(values)));
    const desc = await handle.describe().catch((err: Error) => {
      throw new UsageError(`no batch ${handle.workflowId} on ${session.target.address}: ${err.message}`);
    });
    if (desc.status.name !== 'RUNNING') {
      if (desc.status.name === 'COMPLETED') {
        const r = await handle.result();
        out(summaryText(r));
        return r.totals.failed > 0 ? EXIT.samplesFailed : EXIT.ok;
      }
      out(`batch ${handle.workflowId}: ${desc.status.name}`);
      return EXIT.samplesFailed;
    }
    if (watch) {
      const r = await watchUntilDone(handle, out, Number(values.every ?? CLI_OPTIONS.every.default));
      out(summaryText(r));
      return r.totals.failed > 0 ? EXIT.samplesFailed : EXIT.ok;
    }
    const p = await handle.query(batchProgressQuery);
    out(renderProgress(p, rates(null, p, 0), false));
    return EXIT.ok;
  } finally {
    await session.close();
  }
}

export async function cmdControl(kind: 'threads' | 'pause' | 'resume' | 'cancel', values: Record<string, unknown>, positionals: string[], out: Out): Promise<number> {
  const session = await openSession(values, 'attach');
  try {
    const handle = session.client.workflow.getHandle(batchWorkflowId(batchIdOf(values)));
    if (kind === 'threads') {
      const n = Number(positionals[0]);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`threads: expected a whole number >= 1, got ${JSON.stringify(positionals[0] ?? null)}`);
      const alloc = await handle.executeUpdate(setTotalThreadsUpdate, { args: [n] });
      out(`total threads ${n}: ${Object.entries(alloc).map(([k, v]) => `${k}=${v}`).join(' ') || '(no active species)'}`);
    } else if (kind === 'pause') {
      await handle.signal(pauseSignal);
      out(`paused ${handle.workflowId}: no new downloads start; samples in flight finish`);
    } else if (kind === 'resume') {
      await handle.signal(resumeSignal);
      out(`resumed ${handle.workflowId}`);
    } else {
      await handle.cancel();
      out(`cancelling ${handle.workflowId}: species and samples are cancelled and clean up their partial files`);
      await handle.result().catch(() => undefined);
      const left = await waitForBatchQuiet(session, batchIdOf(values), 120_000);
      out(left === 0 ? 'cancelled; every sample has cleaned up its files' : `cancelled; ${left} workflow(s) still cleaning up (they need a running worker)`);
    }
    return EXIT.ok;
  } finally {
    await session.close();
  }
}
