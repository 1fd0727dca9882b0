/**
 * The demo path end to end through the real CLI in child processes: real mirror over loopback, real
 * kallisto/fasterq-dump/vdb-validate, real files, the real Temporal server.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Dataset } from '../../src/mirror/fixtures.js';
import { testTemporal, type TestTemporal, eventually } from '../helpers/temporal.js';
import { CLI } from '../helpers/e2e.js';

function countProvenance(dir: string): number {
  if (!existsSync(join(dir, 'dataset.json'))) return 0;
  const ds = JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as Dataset;
  return ds.species.flatMap((s) => s.runs.map((r) => join(ds.outputDir, s.speciesId, 'quant', r.run, `${r.run}_fetchquant.json`))).filter(existsSync).length;
}

function expectOutputs(dataset: Dataset) {
  for (const sp of dataset.species) {
    const quant = join(dataset.outputDir, sp.speciesId, 'quant');
    for (const r of sp.runs) {
      const dir = join(quant, r.run);
      expect(existsSync(join(dir, `${r.run}_abundance.tsv`))).toBe(true);
      const info = JSON.parse(readFileSync(join(dir, `${r.run}_run_info.json`), 'utf8'));
      expect(info.n_processed).toBe(r.reads);
      expect(info.n_pseudoaligned).toBeGreaterThan(0);
      const prov = JSON.parse(readFileSync(join(dir, `${r.run}_fetchquant.json`), 'utf8'));
      expect(prov.run).toBe(r.run);
      expect(prov.source.source).toBe(r.sraOnly ? 'sra' : 'ena');
      expect(prov.reads).toBe(r.reads);
    }
    // no reads left behind
    const getfastq = join(dataset.outputDir, sp.speciesId, 'fastq', 'getfastq');
    expect(existsSync(getfastq) ? readdirSync(getfastq) : []).toEqual([]);
  }
}

describe('fetchquant demo (end to end)', () => {
  let t: TestTemporal;
  const dirs: string[] = [];

  /** `demo` on its own embedded server: wait until `minDone` samples are done, then interrupt it. */
  async function interruptedDemo(hostId: string, signal: 'SIGINT' | 'SIGKILL', minDone: number) {
    const dir = mkdtempSync(join(tmpdir(), `fq-demo-${hostId}-`));
    dirs.push(dir);
    const env = { TEMPORAL_ADDRESS: '', FETCHQUANT_HOST_ID: hostId };
    const first = execa('node', [CLI, 'demo', '--dir', dir, '--total-threads', '2'], { env, reject: false });
    await eventually(async () => countProvenance(dir) >= minDone, 90_000);
    first.kill(signal);
    return { dir, env, first: await first };
  }
  beforeAll(async () => {
    t = await testTemporal('e2e-demo');
  });
  afterAll(async () => {
    await t?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('quantifies every run, deletes the reads, exits 0, and every sample is found by Species', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fq-demo-'));
    dirs.push(dir);
    const r = await execa('node', [CLI, 'demo', '--dir', dir], { env: { TEMPORAL_ADDRESS: t.address, TEMPORAL_NAMESPACE: t.namespace, TEMPORAL_UI_URL: 'http://127.0.0.1:8233' }, reject: false });
    expect(r.stderr).not.toMatch(/Error/);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: expect.any(String) });
    const dataset = JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as Dataset;
    expect(dataset.species).toHaveLength(3);
    expectOutputs(dataset);
    expect(r.stdout).toMatch(/Web UI: http:\/\/127\.0\.0\.1:8233\/namespaces\//);
    for (const sp of dataset.species) {
      for (const run of sp.runs) expect(r.stdout).toMatch(new RegExp(`${run.run}\\s+${sp.speciesId}\\s+done`));
      const found: string[] = [];
      for await (const wf of t.client.workflow.list({ query: `Species = '${sp.speciesId}' AND WorkflowType = 'sampleWorkflow'` })) found.push(wf.workflowId.split('/').pop()!);
      expect(found.sort()).toEqual(sp.runs.map((x) => x.run).sort());
    }
    // a second run finds everything done and skips it
    const again = await execa('node', [CLI, 'demo', '--dir', dir], { env: { TEMPORAL_ADDRESS: t.address, TEMPORAL_NAMESPACE: t.namespace }, reject: false });
    expect({ exit: again.exitCode, stderr: again.stderr }).toEqual({ exit: 0, stderr: expect.any(String) });
    expect(again.stdout).toMatch(/0 done, 12 skipped, 0 failed of 12/);
  }, 240_000);

  it('Ctrl-C stops worker and embedded server gracefully (exit 130); running it again resumes and completes', async () => {
    const { dir, env, first: r1 } = await interruptedDemo('sigint', 'SIGINT', 1);
    expect(r1.exitCode).toBe(130);
    expect(r1.stdout).toMatch(/interrupted: stopping the worker and the server; the batch is kept/);
    const rec = JSON.parse(readFileSync(join(dir, 'output', '.temporal', 'server.json'), 'utf8'));
    expect(() => process.kill(rec.pid, 0)).toThrow(); // the server it started is stopped
    const second = await execa('node', [CLI, 'demo', '--dir', dir], { env, reject: false });
    expect({ exit: second.exitCode, stderr: second.stderr }).toEqual({ exit: 0, stderr: expect.any(String) });
    expect(second.stdout).toMatch(/Temporal dev server started/); // same SQLite file, same batch
    expect(second.stdout).toMatch(/12 done|\d+ done, \d+ skipped, 0 failed of 12/);
    expectOutputs(JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as Dataset);
  }, 300_000);

  it('killed (-9) mid-batch with its embedded server, `demo` again resumes the same batch to completion', async () => {
    // some, not all, samples done: then kill the whole CLI (worker + mirror) hard
    const { dir, env } = await interruptedDemo('crashhost', 'SIGKILL', 2);
    expect(countProvenance(dir)).toBeLessThan(12);
    const serverRecord = JSON.parse(readFileSync(join(dir, 'output', '.temporal', 'server.json'), 'utf8'));
    // the surviving server keeps its state in write-ahead-log mode (DEFAULT_SQLITE_PRAGMAS)
    expect(existsSync(join(dir, 'output', '.temporal', 'temporal.db-wal'))).toBe(true);
    const second = await execa('node', [CLI, 'demo', '--dir', dir], { env, reject: false });
    // on a failure, its stdout (which sample failed and why) and its stderr (an exit 1 with every sample done
    // was seen twice, in sessions 22 and 24) are in the diff
    expect({ exit: second.exitCode, stderr: second.stderr, ...(second.exitCode === 0 ? {} : { stdout: second.stdout, stderrText: second.stderr }) }).toEqual({ exit: 0, stderr: expect.any(String) });
    expect(second.stdout).toMatch(/attached/); // the crashed run's server kept the batch
    const dataset = JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as Dataset;
    expectOutputs(dataset);
    // each sample was quantified by exactly one workflow run of the one batch
    const ids = new Set<string>();
    for (const sp of dataset.species) for (const r of sp.runs) {
      const prov = JSON.parse(readFileSync(join(dataset.outputDir, sp.speciesId, 'quant', r.run, `${r.run}_fetchquant.json`), 'utf8'));
      ids.add(prov.workflowId);
    }
    expect(ids.size).toBe(12);
    // the run that owned the server stopped it at the end
    await eventually(async () => {
      try {
        process.kill(serverRecord.pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 30_000);
  }, 300_000);
});
