// discoverBatch and listRuns as activities, in a real activity context (MockActivityEnvironment).
import { describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDiscoverActivities } from '../../src/activities/discover.js';
import { writeSnapshot } from '../../src/config/discover.js';
import { DEFAULTS, formatProblem, type BatchOptions, type Problem } from '../../src/config/schema.js';
import { abundancePath, provenancePath } from '../../src/ids.js';
import { act, failureOf, quiet } from '../tools/util.js';

const options = (over: Partial<BatchOptions>): BatchOptions => ({ ...DEFAULTS, sources: [...DEFAULTS.sources], ...over });

describe('discover activities', () => {
  it('discoverBatch turns every problem into one non-retryable InvalidInput failure', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'fq-act-'));
    mkdirSync(join(cwd, 'c'));
    writeFileSync(join(cwd, 'c/amalgkit_a_one.yaml'), 'fetchquant: {runs: [SRR1]}\n');
    writeFileSync(join(cwd, 'c/amalgkit_b_two.yaml'), 'steps: {quant: {out_dir: 3}}\nfetchquant: {runs: [SRR000002]}\n');
    const acts = createDiscoverActivities({ cwd });
    const f = await failureOf(act(quiet(), acts.discoverBatch, { options: options({ configDir: 'c' }), batchId: 'b1' }));
    expect(f.type).toBe('InvalidInput');
    expect(f.nonRetryable).toBe(true);
    const problems = f.details?.[0] as Problem[];
    expect(problems.map((p) => `${p.where.slice(cwd.length)} ${p.field}`)).toEqual(['/c/amalgkit_a_one.yaml fetchquant.runs[0]', '/c/amalgkit_b_two.yaml steps.quant.out_dir']);
    for (const p of problems) expect(f.message).toContain(formatProblem(p));
  });

  it('discoverBatch returns the plan when configs are valid', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'fq-act-'));
    mkdirSync(join(cwd, 'c'));
    writeFileSync(join(cwd, 'c/amalgkit_a_one.yaml'), 'fetchquant: {runs: [SRR000001, SRR000002]}\n');
    const acts = createDiscoverActivities({ cwd });
    const plan = await act(quiet(), acts.discoverBatch, { options: options({ configDir: 'c', outputDir: 'o' }), batchId: 'b1' });
    expect(plan.species.map((s) => [s.speciesId, s.totalRuns, s.runListPath])).toEqual([['a_one', 2, join(cwd, 'o/.fetchquant/b1/a_one.runs.tsv')]]);
  });

  it('listRuns pages the snapshot, returns done runs in skipped, and ends with a null cursor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fq-act-'));
    const snap = join(dir, 'x.runs.tsv');
    const quant = join(dir, 'quant');
    await writeSnapshot(snap, [
      { run: 'SRR000001', layout: 'paired', nominalLength: 300, spots: 10 },
      { run: 'SRR000002' },
      { run: 'SRR000003', layout: 'single' },
      { run: 'SRR000004' },
      { run: 'SRR000005' },
    ]);
    for (const p of [abundancePath(quant, 'SRR000002'), provenancePath(quant, 'SRR000002'), abundancePath(quant, 'SRR000004')]) {
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, 'x');
    }
    const { listRuns } = createDiscoverActivities({ cwd: dir });
    const env = quiet();
    const p1 = await act(env, listRuns, { runListPath: snap, quantDir: quant, cursor: 0, limit: 2 });
    expect(p1).toEqual({ runs: [{ run: 'SRR000001', layout: 'paired', nominalLength: 300, spots: 10 }], skipped: ['SRR000002'], nextCursor: 2 });
    const p2 = await act(env, listRuns, { runListPath: snap, quantDir: quant, cursor: 2, limit: 2 });
    // SRR000004 has an abundance but no provenance: not done, so it is listed to run again.
    expect(p2).toEqual({ runs: [{ run: 'SRR000003', layout: 'single' }, { run: 'SRR000004' }], skipped: [], nextCursor: 4 });
    const p3 = await act(env, listRuns, { runListPath: snap, quantDir: quant, cursor: 4, limit: 2 });
    expect(p3).toEqual({ runs: [{ run: 'SRR000005' }], skipped: [], nextCursor: null });
    const past = await act(env, listRuns, { runListPath: snap, quantDir: quant, cursor: 9, limit: 2 });
    expect(past).toEqual({ runs: [], skipped: [], nextCursor: null });

    // A rewritten snapshot is read again, not served from the cache.
    await writeSnapshot(snap, [{ run: 'ERR000009' }]);
    expect((await act(env, listRuns, { runListPath: snap, quantDir: quant, cursor: 0, limit: 5 })).runs).toEqual([{ run: 'ERR000009' }]);

    rmSync(snap);
    const gone = await failureOf(act(env, listRuns, { runListPath: snap, quantDir: quant, cursor: 0, limit: 5 }));
    expect(gone.type).toBe('InvalidInput');
    expect(gone.message).toContain(snap);
  });

  it('listRuns refuses a snapshot holding something that is not a run accession', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fq-act-'));
    const snap = join(dir, 'x.runs.tsv');
    writeFileSync(snap, 'run\tlayout\tnominal_length\tspots\nSRR000001\t\t\t\n../../etc\t\t\t\n');
    const { listRuns } = createDiscoverActivities({ cwd: dir });
    const f = await failureOf(act(quiet(), listRuns, { runListPath: snap, quantDir: dir, cursor: 0, limit: 5 }));
    expect(f).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect(f.message).toContain('line 3: invalid run accession "../../etc"');
  });
});
