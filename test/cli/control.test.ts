/**
 * Live control through the real CLI: a demo batch runs in a child process (one download slot, every file
 * request held by the mirror for a moment so the batch is still running while we steer it), and `threads`,
 * `pause`, `resume`, `status` and `cancel` act on it from other processes.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { batchWorkflowId, defaultBatchId } from '../../src/ids.js';
import { testTemporal, eventually, type TestTemporal } from '../helpers/temporal.js';
import { CLI } from '../helpers/e2e.js';

describe('fetchquant threads / pause / resume / status / cancel on a running batch', () => {
  let t: TestTemporal;
  let dir: string;
  let outputDir: string;
  let demo: ResultPromise;
  const env = () => ({ TEMPORAL_ADDRESS: t.address, TEMPORAL_NAMESPACE: t.namespace, FETCHQUANT_HOST_ID: 'ctlhost' });
  const cli = (args: string[]) => execa(process.execPath, [CLI, ...args, '--output-dir', outputDir], { env: env(), reject: false, timeout: 60_000 });

  beforeAll(async () => {
    t = await testTemporal('cli-control');
    dir = mkdtempSync(join(tmpdir(), 'fq-cli-control-'));
    outputDir = join(dir, 'output'); // where the demo puts its batch: the batch id derives from it
    // Every file request stalls 3 s: twelve samples through one slot take far longer than the steering.
    writeFileSync(join(dir, 'faults.json'), JSON.stringify({ '*': [{ kind: 'stall', afterBytes: 0, ms: 3000 }] }));
    demo = execa(process.execPath, [CLI, 'demo', '--dir', dir, '--total-threads', '1'], { env: { ...env(), FETCHQUANT_DEMO_FAULTS: join(dir, 'faults.json') }, reject: false });
    await eventually(async () => {
      const r = await cli(['status']);
      return r.exitCode === 0 && /total threads 1/.test(r.stdout) && / running /.test(r.stdout);
    }, 90_000, 1000);
  }, 100_000);
  afterAll(async () => {
    if (demo && demo.exitCode === null) demo.kill('SIGKILL');
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('threads 3: the batch answers with the new allocation and status shows total threads 3', async () => {
    const r = await cli(['threads', '3']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^total threads 3: /);
    // three species with runs left: one slot each
    expect(r.stdout).toMatch(/apis_mellifera=1 .*camponotus_floridanus=1 .*drosophila_melanogaster=1/);
    const s = await cli(['status']);
    expect(s.stdout).toMatch(/^batch \S+: \d+\/12 samples finished, \d+ failed, total threads 3$/m);
  });

  it('threads with a bad value is a usage error naming the value', async () => {
    const r = await cli(['threads', 'many']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/threads: expected a whole number >= 1, got "many"/);
  });

  it('pause shows PAUSED in status; resume clears it', async () => {
    const p = await cli(['pause']);
    expect(p.exitCode).toBe(0);
    await eventually(async () => /\(PAUSED\)/.test((await cli(['status'])).stdout), 30_000, 500);
    const r = await cli(['resume']);
    expect(r.exitCode).toBe(0);
    await eventually(async () => {
      const s = await cli(['status']);
      return s.exitCode === 0 && !/\(PAUSED\)/.test(s.stdout) && /total threads 3/.test(s.stdout);
    }, 30_000, 500);
  });

  it('cancel: the batch ends CANCELLED and the demo process exits', async () => {
    const c = await cli(['cancel']);
    expect(c.exitCode).toBe(0);
    expect(c.stdout).toMatch(/cancelling fetchquant\/.*\ncancelled/);
    const desc = await t.client.workflow.getHandle(batchWorkflowId(defaultBatchId(outputDir))).describe();
    expect(desc.status.name).toBe('CANCELLED');
    const d = await demo;
    expect(d.exitCode).not.toBe(0);
    // docs/architecture.md §6: cancel leaves no partial files (cancelled samples delete their reads dir)
    const left = () =>
      ['apis_mellifera', 'camponotus_floridanus', 'drosophila_melanogaster'].flatMap((sp) => {
        const g = join(outputDir, sp, 'fastq', 'getfastq');
        return existsSync(g) ? readdirSync(g).map((r) => `${sp}/${r}`) : [];
      });
    await eventually(async () => left().length === 0, 20_000, 500).catch(() => expect(left()).toEqual([]));
    const s = await cli(['status']);
    expect(s.stdout).toMatch(/CANCELLED/);
    // no sample may have been finished twice or left half-written quant output
    const quantDirs = ['apis_mellifera', 'camponotus_floridanus', 'drosophila_melanogaster'].map((sp) => join(outputDir, sp, 'quant'));
    for (const q of quantDirs) for (const name of existsSync(q) ? readdirSync(q) : []) expect(name).toMatch(/^[SED]RR\d+$/);
  });
});
