/**
 * `history` and `report` through the real CLI against a real demo batch: the mirror fails one run's
 * downloads long enough that Temporal retries the activity (attempt 2 succeeds) and another run's for good.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { DEMO_SPECIES } from '../../src/cli/demo.js';
import { TSV_COLUMNS } from '../../src/report/tsv.js';
import { testTemporal, type TestTemporal } from '../helpers/temporal.js';
import { CLI } from '../helpers/e2e.js';

const HOST = 'clihost';

describe('fetchquant history and report (real demo batch)', () => {
  let t: TestTemporal;
  let dir: string;
  let dataset: Dataset;
  let retried: string;
  let failing: string;
  let demo: { exitCode?: number; stdout: string; stderr: string };
  const cli = (args: string[], env: Record<string, string> = {}, timeout = 110_000) =>
    execa(process.execPath, [CLI, ...args], { env: { TEMPORAL_ADDRESS: t.address, TEMPORAL_NAMESPACE: t.namespace, FETCHQUANT_HOST_ID: HOST, ...env }, reject: false, timeout });

  beforeAll(async () => {
    t = await testTemporal('cli-history');
    dir = mkdtempSync(join(tmpdir(), 'fq-cli-history-'));
    // The demo reuses a dataset already in its dir, so the test knows the accessions before it starts.
    dataset = await generateDataset({ root: dir, species: DEMO_SPECIES, seed: 42 });
    const ena = dataset.species.flatMap((s) => s.runs).filter((r) => !r.sraOnly);
    retried = ena[0]!.run;
    failing = ena[1]!.run;
    // The downloader retries a few times inside one attempt; 5 failures exhaust the first activity attempt
    // so Temporal retries it, and the second attempt gets through.
    const faults = { [retried]: [{ kind: 'status', status: 503, times: 5 }], [failing]: [{ kind: 'status', status: 500 }] };
    writeFileSync(join(dir, 'faults.json'), JSON.stringify(faults));
    // 100 s, inside the hook's 115 s: a demo that hangs ends here, and the tests below show what it printed
    demo = await cli(['demo', '--dir', dir, '--max-retries', '1'], { FETCHQUANT_DEMO_FAULTS: join(dir, 'faults.json') }, 100_000);
    if (demo.exitCode !== 1) {
      // The directory goes in afterAll: say what the run logged (a full suite once saw the demo stopped at 100 s
      // with the retried run's second download unfinished; alone it takes ~25 s).
      const logs = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /fetchquant-run[^/]*\.log$/.test(f));
      for (const f of logs) process.stderr.write(`demo exit ${demo.exitCode}; the last of ${f}:\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-80).join('\n')}\n`);
    }
  }, 115_000);
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the demo batch ends with the one failed sample (exit 1)', () => {
    expect(demo.stdout).toMatch(/11 done, 0 skipped, 1 failed of 12/);
    expect(demo.exitCode).toBe(1);
  });

  it('prints a short terminal: progress, one line per retry or failure, the summary; SDK logs to a named file', () => {
    expect(demo.stderr).toBe('');
    const lines = demo.stdout.replace(/\n$/, '').split('\n');
    // every line is one a person asked for (the demo's own lines included)
    const known = [
      /^demo dataset: /,
      /^local archive mirror: /,
      /^batch fetchquant\/\S+ running/,
      /^batch \S+: \d+\/12 samples finished, \d+ failed, total threads \d+$/,
      /^[a-z_]+ \d+\/4 (indexing|running|done|pending) threads /,
      /^retry {3}SRR\d+ {2}\w+ {2}attempt \d+ of 2 failed on clihost: /,
      /^FAILED {2}SRR\d+ {2}\w+ {2}\[\w+\] /,
      /^batch \S+: 11 done, 0 skipped, 1 failed of 12$/,
      /^ {2}[a-z_]+: \d+ done, \d+ skipped, \d+ failed$/,
      /^failures:$/,
      /^ {2}[a-z_]+ SRR\d+: \[\w+\] /,
      /^ {2}SRR\d+ {2}[a-z_]+ {2}(done|failed) {2}host clihost/,
      /^log: \//,
      /^outputs: /,
    ];
    expect(lines.filter((l) => !known.some((k) => k.test(l)))).toEqual([]);
    expect(lines.filter((l) => /0\/0 samples/.test(l))).toEqual([]);
    // the problems: the retried run's first attempt, the failing run's first attempt and its failure
    expect(lines.filter((l) => /^(retry|FAILED)/.test(l)).map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual(
      expect.arrayContaining([`retry ${retried} download`, `retry ${failing} download`, `FAILED ${failing} download`]),
    );
    expect(lines.filter((l) => /^FAILED/.test(l))).toHaveLength(1);
    expect(lines.filter((l) => /^retry/.test(l))).toHaveLength(2);
    // 12 samples: a few progress snapshots (4 lines each) and the rest are fixed
    expect(lines.length).toBeLessThan(100);
    const log = lines.find((l) => l.startsWith('log: '))!.slice(5);
    expect(log).toMatch(new RegExp(`^${dataset.outputDir}/logs/fetchquant-run-\\d{8}T\\d{6}Z-\\d+\\.log$`));
    const text = readFileSync(log, 'utf8');
    expect(text).toMatch(/\[WARN\] Activity failed \{[\s\S]*?activityType: 'download'[\s\S]*?ApplicationFailure: GET http/);
    expect(text).toMatch(/No workflows registered, not polling for workflow tasks/);
    expect(text).toContain(`FAILED  ${failing}  download`);
    // where start-up time went, in order, with the CPU spent before the batch started
    const startup = text.split('\n').find((l) => l.includes('start-up (since the process started)'));
    expect(startup).toMatch(/cli loaded [\d.]+ s, server session [\d.]+ s, native connection [\d.]+ s, dead attempts reclaimed [\d.]+ s, activities loaded [\d.]+ s, workflow worker created.* [\d.]+ s, host worker created [\d.]+ s, janitor started [\d.]+ s, worker running [\d.]+ s, batch started [\d.]+ s; CPU so far [\d.]+ s$/);
    // and what inflates the downloads (npm run setup installs igzip)
    expect(text).toMatch(/downloads kept plain are inflated by \/\S+\/igzip/);
  });

  it('history of a completed sample lists its activities with host and attempt', async () => {
    const done = dataset.species.flatMap((s) => s.runs).find((r) => r.run !== retried && r.run !== failing && !r.sraOnly)!.run;
    const r = await cli(['history', done]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`fetchquant/.*/${done}\\s+COMPLETED\\s+stage=done\\s+host=${HOST}`));
    // claimHost is a local activity (a marker, not listed); the short host steps are folded into prepareSample and publish;
    // the download checks the reads it wrote, so a clean sample has no verifyReads (VERIFIED_IN_STEP)
    // ... and the quant step publishes: no publish round trip
    expect(r.stdout).not.toMatch(/\bpublish\b/);
    // prepareSample runs as a local activity (src/workflows/sample.ts PREPARE_LOCALLY_PATHS): the history has its marker;
    // the download quantifies the reads it verified (CHAIN_QUANT_PATHS), listed as its own line
    for (const act of ['prepareSample \\(local\\)', 'download', 'quant \\(in download\\)']) {
      expect(r.stdout).toMatch(new RegExp(`${act}\\s+attempt 1\\s+host ${HOST}\\s+completed`));
    }
    expect(r.stdout).not.toMatch(/verifyReads/);
    expect(r.stdout).toMatch(new RegExp(`stages: queued@${HOST} .*downloading@${HOST} .*quantifying@${HOST} .*done@${HOST}`));
  });

  it('history of a retried sample shows attempt 2 and the error of attempt 1', async () => {
    const r = await cli(['history', retried]);
    expect(r.exitCode).toBe(0);
    // every attempt with its host and error: the sample retries a step as a new activity (one attempt each)
    const downloads = (text: string) => text.split('\n').filter((l) => /^\s+\S+\s+download\s+attempt/.test(l));
    expect(downloads(r.stdout).map((l) => /host (\S+)\s+(\w+)/.exec(l)!.slice(1).join(' '))).toEqual([`${HOST} failed`, `${HOST} completed`]);
    expect(downloads(r.stdout)[0]).toMatch(/error: .*HTTP 503/);
    const failed = await cli(['history', failing]);
    expect(failed.stdout).toMatch(/stage=failed/);
    expect(downloads(failed.stdout)).toHaveLength(2);
    for (const l of downloads(failed.stdout)) expect(l).toMatch(new RegExp(`host ${HOST}\\s+failed .*error: .*${failing}.*HTTP 500`));
  });

  it('report writes the TSV and the HTML timeline of the batch into <output-dir>/reports', async () => {
    const r = await cli(['report', '--output-dir', dataset.outputDir]);
    expect(r.exitCode).toBe(0);
    const [tsvPath, htmlPath] = r.stdout.trim().split('\n');
    expect(tsvPath).toMatch(new RegExp(`^${dataset.outputDir}/reports/fetchquant-report-[a-z0-9._-]+\\.tsv$`));
    expect(htmlPath).toBe(tsvPath!.replace(/\.tsv$/, '.html'));
    const lines = readFileSync(tsvPath!, 'utf8').replace(/\n$/, '').split('\n').map((l) => l.split('\t'));
    expect(lines[0]).toEqual([...TSV_COLUMNS]);
    const rows = new Map(lines.slice(1).map((l) => [l[0]!, Object.fromEntries(TSV_COLUMNS.map((c, i) => [c, l[i]!]))]));
    expect([...rows.keys()].sort()).toEqual(dataset.species.flatMap((s) => s.runs.map((x) => x.run)).sort());
    for (const sp of dataset.species) {
      for (const run of sp.runs) {
        const row = rows.get(run.run)!;
        expect(row).toMatchObject({ species: sp.speciesId, host: HOST, final_stage: run.run === failing ? 'failed' : 'done', source: run.sraOnly ? 'sra' : 'ena' });
        if (run.run !== failing) expect(Number(row.bytes)).toBeGreaterThan(0);
        if (run.sraOnly && run.run !== failing) expect(Number(row.converting_s)).toBeGreaterThan(0);
        expect(Number(row.downloading_s)).toBeGreaterThan(0);
      }
    }
    const ok = rows.get(dataset.species[2]!.runs[3]!.run)!;
    // attempts count tries of the work, not steps: a clean sample is 1, the retried one 2
    expect([ok.attempts, ok.retries, rows.get(retried)!.attempts, rows.get(retried)!.retries]).toEqual(['1', '0', '2', '1']);
    expect(rows.get(failing)!.error).toMatch(/HTTP 500/);
    const html = readFileSync(htmlPath!, 'utf8');
    expect(html).toMatch(/<svg /);
    expect(html).toContain(`${HOST}</text>`);
    expect(html).toMatch(/class="mark retry"/);
    expect(html).toMatch(/class="mark failed-sample"/);
    expect(existsSync(join(dataset.outputDir, 'reports'))).toBe(true);
  });

  it('report --out-dir writes there; report of a batch that does not exist exits 2', async () => {
    const out = join(dir, 'elsewhere');
    const r = await cli(['report', '--output-dir', dataset.outputDir, '--out-dir', out]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`${out}/fetchquant-report-`);
    const missing = await cli(['report', '--batch-id', 'no-such-batch']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/no batch fetchquant\/no-such-batch in namespace cli-history-/);
  });
});
