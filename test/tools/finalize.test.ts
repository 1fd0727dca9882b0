// finalize (atomic, idempotent) and deleteReads (never outside getfastq/<RUN>, releases the ledger).
import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLedger } from '../../src/activities/disk.js';
import { createQuantActivities } from '../../src/activities/quant.js';
import { runQuantTmpDir } from '../../src/ids.js';
import type { Provenance } from '../../src/types.js';
import { act, cleanTempDirs, failureOf, quiet, tempDir } from './util.js';

afterAll(cleanTempDirs);

function provenance(run: string, note: string): Provenance {
  return {
    run, species: 'Synthetica alpha',
    source: { source: 'ena', run, layout: 'single', files: [], expectedReads: 10, reserveBytes: 100 },
    files: [], reads: 10,
    quant: { nProcessed: 10, nPseudoaligned: 9, pPseudoaligned: 90, kallistoVersion: '0.48.0', command: ['kallisto', 'quant'] },
    host: 'h1', stages: [], restarts: 0, workflowId: `fetchquant/b/s/${run}`, runId: note, tools: { kallisto: '0.48.0' },
    finishedAt: '2026-01-01T00:00:00.000Z',
  };
}

function quantTmp(quantDir: string, run: string, content: string): string {
  const tmp = runQuantTmpDir(quantDir, run);
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, `${run}_abundance.tsv`), content);
  writeFileSync(join(tmp, `${run}_run_info.json`), '{}');
  return tmp;
}

describe('finalize', () => {
  const { finalize } = createQuantActivities({});

  it('writes the provenance and renames the temp dir into place', async () => {
    const quantDir = tempDir();
    const run = 'SRR7400001';
    const tmpDir = quantTmp(quantDir, run, 'first');
    const r = await act(quiet(), finalize, { run, quantDir, tmpDir, provenance: provenance(run, 'a') });
    expect(r).toEqual({ dir: join(quantDir, run) });
    expect(readdirSync(quantDir)).toEqual([run]);
    expect(readdirSync(r.dir).sort()).toEqual([`${run}_abundance.tsv`, `${run}_fetchquant.json`, `${run}_run_info.json`]);
    expect(JSON.parse(readFileSync(join(r.dir, `${run}_fetchquant.json`), 'utf8'))).toEqual(provenance(run, 'a'));
  });

  it('is idempotent: a retry after the rename keeps the published result and drops the new temp dir', async () => {
    const quantDir = tempDir();
    const run = 'SRR7400002';
    await act(quiet(), finalize, { run, quantDir, tmpDir: quantTmp(quantDir, run, 'first'), provenance: provenance(run, 'a') });
    const again = await act(quiet(), finalize, { run, quantDir, tmpDir: quantTmp(quantDir, run, 'second'), provenance: provenance(run, 'b') });
    expect(again.dir).toBe(join(quantDir, run));
    expect(readdirSync(quantDir)).toEqual([run]);
    expect(readFileSync(join(quantDir, run, `${run}_abundance.tsv`), 'utf8')).toBe('first');
    // Also when the temp dir is already gone (the retry of a finalize whose reply was lost).
    await act(quiet(), finalize, { run, quantDir, tmpDir: runQuantTmpDir(quantDir, run), provenance: provenance(run, 'c') });
    expect((JSON.parse(readFileSync(join(quantDir, run, `${run}_fetchquant.json`), 'utf8')) as Provenance).runId).toBe('a');
  });

  it('replaces a not-done leftover dir (abundance without provenance)', async () => {
    const quantDir = tempDir();
    const run = 'SRR7400003';
    mkdirSync(join(quantDir, run));
    writeFileSync(join(quantDir, run, `${run}_abundance.tsv`), 'old partial');
    writeFileSync(join(quantDir, run, 'junk'), '');
    await act(quiet(), finalize, { run, quantDir, tmpDir: quantTmp(quantDir, run, 'new'), provenance: provenance(run, 'a') });
    expect(readdirSync(join(quantDir, run)).sort()).toEqual([`${run}_abundance.tsv`, `${run}_fetchquant.json`, `${run}_run_info.json`]);
    expect(readFileSync(join(quantDir, run, `${run}_abundance.tsv`), 'utf8')).toBe('new');
  });

  it('refuses a foreign temp dir, and fails (retryably) when quant outputs are missing', async () => {
    const quantDir = tempDir();
    const run = 'SRR7400004';
    const bad = await failureOf(act(quiet(), finalize, { run, quantDir, tmpDir: '/etc', provenance: provenance(run, 'a') }));
    expect([bad.type, bad.nonRetryable]).toEqual(['InvalidInput', true]);
    const missing = await failureOf(act(quiet(), finalize, { run, quantDir, tmpDir: runQuantTmpDir(quantDir, run), provenance: provenance(run, 'a') }));
    expect([missing.type, missing.nonRetryable]).toEqual(['QuantInvalid', false]);
    expect(missing.message).toBe(`run ${run}: ${join(runQuantTmpDir(quantDir, run), `${run}_abundance.tsv`)} is missing; quant has to run again`);
    expect(existsSync(join(quantDir, run))).toBe(false);
  });
});

describe('deleteReads', () => {
  it('removes <readsDir>/getfastq/<RUN>, returns the bytes, releases the reservation, and repeats safely', async () => {
    const ledger = new DiskLedger();
    const { deleteReads } = createQuantActivities({ ledger });
    const readsDir = tempDir();
    const run = 'SRR7500001';
    const runDir = join(readsDir, 'getfastq', run);
    mkdirSync(join(runDir, 'tmp'), { recursive: true });
    writeFileSync(join(runDir, `${run}_1.fastq.gz`), Buffer.alloc(1000));
    writeFileSync(join(runDir, 'tmp', 'x'), Buffer.alloc(24));
    mkdirSync(join(readsDir, 'getfastq', 'SRR7500002'));
    ledger.reserve(run, readsDir, 5000, 0, 1e12);
    expect(await act(quiet(), deleteReads, { run, runDir })).toEqual({ removedBytes: 1024 });
    expect(readdirSync(join(readsDir, 'getfastq'))).toEqual(['SRR7500002']);
    expect(ledger.inFlight()).toEqual([]);
    expect(await act(quiet(), deleteReads, { run, runDir: `${runDir}/` })).toEqual({ removedBytes: 0 });
  });

  it('with quantDir, also drops the unpublished .<RUN>.tmp of a sample ending before finalize, never a published result', async () => {
    const { deleteReads } = createQuantActivities({});
    const readsDir = tempDir();
    const quantDir = tempDir();
    const run = 'SRR7500003';
    mkdirSync(join(readsDir, 'getfastq', run), { recursive: true });
    quantTmp(quantDir, run, 'half-written');
    mkdirSync(join(quantDir, 'SRR7500004'));
    writeFileSync(join(quantDir, 'SRR7500004', 'SRR7500004_abundance.tsv'), 'published');
    await act(quiet(), deleteReads, { run, runDir: join(readsDir, 'getfastq', run), quantDir });
    expect(existsSync(runQuantTmpDir(quantDir, run))).toBe(false);
    expect(readdirSync(quantDir)).toEqual(['SRR7500004']);
    const f = await failureOf(act(quiet(), deleteReads, { run, runDir: join(readsDir, 'getfastq', run), quantDir: 'relative/quant' }));
    expect(f.type).toBe('InvalidInput');
  });

  it('refuses any path that is not the run\'s own getfastq dir', async () => {
    const { deleteReads } = createQuantActivities({});
    const base = tempDir();
    mkdirSync(join(base, 'getfastq', 'SRR7500002'), { recursive: true });
    for (const runDir of [base, join(base, 'SRR7500001'), join(base, 'getfastq', 'SRR7500002'), join(base, 'getfastq', 'SRR7500001', '..', 'SRR7500002'), 'getfastq/SRR7500001']) {
      const f = await failureOf(act(quiet(), deleteReads, { run: 'SRR7500001', runDir }));
      expect([f.type, f.nonRetryable]).toEqual(['InvalidInput', true]);
    }
    const evil = await failureOf(act(quiet(), deleteReads, { run: '../../etc', runDir: '/x/getfastq/../../etc' }));
    expect(evil.message).toMatch(/invalid run accession/);
    expect(readdirSync(join(base, 'getfastq'))).toEqual(['SRR7500002']);
  });
});
