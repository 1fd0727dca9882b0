/**
 * docs/architecture.md §2.2: a batch started and steered with the Temporal CLI alone — `fetchquant worker` processes the
 * work, `temporal workflow start --type batchWorkflow --input '{...}'` starts it, `temporal workflow
 * query/result` read it. Real mirror, real tools, real files.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { generateDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { findTemporalCli } from '../../src/server/temporal-cli.js';
import { testTemporal, type TestTemporal } from '../helpers/temporal.js';
import { smallMirrorBatchInput } from '../helpers/e2e.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli.js');

describe('steering with the Temporal CLI alone', () => {
  let t: TestTemporal;
  let dataset: Dataset;
  let mirror: Mirror;
  let worker: ResultPromise;
  const dir = mkdtempSync(join(tmpdir(), 'fq-tcli-'));
  beforeAll(async () => {
    t = await testTemporal('e2e-tcli');
    dataset = await generateDataset({ root: dir, species: [{ name: 'Apis mellifera', runs: 3, pairedFraction: 0.5, sraOnlyFraction: 0.34 }], seed: 5 });
    mirror = await startMirror({ dataset });
    worker = execa('node', [CLI, 'worker', '--host-id', 'tcli'], { env: { TEMPORAL_ADDRESS: t.address, TEMPORAL_NAMESPACE: t.namespace }, reject: false });
    await new Promise<void>((resolve) => worker.stdout!.on('data', (d: Buffer) => d.toString().includes('polling') && resolve()));
  });
  afterAll(async () => {
    worker?.kill('SIGTERM');
    await worker;
    await mirror?.stop();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('temporal workflow start with a JSON input runs a real batch to completion', async () => {
    const temporal = findTemporalCli()!;
    const conn = ['--address', t.address, '--namespace', t.namespace];
    const input = smallMirrorBatchInput(dataset, mirror);
    await execa(temporal, ['workflow', 'start', ...conn, '--type', 'batchWorkflow', '--task-queue', 'fetchquant', '--workflow-id', 'fetchquant/b1', '--input', JSON.stringify(input)]);
    const result = await execa(temporal, ['workflow', 'result', ...conn, '--workflow-id', 'fetchquant/b1', '--output', 'json'], { timeout: 180_000 });
    const parsed = JSON.parse(result.stdout);
    const value = parsed.result ?? parsed;
    expect(value.batchId).toBe('b1'); // derived from the workflow id
    expect(value.totals).toEqual({ total: 3, done: 3, skipped: 0, failed: 0 });
    for (const r of dataset.species[0]!.runs) {
      expect(existsSync(join(dataset.outputDir, 'apis_mellifera', 'quant', r.run, `${r.run}_abundance.tsv`))).toBe(true);
    }
    const q = await execa(temporal, ['workflow', 'describe', ...conn, '--workflow-id', 'fetchquant/b1/apis_mellifera/' + dataset.species[0]!.runs[0]!.run]);
    expect(q.stdout).toMatch(/Completed|COMPLETED/);
  });

  it('fetchquant start prints the batch id, watch follows it to the end (done runs skipped) and exits 0', async () => {
    const env = { TEMPORAL_ADDRESS: t.address, TEMPORAL_NAMESPACE: t.namespace, TEMPORAL_UI_URL: 'http://127.0.0.1:8233' };
    const flags = ['--config-dir', dataset.configDir, '--output-dir', join(dir, 'out2'), '--ena-portal-url', mirror.enaPortalUrl, '--sra-locate-url', mirror.sraLocateUrl, '--ena-file-scheme', 'http', '--min-free-gb', '0.1', '--batch-id', 'b2', '--monitor-interval', '0.5'];
    const started = await execa('node', [CLI, 'start', ...flags], { env, reject: false });
    expect(started.exitCode).toBe(0);
    expect(started.stdout).toMatch(/^fetchquant\/b2 \(run [0-9a-f-]+\)$/m);
    expect(started.stdout).toContain('http://127.0.0.1:8233/namespaces/');
    const watched = await execa('node', [CLI, 'watch', '--batch-id', 'b2', '--every', '0.5'], { env, reject: false, timeout: 180_000 });
    expect(watched.exitCode).toBe(0);
    // the configs fix the quant dir, so the runs quantified by the first batch are skipped (docs/architecture.md §3)
    expect(watched.stdout).toMatch(/batch b2: 0 done, 3 skipped, 0 failed of 3/);
    const status = await execa('node', [CLI, 'status', '--batch-id', 'b2'], { env, reject: false });
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toMatch(/3 skipped/);
  });
});
