/** Pure arithmetic of the real-tool benchmarks: percentiles, interval overlap, the B1/B2/B4 figures. */
import type { BaselineRun } from './baseline.js';
import type { BatchTimes, SampleTimes, SignalAt } from './histories.js';

/** Nearest-rank percentile (p in 0..100) of a list; null when empty. */
export function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function dist(xs: number[]): { p50: number | null; p99: number | null; max: number | null; n: number } {
  return { p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs.length ? Math.max(...xs) : null, n: xs.length };
}

/** Most intervals open at one moment. */
export function maxOverlap(intervals: [number, number][]): number {
  const ev: [number, number][] = [];
  for (const [a, b] of intervals) if (b >= a) ev.push([a, 1], [b, -1]);
  // Ends before starts at the same instant: a slot handed over is not two slots.
  ev.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of ev) max = Math.max(max, (cur += d));
  return max;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const round = (x: number | null, digits = 3) => (x === null ? null : Math.round(x * 10 ** digits) / 10 ** digits);

export interface UtilisationFigures {
  downloadPhaseSec: number;
  busyDownloadSec: number;
  /** busy download seconds / (threads x download phase) */
  slotUtilisation: number;
}

export function utilisation(spans: [number, number][], threads: number): UtilisationFigures {
  if (spans.length === 0) return { downloadPhaseSec: 0, busyDownloadSec: 0, slotUtilisation: 0 };
  const phase = (Math.max(...spans.map((s) => s[1])) - Math.min(...spans.map((s) => s[0]))) / 1000;
  const busy = sum(spans.map(([a, b]) => b - a)) / 1000;
  return { downloadPhaseSec: round(phase)!, busyDownloadSec: round(busy)!, slotUtilisation: round(busy / (threads * phase))! };
}

export interface LinkFigures {
  /** process start -> first download started */
  toFirstDownloadSec: number;
  /** last download ended -> process exit */
  lastDownloadToExitSec: number;
  /** download phase - bytes / cap: link time lost while downloads were going on */
  inPhaseLinkLossSec: number;
  /** seconds of the download phase with no download running at all (the link certainly idle) */
  noDownloadRunningSec: number;
  /** those stretches of >= 0.3 s: seconds after the process started, and length */
  noDownloadGaps: { atSec: number; sec: number }[];
  /** bytes / (cap x makespan) */
  linkUtilisation: number;
}

/** The union of intervals as disjoint sorted intervals. */
export function union(intervals: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of [...intervals].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Where the makespan went, relative to a link that is never idle. */
export function linkFigures(spans: [number, number][], startedAt: number, endedAt: number, bytes: number, cap: number): LinkFigures {
  const first = Math.min(...spans.map((x) => x[0]));
  const last = Math.max(...spans.map((x) => x[1]));
  const busy = union(spans);
  const gaps = busy.slice(1).map((u, i) => [busy[i]![1], u[0]] as [number, number]);
  return {
    toFirstDownloadSec: round((first - startedAt) / 1000)!,
    lastDownloadToExitSec: round((endedAt - last) / 1000)!,
    inPhaseLinkLossSec: round((last - first) / 1000 - bytes / cap)!,
    noDownloadRunningSec: round(gaps.reduce((n, [a, b]) => n + b - a, 0) / 1000)!,
    noDownloadGaps: gaps.filter(([a, b]) => b - a >= 300).map(([a, b]) => ({ atSec: round((a - startedAt) / 1000, 1)!, sec: round((b - a) / 1000)! })),
    linkUtilisation: round(bytes / cap / ((endedAt - startedAt) / 1000))!,
  };
}

/** Download activity spans (a clean run has one attempt each, so the history shows them all). */
export function fetchquantDownloadSpans(samples: SampleTimes[]): [number, number][] {
  return samples.flatMap((s) =>
    s.audit.activities
      .filter((a) => a.activity === 'download' && a.startedAt && a.endedAt)
      .map((a) => [Date.parse(a.startedAt!), Date.parse(a.endedAt!)] as [number, number]),
  );
}

export function baselineDownloadSpans(b: BaselineRun): [number, number][] {
  return [...b.events.values()].filter((e) => e['dl-start'] && e['dl-end']).map((e) => [e['dl-start']!, e['dl-end']!]);
}

/** Seconds of kallisto alone for the run whose download ended last in the baseline (for the lower bound). */
export function baselineLastQuantSec(b: BaselineRun): { run: string; sec: number } | null {
  let last: [string, Record<string, number>] | null = null;
  for (const e of b.events) if (e[1]['dl-end'] && (!last || e[1]['dl-end']! > last[1]['dl-end']!)) last = e;
  if (!last || !last[1]['quant-end']) return null;
  const from = last[1]['convert-end'] ?? last[1]['dl-end']!;
  return { run: last[0], sec: (last[1]['quant-end']! - from) / 1000 };
}

export function baselineQuantSecs(b: BaselineRun): number[] {
  return [...b.events.values()].filter((e) => e['quant-end'] && e['dl-end']).map((e) => (e['quant-end']! - (e['convert-end'] ?? e['dl-end']!)) / 1000);
}

/** Activity durations (started -> ended) of one kind, seconds. */
export function activitySecs(samples: SampleTimes[], name: string): number[] {
  return samples.flatMap((s) =>
    s.audit.activities.filter((a) => a.activity === name && a.startedAt && a.endedAt).map((a) => (Date.parse(a.endedAt!) - Date.parse(a.startedAt!)) / 1000),
  );
}

/** Samples verified but not yet deleted, at most at one moment: fetchquant's quant backlog on disk. */
export function maxQuantBacklog(samples: SampleTimes[]): number {
  return maxOverlap(samples.filter((s) => s.verifiedAt && s.deletedAt).map((s) => [s.verifiedAt!, s.deletedAt!]));
}

export interface ReactionFigures {
  /** samples whose quant ran in the step that verified their reads (no round trip; not in the figures below) */
  quantifiedInStep: number;
  samples: number;
  verifyToQuantStartMs: ReturnType<typeof dist>;
  verifyToQuantScheduledMs: ReturnType<typeof dist>;
  quantScheduledToStartedMs: ReturnType<typeof dist>;
  smallSpecies: string;
  smallSpeciesRuns: number;
  /** its last reads verified (its last slot freed, nothing left to start), seconds after batch start */
  smallSpeciesLastSlotFreedSec: number | null;
  /**
   * that moment -> the setThreads signal of each species the freed slot went to (those signalled by the
   * reallocation that followed; species whose count did not change get no signal and are not listed)
   */
  lastSlotFreedToSetThreadsMs: Record<string, number>;
  /**
   * every slot the small species freed with nothing left to start (reads verified after its last sample
   * started) -> the first setThreads signal another species received after it
   */
  tailSlotFreedToSetThreadsMs: ReturnType<typeof dist>;
  /** the small species' workflow closed, seconds after batch start */
  smallSpeciesClosedSec: number | null;
  seedPollIntervalsSec: number[];
  seedExpectedReactionSec: { every60s: { mean: number; max: number }; every300s: { mean: number; max: number } };
}

/**
 * A slot the small species freed at `f` for good: how long until another species got a setThreads
 * (`moved`), and which species one reallocation signalled (their first setThreads after `f` within a
 * second of the first one).
 */
export function slotMoves(speciesSignals: Map<string, SignalAt[]>, smallSpecies: string) {
  const others = [...speciesSignals.keys()].filter((k) => k !== smallSpecies);
  const firstSetThreadsAfter = (sp: string, at: number) => (speciesSignals.get(sp) ?? []).find((s) => s.name === 'setThreads' && s.at >= at)?.at ?? null;
  const moved = (f: number) => {
    const next = others.map((sp) => firstSetThreadsAfter(sp, f)).filter((x): x is number => x !== null);
    return next.length ? Math.min(...next) - f : null;
  };
  const receivers = (f: number): Record<string, number> => {
    const first = moved(f);
    const out: Record<string, number> = {};
    if (first === null) return out;
    for (const sp of others) {
      const at = firstSetThreadsAfter(sp, f);
      if (at !== null && at - f <= first + 1000) out[sp] = at - f;
    }
    return out;
  };
  return { moved, receivers };
}

/** The small species' readsVerified signals after its last sample started: slots freed for good. */
export function tailSlotsFreed(speciesSignals: Map<string, SignalAt[]>, smallSpecies: string, lastStart: number): number[] {
  return (speciesSignals.get(smallSpecies) ?? []).filter((s) => s.name === 'readsVerified' && s.at > lastStart).map((s) => s.at);
}

export function reactionFigures(t: BatchTimes, smallSpecies: string): ReactionFigures {
  const done = t.samples.filter((s) => s.verifiedAt && s.quantStartedAt && s.quantScheduledAt);
  const small = t.samples.filter((s) => s.speciesId === smallSpecies);
  const lastStart = Math.max(...small.map((s) => s.start));
  const tail = tailSlotsFreed(t.speciesSignals, smallSpecies, lastStart);
  const { moved, receivers } = slotMoves(t.speciesSignals, smallSpecies);
  const lastFreed = tail.length ? Math.max(...tail) : null;
  const tailDelays = tail.map(moved).filter((x): x is number => x !== null);
  const closed = t.speciesClose.get(smallSpecies);
  return {
    quantifiedInStep: t.samples.filter((s) => s.quantInStep).length,
    samples: t.samples.length,
    verifyToQuantStartMs: dist(done.map((s) => s.quantStartedAt! - s.verifiedAt!)),
    verifyToQuantScheduledMs: dist(done.map((s) => s.quantScheduledAt! - s.verifiedAt!)),
    quantScheduledToStartedMs: dist(done.map((s) => s.quantStartedAt! - s.quantScheduledAt!)),
    smallSpecies,
    smallSpeciesRuns: small.length,
    smallSpeciesLastSlotFreedSec: lastFreed === null ? null : round((lastFreed - t.start) / 1000),
    lastSlotFreedToSetThreadsMs: lastFreed === null ? {} : receivers(lastFreed),
    tailSlotFreedToSetThreadsMs: dist(tailDelays),
    smallSpeciesClosedSec: closed === undefined ? null : round((closed - t.start) / 1000),
    seedPollIntervalsSec: [60, 300],
    // A poller notices an event uniformly within its period: half the period on average, the period at worst.
    seedExpectedReactionSec: { every60s: { mean: 30, max: 60 }, every300s: { mean: 150, max: 300 } },
  };
}

export { round, sum };
