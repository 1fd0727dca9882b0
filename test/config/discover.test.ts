// Discovery against real files, and ENA search through the real client against a real local HTTP server.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { discoverBatch, startOrderNote } from '../../src/config/discover.js';
import { DEFAULTS, InvalidInputError, type BatchOptions } from '../../src/config/schema.js';
import { abundancePath, provenancePath } from '../../src/ids.js';
import { searchRunsByTaxon } from '../../src/tools/ena.js';
import { HttpClient } from '../../src/tools/http.js';

function opts(over: Partial<BatchOptions>): BatchOptions {
  return { ...DEFAULTS, sources: [...DEFAULTS.sources], ...over };
}

function setup(files: Record<string, string>): { cwd: string; out: string } {
  const cwd = mkdtempSync(join(tmpdir(), 'fq-discover-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(cwd, rel, '..'), { recursive: true });
    writeFileSync(join(cwd, rel), text);
  }
  return { cwd, out: join(cwd, 'out') };
}

async function problemsOf(p: Promise<unknown>): Promise<string[]> {
  try {
    await p;
  } catch (err) {
    if (err instanceof InvalidInputError) return err.problems.map((x) => `${x.field}: ${x.message}`);
    throw err;
  }
  throw new Error('expected InvalidInputError');
}

// A small ENA portal: /search answers from `taxa`, recording every query it is asked.
const taxa = new Map<string, { status: number; body: string }>();
const asked: string[] = [];
let server: Server;
let portalUrl: string;
const http = new HttpClient({ retries: 0, backoffBaseMs: 1, requestsPerSec: 1000 });
const search = (o: { portalUrl: string; taxonId: number }) => searchRunsByTaxon({ ...o, http });

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = url.searchParams.get('query') ?? '';
    asked.push(`${url.pathname} ${query}`);
    const taxon = /tax_eq\((\d+)\)/.exec(query)?.[1] ?? '';
    const a = taxa.get(taxon) ?? { status: 200, body: 'run_accession\tlibrary_layout\n' };
    res.writeHead(a.status, { 'content-type': 'text/plain' }).end(a.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  portalUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ena/portal/api`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe('discoverBatch', () => {
  it('writes each species snapshot atomically and counts runs already done', async () => {
    const { cwd, out } = setup({
      'cfg/amalgkit_apis_mellifera.yaml': 'species_list: [Apis_mellifera]\nsteps: {getfastq: {metadata: runs.tsv}}\n',
      'runs.tsv': 'run\tlib_layout\tnominal_length\ttotal_spots\nSRR000001\tpaired\t300\t1000\nSRR000002\tsingle\t\t\nSRR000003\t\t\t5\n',
    });
    const quant = join(out, 'apis_mellifera', 'quant');
    // SRR000001 is done; SRR000002 has an abundance but no provenance: not done (a crash before finalize).
    for (const p of [abundancePath(quant, 'SRR000001'), provenancePath(quant, 'SRR000001'), abundancePath(quant, 'SRR000002')]) {
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, 'x');
    }
    const plan = await discoverBatch(opts({ configDir: 'cfg', outputDir: 'out' }), 'b1', cwd);
    const s = plan.species[0];
    expect(plan.species).toHaveLength(1);
    expect(s?.runListPath).toBe(join(out, '.fetchquant', 'b1', 'apis_mellifera.runs.tsv'));
    // largest first (--start-order largest): SRR000003's 5 spots before SRR000002, whose size is not known
    expect(readFileSync(s?.runListPath as string, 'utf8')).toBe(
      'run\tlayout\tnominal_length\tspots\nSRR000001\tpaired\t300\t1000\nSRR000003\t\t\t5\nSRR000002\tsingle\t\t\n',
    );
    expect(readdirSync(join(out, '.fetchquant', 'b1'))).toEqual(['apis_mellifera.runs.tsv']);
    expect(s).toMatchObject({ totalRuns: 3, doneRuns: 1, quantDir: quant, configPath: join(cwd, 'cfg', 'amalgkit_apis_mellifera.yaml') });
  });

  it('starts the largest runs first: by total_bases when every run has it, else total_spots x mates; --start-order table keeps the order', async () => {
    // amalgkit metadata columns (total_bases as pandas writes a large float); SRR000002 has the most spots but
    // the shortest reads, SRR000003 is paired: bases decide
    const table =
      'run\tlib_layout\ttotal_spots\ttotal_bases\n' +
      'SRR000001\tsingle\t1000\t50000\n' +
      'SRR000002\tsingle\t3000\t1.5e+05\n' +
      'SRR000003\tpaired\t2000\t600000.0\n' +
      'SRR000004\tsingle\t1000\t50000\n';
    const { cwd, out } = setup({ 'cfg/amalgkit_apis_mellifera.yaml': 'species_list: [Apis_mellifera]\nsteps: {getfastq: {metadata: runs.tsv}}\n', 'runs.tsv': table });
    const order = (path: string) => readFileSync(path, 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t')[0]);
    const seen: string[][] = [];
    const plan = await discoverBatch(opts({ configDir: 'cfg', outputDir: 'out' }), 'b1', cwd, { onRuns: (_id, runs) => void seen.push(runs.map((r) => r.run)) });
    // equal sizes keep the table's order (SRR000001 before SRR000004)
    expect(order(plan.species[0]!.runListPath)).toEqual(['SRR000003', 'SRR000002', 'SRR000001', 'SRR000004']);
    expect(plan.notes).toContain("runs start largest first (by total_bases, else total_spots x mates; --start-order table keeps the run tables' order): apis_mellifera");
    // what `run`'s plan summary asks, in the order the runs start (src/cli/plan.ts)
    expect(seen).toEqual([['SRR000003', 'SRR000002', 'SRR000001', 'SRR000004']]);
    // the snapshot keeps its columns (bases only order the starts)
    expect(readFileSync(plan.species[0]!.runListPath, 'utf8').split('\n')[0]).toBe('run\tlayout\tnominal_length\tspots');

    // one run without total_bases: spots x mates for all (SRR000003 paired: 4000 > SRR000002's 3000)
    writeFileSync(join(cwd, 'runs.tsv'), table.replace('SRR000002\tsingle\t3000\t1.5e+05', 'SRR000002\tsingle\t3000\tNaN'));
    const bySpots = await discoverBatch(opts({ configDir: 'cfg', outputDir: 'out' }), 'b2', cwd);
    expect(order(bySpots.species[0]!.runListPath)).toEqual(['SRR000003', 'SRR000002', 'SRR000001', 'SRR000004']);
    expect(bySpots.notes).toContain("runs start largest first (by total_bases, else total_spots x mates; --start-order table keeps the run tables' order): apis_mellifera (by total_spots x mates)");
    writeFileSync(join(cwd, 'runs.tsv'), table.replace('SRR000003\tpaired\t2000', 'SRR000003\tsingle\t2000').replace('SRR000002\tsingle\t3000\t1.5e+05', 'SRR000002\tsingle\t3000\t'));
    const bySpots2 = await discoverBatch(opts({ configDir: 'cfg', outputDir: 'out' }), 'b3', cwd);
    expect(order(bySpots2.species[0]!.runListPath)).toEqual(['SRR000002', 'SRR000003', 'SRR000001', 'SRR000004']);

    const asTable = await discoverBatch(opts({ configDir: 'cfg', outputDir: 'out', startOrder: 'table' }), 'b4', cwd);
    expect(order(asTable.species[0]!.runListPath)).toEqual(['SRR000001', 'SRR000002', 'SRR000003', 'SRR000004']);
    expect(asTable.notes.filter((n) => n.includes('largest first'))).toEqual([]);
    expect(out).toBe(join(cwd, 'out'));
  });

  it('says which species start largest first in one line, naming five at most', () => {
    const ids = ['a', 'b (by total_spots x mates)', 'c', 'd', 'e', 'f', 'g'];
    expect(startOrderNote(ids.slice(0, 5))).toBe("runs start largest first (by total_bases, else total_spots x mates; --start-order table keeps the run tables' order): a, b (by total_spots x mates), c, d, e");
    expect(startOrderNote(ids)).toMatch(/: a, b \(by total_spots x mates\), c, d, e and 2 more$/);
  });

  it("moves results of the old layout (<steps.quant.out_dir>/<RUN>) into amalgkit's (<out_dir>/quant/<RUN>), with a line saying so", async () => {
    const { cwd } = setup({
      'c/amalgkit_apis_mellifera.yaml': 'species_list: [Apis_mellifera]\nsteps: {quant: {out_dir: work}}\nfetchquant: {runs: [SRR000001, SRR000002, SRR000003]}\n',
      // SRR000001 finished by an older release; SRR000002 only half (no provenance): not done, left alone
      'work/SRR000001/SRR000001_abundance.tsv': 'target_id\tlength\teff_length\test_counts\ttpm\n',
      'work/SRR000001/SRR000001_run_info.json': '{}',
      'work/SRR000001/SRR000001_fetchquant.json': '{}',
      'work/SRR000002/SRR000002_abundance.tsv': 'x',
    });
    const plan = await discoverBatch(opts({ configDir: 'c', outputDir: 'out' }), 'b1', cwd);
    expect(plan.notes).toContain(`apis_mellifera: moved 1 finished result(s) from ${join(cwd, 'work')}/<RUN> to ${join(cwd, 'work', 'quant')}/<RUN> (amalgkit's layout)`);
    expect(readdirSync(join(cwd, 'work', 'quant', 'SRR000001')).sort()).toEqual(['SRR000001_abundance.tsv', 'SRR000001_fetchquant.json', 'SRR000001_run_info.json']);
    expect(readdirSync(join(cwd, 'work')).sort()).toEqual(['SRR000002', 'quant']);
    // recognised as done: no download again
    expect(plan.species[0]).toMatchObject({ quantDir: join(cwd, 'work', 'quant'), totalRuns: 3, doneRuns: 1 });
  });

  it("writes amalgkit's sample table where merge and sanity look, and never replaces a table fetchquant did not write", async () => {
    const { cwd } = setup({
      'c/amalgkit_apis_mellifera.yaml': 'species_list: [Apis_mellifera]\nsteps: {quant: {out_dir: a}}\nfetchquant: {runs: [SRR000001]}\n',
      'c/amalgkit_bombus_terrestris.yaml': 'species_list: [Bombus_terrestris]\nsteps: {quant: {out_dir: b}}\nfetchquant: {runs: [SRR000002]}\n',
      'b/metadata/metadata.tsv': 'run\tscientific_name\texclusion\tmy_own_column\nSRR000002\tBombus terrestris\tno\tkeep me\n',
    });
    const plan = await discoverBatch(opts({ configDir: 'c', outputDir: 'out' }), 'b1', cwd, { amalgkitTables: true });
    expect(readFileSync(join(cwd, 'a', 'metadata', 'metadata.tsv'), 'utf8')).toBe(
      'run\tscientific_name\tlib_layout\tnominal_length\ttotal_spots\texclusion\tis_sampled\nSRR000001\tApis mellifera\t\t\t\tno\tyes\n',
    );
    expect(readFileSync(join(cwd, 'b', 'metadata', 'metadata.tsv'), 'utf8')).toContain('keep me');
    expect(plan.notes).toContain(`bombus_terrestris: kept the existing ${join(cwd, 'b', 'metadata', 'metadata.tsv')} (not written by fetchquant); amalgkit merge reads its runs from it`);
    // a later batch with more runs updates fetchquant's own table
    writeFileSync(join(cwd, 'c', 'amalgkit_apis_mellifera.yaml'), 'species_list: [Apis_mellifera]\nsteps: {quant: {out_dir: a}}\nfetchquant: {runs: [SRR000001, SRR000003]}\n');
    await discoverBatch(opts({ configDir: 'c', outputDir: 'out' }), 'b2', cwd, { amalgkitTables: true });
    expect(readFileSync(join(cwd, 'a', 'metadata', 'metadata.tsv'), 'utf8')).toContain('SRR000003\tApis mellifera');
  });

  it('a dry run plans the same paths and writes nothing', async () => {
    const { cwd, out } = setup({ 'c/amalgkit_a_one.yaml': 'fetchquant: {runs: [SRR000001]}\n' });
    const plan = await discoverBatch(opts({ configDir: 'c', outputDir: 'out' }), 'b1', cwd, { dryRun: true });
    expect(plan.species[0]).toMatchObject({ runListPath: join(out, '.fetchquant/b1/a_one.runs.tsv'), totalRuns: 1 });
    expect(readdirSync(cwd)).toEqual(['c']);
  });

  it('finds runs at ENA by taxon_id when there is no run table', async () => {
    taxa.set('7460', { status: 200, body: 'run_accession\tlibrary_layout\tnominal_length\tread_count\nSRR100001\tPAIRED\t250\t900\nERR100002\tSINGLE\t\t\nbogus\tSINGLE\t\t\n' });
    const { cwd, out } = setup({ 'c/amalgkit_apis_mellifera.yaml': 'species_list: [Apis_mellifera]\ntaxon_id: 7460\nwork_dir: nowhere\n' });
    asked.length = 0;
    const plan = await discoverBatch(opts({ configDir: 'c', outputDir: 'out', enaPortalUrl: portalUrl }), 'b1', cwd, { searchRunsByTaxon: search });
    expect(asked).toEqual(['/ena/portal/api/search tax_eq(7460) AND library_strategy="RNA-Seq" AND library_source="TRANSCRIPTOMIC"']);
    expect(readFileSync(join(out, '.fetchquant/b1/apis_mellifera.runs.tsv'), 'utf8')).toBe(
      'run\tlayout\tnominal_length\tspots\nSRR100001\tpaired\t250\t900\nERR100002\tsingle\t\t\n',
    );
    expect(plan.species[0]?.totalRuns).toBe(2);
  });

  it('does not ask ENA when a run table exists, and says when ENA has nothing', async () => {
    const { cwd } = setup({
      'c/amalgkit_a_one.yaml': 'species_list: [A one]\ntaxon_id: 7460\nwork_dir: w\n',
      'w/metadata/metadata.tsv': 'run\nSRR000009\n',
      'c/amalgkit_b_two.yaml': 'species_list: [B two]\ntaxon_id: 99\n',
    });
    asked.length = 0;
    const problems = await problemsOf(discoverBatch(opts({ configDir: 'c', outputDir: 'out', enaPortalUrl: portalUrl }), 'b1', cwd, { searchRunsByTaxon: search }));
    expect(problems).toEqual([`taxon_id: ENA (${portalUrl}) lists no RNA-Seq runs for this taxon`]);
    expect(asked).toHaveLength(1);
    expect(asked[0]).toContain('tax_eq(99)');
  });

  it('lets an ENA outage through as a retryable failure, not as a config problem', async () => {
    taxa.set('503', { status: 503, body: 'down' });
    const { cwd } = setup({ 'c/amalgkit_a_one.yaml': 'taxon_id: 503\n' });
    const run = discoverBatch(opts({ configDir: 'c', outputDir: 'out', enaPortalUrl: portalUrl }), 'b1', cwd, { searchRunsByTaxon: search });
    await expect(run).rejects.toMatchObject({ type: 'ServerError', nonRetryable: false });
  });

  it('without an ENA client a taxon-only species is a problem', async () => {
    const { cwd } = setup({ 'c/amalgkit_a_one.yaml': 'taxon_id: 7460\n' });
    expect(await problemsOf(discoverBatch(opts({ configDir: 'c' }), 'b1', cwd))).toEqual([
      'taxon_id: no runs: give a run table, fetchquant.runs, fetchquant.projects or taxon_id (ENA search is not available here)',
    ]);
  });

  it('rejects a missing config dir, an empty one, and a batch id that is not plain', async () => {
    const { cwd } = setup({ 'empty/readme.txt': 'x' });
    expect(await problemsOf(discoverBatch(opts({ configDir: 'nope' }), 'b1', cwd))).toEqual(['configDir: config directory cannot be read: does not exist']);
    expect(await problemsOf(discoverBatch(opts({ configDir: 'empty' }), 'b1', cwd))).toEqual(['configDir: holds no amalgkit_*.yaml species config']);
    expect(await problemsOf(discoverBatch(opts({ configDir: 'empty' }), '../b1', cwd))).toEqual(['batchId: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$']);
  });

  it('keeps a species whose runs are all excluded, with a note', async () => {
    const { cwd } = setup({
      'c/amalgkit_a_one.yaml': 'steps: {getfastq: {metadata: t.tsv}}\n',
      't.tsv': 'run\texclusion\nSRR000001\tlow_quality\n',
    });
    const plan = await discoverBatch(opts({ configDir: 'c', outputDir: 'out' }), 'b1', cwd);
    expect(plan.species[0]).toMatchObject({ speciesId: 'a_one', totalRuns: 0, doneRuns: 0 });
    expect(plan.notes).toContain('a_one: every row of its run table is excluded; nothing to do');
  });
});
