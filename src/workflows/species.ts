/**
 * One species: prepare its index, then a sliding window of sample workflows bounded by the batch's
 * allotment. A slot frees when the sample's reads are verified (not when quant ends), so downloads keep
 * the network busy while kallisto works. Samples are started with ABANDON and report back by signal to
 * this workflow's *id*, so the species can continue-as-new with samples in flight and lose none.
 */
import {
  ApplicationFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
  patched,
  sleep,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/contract.js';
import { rootCause } from '../failures.js';
import { sampleWorkflowId, TASK_QUEUE } from '../ids.js';
import { SA } from '../search-attributes.js';
import type { RunMeta, SampleOptions, SampleOutcome, SpeciesPlan } from '../types.js';
import { CLOSE_QUIETLY, OpenChildren, abandonedChild, cancelChildren } from './children.js';
import { Ticker } from './tick.js';
import {
  readsVerifiedSignal,
  sampleFinishedSignal,
  sampleParkedSignal,
  type ParkedRun,
  reportReceivedSignal,
  setThreadsSignal,
  speciesProgressQuery,
  speciesReportSignal,
  type SpeciesProgress,
  type SpeciesReport,
} from './messages.js';
import { bookkeepingActivityOptions } from './options.js';
import { targetClosed } from './signal.js';
import { LATEST_SAMPLE_PATHS, sampleWorkflow } from './sample.js';

export interface SpeciesOptions extends SampleOptions {
  monitorIntervalSec: number;
  maxHistoryEvents: number;
}

export interface SpeciesState {
  cursor: number | null;
  buffer: RunMeta[];
  listedRuns: number;
  /** runs holding a download slot */
  downloading: string[];
  /** runs past verification, still quantifying/deleting */
  processing: string[];
  done: number;
  skipped: number;
  failed: number;
  bytes: number;
  failures: { run: string; reason: string; failureType?: string }[];
  indexReady: boolean;
  continuedAsNew: number;
  /** parked runs (they hold no download slot; they are among `processing` until they finish) */
  parked?: ParkedRun[];
}

export interface SpeciesInput {
  batchId: string;
  batchWorkflowId: string;
  plan: SpeciesPlan;
  threads: number;
  options: SpeciesOptions;
  state?: SpeciesState;
  /**
   * The batch will signal reportReceived once it has the final report (batches since SPECIES_RECEIPTS,
   * batch.ts): the species waits for that instead of lingering LINGER_MS. Absent in older inputs.
   */
  awaitsReceipt?: boolean;
}

/** Runs fetched per listRuns call: small enough for a payload, large enough to keep a window busy. */
const PAGE = 200;

/**
 * Patch: after its final report a species waits LINGER_MS before completing. A setThreads the batch sent
 * before the report reached it would otherwise land while the species completes (a failed workflow task,
 * UnhandledCommand) or after (a failed signal in the batch): harmless, but a healthy batch should show no
 * failed event. Once the report is in, the batch sends nothing more. A species started with `awaitsReceipt`
 * waits instead for the batch's reportReceived, which comes after anything else the batch sent it.
 */
export const LINGER_AFTER_REPORT = 'species-linger-after-report';
const LINGER_MS = 2000;
/**
 * How long a species that awaits the batch's receipt waits for it at most: long enough for every worker to
 * be down a while (the batch sends it when it runs again); a batch terminated from the Web UI sends none.
 */
const RECEIPT_WAIT_MS = 10 * 60 * 1000;

export async function speciesWorkflow(input: SpeciesInput): Promise<SpeciesReport> {
  const { plan, options } = input;
  const shared = proxyActivities<Activities>({ taskQueue: TASK_QUEUE, ...bookkeepingActivityOptions(options) });
  const s: SpeciesState = input.state ?? {
    cursor: 0,
    buffer: [],
    listedRuns: 0,
    downloading: [],
    processing: [],
    done: 0,
    skipped: 0,
    failed: 0,
    bytes: 0,
    failures: [],
    indexReady: false,
    continuedAsNew: 0,
  };
  let threads = input.threads;
  let status: SpeciesProgress['status'] = s.indexReady ? 'running' : 'indexing';
  let reason: string | undefined;
  let dirty = true;
  const downloading = new Set(s.downloading);
  const processing = new Set(s.processing);
  const parked = new Map((s.parked ?? []).map((p) => [p.run, p]));

  const remaining = () => {
    const unlisted = Math.max(0, plan.totalRuns - plan.doneRuns - s.listedRuns);
    return unlisted + s.buffer.length + downloading.size;
  };
  const progress = (): SpeciesProgress => ({
    speciesId: plan.speciesId,
    name: plan.name,
    status,
    threads,
    total: plan.totalRuns,
    done: s.done,
    skipped: s.skipped,
    failed: s.failed,
    downloading: downloading.size,
    processing: processing.size,
    remaining: remaining(),
    bytes: s.bytes,
    reason,
    ...(parked.size > 0 ? { parked: [...parked.values()] } : {}),
  });
  setHandler(speciesProgressQuery, progress);
  setHandler(setThreadsSignal, (n) => {
    threads = Math.max(0, Math.floor(n));
    dirty = true;
  });
  let receiptReceived = false;
  let batchClosed = false;
  setHandler(reportReceivedSignal, () => {
    receiptReceived = true;
  });
  setHandler(readsVerifiedSignal, (run) => {
    if (downloading.delete(run)) processing.add(run);
    dirty = true;
  });
  setHandler(sampleParkedSignal, (run, p) => {
    // parked: its download slot goes to the next run; it stays among the runs this species waits for
    if (p) {
      parked.set(run, p);
      if (downloading.delete(run)) processing.add(run);
    } else parked.delete(run);
    dirty = true;
  });
  setHandler(sampleFinishedSignal, (o: SampleOutcome) => {
    parked.delete(o.run);
    const known = downloading.delete(o.run) || processing.delete(o.run);
    if (!known) return; // a duplicate or a late signal of a sample counted already
    if (o.state === 'done') s.done++;
    else if (o.state === 'skipped') s.skipped++;
    else {
      s.failed++;
      s.failures.push({ run: o.run, reason: (o.reason ?? 'unknown').slice(0, 500), failureType: o.failureType });
    }
    s.bytes += o.bytes ?? 0;
    dirty = true;
  });
  upsertSearchAttributes([
    { key: SA.BatchId, value: input.batchId },
    { key: SA.Species, value: plan.speciesId },
  ]);

  const batch = getExternalWorkflowHandle(input.batchWorkflowId);
  let lastReported = '';
  let lastReportAt = 0;
  const report = async (finished: boolean) => {
    const r: SpeciesReport = { ...progress(), failures: finished ? s.failures : [], finished };
    // parked runs only make a difference to samples that can park: older histories always have none
    const key = JSON.stringify([r.remaining, r.done, r.failed, r.skipped, r.status, finished, ...(r.parked ? [r.parked.map((p) => p.until)] : [])]);
    const now = Date.now();
    // The batch reallocates on remaining < allotment; otherwise progress only needs the monitor cadence.
    const urgent = finished || r.remaining < threads;
    if (key === lastReported || (!urgent && now - lastReportAt < options.monitorIntervalSec * 1000)) return;
    lastReported = key;
    lastReportAt = now;
    try {
      await batch.signal(speciesReportSignal, r);
    } catch (err) {
      if (!targetClosed(err, input.batchWorkflowId)) throw err;
      batchClosed = true;
    }
  };

  /** the batch's reportReceived, or its close (the final report found it closed); RECEIPT_WAIT_MS at most */
  const awaitReceipt = () => condition(() => receiptReceived || batchClosed, RECEIPT_WAIT_MS);
  const children = () => [...downloading, ...processing];
  const openSamples = new OpenChildren();
  try {
    if (!s.indexReady) {
      // Index before any download: a species without an index fails fast and downloads nothing.
      try {
        await shared.ensureIndex.executeWithOptions(
          { ...bookkeepingActivityOptions(options), taskQueue: TASK_QUEUE, startToCloseTimeout: (options.processTimeoutSec + 60) * 1000, summary: `index ${plan.indexPath}` },
          [{ indexPath: plan.indexPath, fastaPaths: plan.fastaPaths, timeoutSec: options.processTimeoutSec }],
        );
        s.indexReady = true;
        status = 'running';
      } catch (err) {
        if (isCancellation(err)) throw err;
        status = 'failed';
        reason = `index unavailable: ${(rootCause(err) as Error).message}`;
        await report(true);
        if (input.awaitsReceipt) await awaitReceipt();
        return { ...progress(), failures: s.failures, finished: true };
      }
    }

    const ticker = new Ticker(Math.round(options.monitorIntervalSec * 1000));
    for (;;) {
      dirty = false;
      const toStart: RunMeta[] = [];
      while (downloading.size + toStart.length < threads) {
        if (s.buffer.length === 0 && s.cursor !== null) {
          const page = await shared.listRuns({ runListPath: plan.runListPath, quantDir: plan.quantDir, cursor: s.cursor, limit: PAGE });
          s.skipped += page.skipped.length;
          s.listedRuns += page.runs.length;
          s.buffer.push(...page.runs);
          s.cursor = page.nextCursor;
          continue;
        }
        const next = s.buffer.shift();
        if (!next) break;
        toStart.push(next);
      }
      await Promise.all(toStart.map((r) => startSample(input, r, downloading, openSamples)));

      if (s.cursor === null && s.buffer.length === 0 && downloading.size === 0 && processing.size === 0) {
        // cancelled in the task that sends the final report, so it cannot fire as the species completes
        if (patched(CLOSE_QUIETLY)) ticker.stop();
        break;
      }
      await report(false);

      const info = workflowInfo();
      // Not between ticks (CONTINUE_BETWEEN_TICKS is the batch's): no user update lands here, and a busy
      // species grew by ~150 events waiting for the extra timer (tick.ts).
      if (info.historyLength > options.maxHistoryEvents || info.continueAsNewSuggested) {
        await condition(allHandlersFinished);
        s.downloading = [...downloading];
        s.processing = [...processing];
        s.parked = [...parked.values()];
        s.continuedAsNew++;
        return await continueAsNew<typeof speciesWorkflow>({ ...input, threads, state: s });
      }
      await ticker.wait(() => dirty);
    }
    status = s.failed > 0 && s.done === 0 && s.skipped === 0 ? 'failed' : 'done';
    await report(true);
    if (patched(LINGER_AFTER_REPORT)) {
      if (input.awaitsReceipt) await awaitReceipt();
      else await sleep(LINGER_MS);
    }
    // every sample has said it finished; wait for their closes too (children.ts)
    if (patched(CLOSE_QUIETLY)) await openSamples.allClosed();
    return { ...progress(), failures: s.failures, finished: true };
  } catch (err) {
    if (isCancellation(err)) {
      // ABANDONed children do not follow us: cancel each one so it cleans up its files.
      await cancelChildren(children().map((run) => sampleWorkflowId(input.batchId, plan.speciesId, run)));
    }
    throw err;
  }
}

async function startSample(input: SpeciesInput, run: RunMeta, downloading: Set<string>, open: OpenChildren): Promise<void> {
  const { plan, options } = input;
  const workflowId = sampleWorkflowId(input.batchId, plan.speciesId, run.run);
  downloading.add(run.run);
  try {
    const child = await startChild(sampleWorkflow, {
      ...abandonedChild(workflowId, `${plan.name} ${run.run}`),
      args: [
        {
          batchId: input.batchId,
          speciesId: plan.speciesId,
          speciesName: plan.name,
          speciesWorkflowId: workflowInfo().workflowId,
          run,
          readsDir: plan.readsDir,
          quantDir: plan.quantDir,
          indexPath: plan.indexPath,
          fastaPaths: plan.fastaPaths,
          fragmentLength: plan.fragmentLength,
          fragmentSd: plan.fragmentSd,
          options: pickSampleOptions(options),
          // plans of older releases have none: their samples' input stays as it was
          ...(plan.amalgkit ? { amalgkit: plan.amalgkit } : {}),
          // data only (a child's input is not part of the species' determinism): samples of this release
          paths: LATEST_SAMPLE_PATHS,
        },
      ],
    });
    open.track(child);
  } catch (err) {
    // Already running (e.g. this species was restarted): it will report to this workflow id all the same.
    if (err instanceof WorkflowExecutionAlreadyStartedError) return;
    downloading.delete(run.run);
    throw ApplicationFailure.fromError(err);
  }
}

function pickSampleOptions(o: SpeciesOptions): SampleOptions {
  return {
    maxRetries: o.maxRetries,
    processTimeoutSec: o.processTimeoutSec,
    minFreeGb: o.minFreeGb,
    kallistoThreads: o.kallistoThreads,
    quantThreads: o.quantThreads,
    sources: o.sources,
    enaPortalUrl: o.enaPortalUrl,
    enaFileScheme: o.enaFileScheme,
    sraLocateUrl: o.sraLocateUrl,
    hostLostTimeoutSec: o.hostLostTimeoutSec,
    diskWaitSec: o.diskWaitSec,
    retryInitialSec: o.retryInitialSec,
    stallTimeoutSec: o.stallTimeoutSec,
    // options of batches started before parking existed have none: their samples fail as before
    ...(o.parkWaitSec !== undefined ? { parkWaitSec: o.parkWaitSec, parkDeadlineSec: o.parkDeadlineSec } : {}),
  };
}
