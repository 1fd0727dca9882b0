/** Commands that steer or read a running batch: start, status, watch, threads, pause, resume, cancel. */
import { resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { isGrpcServiceError, type WorkflowHandle } from '@temporalio/client';
import { batchWorkflowId, defaultBatchId, webUiWorkflowUrl } from '../ids.js';
import { CLI_OPTIONS, DEFAULTS } from '../config/schema.js';
import { batchProgressQuery, paceQuery, pauseSignal, resumeParkedSignal, resumeSignal, setTotalThreadsUpdate, type BatchProgress, type SourcePace } from '../workflows/messages.js';
import { PACER_WORKFLOW_ID } from '../ids.js';
import { batchOptionsFromFlags, EXIT, UsageError } from './args.js';
import { openSession } from './context.js';
import { causeChain } from '../failures.js';
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
    for (const line of renderParked(p)) out(line);
    // the namespace's source pacer (docs/pacing.md): absent until a worker first asked it
    const pace = await session.client.workflow.getHandle(PACER_WORKFLOW_ID).query(paceQuery).catch(() => null);
    for (const line of renderPace(pace)) out(line);
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
      const alloc = await setTotalThreads(handle, n);
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

/** gRPC FAILED_PRECONDITION: the code of the server's WorkflowNotReady */
const FAILED_PRECONDITION = 9;

/**
 * The update the server aborted unapplied because the workflow task it was delivered in failed: WorkflowNotReady
 * "Unable to perform workflow execution update due to unexpected workflow task failure." (temporalio/temporal,
 * service/history/workflow/update/errors_failures.go), a FAILED_PRECONDITION under the client's ServiceError.
 * A batch's task fails so (UnhandledCommand) when an event lands as it continues as new or completes. Known
 * by its code alone: an update refused with FAILED_PRECONDITION was not applied, so sending it again is safe.
 */
export function updateAbortedByTaskFailure(err: unknown): boolean {
  return causeChain(err).some((e) => isGrpcServiceError(e) && e.code === FAILED_PRECONDITION);
}

/**
 * setTotalThreads, sent again (up to `attempts` times) when the server aborted it unapplied: setting a total
 * is idempotent, and the workflow task that failed under it is retried at once by the server.
 */
export async function setTotalThreads(handle: Pick<WorkflowHandle, 'executeUpdate'>, n: number, attempts = 5, delayMs = 500): Promise<Record<string, number>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await handle.executeUpdate(setTotalThreadsUpdate, { args: [n] });
    } catch (err) {
      if (attempt >= attempts || !updateAbortedByTaskFailure(err)) throw err;
      await delay(delayMs * attempt);
    }
  }
}

/** One line per source: downloads in flight of the current limit, the API rate, and what moved them. */
export function renderPace(pace: SourcePace[] | null): string[] {
  if (!pace || pace.length === 0) return ['pace: no source paced yet (no download asked the pacer)'];
  return pace.map((p) => {
    const parts = [
      `pace ${p.source}: ${p.inFlight} of ${p.limit} downloads (ceiling ${p.maxLimit})${p.waiting ? `, ${p.waiting} waiting` : ''}`,
      `${p.ratePerSec} req/s (ceiling ${p.maxRatePerSec})`,
      `${p.throttled} x 429, ${p.serverErrors} x 5xx, ${p.stalls} stalls`,
    ];
    if (p.pausedUntil) parts.push(`paused until ${p.pausedUntil}`);
    if (p.lastChange) parts.push(`last change ${p.lastChange}`);
    return parts.join('; ');
  });
}

/** Parked runs of a batch (docs/park.md): when each is tried again and why it waits. */
export function renderParked(p: BatchProgress): string[] {
  const parked = p.species.flatMap((s) => (s.parked ?? []).map((r) => ({ species: s.speciesId, ...r })));
  if (parked.length === 0) return [];
  return [
    `parked: ${parked.length} run(s); \`fetchquant resume-parked\` tries them now`,
    ...parked.map((r) => `  ${r.run} (${r.species}): back at ${r.until}; parked since ${r.since}: ${r.reason}`),
  ];
}

/** Wakes every parked sample of the batch (found by visibility: SampleStage = 'parked'). */
export async function cmdResumeParked(values: Record<string, unknown>, out: Out): Promise<number> {
  const session = await openSession(values, 'attach');
  try {
    const batchId = batchIdOf(values);
    const query = `BatchId = '${batchId}' AND SampleStage = 'parked' AND ExecutionStatus = 'Running'`;
    let n = 0;
    for await (const wf of session.client.workflow.list({ query })) {
      await session.client.workflow.getHandle(wf.workflowId).signal(resumeParkedSignal).then(
        () => {
          n++;
          out(`resumed ${wf.workflowId}`);
        },
        (err: Error) => out(`${wf.workflowId}: ${err.message}`),
      );
    }
    out(n === 0 ? `no parked runs in batch ${batchId}` : `${n} parked run(s) of batch ${batchId} tried again now`);
    return EXIT.ok;
  } finally {
    await session.close();
  }
}
