/**
 * The report's model, built from sample audits: one row per sample (the TSV), lanes per host x slot with
 * stage bars and retry/failure marks (the timeline), disk readings against the floor, and totals.
 * Pure, so it is unit-tested with hand-made audits and recorded histories.
 */
import type { RunAudit, DiskReading } from './audit.js';

/** Stages that take time, in the order a sample passes them; terminal stages are instants. */
export const TIMED_STAGES = ['queued', 'waiting-for-disk', 'downloading', 'converting', 'quantifying', 'deleting'] as const;

export interface SampleRow {
  run: string;
  species: string;
  workflowId: string;
  /** done | failed | skipped, the stage a running sample is in, or cancelled/terminated/timed out */
  finalStage: string;
  host: string;
  source: string;
  bytes: number;
  /** tries of the sample's work: 1 + retries (a clean sample is 1, whatever its number of steps) */
  attempts: number;
  /** failed attempts that were tried again: Temporal's retries of any step, and downloads the sample
   *  started again itself (bad local reads, a bad copy at one source); host restarts are counted apart */
  retries: number;
  restarts: number;
  start: string;
  end: string;
  stageSeconds: Record<string, number>;
  error: string;
}

export interface Bar {
  run: string;
  stage: string;
  start: number;
  end: number;
}

export interface Mark {
  run: string;
  /** retry: [start, end] spent in failed attempts + back-off; failed-attempt: one attempt failed at `end`;
   *  failed-sample / done / skipped: the sample's end */
  kind: 'retry' | 'failed-attempt' | 'failed-sample' | 'done' | 'skipped' | 'cancelled';
  start: number;
  end: number;
  label: string;
}

/** A stretch of one sample on one host: it occupies one lane of that host for its whole span. */
export interface Track {
  run: string;
  host: string;
  start: number;
  end: number;
  bars: Bar[];
  marks: Mark[];
  failed: boolean;
}

export interface Lane {
  host: string;
  slot: number;
  tracks: Track[];
}

export interface HostTotals {
  host: string;
  lanes: number;
  samples: number;
  /** seconds covered by tracks, summed over lanes */
  busySeconds: number;
  /** busySeconds / (lanes x the batch's wall time): what is left is idle slot time */
  utilisation: number;
}

export interface Totals {
  samples: number;
  byFinalStage: Record<string, number>;
  bytes: number;
  /** samples' tries: samples + retries */
  attempts: number;
  retries: number;
  restarts: number;
  wallSeconds: number;
  stageSeconds: Record<string, number>;
  waitedForDisk: number;
  hosts: HostTotals[];
}

export interface BatchReport {
  batchId: string;
  generatedAt: string;
  minFreeGb: number | null;
  t0: number;
  t1: number;
  rows: SampleRow[];
  lanes: Lane[];
  disk: DiskReading[];
  totals: Totals;
}

const ms = (iso: string) => Date.parse(iso);
const round = (x: number) => Math.round(x * 1000) / 1000;

/** `fetchquant/<batch>/<species>/<RUN>` -> species and run. */
export function idParts(workflowId: string): { species: string; run: string } {
  const parts = workflowId.split('/');
  return { run: parts[parts.length - 1] ?? workflowId, species: parts[parts.length - 2] ?? '?' };
}

function finalStageOf(a: RunAudit): string {
  if (a.outcome) return a.outcome.state;
  if (a.status === 'RUNNING') return a.stage ?? 'queued';
  if (a.status === 'CANCELLED' || a.status === 'CANCELED') return 'cancelled';
  return a.status.toLowerCase().replace(/_/g, ' ');
}

/**
 * See SampleRow.retries: every failed attempt was tried again, except a failed sample's last one.
 * Temporal's own retries show as an activity's attempt number; the sample's (one activity per attempt,
 * or a re-download after bad reads) as failed activities. A lost host is a restart, not a retry.
 */
function retriesOf(a: RunAudit): number {
  const temporal = a.activities.reduce((n, x) => n + x.attempt - 1, 0);
  const failedActivities = a.activities.filter((x) => (x.outcome === 'failed' || x.outcome === 'timed out') && !x.hostLost).length;
  const failedSample = a.outcome?.state === 'failed' || a.status === 'FAILED' ? 1 : 0;
  return Math.max(0, temporal + failedActivities - failedSample);
}

export function sampleRow(a: RunAudit, now: string): SampleRow {
  const { species, run } = idParts(a.workflowId);
  const stageSeconds: Record<string, number> = Object.fromEntries(TIMED_STAGES.map((s) => [s, 0]));
  for (const s of a.stages) {
    if (!(TIMED_STAGES as readonly string[]).includes(s.stage)) continue;
    stageSeconds[s.stage] = round((stageSeconds[s.stage] ?? 0) + (ms(s.end ?? a.close ?? now) - ms(s.start)) / 1000);
  }
  const finalStage = finalStageOf(a);
  const failedActs = a.activities.filter((x) => x.error);
  const error = a.outcome?.reason ?? (finalStage === 'done' || finalStage === 'skipped' ? '' : (failedActs[failedActs.length - 1]?.error ?? ''));
  return {
    run,
    species,
    workflowId: a.workflowId,
    finalStage,
    host: a.host ?? a.outcome?.host ?? '',
    source: a.source ?? '',
    bytes: a.bytes,
    attempts: 1 + retriesOf(a),
    retries: retriesOf(a),
    restarts: a.restarts,
    start: a.start,
    end: a.close ?? '',
    stageSeconds,
    error,
  };
}

/** Consecutive stages of a sample on one host form a track; marks go to the track they happened in. */
function tracksOf(a: RunAudit, row: SampleRow, now: number): Track[] {
  const tracks: Track[] = [];
  const end = a.close ? ms(a.close) : now;
  for (const s of a.stages) {
    const host = s.host ?? '?';
    const start = ms(s.start);
    const stop = s.end ? ms(s.end) : (TIMED_STAGES as readonly string[]).includes(s.stage) ? end : start;
    let t = tracks[tracks.length - 1];
    if (!t || t.host !== host) {
      t = { run: row.run, host, start, end: stop, bars: [], marks: [], failed: false };
      tracks.push(t);
    }
    t.end = Math.max(t.end, stop);
    if ((TIMED_STAGES as readonly string[]).includes(s.stage)) t.bars.push({ run: row.run, stage: s.stage, start, end: stop });
  }
  if (tracks.length === 0) tracks.push({ run: row.run, host: a.host ?? '?', start: ms(a.start), end, bars: [], marks: [], failed: false });
  const trackAt = (at: number) => tracks.find((t) => at >= t.start && at <= t.end) ?? tracks.reduce((best, t) => (Math.abs(t.end - at) < Math.abs(best.end - at) ? t : best));
  for (const [i, x] of a.activities.entries()) {
    // the sample's own retry: the same step scheduled again after it failed (the gap is the back-off)
    const before = a.activities.slice(0, i).reverse().find((p) => p.activity === x.activity);
    if (before && (before.outcome === 'failed' || before.outcome === 'timed out') && !before.hostLost && before.endedAt) {
      const from = ms(before.endedAt);
      const to = ms(x.startedAt ?? x.endedAt ?? new Date(now).toISOString());
      trackAt(from).marks.push({ run: row.run, kind: 'retry', start: from, end: Math.max(from, to), label: `${x.activity}: tried again after: ${before.error ?? ''}` });
    }
    if (x.attempt > 1) {
      const from = ms(x.scheduledAt);
      const to = ms(x.startedAt ?? x.endedAt ?? new Date(now).toISOString());
      trackAt(from).marks.push({ run: row.run, kind: 'retry', start: from, end: to, label: `${x.activity}: attempt ${x.attempt}${x.error ? ` after: ${x.error}` : ''}` });
    }
    if ((x.outcome === 'failed' || x.outcome === 'timed out') && x.endedAt) {
      const at = ms(x.endedAt);
      trackAt(at).marks.push({ run: row.run, kind: 'failed-attempt', start: at, end: at, label: `${x.activity} ${x.outcome}: ${x.error ?? ''}` });
    }
  }
  const last = tracks[tracks.length - 1]!;
  const kind = row.finalStage === 'failed' ? 'failed-sample' : row.finalStage === 'done' || row.finalStage === 'skipped' || row.finalStage === 'cancelled' ? row.finalStage : null;
  if (kind) last.marks.push({ run: row.run, kind, start: last.end, end: last.end, label: `${row.run} ${row.finalStage}${row.error ? `: ${row.error}` : ''}` });
  last.failed = row.finalStage === 'failed';
  return tracks;
}

/** Greedy interval partitioning per host: a track takes the lowest slot free at its start. */
export function assignLanes(tracks: Track[]): Lane[] {
  const lanes: Lane[] = [];
  const sorted = [...tracks].sort((x, y) => x.host.localeCompare(y.host) || x.start - y.start || x.run.localeCompare(y.run));
  for (const t of sorted) {
    const hostLanes = lanes.filter((l) => l.host === t.host);
    let lane = hostLanes.find((l) => l.tracks[l.tracks.length - 1]!.end <= t.start);
    if (!lane) {
      lane = { host: t.host, slot: hostLanes.length, tracks: [] };
      lanes.push(lane);
    }
    lane.tracks.push(t);
  }
  return lanes;
}

export function buildReport(batchId: string, audits: RunAudit[], opts: { minFreeGb: number | null; now?: string }): BatchReport {
  const now = opts.now ?? new Date().toISOString();
  const rows = audits.map((a) => sampleRow(a, now)).sort((x, y) => x.species.localeCompare(y.species) || x.run.localeCompare(y.run));
  const rowOf = new Map(audits.map((a) => [a.workflowId + a.runId, sampleRow(a, now)]));
  const tracks = audits.flatMap((a) => tracksOf(a, rowOf.get(a.workflowId + a.runId)!, ms(now)));
  const lanes = assignLanes(tracks);
  const starts = audits.map((a) => ms(a.start));
  const t0 = starts.length ? Math.min(...starts) : ms(now);
  const t1 = Math.max(t0 + 1, ...tracks.map((t) => t.end), ...audits.map((a) => (a.close ? ms(a.close) : t0)));
  const wall = (t1 - t0) / 1000;
  const byFinalStage: Record<string, number> = {};
  const stageSeconds: Record<string, number> = Object.fromEntries(TIMED_STAGES.map((s) => [s, 0]));
  for (const r of rows) {
    byFinalStage[r.finalStage] = (byFinalStage[r.finalStage] ?? 0) + 1;
    for (const s of TIMED_STAGES) stageSeconds[s] = round((stageSeconds[s] ?? 0) + (r.stageSeconds[s] ?? 0));
  }
  const hosts = [...new Set(lanes.map((l) => l.host))].sort().map((host): HostTotals => {
    const hl = lanes.filter((l) => l.host === host);
    const busy = hl.flatMap((l) => l.tracks).reduce((n, t) => n + (t.end - t.start) / 1000, 0);
    return { host, lanes: hl.length, samples: new Set(hl.flatMap((l) => l.tracks.map((t) => t.run))).size, busySeconds: round(busy), utilisation: round(busy / (hl.length * wall)) };
  });
  return {
    batchId,
    generatedAt: now,
    minFreeGb: opts.minFreeGb,
    t0,
    t1,
    rows,
    lanes,
    disk: audits.flatMap((a) => a.disk).sort((x, y) => x.at.localeCompare(y.at)),
    totals: {
      samples: rows.length,
      byFinalStage,
      bytes: rows.reduce((n, r) => n + r.bytes, 0),
      attempts: rows.reduce((n, r) => n + r.attempts, 0),
      retries: rows.reduce((n, r) => n + r.retries, 0),
      restarts: rows.reduce((n, r) => n + r.restarts, 0),
      wallSeconds: round(wall),
      stageSeconds,
      waitedForDisk: rows.filter((r) => (r.stageSeconds['waiting-for-disk'] ?? 0) > 0).length,
      hosts,
    },
  };
}
