/** B1 figures of a fetchquant run, from its process timings, disk polls and Temporal histories. */
import type { FetchquantRun } from './fetchquant.js';
import { activitySecs, dist, fetchquantDownloadSpans, linkFigures, maxQuantBacklog, round, utilisation } from './figures.js';
import type { BatchTimes } from './histories.js';
import type { Anomaly, RealFigures } from './types.js';

type FetchquantB1 = Omit<RealFigures['b1']['fetchquant'], 'makespanOverLowerBound' | 'makespanOverBaseline'>;

export function fetchquantB1(run: FetchquantRun, t: BatchTimes, threads: number, served: number, needed: number, cap: number): FetchquantB1 {
  const spans = fetchquantDownloadSpans(t.samples);
  const u = utilisation(spans, threads);
  const link = linkFigures(spans, run.startedAt, run.endedAt, needed, cap);
  const held = utilisation(t.samples.filter((s) => s.slotHeld).map((s) => s.slotHeld!), threads);
  const backlog = maxQuantBacklog(t.samples);
  const sec = (name: string) => dist(activitySecs(t.samples, name).map((x) => round(x)!));
  const anomalies: Anomaly[] = t.samples.flatMap((s) =>
    s.audit.activities
      .filter((a) => a.outcome !== 'completed' || a.attempt > 1)
      .map((a) => ({
        run: s.run, activity: a.activity, outcome: a.outcome, attempt: a.attempt, error: a.error,
        sec: a.startedAt && a.endedAt ? round((Date.parse(a.endedAt) - Date.parse(a.startedAt)) / 1000)! : undefined,
      })),
  );
  const tasks = [...t.samples.map((x) => x.workflowTasks), t.parentWorkflowTasks];
  return {
    ...u,
    ...link,
    anomalies,
    workflowTaskWaitMs: dist(tasks.flatMap((x) => x.waitMs)),
    workflowTaskRunMs: dist(tasks.flatMap((x) => x.runMs)),
    workflowTaskTimeouts: tasks.reduce((n, x) => n + x.timeouts, 0),
    workflowTaskTimeoutList: [
      ...t.samples.flatMap((x) => x.workflowTasks.timeoutList.map((o) => ({ ...o, workflow: 'sample' as const }))),
      ...t.parentWorkflowTasks.timeoutList.map((o) => ({ ...o, workflow: 'species/batch' as const })),
    ].map((o) => ({ atSec: round((o.at - t.start) / 1000, 1)!, type: o.type, workflow: o.workflow })).sort((a, b) => a.atSec - b.atSec),
    tailSec: tail(t, spans, run.endedAt),
    makespanSec: round(run.makespanSec)!,
    startupSec: round(run.startupSec),
    exitCode: run.exitCode,
    samplesDone: t.samples.filter((s) => s.audit.stage === 'done').length,
    slotHeldUtilisation: held.slotUtilisation,
    fileBytesServed: served,
    peakReadsBytes: run.disk.peakBytes,
    peakReadsBoundBytes: (threads + backlog) * run.disk.largestRunBytes,
    maxQuantBacklog: backlog,
    largestRunOnDiskBytes: run.disk.largestRunBytes,
    quantActivitySec: sec('quant'),
    convertActivitySec: sec('convertSra'),
    verifyActivitySec: sec('verifyReads'),
    downloadActivitySec: sec('download'),
  };
}

function tail(t: BatchTimes, spans: [number, number][], exitAt: number): { toLastQuantEnd: number; toLastSampleClosed: number; toBatchClosed: number; toExit: number } {
  const lastByte = Math.max(...spans.map((x) => x[1]));
  const lastQuant = Math.max(...t.samples.map((s) => s.quantEndedAt ?? 0));
  const lastClose = Math.max(...t.samples.map((s) => s.close ?? 0));
  const batchClose = t.close ?? exitAt;
  const sec = (a: number, b: number) => round((b - a) / 1000)!;
  return { toLastQuantEnd: sec(lastByte, lastQuant), toLastSampleClosed: sec(lastQuant, lastClose), toBatchClosed: sec(lastClose, batchClose), toExit: sec(batchClose, exitAt) };
}

