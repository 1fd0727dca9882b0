/**
 * The timeline picture: one lane per host x slot, a bar per sample stage over time, retries hatched,
 * failed attempts and failed samples in red, and each host's free disk (what admission saw) against the
 * floor. Pure string building: inline SVG with no external assets, so the HTML page is self-contained.
 */
import type { BatchReport, Lane, Mark, Track } from './model.js';

export const STAGE_COLOURS: Record<string, string> = {
  queued: '#c9ced6',
  'waiting-for-disk': '#f2a900',
  downloading: '#3b7ddd',
  converting: '#8a63d2',
  quantifying: '#22a06b',
  deleting: '#7f8c99',
};

export const WIDTH = 1200;
const LEFT = 170;
const RIGHT = 24;
const LANE_H = 20;
const HOST_H = 24;
const DISK_H = 90;

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fmt = (x: number) => (Math.round(x * 10) / 10).toString();

/** Relative time label: 45s, 2m30s, 1.5h. */
export function relLabel(sec: number): string {
  if (sec < 60) return `${fmt(sec)}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${sec % 60 ? `${Math.round(sec % 60)}s` : ''}`;
  return `${fmt(sec / 3600)}h`;
}

/** A tick step giving about 8-12 ticks over the span. */
export function tickStep(spanSec: number): number {
  const steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400];
  return steps.find((s) => spanSec / s <= 12) ?? 86400 * Math.ceil(spanSec / 86400 / 12);
}

interface Scale {
  x(t: number): number;
}

function markSvg(m: Mark, y: number, s: Scale): string {
  const x1 = s.x(m.start);
  const title = `<title>${esc(m.label)}</title>`;
  switch (m.kind) {
    case 'retry': {
      const w = Math.max(3, s.x(m.end) - x1);
      return `<g class="mark retry"><rect x="${fmt(x1)}" y="${y + 1}" width="${fmt(w)}" height="${LANE_H - 4}" fill="url(#retry)" stroke="#d62728" stroke-width="1"/>${title}</g>`;
    }
    case 'failed-attempt':
      return `<g class="mark failed-attempt"><path d="M${fmt(x1)} ${y - 1} l5 ${LANE_H / 2} l-5 ${LANE_H / 2} l-5 ${-LANE_H / 2} z" fill="#d62728" stroke="#fff" stroke-width="0.8"/>${title}</g>`;
    case 'failed-sample':
      return `<g class="mark failed-sample" stroke="#b00020" stroke-width="3"><line x1="${fmt(x1 - 6)}" y1="${y}" x2="${fmt(x1 + 6)}" y2="${y + LANE_H - 2}"/><line x1="${fmt(x1 + 6)}" y1="${y}" x2="${fmt(x1 - 6)}" y2="${y + LANE_H - 2}"/>${title}</g>`;
    case 'done':
      return `<g class="mark done"><circle cx="${fmt(x1)}" cy="${y + (LANE_H - 2) / 2}" r="3.5" fill="#1a7f37"/>${title}</g>`;
    case 'skipped':
      return `<g class="mark skipped"><circle cx="${fmt(x1)}" cy="${y + (LANE_H - 2) / 2}" r="3.5" fill="#fff" stroke="#7f8c99" stroke-width="1.5"/>${title}</g>`;
    case 'cancelled':
      return `<g class="mark cancelled"><rect x="${fmt(x1 - 3.5)}" y="${y + LANE_H / 2 - 4.5}" width="7" height="7" fill="#222"/>${title}</g>`;
  }
}

function trackSvg(t: Track, y: number, s: Scale): string {
  const parts: string[] = [];
  for (const b of t.bars) {
    const x = s.x(b.start);
    const w = Math.max(1, s.x(b.end) - x);
    parts.push(`<rect class="bar stage-${b.stage}" x="${fmt(x)}" y="${y}" width="${fmt(w)}" height="${LANE_H - 2}" fill="${STAGE_COLOURS[b.stage] ?? '#999'}"><title>${esc(`${b.run} ${b.stage} ${fmt((b.end - b.start) / 1000)}s on ${t.host}`)}</title></rect>`);
  }
  const x = s.x(t.start);
  const w = Math.max(1, s.x(t.end) - x);
  if (t.failed) parts.push(`<rect class="failed-outline" x="${fmt(x)}" y="${y - 1}" width="${fmt(w)}" height="${LANE_H}" fill="none" stroke="#b00020" stroke-width="2"/>`);
  if (w >= 72) parts.push(`<text x="${fmt(x + 3)}" y="${y + 13}" font-size="10" fill="#fff" class="run-label">${esc(t.run)}</text>`);
  for (const m of t.marks) parts.push(markSvg(m, y, s));
  return parts.join('');
}

function axisSvg(r: BatchReport, y: number, bottom: number, s: Scale): string {
  const span = (r.t1 - r.t0) / 1000;
  const step = tickStep(span);
  const parts = [`<line x1="${LEFT}" y1="${y}" x2="${WIDTH - RIGHT}" y2="${y}" stroke="#333"/>`];
  for (let sec = 0; sec <= span + 1e-9; sec += step) {
    const x = fmt(s.x(r.t0 + sec * 1000));
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x}" y2="${bottom}" stroke="#e3e6ea"/><text x="${x}" y="${y - 7}" font-size="10" text-anchor="middle" fill="#333">${esc(relLabel(sec))}</text>`);
  }
  return parts.join('');
}

/** 0 GB, 0.25 GB, 12 GB, 1.5 TB */
export function gbLabel(bytes: number): string {
  const gb = bytes / 1e9;
  if (gb >= 1000) return `${fmt(gb / 1000)} TB`;
  if (gb === 0 || gb >= 10) return `${Math.round(gb)} GB`;
  return `${Number(gb.toPrecision(2))} GB`;
}

function diskSvg(r: BatchReport, host: string, y: number, s: Scale): string {
  const pts = r.disk.filter((d) => (d.host ?? '?') === host);
  if (pts.length === 0) return '';
  const floor = r.minFreeGb === null ? null : r.minFreeGb * 1e9;
  const avail = (d: (typeof pts)[number]) => Math.max(0, d.freeBytes - d.reservedBytes);
  const top = Math.max(...pts.map((d) => d.freeBytes), floor ?? 0) * 1.1 || 1;
  const yOf = (b: number) => y + DISK_H - (b / top) * DISK_H;
  const parts = [
    `<rect x="${LEFT}" y="${y}" width="${WIDTH - LEFT - RIGHT}" height="${DISK_H}" fill="#fafbfc" stroke="#d0d5db"/>`,
    `<text x="8" y="${y + 14}" font-size="11" fill="#333">${esc(host)} disk</text>`,
    `<text x="8" y="${y + 28}" font-size="10" fill="#666">free minus reserved,</text>`,
    `<text x="8" y="${y + 40}" font-size="10" fill="#666">GB (left axis)</text>`,
  ];
  // y axis: free bytes in GB, three ticks
  for (const frac of [0, 0.5, 1]) {
    const b = (top / 1.1) * frac;
    const yy = fmt(yOf(b));
    parts.push(`<line class="disk-tick" x1="${LEFT - 4}" y1="${yy}" x2="${WIDTH - RIGHT}" y2="${yy}" stroke="${frac === 0 ? '#333' : '#e3e6ea'}"/><text class="disk-tick-label" x="${LEFT - 6}" y="${fmt(yOf(b) + 3)}" font-size="10" text-anchor="end" fill="#333">${esc(gbLabel(b))}</text>`);
  }
  // x axis: time since the batch started, as on the timeline above
  const span = (r.t1 - r.t0) / 1000;
  const step = tickStep(span);
  for (let sec = 0; sec <= span + 1e-9; sec += step) {
    const x = fmt(s.x(r.t0 + sec * 1000));
    parts.push(`<line x1="${x}" y1="${y + DISK_H}" x2="${x}" y2="${y + DISK_H + 4}" stroke="#333"/><text x="${x}" y="${y + DISK_H + 14}" font-size="10" text-anchor="middle" fill="#333">${esc(relLabel(sec))}</text>`);
  }
  if (floor !== null) parts.push(`<line class="disk-floor" x1="${LEFT}" y1="${fmt(yOf(floor))}" x2="${WIDTH - RIGHT}" y2="${fmt(yOf(floor))}" stroke="#d62728" stroke-dasharray="6 4"/><text x="${WIDTH - RIGHT - 4}" y="${fmt(yOf(floor) - 3)}" font-size="10" text-anchor="end" fill="#d62728">floor ${esc(fmt(floor / 1e9))} GB</text>`);
  parts.push(`<polyline fill="none" stroke="#3b7ddd" stroke-width="1.5" points="${pts.map((d) => `${fmt(s.x(Date.parse(d.at)))},${fmt(yOf(avail(d)))}`).join(' ')}"/>`);
  for (const d of pts) {
    const title = `<title>${esc(`${d.at}: free ${fmt(d.freeBytes / 1e9)} GB, reserved ${fmt(d.reservedBytes / 1e9)} GB, needed ${fmt(d.neededBytes / 1e9)} GB: ${d.granted ? 'admitted' : 'waits'}`)}</title>`;
    parts.push(`<circle cx="${fmt(s.x(Date.parse(d.at)))}" cy="${fmt(yOf(avail(d)))}" r="${d.granted ? 2.5 : 4}" fill="${d.granted ? '#3b7ddd' : '#f2a900'}">${title}</circle>`);
  }
  return parts.join('');
}

function legendSvg(y: number): string {
  const items: string[] = [];
  let x = LEFT;
  for (const [stage, colour] of Object.entries(STAGE_COLOURS)) {
    items.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${colour}"/><text x="${x + 16}" y="${y + 10}" font-size="11">${esc(stage)}</text>`);
    x += 24 + stage.length * 6.5;
  }
  items.push(`<rect x="${x}" y="${y}" width="14" height="12" fill="url(#retry)" stroke="#d62728"/><text x="${x + 18}" y="${y + 10}" font-size="11">retrying</text>`);
  x += 80;
  items.push(`<path d="M${x + 5} ${y} l5 6 l-5 6 l-5 -6 z" fill="#d62728"/><text x="${x + 14}" y="${y + 10}" font-size="11">failed attempt</text>`);
  x += 110;
  items.push(`<g stroke="#b00020" stroke-width="3"><line x1="${x}" y1="${y}" x2="${x + 10}" y2="${y + 12}"/><line x1="${x + 10}" y1="${y}" x2="${x}" y2="${y + 12}"/></g><text x="${x + 16}" y="${y + 10}" font-size="11">failed sample</text>`);
  x += 110;
  items.push(`<circle cx="${x + 5}" cy="${y + 6}" r="4" fill="#1a7f37"/><text x="${x + 14}" y="${y + 10}" font-size="11">done</text>`);
  return items.join('');
}

export function renderTimelineSvg(r: BatchReport): string {
  const plotW = WIDTH - LEFT - RIGHT;
  const s: Scale = { x: (t) => LEFT + ((t - r.t0) / Math.max(1, r.t1 - r.t0)) * plotW };
  const hosts = [...new Set(r.lanes.map((l) => l.host))].sort();
  const body: string[] = [];
  let y = 40;
  const axisY = 28;
  for (const host of hosts) {
    const ht = r.totals.hosts.find((h) => h.host === host);
    body.push(`<text x="8" y="${y + 16}" font-size="12" font-weight="bold">${esc(host)}</text><text x="${LEFT}" y="${y + 16}" font-size="11" fill="#555">${esc(`${ht?.lanes ?? 0} slots, ${ht?.samples ?? 0} samples, busy ${Math.round((ht?.utilisation ?? 0) * 100)}% (the rest is idle)`)}</text>`);
    y += HOST_H;
    for (const lane of r.lanes.filter((l: Lane) => l.host === host)) {
      body.push(`<rect class="lane" x="${LEFT}" y="${y - 1}" width="${plotW}" height="${LANE_H}" fill="#f1f3f5"/><text x="18" y="${y + 13}" font-size="10" fill="#555">slot ${lane.slot + 1}</text>`);
      for (const t of lane.tracks) body.push(trackSvg(t, y, s));
      y += LANE_H + 2;
    }
    y += 6;
  }
  const lanesBottom = y;
  for (const host of hosts) {
    const d = diskSvg(r, host, y + 8, s);
    if (d) {
      body.push(d);
      y += DISK_H + 28;
    }
  }
  y += 10;
  const legendY = y;
  const height = legendY + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" role="img" aria-label="timeline of batch ${esc(r.batchId)}">`,
    `<defs><pattern id="retry" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fde2e2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d62728" stroke-width="3"/></pattern></defs>`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    axisSvg(r, axisY, lanesBottom, s),
    ...body,
    legendSvg(legendY),
    '</svg>',
  ].join('\n');
}
