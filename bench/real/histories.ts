/**
 * What a batch's Temporal histories say about time: per sample the stage spans and the activity times
 * (src/report/audit.ts parses them), per species the signals it received (setThreads, readsVerified).
 * Temporal writes a retried activity's Started event late but stamps it with the real start time, so
 * "quant started" is when a worker picked the task up.
 */
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { speciesWorkflowId } from '../../src/ids.js';
import { ts, type RunAudit } from '../../src/report/audit.js';
import { auditListed } from '../../src/cli/history.js';

type Event = temporal.api.history.v1.IHistoryEvent;

const ms = (iso: string | undefined): number | undefined => (iso ? Date.parse(iso) : undefined);

export interface SampleTimes {
  run: string;
  speciesId: string;
  workflowId: string;
  status: string;
  start: number;
  close?: number;
  /** executions with this workflow id in the batch (must be 1) */
  executions: number;
  /** [start, end] of every `downloading` stage span */
  downloading: [number, number][];
  /** sample start -> reads verified: the time it held a download slot */
  slotHeld?: [number, number];
  verifiedAt?: number;
  /** quantified inside the step that verified its reads (CHAIN_QUANT_PATHS): no quant start in the history */
  quantInStep?: boolean;
  quantScheduledAt?: number;
  quantStartedAt?: number;
  quantEndedAt?: number;
  deletedAt?: number;
  /** attempt number of the last quant / download attempt (1 = no retry) */
  quantAttempts: number;
  downloadAttempts: number;
  /** download activities that ended by timing out (heartbeat or start-to-close) */
  downloadTimeouts: number;
  workflowTasks: WorkflowTaskTimes;
  audit: RunAudit;
}

/** Workflow-task latencies of one history: how long decisions waited for, and spent in, a worker. */
export interface WorkflowTaskTimes {
  /** scheduled -> started, ms, per task */
  waitMs: number[];
  /** started -> completed, ms, per task */
  runMs: number[];
  timeouts: number;
  failures: number;
  /** each timeout: when, and its type (SCHEDULE_TO_START = a sticky queue not polled; START_TO_CLOSE = a worker too slow or gone) */
  timeoutList: { at: number; type: string }[];
}

const TIMEOUT_TYPES: Record<number, string> = { 1: 'START_TO_CLOSE', 2: 'SCHEDULE_TO_START', 3: 'SCHEDULE_TO_CLOSE', 4: 'HEARTBEAT' };

export function emptyTaskTimes(): WorkflowTaskTimes {
  return { waitMs: [], runMs: [], timeouts: 0, failures: 0, timeoutList: [] };
}

export function workflowTaskTimes(events: Event[]): WorkflowTaskTimes {
  const out = emptyTaskTimes();
  const at = new Map<string, number>();
  for (const e of events) {
    const t = Date.parse(ts(e.eventTime)!);
    if (e.workflowTaskScheduledEventAttributes) at.set(String(e.eventId), t);
    else if (e.workflowTaskStartedEventAttributes) {
      const s = at.get(String(e.workflowTaskStartedEventAttributes.scheduledEventId));
      if (s !== undefined) out.waitMs.push(t - s);
      at.set(String(e.eventId), t);
    } else if (e.workflowTaskCompletedEventAttributes) {
      const s = at.get(String(e.workflowTaskCompletedEventAttributes.startedEventId));
      if (s !== undefined) out.runMs.push(t - s);
    } else if (e.workflowTaskTimedOutEventAttributes) {
      out.timeouts++;
      const type = e.workflowTaskTimedOutEventAttributes.timeoutType;
      out.timeoutList.push({ at: t, type: TIMEOUT_TYPES[Number(type)] ?? String(type) });
    }
    else if (e.workflowTaskFailedEventAttributes) out.failures++;
  }
  return out;
}

export interface SignalAt {
  name: string;
  at: number;
  args: unknown[];
}

export interface BatchTimes {
  start: number;
  close?: number;
  samples: SampleTimes[];
  /** speciesId -> signals received, over every run of its workflow (continue-as-new) */
  speciesSignals: Map<string, SignalAt[]>;
  speciesClose: Map<string, number>;
  /** species and batch workflows' tasks together */
  parentWorkflowTasks: WorkflowTaskTimes;
}

async function historyOf(client: Client, workflowId: string, runId: string): Promise<Event[]> {
  const h = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return h.events ?? [];
}

/** When a sample's reads were verified, quantified and deleted, from its audit (src/report/audit.ts). */
export function stepTimes(audit: RunAudit): Pick<SampleTimes, 'verifiedAt' | 'quantInStep' | 'quantScheduledAt' | 'quantStartedAt' | 'quantEndedAt' | 'deletedAt' | 'quantAttempts' | 'downloadAttempts' | 'downloadTimeouts'> {
  const last = (name: string) => [...audit.activities].reverse().find((a) => a.activity === name);
  // Since CHAIN_QUANT_PATHS the step that verified the reads quantifies and publishes them itself: the audit
  // lists that as `quant (in download)` / `quant (in convertSra)`, from the moment the step says it verified
  // them to the step's end. A quant that failed there runs as a step of its own.
  const ownQuant = last('quant');
  const inStep = ownQuant ? undefined : [...audit.activities].reverse().find((a) => a.activity.startsWith('quant (in ') && a.outcome === 'completed');
  const quant = ownQuant ?? inStep;
  // The reads are verified when the last step before quant that checks them completes: verifyReads in
  // older workflows and whenever the in-step check failed; since VERIFIED_IN_STEP, the download (ENA) or
  // the conversion (SRA) that checked what it wrote; in the step that quantifies them, when it says so.
  const quantAt = ms(quant?.scheduledAt) ?? Number.POSITIVE_INFINITY;
  const verify = inStep
    ? undefined
    : [...audit.activities]
        .reverse()
        .find((a) => ['verifyReads', 'convertSra', 'download'].includes(a.activity) && a.outcome === 'completed' && (ms(a.endedAt) ?? Infinity) <= quantAt);
  // `deleteReads` in the oldest workflows, then `publish` (finalize + delete); since the quant step publishes
  // (and since it runs in the verifying step), the quant's end.
  const del = [...audit.activities].reverse().find((a) => (a.activity === 'publish' || a.activity === 'deleteReads') && a.outcome === 'completed') ?? (quant?.outcome === 'completed' ? quant : undefined);
  const downloads = audit.activities.filter((a) => a.activity === 'download');
  return {
    verifiedAt: inStep ? ms(inStep.scheduledAt) : ms(verify?.endedAt),
    // in the step: no round trip, and when its quant slot was granted is not in the history
    quantInStep: Boolean(inStep),
    quantScheduledAt: inStep ? undefined : ms(quant?.scheduledAt),
    quantStartedAt: inStep ? undefined : ms(quant?.startedAt),
    quantEndedAt: ms(quant?.endedAt),
    deletedAt: ms(del?.endedAt),
    quantAttempts: quant?.attempt ?? 0,
    downloadAttempts: downloads.reduce((n, a) => Math.max(n, a.attempt), 0),
    downloadTimeouts: downloads.filter((a) => a.outcome === 'timed out').length,
  };
}

export async function readBatchHistories(client: Client, batchId: string, batchWorkflowId: string, speciesIds: string[]): Promise<BatchTimes> {
  // Every run of the batch id (it may continue-as-new): the first start, the last close.
  const batchRuns = [];
  for await (const wf of client.workflow.list({ query: `WorkflowId = '${batchWorkflowId}'` })) batchRuns.push(wf);
  const batchStart = Math.min(...batchRuns.map((w) => w.startTime.getTime()));
  const batchClose = batchRuns.every((w) => w.closeTime) ? Math.max(...batchRuns.map((w) => w.closeTime!.getTime())) : undefined;
  const samples: SampleTimes[] = [];
  const seen = new Map<string, number>();
  const metas = [];
  for await (const wf of client.workflow.list({ query: `BatchId = '${batchId}' AND WorkflowType = 'sampleWorkflow'` })) {
    metas.push(wf);
    seen.set(wf.workflowId, (seen.get(wf.workflowId) ?? 0) + 1);
  }
  // A few at a time: the dev server shares the 2 cores with everything else.
  for (let i = 0; i < metas.length; i += 8) {
    await Promise.all(
      metas.slice(i, i + 8).map(async (wf) => {
        const events = await historyOf(client, wf.workflowId, wf.runId);
        const audit = auditListed(wf, events);
        const steps = stepTimes(audit);
        const start = wf.startTime.getTime();
        const parts = wf.workflowId.split('/');
        samples.push({
          run: parts[parts.length - 1]!,
          speciesId: parts[parts.length - 2]!,
          workflowId: wf.workflowId,
          status: wf.status.name,
          start,
          close: wf.closeTime?.getTime(),
          executions: seen.get(wf.workflowId) ?? 1,
          downloading: audit.stages.filter((s) => s.stage === 'downloading').map((s) => [ms(s.start)!, ms(s.end) ?? ms(s.start)!]),
          slotHeld: steps.verifiedAt ? [start, steps.verifiedAt] : undefined,
          ...steps,
          workflowTasks: workflowTaskTimes(events),
          audit,
        });
      }),
    );
  }

  const parentWorkflowTasks = emptyTaskTimes();
  const addTasks = (w: WorkflowTaskTimes) => {
    parentWorkflowTasks.waitMs.push(...w.waitMs);
    parentWorkflowTasks.runMs.push(...w.runMs);
    parentWorkflowTasks.timeouts += w.timeouts;
    parentWorkflowTasks.failures += w.failures;
    parentWorkflowTasks.timeoutList.push(...w.timeoutList);
  };
  for (const wf of batchRuns) addTasks(workflowTaskTimes(await historyOf(client, wf.workflowId, wf.runId)));
  const { speciesSignals, speciesClose } = await readSpeciesSignals(client, batchId, speciesIds, addTasks);
  return { start: batchStart, close: batchClose, samples, speciesSignals, speciesClose, parentWorkflowTasks };
}

/**
 * Signals each species received, over every run of its workflow (continue-as-new), when it completed, and
 * when its last sample started (after that, every verified download frees a slot for good).
 */
export async function readSpeciesSignals(
  client: Client,
  batchId: string,
  speciesIds: string[],
  addTasks: (w: WorkflowTaskTimes) => void = () => undefined,
): Promise<{ speciesSignals: Map<string, SignalAt[]>; speciesClose: Map<string, number>; lastChildStarted: Map<string, number> }> {
  const speciesSignals = new Map<string, SignalAt[]>();
  const speciesClose = new Map<string, number>();
  const lastChildStarted = new Map<string, number>();
  for (const sp of speciesIds) {
    const id = speciesWorkflowId(batchId, sp);
    const signals: SignalAt[] = [];
    for await (const wf of client.workflow.list({ query: `WorkflowId = '${id}'` })) {
      const events = await historyOf(client, wf.workflowId, wf.runId);
      addTasks(workflowTaskTimes(events));
      for (const e of events) {
        if (e.childWorkflowExecutionStartedEventAttributes) lastChildStarted.set(sp, Math.max(lastChildStarted.get(sp) ?? 0, Date.parse(ts(e.eventTime)!)));
        const s = e.workflowExecutionSignaledEventAttributes;
        if (!s) continue;
        signals.push({ name: s.signalName ?? '?', at: Date.parse(ts(e.eventTime)!), args: (s.input?.payloads ?? []).map((p) => JSON.parse(Buffer.from(p.data ?? []).toString() || 'null')) });
      }
      if (wf.closeTime && wf.status.name === 'COMPLETED') speciesClose.set(sp, wf.closeTime.getTime());
    }
    speciesSignals.set(sp, signals.sort((a, b) => a.at - b.at));
  }
  return { speciesSignals, speciesClose, lastChildStarted };
}
