/**
 * The report's pure parts on recorded sample histories (done, host lost, run not found) plus a retried
 * one, and the HTML rendered by real headless Chromium: the screenshot must show the stage colours, not
 * a blank page. Chromium missing is a failure naming the Debian package, never a skip.
 */
import { describe, expect, it, afterAll } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { historyFromJSON } from '../helpers/histories.js';
import { parseSampleHistory, type RunAudit } from '../../src/report/audit.js';
import { buildReport } from '../../src/report/model.js';
import { renderTsv, TSV_COLUMNS } from '../../src/report/tsv.js';
import { renderHtml } from '../../src/report/html.js';
import { STAGE_COLOURS } from '../../src/report/svg.js';
import { decodePng, pictureStats, pixelsNear } from './png.js';

const HIST = join(process.cwd(), 'test', 'replay', 'histories');

function recorded(name: string): RunAudit {
  const { workflowId, history } = JSON.parse(readFileSync(join(HIST, `${name}.json`), 'utf8'));
  const events = historyFromJSON(history).events ?? [];
  const t = (i: number) => new Date(Number(events.at(i)!.eventTime!.seconds) * 1000 + Math.floor((events.at(i)!.eventTime!.nanos ?? 0) / 1e6)).toISOString();
  return parseSampleHistory(events, { workflowId, runId: name, status: 'COMPLETED', start: t(0), close: t(-1) });
}

/** A sample whose download failed twice (Temporal retried it) and then ran out of retries. */
function retriedAndFailed(base: RunAudit): RunAudit {
  const s = Date.parse(base.start);
  const iso = (sec: number) => new Date(s + sec * 1000).toISOString();
  return {
    workflowId: 'fetchquant/b1/beta_two/SRR1100009',
    runId: 'synthetic',
    status: 'COMPLETED',
    start: iso(0),
    close: iso(9),
    host: 'host-a',
    stage: 'failed',
    restarts: 0,
    activities: [
      { activity: 'claimHost', scheduledAt: iso(0), startedAt: iso(0.1), endedAt: iso(0.2), attempt: 1, outcome: 'completed', host: 'host-a', attempts: [{ attempt: 1, outcome: 'completed', host: 'host-a', at: iso(0.2) }] },
      {
        activity: 'download',
        scheduledAt: iso(1),
        startedAt: iso(6),
        endedAt: iso(8.5),
        attempt: 3,
        outcome: 'failed',
        host: 'host-a',
        error: 'HTTP 503 from mirror',
        attempts: [1, 2, 3].map((n) => ({ attempt: n, outcome: 'failed' as const, host: 'host-a', at: iso([2, 4, 8.5][n - 1]!), error: 'HTTP 503 from mirror' })),
      },
    ],
    stages: [
      { stage: 'queued', host: 'host-a', start: iso(0), end: iso(1) },
      { stage: 'downloading', host: 'host-a', start: iso(1), end: iso(8.5) },
      { stage: 'failed', host: 'host-a', start: iso(8.5) },
    ],
    disk: [],
    outcome: { run: 'SRR1100009', speciesId: 'beta_two', state: 'failed', reason: 'HTTP 503 from mirror', failureType: 'ServerError', host: 'host-a', bytes: 0 },
    source: 'ena',
    bytes: 0,
  };
}

async function screenshot(html: string, dir: string, name: string) {
  const page = join(dir, `${name}.html`);
  const png = join(dir, `${name}.png`);
  writeFileSync(page, html);
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, `profile-${name}`)}`, `--screenshot=${png}`, '--window-size=1200,800', `file://${page}`];
  try {
    await execa('chromium', args, { timeout: 60_000 });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw new Error('chromium is not installed: install the Debian package `chromium` (sudo apt-get install -y chromium; scripts/setup.sh does it)');
    throw err;
  }
  return pictureStats(decodePng(readFileSync(png)));
}

describe('report rendering', () => {
  const done = recorded('sample-done');
  const lost = recorded('sample-host-lost');
  const notFound = recorded('sample-run-not-found');
  const failed = retriedAndFailed(done);
  // the shape of a real RunNotFound reason: one long URL with no space to break at
  const longReason = `not found at any source, run SRR1100010: ena: HTTP 204 (no content) from http://127.0.0.1:44145/ena/portal/api/filereport?accession=SRR1100010&result=read_run&fields=${'run_accession%2Cfastq_ftp%2Cfastq_md5%2Cfastq_bytes%2C'.repeat(6)}&format=tsv; sra: status 404`;
  const longError: RunAudit = { ...failed, workflowId: 'fetchquant/b1/beta_two/SRR1100010', outcome: { ...failed.outcome!, run: 'SRR1100010', reason: longReason } };
  const report = buildReport('b1', [done, lost, notFound, failed, longError], { minFreeGb: 10, now: '2030-01-01T00:00:00.000Z' });
  const dir = mkdtempSync(join(tmpdir(), 'fq-report-render-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads stages, hosts, restarts and disk readings from a recorded history', () => {
    expect(done.stages.map((s) => s.stage)).toEqual(['queued', 'downloading', 'quantifying', 'deleting', 'done']);
    expect(new Set(done.stages.map((s) => s.host))).toEqual(new Set(['host-a']));
    expect(done.disk).toHaveLength(1);
    expect(done.source).toBe('ena');
    expect(lost.restarts).toBe(1);
    // the sample started over on host-2 after host-1 was lost
    expect(lost.stages.map((s) => `${s.stage}@${s.host}`)).toEqual(['queued@host-1', 'downloading@host-1', 'queued@host-2', 'downloading@host-2', 'quantifying@host-2', 'deleting@host-2', 'done@host-2']);
  });

  it('a sample of paths 3 (claim and first stage in one upsert): queued from its start, on the host its claim named', () => {
    const a = recorded('v10-sample-one-first-upsert');
    expect(a.stages.map((s) => `${s.stage}@${s.host}`)).toEqual(['queued@paths-host', 'downloading@paths-host', 'quantifying@paths-host', 'done@paths-host']);
    expect(a.stages[0]!.start <= a.stages[1]!.start).toBe(true);
    expect(a.activities.find((x) => x.activity === 'prepareSample (local)')).toMatchObject({ host: 'paths-host', outcome: 'completed' });
    expect(a.source).toBe('ena');
  });

  it('a sample of paths 4 (quant in the step that verified the reads): quantifying from the moment the step verified them', () => {
    for (const [name, expected] of [
      ['v11-sample-quant-chained', ['queued', 'downloading', 'quantifying', 'done']],
      ['v11-sample-sra-quant-chained', ['queued', 'downloading', 'converting', 'quantifying', 'done']],
    ] as const) {
      const a = recorded(name);
      expect(a.stages.map((s) => `${s.stage}@${s.host}`)).toEqual(expected.map((s) => `${s}@paths-host`));
      const q = a.stages.findIndex((s) => s.stage === 'quantifying');
      // the stage before ended when quantifying began, within the verifying step's span
      expect(a.stages[q - 1]!.end).toBe(a.stages[q]!.start);
      const step = a.activities.at(-2)!;
      expect(a.activities.at(-1)).toMatchObject({ activity: `quant (in ${step.activity})`, outcome: 'completed', host: 'paths-host', startedAt: a.stages[q]!.start, endedAt: step.endedAt });
      expect(a.stages[q]!.start >= step.startedAt!).toBe(true);
      expect(a.stages[q]!.start <= step.endedAt!).toBe(true);
      expect(a.stages[q]!.end! >= a.stages[q]!.start).toBe(true);
    }
  });

  it('reads every attempt of a step Temporal retried from the workers\' attemptFailed signals (recorded history)', () => {
    const a = recorded('v2-sample-failed-attempts');
    const dl = a.activities.find((x) => x.activity === 'download')!;
    expect(dl.attempts.map((x) => [x.attempt, x.outcome, x.host, x.error])).toEqual(
      [1, 2, 3, 4].map((n) => [n, 'failed', 'host-a', `SRR1000003: connection reset by peer (attempt ${n})`]),
    );
    expect(a.outcome).toMatchObject({ state: 'failed', failureType: 'NetworkError' });
  });

  it('writes one TSV row per sample with attempts, restarts, seconds per stage and the error', () => {
    const lines = renderTsv(report.rows).replace(/\n$/, '').split('\n').map((l) => l.split('\t'));
    expect(lines[0]).toEqual([...TSV_COLUMNS]);
    expect(lines).toHaveLength(6);
    for (const l of lines) expect(l).toHaveLength(TSV_COLUMNS.length);
    const row = (run: string) => Object.fromEntries(TSV_COLUMNS.map((c, i) => [c, lines.find((l) => l[0] === run)![i]]));
    expect(row('SRR1100000')).toMatchObject({ species: 'beta_two', final_stage: 'done', host: 'host-a', source: 'ena', bytes: '100', attempts: '1', retries: '0', restarts: '0', error: '' });
    expect(Number(row('SRR1100000').downloading_s)).toBeGreaterThan(0);
    // a host restart is not a retry of the work
    expect(row('SRR1000000')).toMatchObject({ final_stage: 'done', host: 'host-2', restarts: '1', attempts: '1', retries: '0' });
    expect(row('SRR1100005')).toMatchObject({ final_stage: 'failed', error: 'SRR1100005: not found at ENA (204) nor SRA (404)' });
    expect(row('SRR1100009')).toMatchObject({ final_stage: 'failed', attempts: '3', retries: '2', downloading_s: '7.500', error: 'HTTP 503 from mirror' });
  });

  it('lays samples out in lanes per host x slot, with retries and failures marked', () => {
    const hosts = report.lanes.map((l) => `${l.host}#${l.slot}`);
    expect(hosts).toEqual(expect.arrayContaining(['host-1#0', 'host-2#0', 'host-a#0']));
    const marks = report.lanes.flatMap((l) => l.tracks.flatMap((t) => t.marks));
    const retry = marks.find((m) => m.kind === 'retry' && m.run === 'SRR1100009');
    expect(retry?.label).toMatch(/download: attempt 3 after: HTTP 503/);
    expect(marks.filter((m) => m.kind === 'failed-sample').map((m) => m.run).sort()).toEqual(['SRR1100005', 'SRR1100009', 'SRR1100010']);
    expect(marks.some((m) => m.kind === 'failed-attempt' && m.run === 'SRR1000000' && /ScheduleToStart/.test(m.label))).toBe(true);
    expect(report.totals).toMatchObject({ samples: 5, byFinalStage: { done: 2, failed: 3 }, restarts: 1, retries: 4, attempts: 9 });
  });

  it('is one self-contained HTML page: inline SVG, no scripts, no external assets', () => {
    const html = renderHtml(report);
    expect(html).toMatch(/<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(html).not.toMatch(/<script|<link|<img|src=|href=|@import/);
    expect([...html.matchAll(/url\(([^)]*)\)/g)].map((m) => m[1])).toEqual(expect.arrayContaining(['#retry']));
    expect([...html.matchAll(/url\(([^)]*)\)/g)].every((m) => m[1] === '#retry')).toBe(true);
    expect(html).toContain('floor 10 GB');
    // the disk panel's axes: GB ticks and time ticks, and what the line is
    const ticks = [...html.matchAll(/class="disk-tick-label"[^>]*>([^<]+)</g)].map((m) => m[1]);
    expect(ticks).toHaveLength(3 * report.totals.hosts.filter((h) => report.disk.some((d) => d.host === h.host)).length);
    for (let i = 0; i < ticks.length; i += 3) expect(ticks.slice(i, i + 3)).toEqual(['0 GB', expect.stringMatching(/^[\d.]+ [GT]B$/), expect.stringMatching(/^[\d.]+ [GT]B$/)]);
    expect(html).toContain('free minus reserved,</text>');
    expect(html).toContain('SRR1100009');
  });

  it('wraps long errors inside the page (laid out by headless Chromium at 1200 px)', async () => {
    // --dump-dom prints the DOM after scripts ran: the script writes the page's laid-out width into it
    const probe = renderHtml(report).replace('</body>', '<script>document.body.dataset.width = String(document.documentElement.scrollWidth);</script></body>');
    const page = join(dir, 'probe.html');
    writeFileSync(page, probe);
    const args = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'profile-probe')}`, '--window-size=1200,800', '--dump-dom', `file://${page}`];
    const { stdout } = await execa('chromium', args, { timeout: 60_000 });
    const width = Number(/data-width="(\d+)"/.exec(stdout)?.[1]);
    expect(width).toBeGreaterThan(0);
    expect(width).toBeLessThanOrEqual(1200);
  });

  it('renders in headless Chromium to a picture that is not blank and shows the stage colours and retries', async () => {
    const stats = await screenshot(renderHtml(report), dir, 'report');
    expect(stats.colours).toBeGreaterThan(20);
    expect(stats.nonWhiteShare).toBeGreaterThan(0.05);
    expect(pixelsNear(stats, STAGE_COLOURS.downloading!)).toBeGreaterThan(200);
    expect(pixelsNear(stats, STAGE_COLOURS.queued!)).toBeGreaterThan(200);
    expect(pixelsNear(stats, '#d62728', 10)).toBeGreaterThan(20); // retry hatching, failed marks, the floor line
    // the same check on an empty page fails: the assertion above can tell a blank picture
    const blank = await screenshot('<!DOCTYPE html><html><body></body></html>', dir, 'blank');
    expect(blank.nonWhiteShare).toBeLessThan(0.01);
    expect(pixelsNear(blank, STAGE_COLOURS.downloading!)).toBe(0);
  });
});
