// The synthetic dataset is only worth something if the real tools accept it: md5s right, .sra valid,
// fasterq-dump gives the reads back, kallisto pseudoaligns them. Real tools, real files.
import { describe, it, expect } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { parse } from 'yaml';
import { generateDataset, loadDataset, makeSra, type Dataset } from '../../src/mirror/fixtures.js';
import { speciesIdOf } from '../../src/ids.js';
import { useTempDataset } from '../helpers/world.js';
import { md5 } from './helpers.js';

const tmp = useTempDataset('mirror-fixtures', {
  seed: 3,
  species: [
    { name: 'Alpha testus', runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0.25, readsPerRun: 1000 },
    { name: 'Beta listus', runs: 2, pairedFraction: 1, readsPerRun: 500, runTable: false, taxonId: 4242 },
  ],
});

function fastqCount(text: string): number {
  return text.split('\n').filter((l) => l.length > 0).length / 4;
}

describe('generateDataset', () => {
  it('numbers runs from 9000001, with the requested layouts and sra-only share', () => {
    const runs = tmp.dataset.species.flatMap((s) => s.runs);
    expect(runs.map((r) => r.run)).toEqual(['SRR9000001', 'SRR9000002', 'SRR9000003', 'SRR9000004', 'SRR9000005', 'SRR9000006']);
    const a = tmp.dataset.species[0]!;
    expect(a.runs.filter((r) => r.layout === 'paired')).toHaveLength(2);
    expect(a.runs.filter((r) => r.sraOnly)).toHaveLength(1);
    expect(tmp.dataset.species[1]!.runs.every((r) => r.layout === 'paired' && !r.sraOnly)).toBe(true);
    for (const r of runs) {
      expect(r.fastq.map((f) => f.name)).toEqual(r.layout === 'paired' ? [`${r.run}_1.fastq.gz`, `${r.run}_2.fastq.gz`] : [`${r.run}.fastq.gz`]);
      expect(r.nominalLength).toBe(r.layout === 'paired' ? 250 : 200);
    }
    // the first paired run of a species carries unmated reads (ENA's three-file listing)
    expect(tmp.dataset.species[1]!.runs[0]!.orphan?.name).toBe('SRR9000005.fastq.gz');
  });

  it('writes every file with the recorded size and md5, read names @RUN.n and I qualities', async () => {
    for (const r of tmp.dataset.species.flatMap((s) => s.runs)) {
      for (const f of [...r.fastq, r.sra, ...(r.orphan ? [r.orphan] : [])]) {
        const data = await readFile(f.path);
        expect({ name: f.name, bytes: data.length, md5: md5(data) }).toEqual({ name: f.name, bytes: f.bytes, md5: f.md5 });
      }
      const text = gunzipSync(await readFile(r.fastq[0]!.path)).toString();
      expect(fastqCount(text)).toBe(r.reads);
      const [head, seq, plus, qual] = text.split('\n');
      expect(head).toBe(`@${r.run}.1`);
      expect(seq).toMatch(/^[ACGT]{100}$/);
      expect(plus).toBe('+');
      expect(qual).toBe('I'.repeat(100));
    }
  });

  it('writes amalgkit YAML configs and run tables (or fetchquant.runs when runTable is false)', async () => {
    const [a, b] = tmp.dataset.species as [Dataset['species'][0], Dataset['species'][0]];
    expect(a.speciesId).toBe(speciesIdOf('Alpha testus'));
    expect(a.fastaPath).toBe(join(tmp.root, 'fasta', 'Alpha_testus.fa'));
    const ya = parse(await readFile(a.configPath, 'utf8'));
    expect(ya).toEqual({
      species_list: ['Alpha_testus'],
      taxon_id: a.taxonId,
      work_dir: join(tmp.root, 'work', 'Alpha_testus'),
      steps: {
        getfastq: { out_dir: join(tmp.root, 'output', 'alpha_testus', 'fastq') },
        quant: { out_dir: join(tmp.root, 'output', 'alpha_testus'), index_dir: join(tmp.root, 'output', 'alpha_testus', 'index'), fasta_dir: join(tmp.root, 'fasta') },
      },
    });
    const table = (await readFile(a.runTablePath, 'utf8')).trim().split('\n').map((l) => l.split('\t'));
    expect(table[0]).toEqual(['run', 'scientific_name', 'lib_layout', 'nominal_length', 'total_spots', 'exclusion', 'is_sampled']);
    expect(table.slice(1)).toEqual(a.runs.map((r) => [r.run, 'Alpha testus', r.layout, String(r.nominalLength), String(1000 + (r.orphan ? r.orphanReads! : 0)), 'no', 'yes']));
    const yb = parse(await readFile(b.configPath, 'utf8'));
    expect(yb.taxon_id).toBe(4242);
    expect(yb.fetchquant).toEqual({ runs: ['SRR9000005', 'SRR9000006'] });
    expect(existsSync(b.runTablePath)).toBe(false);
    expect(existsSync(join(tmp.root, 'output', 'alpha_testus', 'index'))).toBe(false);
  });

  it('round-trips through dataset.json and leaves no latf-load temp dirs or plain FASTQ behind', async () => {
    expect(await loadDataset(tmp.root)).toEqual(tmp.dataset);
    const leftovers: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        if (e.name.startsWith('.latf-') || e.name.endsWith('.fastq') || e.name === '.scratch') leftovers.push(join(dir, e.name));
        if (e.isDirectory()) await walk(join(dir, e.name));
      }
    };
    await walk(tmp.root);
    expect(leftovers).toEqual([]);
    await expect(loadDataset(join(tmp.root, 'nope'))).rejects.toThrow(/no dataset at .*nope\/dataset.json/);
  });

  it('is deterministic for a seed (same reads, same md5) and differs for another seed', async () => {
    const again = await mkdtemp(join(tmpdir(), 'fq-mirror-fixtures-again-'));
    try {
      const spec = [{ name: 'Alpha testus', runs: 1, pairedFraction: 0, readsPerRun: 300 }];
      const d1 = await generateDataset({ root: again, seed: 5, species: spec });
      const m1 = d1.species[0]!.runs[0]!.fastq[0]!.md5;
      const d2 = await generateDataset({ root: again, seed: 5, species: spec });
      expect(d2.species[0]!.runs[0]!.fastq[0]!.md5).toBe(m1);
      const d3 = await generateDataset({ root: again, seed: 6, species: spec, firstRun: 1234567 });
      expect(d3.species[0]!.runs[0]!.fastq[0]!.md5).not.toBe(m1);
      expect(d3.species[0]!.runs[0]!.run).toBe('SRR1234567');
    } finally {
      await rm(again, { recursive: true, force: true });
    }
  });

  it('rejects a duplicate species and a bad accession', async () => {
    await expect(generateDataset({ root: join(tmp.root, 'dup'), species: [{ name: 'A b', runs: 1 }, { name: 'a  B', runs: 1 }] })).rejects.toThrow(/given twice/);
    await expect(makeSra('SRR12', [], join(tmp.root, 'x.sra'))).rejects.toThrow(/invalid run accession "SRR12"/);
  });
});

describe('the .sra files are real', () => {
  it('pass vdb-validate, and fasterq-dump --split-3 gives back the same reads', async () => {
    const out = await mkdtemp(join(tmpdir(), 'fq-mirror-fqd-'));
    try {
      for (const r of [tmp.dataset.species[0]!.runs.find((x) => x.layout === 'single')!, tmp.dataset.species[1]!.runs[0]!]) {
        const v = await execa('vdb-validate', [r.sra.path], { reject: false, timeout: 60_000 });
        expect({ run: r.run, exitCode: v.exitCode }).toEqual({ run: r.run, exitCode: 0 });
        expect(v.stderr).toMatch(/is consistent/);
        const dir = join(out, r.run);
        const d = await execa('fasterq-dump', [r.sra.path, '--split-3', '-O', dir, '-t', join(out, 'tmp')], { reject: false, timeout: 60_000 });
        expect(d.exitCode).toBe(0);
        let files = (await readdir(dir)).sort();
        if (r.orphan) {
          // a 3-file run: its unpaired spots come back in RUN.fastq, the same reads ENA serves as RUN.fastq.gz
          expect(files).toEqual([`${r.run}.fastq`, `${r.run}_1.fastq`, `${r.run}_2.fastq`]);
          const unpaired = (await readFile(join(dir, `${r.run}.fastq`), 'utf8')).split('\n');
          const served = gunzipSync(await readFile(r.orphan.path)).toString().split('\n');
          expect(unpaired.filter((_, k) => k % 4 === 1)).toEqual(served.filter((_, k) => k % 4 === 1));
          files = files.slice(1);
        }
        expect(files).toEqual(r.layout === 'paired' ? [`${r.run}_1.fastq`, `${r.run}_2.fastq`] : [`${r.run}.fastq`]);
        for (const [i, f] of files.entries()) {
          const dumped = (await readFile(join(dir, f), 'utf8')).split('\n');
          const original = gunzipSync(await readFile(r.fastq[i]!.path)).toString().split('\n');
          expect(fastqCount(dumped.join('\n'))).toBe(r.reads);
          // same sequences in the same order: the .sra holds exactly the served reads
          expect(dumped.filter((_, k) => k % 4 === 1)).toEqual(original.filter((_, k) => k % 4 === 1));
        }
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

describe('the reads pseudoalign', () => {
  it('kallisto quant pseudoaligns > 50 % of a paired and a single run against the species fasta', async () => {
    const work = await mkdtemp(join(tmpdir(), 'fq-mirror-kallisto-'));
    try {
      const sp = tmp.dataset.species[0]!;
      const idx = join(work, 'idx');
      await execa('kallisto', ['index', '-i', idx, sp.fastaPath], { timeout: 60_000 });
      for (const r of [sp.runs.find((x) => x.layout === 'paired')!, sp.runs.find((x) => x.layout === 'single')!]) {
        const outDir = join(work, r.run);
        const args = r.layout === 'paired' ? [] : ['--single', '-l', '200', '-s', '20'];
        await execa('kallisto', ['quant', '-i', idx, '-o', outDir, ...args, ...r.fastq.map((f) => f.path)], { timeout: 60_000 });
        const info = JSON.parse(await readFile(join(outDir, 'run_info.json'), 'utf8')) as { n_processed: number; p_pseudoaligned: number };
        expect({ run: r.run, n: info.n_processed, ok: info.p_pseudoaligned > 50 }).toEqual({ run: r.run, n: r.reads, ok: true });
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
