/** The report page: totals, the timeline SVG inline and the per-sample table; no scripts, no external assets. */
import { humanBytes, humanDuration } from '../cli/progress.js';
import { TIMED_STAGES, type BatchReport } from './model.js';
import { esc, renderTimelineSvg } from './svg.js';

function totalsHtml(r: BatchReport): string {
  const t = r.totals;
  const states = Object.entries(t.byFinalStage)
    .sort()
    .map(([k, v]) => `${v} ${esc(k)}`)
    .join(', ');
  const stages = TIMED_STAGES.map((s) => `<td>${esc(humanDuration(t.stageSeconds[s] ?? 0))}</td>`).join('');
  const hosts = t.hosts.map((h) => `<tr><td>${esc(h.host)}</td><td>${h.lanes}</td><td>${h.samples}</td><td>${esc(humanDuration(h.busySeconds))}</td><td>${Math.round(h.utilisation * 100)}%</td></tr>`).join('');
  return `
<table class="totals">
<tr><th>samples</th><td>${t.samples} (${states || 'none'})</td></tr>
<tr><th>wall time</th><td>${esc(humanDuration(t.wallSeconds))}</td></tr>
<tr><th>bytes fetched</th><td>${esc(humanBytes(t.bytes))}</td></tr>
<tr><th>retries</th><td>${t.retries} (failed attempts tried again, any step)</td></tr>
<tr><th>host restarts</th><td>${t.restarts}</td></tr>
<tr><th>waited for disk</th><td>${t.waitedForDisk} sample(s)${r.minFreeGb === null ? '' : `, floor ${r.minFreeGb} GB`}</td></tr>
</table>
<table class="stages"><tr>${TIMED_STAGES.map((s) => `<th>${esc(s)}</th>`).join('')}</tr><tr>${stages}</tr></table>
<table class="hosts"><tr><th>host</th><th>slots</th><th>samples</th><th>busy</th><th>busy share</th></tr>${hosts}</table>`;
}

function rowsHtml(r: BatchReport): string {
  const head = ['run', 'species', 'final stage', 'host', 'source', 'bytes', 'attempts', 'retries', 'restarts', ...TIMED_STAGES, 'error'];
  const rows = r.rows.map((x) => {
    const cls = x.finalStage === 'failed' ? ' class="failed"' : '';
    const cells = [x.run, x.species, x.finalStage, x.host, x.source, humanBytes(x.bytes), String(x.attempts), String(x.retries), String(x.restarts), ...TIMED_STAGES.map((s) => `${(x.stageSeconds[s] ?? 0).toFixed(1)}s`)];
    return `<tr${cls}>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}<td class="error">${esc(x.error)}</td></tr>`;
  });
  return `<table class="samples"><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.join('\n')}</table>`;
}

export function renderHtml(r: BatchReport): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fetchquant report ${esc(r.batchId)}</title>
<style>
body{font-family:sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 4px}
.meta{color:#555;font-size:12px;margin-bottom:10px}
table{border-collapse:collapse;margin:6px 16px 10px 0;font-size:12px;display:inline-table;vertical-align:top}
table.samples{display:table;width:100%;margin-right:0}
table.samples td:not(.error){white-space:nowrap}
td.error{overflow-wrap:anywhere;word-break:break-word;min-width:16em}
th,td{border:1px solid #d0d5db;padding:2px 6px;text-align:left}
th{background:#f1f3f5}
tr.failed td{background:#fde2e2}
svg{display:block;margin:8px 0;max-width:100%;height:auto}
</style></head>
<body>
<h1>fetchquant batch ${esc(r.batchId)}</h1>
<div class="meta">from ${esc(new Date(r.t0).toISOString())} to ${esc(new Date(r.t1).toISOString())}; generated ${esc(r.generatedAt)}. Lanes are concurrent sample slots per host: grey gaps are idle slots; hover a bar for details.</div>
${totalsHtml(r)}
${renderTimelineSvg(r)}
${rowsHtml(r)}
</body></html>
`;
}
