/** Progress display: bars per species on a terminal, plain periodic lines otherwise. Pure rendering. */
import type { BatchProgress, SpeciesProgress } from '../workflows/messages.js';

export interface Rate {
  bytesPerSec: number;
  samplesPerSec: number;
}

export function humanBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function humanDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  if (sec < 90) return `${Math.round(sec)}s`;
  if (sec < 5400) return `${Math.round(sec / 60)}m`;
  return `${(sec / 3600).toFixed(1)}h`;
}

function finished(s: SpeciesProgress): number {
  return s.done + s.skipped + s.failed;
}

function bar(frac: number, width = 24): string {
  const n = Math.max(0, Math.min(width, Math.round(frac * width)));
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}]`;
}

/** Rates from two snapshots taken `dtSec` apart, per species id. */
export function rates(prev: BatchProgress | null, cur: BatchProgress, dtSec: number): Map<string, Rate> {
  const out = new Map<string, Rate>();
  for (const s of cur.species) {
    const p = prev?.species.find((x) => x.speciesId === s.speciesId);
    out.set(s.speciesId, {
      bytesPerSec: p && dtSec > 0 ? Math.max(0, (s.bytes - p.bytes) / dtSec) : 0,
      samplesPerSec: p && dtSec > 0 ? Math.max(0, (finished(s) - finished(p)) / dtSec) : 0,
    });
  }
  return out;
}

export function renderProgress(p: BatchProgress, r: Map<string, Rate>, tty: boolean): string {
  const lines: string[] = [];
  let total = 0;
  let fin = 0;
  let failed = 0;
  for (const s of p.species) {
    total += s.total;
    fin += finished(s);
    failed += s.failed;
    const rate = r.get(s.speciesId);
    const left = s.total - finished(s);
    const eta = rate && rate.samplesPerSec > 0 ? humanDuration(left / rate.samplesPerSec) : s.status === 'done' ? '0s' : '?';
    const counts = `${finished(s)}/${s.total}`;
    const detail = `threads ${s.threads}  dl ${s.downloading}  quant ${s.processing}  failed ${s.failed}  ${humanBytes(s.bytes)}  ${humanBytes(rate?.bytesPerSec ?? 0)}/s  ETA ${eta}`;
    const name = s.speciesId.padEnd(28).slice(0, 28);
    const state = s.status === 'failed' ? `FAILED ${s.reason ?? ''}` : s.status;
    lines.push(tty ? `${name} ${bar(s.total ? finished(s) / s.total : 1)} ${counts.padStart(11)}  ${detail}  ${state}` : `${s.speciesId} ${counts} ${state} ${detail}`);
  }
  const head = `batch ${p.batchId}${p.paused ? ' (PAUSED)' : ''}: ${fin}/${total} samples finished, ${failed} failed, total threads ${p.totalThreads}`;
  return [head, ...lines].join('\n');
}
