/**
 * `fetchquant run`: embedded server (unless one is configured) + worker + batch, with live progress;
 * exits when the batch ends. Ctrl-C stops the worker and the server gracefully; the batch stays durable
 * and running the same command again attaches to it and resumes.
 * The embedded server is supervised: if its process dies, it is started again on the same state file and
 * port, the worker and the client reconnect by themselves, and the batch goes on (docs/architecture.md §5.6). Only if it
 * cannot be restarted does `run` stop, with exit 3; running it again resumes.
 */
import { WorkflowIdConflictPolicy } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { batchWorkflowId, TASK_QUEUE, webUiWorkflowUrl } from '../ids.js';
import { connectNative, isUnavailable } from '../server/connection.js';
import { superviseEmbeddedServer, type ServerSupervisor } from '../server/embedded.js';
import type { BatchOptions } from '../config/schema.js';
import { startWorker, defaultHostId, type RunningWorker } from '../worker.js';
import type { BatchResult } from '../workflows/batch.js';
import { longLivedTaskTimeoutSec, UNKNOWN_SPECIES_TASK_TIMEOUT_MS } from '../workflows/options.js';
import type { BatchProgress } from '../workflows/messages.js';
import { batchProgressQuery } from '../workflows/messages.js';
import { EXIT } from './args.js';
import { openSession, type Session } from './context.js';
import { rates, renderProgress } from './progress.js';
import { interruptedCode, onInterrupt } from './signals.js';
import { join } from 'node:path';
import { cliLogger, logFileName } from '../log.js';
import { SA } from '../search-attributes.js';
import { EnvironmentError } from '../failures.js';
import { HttpClient } from '../tools/http.js';
import { inflaterInUse } from '../tools/inflate.js';
import type { PlanSpecies } from '../plan/plan.js';

export interface RunHooks {
  /** printed once the batch is running (demo prints its mirror here) */
  onStarted?: (info: { workflowId: string; uiLink: string | null }) => void;
  /** print one line per sample at the end (the demo does) */
  listSamples?: boolean;
  /** the batch's runs, to ask at their sources and summarise while the batch runs (src/cli/plan.ts) */
  plan?: PlanSpecies[];
  out?: (line: string) => void;
  /** the session, opened already (src/cli.ts); default: opened here */
  session?: Promise<Session>;
}

export async function runBatch(values: Record<string, unknown>, options: BatchOptions, hooks: RunHooks = {}): Promise<number> {
  const out = hooks.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  // SDK logs of this run go to a file under the output dir, named at the end; problems go to the terminal.
  const logger = cliLogger();
  const problems: string[] = [];
  const tty = Boolean(process.stdout.isTTY);
  if (logger) {
    logger.open(logFileName(join(options.outputDir, 'logs'), 'fetchquant-run'));
    logger.terminal = (l) => (tty ? problems.push(l) : out(l));
  }
  // Where start-up time goes, in the log file (issue 15: no start-up pause the user waits on).
  const phases: string[] = performance.getEntriesByType('mark').map((m) => `${m.name} ${(m.startTime / 1000).toFixed(2)} s`);
  const phase = (name: string) => phases.push(`${name} ${(performance.now() / 1000).toFixed(2)} s`);
  phase('cli loaded');
  // `run` opened it already (src/cli.ts: the server starts while the worker's modules load); the demo has not.
  const session = await (hooks.session ?? openSession({ ...values, 'output-dir': options.outputDir }, 'start-embedded', { searchAttributes: true, out }));
  phase('server session');
  // Interrupted while the server started: stop what this run started, nothing else began.
  if (interruptedCode() !== null) {
    out('\ninterrupted during start-up; the batch is kept — run the same command again to resume');
    await session.close();
    if (session.server?.owned) await session.server.stop();
    return interruptedCode()!;
  }
  const hostId = (values['host-id'] as string | undefined) ?? defaultHostId();
  let worker: RunningWorker | null = null;
  let interrupted = false;
  // Our own embedded server (also one a crashed run left behind) is kept alive while we run, and stops with
  // us; a `fetchquant server` one belongs to its terminal.
  const supervisor: ServerSupervisor | null =
    session.server?.owned
      ? superviseEmbeddedServer(session.server, {
          onExit: (pid) => out(`Temporal dev server (pid ${pid}) exited unexpectedly; restarting it on ${session.server!.dbFile} at ${session.target.address}`),
          onRestarted: (s) => out(`Temporal dev server restarted (pid ${s.pid}); the worker reconnects and the batch goes on`),
        })
      : null;
  let stopping = false;
  let stopped: Promise<void> | null = null;
  // Once, whoever comes first: the end of the batch or a signal.
  const stopAll = (closeClient: boolean) =>
    (stopped ??= (async () => {
      stopping = true;
      supervisor?.stop();
      await worker?.shutdown();
      // On Ctrl-C the result long-poll is still open: closing the channel under it throws from a timer.
      if (closeClient) await session.close();
      if (supervisor) await supervisor.current().stop();
    })());
  const onSignal = () => {
    interrupted = true;
    out('\ninterrupted: stopping the worker and the server; the batch is kept — run the same command again to resume');
    // The result long-poll would wait for the batch: exit as soon as the worker and the server are down.
    void stopAll(false).then(() => process.exit(interruptedCode() ?? EXIT.interrupted));
  };
  const unsubscribe = onInterrupt(onSignal);
  try {
    if (session.server) out(`Temporal dev server ${session.server.started ? 'started' : 'attached'} at ${session.target.address} (state ${session.server.dbFile})`);
    const native = await connectNative(session.target);
    phase('native connection');
    const http = new HttpClient();
    worker = await startWorker({
      connection: native,
      client: session.client,
      namespace: session.target.namespace,
      hostId,
      http,
      janitor: { readsDirs: [], healthCheckIntervalSec: options.healthCheckIntervalSec, autoCleanupThresholdGb: options.autoCleanupThresholdGb },
      workflowStackTraces: Boolean(values['workflow-stack-traces']),
      onPhase: phase,
    });
    phase('worker running');
    const handle = await startBatchWorkflow(session, options, hooks.plan?.length);
    phase('batch started');
    const cpu = process.cpuUsage();
    logger?.info(`start-up (since the process started): ${phases.join(', ')}; CPU so far ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s`);
    logger?.info(inflaterInUse());
    const workflowId = handle.workflowId;
    const uiLink = session.uiUrl ? webUiWorkflowUrl(session.uiUrl, session.target.namespace, workflowId) : null;
    out(`batch ${workflowId} running${uiLink ? ` — Web UI: ${uiLink}` : ''}`);
    hooks.onStarted?.({ workflowId, uiLink });
    // The plan summary comes while the batch runs (a terminal keeps it above the redrawn progress).
    const planShown: ScreenHeader = { lines: [], drawn: false };
    let planDone = false;
    if (hooks.plan) {
      void (await import('./plan.js')).planSummaryLines(hooks.plan, options, http.askedBy('plan')).then((lines) => {
        // Interrupted: its asks were cut short with the worker ("the worker is shutting down"), not an answer.
        if (interrupted) return;
        planShown.lines.push(...lines);
        planDone = true;
        if (!tty) for (const l of lines) out(l);
      });
    }
    let result: BatchResult;
    // Neither a server that cannot come back nor a worker that stopped may leave `run` waiting forever.
    const workerStopped = new Promise<never>((_, reject) => {
      const again = 'the batch is kept — run the same command again to resume';
      worker!.done.then(
        () => !stopping && reject(new EnvironmentError(`the worker stopped unexpectedly; ${again}`)),
        (err: Error) => !stopping && reject(new EnvironmentError(`the worker failed: ${err.message}; ${again}`)),
      );
    });
    const serverLost = supervisor ? supervisor.failed.catch((err: Error) => Promise.reject(new EnvironmentError(`${err.message}\nthe batch is kept in that file — run the same command again to resume`))) : null;
    try {
      result = await Promise.race([watchUntilDone(handle, out, Math.min(options.monitorIntervalSec, 10), !supervisor, problems, planShown), workerStopped, ...(serverLost ? [serverLost] : [])]);
      if (hooks.plan && !planDone) out('plan: the archives were still being asked when the batch ended; `fetchquant plan` shows the whole summary');
      else if (tty && !planShown.drawn) for (const l of planShown.lines) out(l);
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
    unsubscribe();
    await stopAll(!interrupted);
    if (logger?.path) out(`log: ${logger.path}`);
  }
}

/**
 * The batch's result, waiting through server outages: the client retries an unavailable server for ~20 s by
 * itself; a longer outage (a restart on a loaded host, a cluster's maintenance) must not end the wait.
 */
export async function resultThroughOutages(handle: WorkflowHandle, onOutage: (err: unknown) => void): Promise<BatchResult> {
  for (;;) {
    try {
      return (await handle.result()) as BatchResult;
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        // The client's error says only "Workflow execution failed": add what the history says ended the run.
        const why = await howItEnded(handle).catch(() => '');
        if (why) err.message = `${err.message}: ${why}`;
        throw err;
      }
      if (!isUnavailable(err)) throw err;
      onOutage(err);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** The closing event of the workflow's last run, in one line: failure message and type, or who terminated it and why. */
async function howItEnded(handle: WorkflowHandle): Promise<string> {
  const events = (await handle.fetchHistory()).events ?? [];
  const last = events[events.length - 1];
  if (!last) return '';
  const failed = last.workflowExecutionFailedEventAttributes;
  if (failed) {
    const chain: string[] = [];
    for (let f = failed.failure; f && chain.length < 5; f = f.cause) {
      const type = f.applicationFailureInfo?.type ?? (f.timeoutFailureInfo ? 'timeout' : f.canceledFailureInfo ? 'cancelled' : f.terminatedFailureInfo ? 'terminated' : '');
      chain.push(`${f.message || '(no message)'}${type ? ` [${type}]` : ''}${f.stackTrace ? ` at ${f.stackTrace.split('\n').slice(0, 2).join(' < ').trim()}` : ''}`);
    }
    return `failed at event ${last.eventId}: ${chain.join(' <- ')}`;
  }
  const term = last.workflowExecutionTerminatedEventAttributes;
  if (term) return `terminated at event ${last.eventId} by ${term.identity || '?'}: ${term.reason || '(no reason)'}`;
  if (last.workflowExecutionTimedOutEventAttributes) return `timed out at event ${last.eventId}`;
  return `last event ${last.eventId} is ${String(last.eventType)}`;
}

/** Lines a terminal's redrawn screen shows above the progress, and whether a redraw has shown them. */
export interface ScreenHeader {
  lines: string[];
  drawn: boolean;
}

/**
 * Progress until the batch ends. `sayOutages`: print a line when the server stops answering (not for a
 * supervised one, which says so itself). `problems`: lines (retries, failures) that a terminal's redrawn
 * screen shows under the bars, the last 10 of them; `header`: lines it shows above them (the plan summary).
 */
export async function watchUntilDone(
  handle: WorkflowHandle,
  out: (l: string) => void,
  everySec: number,
  sayOutages = true,
  problems: string[] = [],
  header: ScreenHeader = { lines: [], drawn: false },
): Promise<BatchResult> {
  const tty = Boolean(process.stdout.isTTY);
  let prev: BatchProgress | null = null;
  let prevAt = Date.now();
  let lastPlain = '';
  let outage = false;
  const result = resultThroughOutages(handle, (err) => {
    if (sayOutages && !outage) out(`the Temporal server does not answer (${(err as Error).message}); waiting for it — the batch is kept`);
    outage = true;
  });
  let settled = false;
  void result.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled) {
    try {
      const cur = await handle.query(batchProgressQuery);
      if (outage && sayOutages) out('the Temporal server answers again');
      outage = false;
      // Before discovery the batch knows no species: "0/0 samples finished" says nothing.
      if (cur.species.length === 0) throw new Error('not planned yet');
      const now = Date.now();
      const text = renderProgress(cur, rates(prev, cur, (now - prevAt) / 1000), tty);
      const recent = problems.length ? `\n\n${problems.slice(-10).join('\n')}` : '';
      const top = header.lines.length ? `${header.lines.join('\n')}\n\n` : '';
      if (tty) {
        process.stdout.write(`\x1b[2J\x1b[H${top}${text}${recent}\n`);
        if (top) header.drawn = true;
      } else if (text !== lastPlain) out(text);
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
    const one = (k: keyof typeof SA) => wf.typedSearchAttributes.get(SA[k]) ?? '?';
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
export async function startBatchWorkflow(session: Session, options: BatchOptions, species?: number): Promise<WorkflowHandleWithFirstExecutionRunId> {
  return session.client.workflow.start('batchWorkflow', {
    taskQueue: TASK_QUEUE,
    workflowId: batchWorkflowId(options.batchId!),
    args: [options],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    // replayed beside its species after a restart (workflows/options.ts)
    workflowTaskTimeout: species === undefined ? UNKNOWN_SPECIES_TASK_TIMEOUT_MS : longLivedTaskTimeoutSec(species) * 1000,
  });
}
