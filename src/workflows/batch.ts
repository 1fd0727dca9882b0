/**
 * The batch: validate options -> discover species -> preflight the disk -> start species as slots allow
 * -> move slots to where runs wait, the moment a species reports (event-driven), with a periodic
 * reconciliation sweep as a safety net. Species run ABANDONed and report by signal to this id, so the
 * batch itself may continue-as-new on a multi-day run.
 */
import {
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
  makeContinueAsNewFunc,
  patched,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/contract.js';
import type { BatchOptions } from '../config/schema.js';
import { FailureType } from '../failures.js';
import { batchIdFromWorkflowId, speciesWorkflowId, TASK_QUEUE } from '../ids.js';
import { SA } from '../search-attributes.js';
import type { SpeciesPlan } from '../types.js';
import { CLOSE_QUIETLY, OpenChildren, abandonedChild, cancelChildren } from './children.js';
import {
  batchProgressQuery,
  pauseSignal,
  resumeSignal,
  setThreadsSignal,
  reportReceivedSignal,
  setTotalThreadsUpdate,
  speciesReportSignal,
  type BatchProgress,
  type SpeciesProgress,
  type SpeciesReport,
} from './messages.js';
import { bookkeepingActivityOptions, longLivedTaskTimeoutSec } from './options.js';
import { targetClosed } from './signal.js';
import { Ticker } from './tick.js';
import { speciesWorkflow, type SpeciesOptions } from './species.js';

/** Patch: a reallocation requested while one is in flight waits for it, then runs (it used to return at once). */
export const SERIALIZE_REALLOCATE = 'serialize-reallocate';
/** Patch: no setThreads to a species with nothing left to download (it may have closed: a failed signal). */
export const SPARE_DRAINED_SPECIES = 'spare-drained-species';
/**
 * Patch: the sweep takes a closed species' result only when it saw it closed a sweep earlier too. A species
 * signals its final report and then completes; the completion is visible at once, the signal is delivered a
 * moment later. Taken at once, the batch could complete under the arriving report (UnhandledCommand).
 */
export const RECONCILE_ON_SECOND_SIGHT = 'reconcile-on-second-sight';
/**
 * Patch: the loop is the one owner of reallocation. setTotalThreads records the new total, wakes the loop
 * and answers with the allocation the loop then makes; it used to allocate itself, overlapping the loop.
 */
export const LOOP_REALLOCATES = 'loop-reallocates';
/**
 * Patch: maxHistoryEvents defaults to LONG_LIVED_MAX_EVENTS (500; it was 8,000) for a batch whose input does
 * not name it (workflows/options.ts: a long history is a long replay).
 */
export const SHORT_HISTORIES = 'short-histories';
/**
 * Patch: the allocation (pure, src/allocate.ts) runs as a local activity: its result is still recorded (a
 * marker), so a later release may change the algorithm, but a reallocation costs no activity task and no
 * second workflow task. B5 (12 samples, one species): 16 of the batch's 34 workflow tasks were allocate's.
 */
export const ALLOCATE_LOCALLY = 'allocate-locally';
/**
 * Patch: species are started with `awaitsReceipt`, and the batch signals reportReceived once it has a
 * species' final report (after any setThreads it sent it); the species closes then, instead of 2 s after
 * its report. With CLOSE_QUIETLY (children.ts) the batch waits for that close: a handshake of a few workflow
 * tasks rather than the species' 2-s linger at the end of every batch.
 */
export const SPECIES_RECEIPTS = 'species-receipts';

interface SpeciesEntry {
  plan: SpeciesPlan;
  started: boolean;
  threads: number;
  report: SpeciesReport;
  /** started by a release that tells it its final report was received (reportReceived); absent in older states */
  awaitsReceipt?: boolean;
  /** reportReceived sent */
  receiptSent?: boolean;
}

export interface BatchState {
  batchId: string;
  options: BatchOptions;
  species: SpeciesEntry[];
  paused: boolean;
  startedAt: string;
  notes: string[];
}

export interface BatchResult {
  batchId: string;
  species: Omit<SpeciesReport, 'failures'>[];
  failures: { species: string; run: string; reason: string; failureType?: string }[];
  totals: { total: number; done: number; skipped: number; failed: number };
  notes: string[];
}

function initialReport(plan: SpeciesPlan): SpeciesReport {
  const remaining = plan.totalRuns - plan.doneRuns;
  return {
    speciesId: plan.speciesId,
    name: plan.name,
    status: remaining > 0 ? 'pending' : 'done',
    threads: 0,
    total: plan.totalRuns,
    done: 0,
    skipped: remaining > 0 ? 0 : plan.doneRuns,
    failed: 0,
    downloading: 0,
    processing: 0,
    remaining,
    bytes: 0,
    failures: [],
    finished: remaining === 0,
  };
}

export async function batchWorkflow(input?: Partial<BatchOptions>, carried?: BatchState): Promise<BatchResult> {
  let state: BatchState;
  if (carried) {
    state = carried;
  } else {
    // The schema (with zod) is imported here, by the one run that validates input, not at the top: every
    // module imported at the top is evaluated again for each workflow the worker creates, samples too, and
    // this one was ~85 % of that (docs/architecture.md §4). Eager: no chunk to load, only a later evaluation.
    const { formatProblem, resolveBatchOptions } = await import(/* webpackMode: "eager" */ '../config/schema.js');
    const { options, problems } = resolveBatchOptions(input ?? {}, 'batch input');
    if (problems.length) {
      throw ApplicationFailure.create({ type: FailureType.InvalidInput, nonRetryable: true, message: problems.map(formatProblem).join('\n'), details: [problems] });
    }
    // A batch started by an older release without the option took its default then: keep it on replay.
    if (input?.maxHistoryEvents === undefined && !patched(SHORT_HISTORIES)) options.maxHistoryEvents = 8000;
    state = {
      batchId: options.batchId ?? batchIdFromWorkflowId(workflowInfo().workflowId),
      options,
      species: [],
      paused: false,
      startedAt: new Date().toISOString(),
      notes: [],
    };
  }
  const o = state.options;
  const shared = proxyActivities<Activities>({ taskQueue: TASK_QUEUE, ...bookkeepingActivityOptions(o) });
  const local = proxyLocalActivities<Activities>({ startToCloseTimeout: '30 seconds' });
  let dirty = true;
  let lastAllocation: Record<string, number> = {};
  /** setTotalThreads asks (LOOP_REALLOCATES): asked counts the asks, served the asks an allocation has answered */
  let reallocationsAsked = 0;
  let reallocationsServed = 0;

  setHandler(batchProgressQuery, (): BatchProgress => ({
    batchId: state.batchId,
    paused: state.paused,
    totalThreads: o.totalThreads,
    allocation: lastAllocation,
    species: state.species.map((e) => stripFailures(e.report)),
    startedAt: state.startedAt,
    updatedAt: new Date().toISOString(),
  }));
  setHandler(speciesReportSignal, (r) => {
    const e = state.species.find((x) => x.plan.speciesId === r.speciesId);
    if (!e || e.report.finished) return;
    e.report = r;
    dirty = true;
  });
  setHandler(pauseSignal, () => {
    state.paused = true;
    dirty = true;
  });
  setHandler(resumeSignal, () => {
    state.paused = false;
    dirty = true;
  });
  setHandler(
    setTotalThreadsUpdate,
    async (n) => {
      o.totalThreads = n;
      dirty = true;
      // Before LOOP_REALLOCATES the update allocated itself, racing the loop (see SERIALIZE_REALLOCATE).
      if (!patched(LOOP_REALLOCATES)) {
        await reallocate();
        return lastAllocation;
      }
      // The loop owns reallocation: ask it, and answer with the first allocation that began after the ask.
      const ticket = ++reallocationsAsked;
      await condition(() => reallocationsServed >= ticket);
      return lastAllocation;
    },
    {
      validator: (n) => {
        if (!Number.isInteger(n) || n < 1) throw new Error(`totalThreads must be a whole number >= 1, got ${JSON.stringify(n)}`);
      },
    },
  );
  upsertSearchAttributes([{ key: SA.BatchId, value: state.batchId }]);

  const speciesOptions: SpeciesOptions = { ...o };
  let reallocating = false;
  async function reallocate(resendAll = false): Promise<void> {
    if (reallocating) {
      // The setTotalThreads update and the loop can overlap. Returning at once gave the update a stale
      // allocation, and left the loop spinning on `dirty` without yielding (a signal set it while the
      // update's allocation was in flight) until the workflow thread died. Wait, then allocate anew.
      if (!patched(SERIALIZE_REALLOCATE)) return;
      while (reallocating) await condition(() => !reallocating);
    }
    reallocating = true;
    const serving = reallocationsAsked;
    try {
      dirty = false;
      const open = state.species.filter((e) => !e.report.finished && e.report.status !== 'failed');
      const ask = {
        totalThreads: state.paused ? 0 : o.totalThreads,
        species: open.map((e) => ({ speciesId: e.plan.speciesId, remaining: e.report.remaining, current: e.threads })),
      };
      const alloc = patched(ALLOCATE_LOCALLY) ? await local.allocate(ask) : await shared.allocate(ask);
      lastAllocation = alloc;
      reallocationsServed = serving;
      await Promise.all(
        open.map(async (e) => {
          const n = alloc[e.plan.speciesId] ?? 0;
          if (!e.started) {
            if (n > 0) await startSpecies(e, n);
            return;
          }
          if (n !== e.threads || resendAll) {
            e.threads = n;
            e.report.threads = n;
            // Nothing left to download: the species is finishing, an allotment means nothing to it, and the
            // signal could find it closed ("Signal External Workflow Execution Failed" in a healthy batch).
            if (e.report.remaining === 0 && patched(SPARE_DRAINED_SPECIES)) return;
            const id = speciesWorkflowId(state.batchId, e.plan.speciesId);
            try {
              await getExternalWorkflowHandle(id).signal(setThreadsSignal, n);
            } catch (err) {
              if (!targetClosed(err, id)) throw err;
            }
          }
        }),
      );
    } finally {
      reallocating = false;
    }
  }
  const openSpecies = new OpenChildren();
  async function startSpecies(e: SpeciesEntry, threads: number): Promise<void> {
    e.started = true;
    e.threads = threads;
    e.report = { ...e.report, status: 'indexing', threads };
    if (patched(SPECIES_RECEIPTS)) e.awaitsReceipt = true;
    try {
      const child = await startChild(speciesWorkflow, {
        ...abandonedChild(speciesWorkflowId(state.batchId, e.plan.speciesId), `${e.plan.name}: ${e.plan.totalRuns} runs`),
        // long enough for a restarted worker to replay every long-lived workflow of the batch at once
        // (options.ts); its runs after continue-as-new inherit it (the server copies it)
        workflowTaskTimeout: longLivedTaskTimeoutSec(state.species.length) * 1000,
        args: [{ batchId: state.batchId, batchWorkflowId: workflowInfo().workflowId, plan: e.plan, threads, options: speciesOptions, ...(e.awaitsReceipt ? { awaitsReceipt: true } : {}) }],
      });
      openSpecies.track(child);
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      // Running from an earlier attempt of this batch: tell it its allotment.
      const id = speciesWorkflowId(state.batchId, e.plan.speciesId);
      try {
        await getExternalWorkflowHandle(id).signal(setThreadsSignal, threads);
      } catch (err2) {
        if (!targetClosed(err2, id)) throw err2;
      }
    }
  }

  /**
   * A species that closed without its final report (terminated or failed from the Web UI, say) would
   * otherwise be waited for forever: take its result if it completed, else mark it failed.
   */
  const seenClosed = new Set<string>();
  async function reconcileClosedSpecies(): Promise<void> {
    const open = state.species.filter((e) => e.started && !e.report.finished && e.report.status !== 'failed');
    if (open.length === 0) return;
    const ids = open.map((e) => speciesWorkflowId(state.batchId, e.plan.speciesId));
    const statuses = await shared.describeWorkflows({ workflowIds: ids });
    open.forEach((e, i) => {
      const st = statuses[ids[i]!];
      if (!st || st.status === 'RUNNING' || st.status === 'CONTINUED_AS_NEW') return;
      // its final report may still be on its way: give it one sweep interval
      if (!seenClosed.has(ids[i]!) && patched(RECONCILE_ON_SECOND_SIGHT)) {
        seenClosed.add(ids[i]!);
        return;
      }
      if (st.status === 'COMPLETED' && st.result) e.report = st.result as SpeciesReport;
      else e.report = { ...e.report, status: 'failed', finished: true, reason: `species workflow ended ${st.status} without reporting` };
      e.receiptSent = true; // closed: nothing to tell it
      dirty = true;
    });
  }

  /**
   * Tell each species whose final report is in that it may close. Called after reallocate, so any setThreads
   * sent to it has been delivered first; it sends nothing more to a finished species.
   */
  const receiptDue = (e: SpeciesEntry) => e.awaitsReceipt && !e.receiptSent && e.report.finished;
  async function sendReceipts(): Promise<void> {
    const due = state.species.filter(receiptDue);
    await Promise.all(
      due.map(async (e) => {
        e.receiptSent = true;
        const id = speciesWorkflowId(state.batchId, e.plan.speciesId);
        try {
          await getExternalWorkflowHandle(id).signal(reportReceivedSignal);
        } catch (err) {
          if (!targetClosed(err, id)) throw err;
        }
      }),
    );
  }

  try {
    if (!carried) {
      const plan = await shared.discoverBatch({ options: o, batchId: state.batchId });
      state.notes = plan.notes;
      await shared.preflightDisk({ dir: plan.outputDir, minFreeGb: o.minFreeGb });
      state.species = plan.species.map((p) => ({ plan: p, started: false, threads: 0, report: initialReport(p) }));
      log.info('batch planned', { batchId: state.batchId, species: state.species.length });
    }

    const ticker = new Ticker(Math.round(Math.min(o.checkIntervalSec, o.monitorIntervalSec) * 1000));
    let lastSweep = Date.now();
    let lastPublish = 0;
    for (;;) {
      const now = Date.now();
      if (dirty || now - lastSweep >= o.checkIntervalSec * 1000) {
        // Reconciliation sweep (not dirty): re-send every allotment so a lost or raced signal heals itself.
        const sweep = !dirty;
        lastSweep = now;
        if (sweep && patched('sweep-checks-species-alive')) await reconcileClosedSpecies();
        await reallocate(sweep);
      }
      // Only when one is due: an await with nothing to send would still move later commands by a tick. Again
      // while one is: a final report can come in while receipts are on their way, and none can from here to
      // the end-of-loop check below (no await there waits on the server).
      while (state.species.some(receiptDue)) await sendReceipts();
      if (now - lastPublish >= o.monitorIntervalSec * 1000) {
        lastPublish = now;
        await upsertMemo({ progress: summarize(state) });
      }
      // An ask that came in since this iteration's allocation is answered before the batch ends or continues as new.
      if (reallocationsAsked > reallocationsServed) continue;
      if (state.species.every((e) => e.report.finished || e.report.status === 'failed')) {
        if (patched(CLOSE_QUIETLY)) ticker.stop();
        break;
      }
      const due = workflowInfo().historyLength > o.maxHistoryEvents || workflowInfo().continueAsNewSuggested;
      if (due) {
        // with no tick pending (tick.ts): the pending one is cancelled, and the loop turns again first
        const clearing = ticker.clearForContinue();
        if (clearing) {
          await clearing;
          continue;
        }
        await condition(allHandlersFinished);
        // a batch started without it (Temporal CLI) gets the long-lived task timeout from its next run on
        const next = makeContinueAsNewFunc<typeof batchWorkflow>({ workflowTaskTimeout: Math.max(workflowInfo().taskTimeoutMs, longLivedTaskTimeoutSec(state.species.length) * 1000) });
        return await next(input, state);
      }
      await ticker.wait(() => dirty);
    }
    await condition(allHandlersFinished);
    // every species has reported and has its receipt; each closes once its samples have: wait for the closes
    if (patched(CLOSE_QUIETLY)) await openSpecies.allClosed();
    const result = buildResult(state);
    await upsertMemo({ progress: summarize(state) });
    return result;
  } catch (err) {
    if (isCancellation(err)) {
      await cancelChildren(state.species.filter((e) => e.started && !e.report.finished).map((e) => speciesWorkflowId(state.batchId, e.plan.speciesId)));
    }
    throw err;
  }
}

function stripFailures(r: SpeciesReport): SpeciesProgress {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { failures, finished, ...rest } = r;
  return rest;
}

function summarize(state: BatchState) {
  const t = { species: state.species.length, total: 0, done: 0, skipped: 0, failed: 0, paused: state.paused, totalThreads: state.options.totalThreads };
  for (const e of state.species) {
    t.total += e.report.total;
    t.done += e.report.done;
    t.skipped += e.report.skipped;
    t.failed += e.report.failed;
  }
  return t;
}

function buildResult(state: BatchState): BatchResult {
  const failures: BatchResult['failures'] = [];
  for (const e of state.species) {
    for (const f of e.report.failures) failures.push({ species: e.plan.speciesId, ...f });
    if (e.report.status === 'failed' && e.report.reason) {
      const type = e.report.reason.startsWith('index') ? FailureType.IndexError : 'SpeciesEnded';
      failures.push({ species: e.plan.speciesId, run: '*', reason: e.report.reason, failureType: type });
    }
  }
  const s = summarize(state);
  return {
    batchId: state.batchId,
    species: state.species.map((e) => {
      const { failures: _f, ...rest } = e.report;
      return rest;
    }),
    failures,
    totals: { total: s.total, done: s.done, skipped: s.skipped, failed: s.failed },
    notes: state.notes,
  };
}
