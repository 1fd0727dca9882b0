/** The report's summary TSV: one row per sample, seconds per stage as columns (spreadsheet- and R-friendly). */
import { TIMED_STAGES, type SampleRow } from './model.js';

export const TSV_COLUMNS = [
  'run',
  'species',
  'final_stage',
  'host',
  'source',
  'bytes',
  'attempts',
  'retries',
  'restarts',
  'start',
  'end',
  ...TIMED_STAGES.map((s) => `${s.replace(/-/g, '_')}_s`),
  'error',
] as const;

/** Tabs and newlines inside a cell would shift every later column: flatten them. */
function cell(v: string | number): string {
  return String(v).replace(/[\t\r\n]+/g, ' ');
}

export function renderTsv(rows: SampleRow[]): string {
  const lines = [TSV_COLUMNS.join('\t')];
  for (const r of rows) {
    lines.push(
      [r.run, r.species, r.finalStage, r.host, r.source, r.bytes, r.attempts, r.retries, r.restarts, r.start, r.end, ...TIMED_STAGES.map((s) => (r.stageSeconds[s] ?? 0).toFixed(3)), r.error]
        .map(cell)
        .join('\t'),
    );
  }
  return `${lines.join('\n')}\n`;
}
