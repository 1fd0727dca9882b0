/**
 * docs/architecture.md §2.2: a batch started and steered with the Temporal CLI alone — `fetchquant worker` processes the
 * work, `temporal workflow start --type batchWorkflow --input '{...}'` starts it, `temporal workflow
 * query/result` read it. Real mirror, real tools, real files.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { findTemporalCli } from '../../src/server/temporal-cli.js';
import { CLI, smallMirrorBatchInput, temporalCliBatch, useE2eWorld } from '../helpers/e2e.js';

describe('steering with the Temporal CLI alone', () => {
  const world = useE2eWorld({
    label: 'e2e-tcli',
    prefix: 'tcli',
    data: { species: [{ name: 'Apis mellifera', runs: 3, pairedFraction: 0.5, sraOnlyFraction: 0.34 }], seed: 5 },
  });
  beforeAll(async () => {
    await world.cliWorker('tcli');
  });

  it('temporal workflow start with a JSON input runs a real batch to completion', async () => {
    const value = await temporalCliBatch(world.t, 'fetchquant/b1', smallMirrorBatchInput(world.dataset, world.mirror));
    expect(value.batchId).toBe('b1'); // derived from the workflow id
    expect(value.totals).toEqual({ total: 3, done: 3, skipped: 0, failed: 0 });
    for (const r of world.dataset.species[0]!.runs) {
      expect(existsSync(join(world.dataset.outputDir, 'apis_mellifera', 'quant', r.run, `${r.run}_abundance.tsv`))).toBe(true);
    }
    const q = await execa(findTemporalCli()!, ['workflow', 'describe', '--address', world.t.address, '--namespace', world.t.namespace, '--workflow-id', 'fetchquant/b1/apis_mellifera/' + world.dataset.species[0]!.runs[0]!.run]);
    expect(q.stdout).toMatch(/Completed|COMPLETED/);
  });

  it('fetchquant start prints the batch id, watch follows it to the end (done runs skipped) and exits 0', async () => {
    const env = { TEMPORAL_ADDRESS: world.t.address, TEMPORAL_NAMESPACE: world.t.namespace, TEMPORAL_UI_URL: 'http://127.0.0.1:8233' };
    const flags = ['--config-dir', world.dataset.configDir, '--output-dir', join(world.root, 'out2'), '--ena-portal-url', world.mirror.enaPortalUrl, '--sra-locate-url', world.mirror.sraLocateUrl, '--ena-file-scheme', 'http', '--min-free-gb', '0.1', '--batch-id', 'b2', '--monitor-interval', '0.5'];
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
