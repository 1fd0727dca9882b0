/**
 * The downstream consumer, for real: amalgkit 0.16.71 (the wheel in ../shared/vendor, installed by
 * `npm run setup` into .tools/amalgkit; FETCHQUANT_AMALGKIT overrides the path). A batch over a config written
 * the way MetaInformAnt's are (steps.quant.out_dir = work dir, build_index, keep_fastq) runs on the real
 * mirror; then, as a MetaInformAnt user runs them after us:
 *   amalgkit merge  --out_dir <work>      (metadata inferred: <work>/metadata/metadata.tsv)
 *   amalgkit sanity --out_dir <work> --index --quant
 *   amalgkit quant  on the same reads and index, in a directory of its own
 * Skipped, saying so, when amalgkit is not installed (set-up never requires it).
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { smallMirrorBatchInput, temporalCliBatch, useE2eWorld } from '../helpers/e2e.js';

const AMALGKIT = process.env.FETCHQUANT_AMALGKIT ?? join(process.cwd(), '.tools', 'amalgkit', 'bin', 'amalgkit');
const HAVE = existsSync(AMALGKIT);
if (!HAVE) console.warn(`amalgkit tests skipped: no ${AMALGKIT} (npm run setup installs it when ../shared/vendor has the wheel)`);

/** as their configs set it (50000000 there): small enough to cut every run of this dataset */
const MAX_BP = 100_000;

type Table = { header: string[]; rows: string[][] };
function readTsv(path: string): Table {
  const [h, ...rest] = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => l.split('\t'));
  return { header: h as string[], rows: rest };
}

(HAVE ? describe : describe.skip)('amalgkit merge, sanity and quant over a finished batch', () => {
  const world = useE2eWorld({
    label: 'amalgkit',
    prefix: 'amalgkit',
    data: { species: [{ name: 'Apis mellifera', runs: 3, pairedFraction: 0.5, transcripts: 12 }], seed: 11 },
  });
  let work: string;
  let fastq: string;

  beforeAll(async () => {
    work = join(world.root, 'output', 'apis_mellifera', 'work');
    fastq = join(world.root, 'output', 'apis_mellifera', 'fastq');
    // the config as MetaInformAnt writes them (their amalgkit_pbarbatus_5sample.yaml): results into the work dir,
    // the index built there on first use, reads kept (here: so amalgkit quant can run on them afterwards)
    const cfgPath = world.dataset.species[0]!.configPath;
    const cfg = parse(readFileSync(cfgPath, 'utf8')) as { steps: Record<string, Record<string, unknown>> };
    cfg.steps.getfastq = { out_dir: fastq, threads: 8, aws: 'yes', gcp: 'no', ncbi: 'no', max_bp: MAX_BP };
    cfg.steps.quant = { out_dir: work, threads: 6, build_index: 'yes', keep_fastq: 'yes', fasta_dir: join(world.root, 'fasta') };
    writeFileSync(cfgPath, stringify(cfg));
    await world.cliWorker('amk');
    const result = await temporalCliBatch(world.t, 'fetchquant/amk', smallMirrorBatchInput(world.dataset, world.mirror));
    expect(result.totals).toEqual({ total: 3, done: 3, skipped: 0, failed: 0 });
  }, 240_000);

  it("the batch wrote amalgkit's layout: <out_dir>/quant/<RUN>/<RUN>_*, <out_dir>/index, <out_dir>/metadata/metadata.tsv", () => {
    // both layouts, so amalgkit's single-end -l/-s are compared below too
    expect(new Set(world.dataset.species[0]!.runs.map((r) => r.layout))).toEqual(new Set(['single', 'paired']));
    for (const r of world.dataset.species[0]!.runs) {
      expect(readdirSync(join(work, 'quant', r.run)).sort()).toEqual([`${r.run}_abundance.tsv`, `${r.run}_fetchquant.json`, `${r.run}_run_info.json`]);
      // keep_fastq: yes
      expect(readdirSync(join(fastq, 'getfastq', r.run)).filter((f) => f.endsWith('.fastq.gz')).length).toBe(r.layout === 'paired' ? 2 : 1);
    }
    expect(readdirSync(join(work, 'index'))).toContain('Apis_mellifera.idx');
    // max_bp: every run cut at its first reads, and the provenance says so
    for (const r of world.dataset.species[0]!.runs) {
      const prov = JSON.parse(readFileSync(join(work, 'quant', r.run, `${r.run}_fetchquant.json`), 'utf8')) as {
        reads: number;
        downsampling: { maxBp: number; downsampled: boolean; reads: number; bases: number; integrity: string };
        quant: { nProcessed: number };
      };
      const perRead = r.readLength * (r.layout === 'paired' ? 2 : 1);
      expect(prov.downsampling).toMatchObject({ maxBp: MAX_BP, downsampled: true, reads: Math.ceil(MAX_BP / perRead) });
      expect(prov.downsampling.integrity).toMatch(/md5 .* cannot be checked/);
      expect(prov.reads).toBe(Math.ceil(MAX_BP / perRead));
      expect(prov.quant.nProcessed).toBe(prov.reads);
    }
    const table = readTsv(join(work, 'metadata', 'metadata.tsv'));
    expect(table.header).toEqual(expect.arrayContaining(['run', 'scientific_name', 'lib_layout', 'exclusion', 'is_sampled']));
    expect(table.rows.map((r) => r[0]).sort()).toEqual(world.dataset.species[0]!.runs.map((r) => r.run).sort());
  });

  it('amalgkit merge finds every result, and its matrices equal the per-run files', async () => {
    const m = await execa(AMALGKIT, ['merge', '--out_dir', work, '--threads', '1'], { reject: false, timeout: 120_000 });
    if (m.exitCode !== 0) throw new Error(`amalgkit merge exited ${m.exitCode}:\n${m.stdout}\n${m.stderr}`);
    expect(m.stdout).toContain('Detected 3 quant abundance files across all runs.');
    for (const [col, name] of [
      [2, 'eff_length'],
      [3, 'est_counts'],
      [4, 'tpm'],
    ] as const) {
      const merged = readTsv(join(work, 'merge', 'Apis_mellifera', `Apis_mellifera_${name}.tsv`));
      expect(merged.header[0]).toBe('target_id');
      expect(merged.header.slice(1).sort()).toEqual(world.dataset.species[0]!.runs.map((r) => r.run).sort());
      for (const run of merged.header.slice(1)) {
        const own = readTsv(join(work, 'quant', run, `${run}_abundance.tsv`));
        const ownBy = new Map(own.rows.map((r) => [r[0], Number(r[col])]));
        const j = merged.header.indexOf(run);
        expect(merged.rows.length).toBe(own.rows.length);
        for (const row of merged.rows) expect(Number(row[j])).toBe(ownBy.get(row[0] as string));
      }
    }
  }, 150_000);

  it('amalgkit sanity finds the index and every quant result', async () => {
    const s = await execa(AMALGKIT, ['sanity', '--out_dir', work, '--index', '--quant', '--threads', '1'], { reject: false, timeout: 120_000 });
    if (s.exitCode !== 0) throw new Error(`amalgkit sanity exited ${s.exitCode}:\n${s.stdout}\n${s.stderr}`);
    expect(s.stdout).toMatch(/index found for all species/);
    expect(s.stdout).toMatch(/index: 1\/1 species available \(status=ok; errors=0; warnings=0; issues=0\)/);
    expect(s.stdout).toMatch(/quant: 3\/3 runs available \(status=ok; errors=0; warnings=0; issues=0\)/);
  }, 150_000);

  it('amalgkit quant on the same reads and index gives the identical abundance', async () => {
    const own = join(world.root, 'amalgkit-own');
    const sp = world.dataset.species[0]!;
    for (const r of sp.runs) cpSync(join(fastq, 'getfastq', r.run), join(own, 'getfastq', r.run), { recursive: true });
    // amalgkit quant reads amalgkit's own metadata columns (spot_length / total_bases, as `amalgkit metadata` writes)
    const header = ['run', 'scientific_name', 'lib_layout', 'nominal_length', 'total_spots', 'spot_length', 'total_bases', 'exclusion'];
    const rows = sp.runs.map((r) => {
      const spot = r.readLength * (r.layout === 'paired' ? 2 : 1);
      return [r.run, 'Apis mellifera', r.layout, r.layout === 'paired' ? String(r.nominalLength) : '', String(r.reads), String(spot), String(spot * r.reads), 'no'];
    });
    mkdirSync(join(own, 'metadata'), { recursive: true });
    writeFileSync(join(own, 'metadata', 'metadata.tsv'), [header, ...rows].map((l) => l.join('\t')).join('\n') + '\n');
    const q = await execa(AMALGKIT, ['quant', '--out_dir', own, '--index_dir', join(work, 'index'), '--clean_fastq', 'no', '--threads', '2'], { reject: false, timeout: 180_000 });
    if (q.exitCode !== 0) throw new Error(`amalgkit quant exited ${q.exitCode}:\n${q.stdout}\n${q.stderr}`);
    for (const r of sp.runs) {
      const theirs = readFileSync(join(own, 'quant', r.run, `${r.run}_abundance.tsv`), 'utf8');
      const ours = readFileSync(join(work, 'quant', r.run, `${r.run}_abundance.tsv`), 'utf8');
      expect({ run: r.run, abundance: ours }).toEqual({ run: r.run, abundance: theirs });
      const info = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as { call: string; n_processed: number };
      const a = info(join(own, 'quant', r.run, `${r.run}_run_info.json`));
      const b = info(join(work, 'quant', r.run, `${r.run}_run_info.json`));
      expect(b.n_processed).toBe(a.n_processed);
      // the same flags in the same order and the same -l/-s; only paths and the thread count differ
      const flags = (call: string) =>
        call
          .split(' ')
          .filter((w) => w.startsWith('-') || /^\d+(\.\d+)?$/.test(w))
          .filter((w, i, all) => all[i - 1] !== '--threads')
          .map((w) => w.replace(/\.0$/, ''));
      expect(flags(b.call)).toEqual(flags(a.call));
    }
  }, 200_000);
});
