/**
 * Synthetic species for the offline demo, tests and benchmarks: transcriptomes, simulated runs (gzipped
 * FASTQ and real .sra), amalgkit-style YAML configs and run tables, laid out under one root:
 *   fasta/<Genus_species>.fa
 *   config/amalgkit/amalgkit_<Genus_species>.yaml
 *   work/<Genus_species>/metadata/metadata.tsv
 *   files/ena/vol1/fastq/<RUN[0:6]>/<RUN>/<RUN>[_1|_2].fastq.gz   (served by the mirror)
 *   files/sra/<RUN>/<RUN>.sra                                       (served by the mirror)
 *   dataset.json
 * Deterministic from the seed (file contents and md5s; .sra bytes depend on the sra-toolkit build).
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { genusSpeciesOf, speciesIdOf } from '../ids.js';
import { mixSeed, Prng } from './prng.js';
import { makeTranscriptome, simulateReads } from './simulate.js';
import { makeSra } from './sra.js';
import { enaRunDir, sraFileOnDisk } from './paths.js';
import type { Dataset, SpeciesSpec, SyntheticRun, SyntheticSpecies } from './types.js';

export type { Dataset, SpeciesSpec, SyntheticFile, SyntheticRun, SyntheticSpecies } from './types.js';
export { makeTranscriptome, simulateReads } from './simulate.js';
export { makeSra } from './sra.js';

/** Single-end runs report this nominal length (kallisto's usual single-end fragment mean). */
const SINGLE_NOMINAL = 200;
const PAIRED_FRAGMENT = 250;
/** Runs generated at once: latf-load/kar are short processes, a few in parallel hide their start-up. */
const PARALLEL_RUNS = 4;

export { enaRunDir } from './paths.js';

/** `n` made-up species names, for `--generate species=N` and the demo. */
export function defaultSpeciesSpecs(n: number, runs: number, extra: Partial<SpeciesSpec> = {}): SpeciesSpec[] {
  const epithets = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa'];
  return Array.from({ length: n }, (_, i) => ({
    name: `Synthetica ${epithets[i % epithets.length]}${i >= epithets.length ? String(Math.floor(i / epithets.length)) : ''}`,
    runs,
    ...extra,
  }));
}

/** Marks round(n * fraction) of n runs, spread by the PRNG (not clustered at the start). */
function pick(n: number, fraction: number, rng: Prng): boolean[] {
  const k = Math.round(n * Math.min(1, Math.max(0, fraction)));
  return rng.shuffle(Array.from({ length: n }, (_, i) => i < k));
}

async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function generateDataset(opts: { root: string; species: SpeciesSpec[]; seed?: number; firstRun?: number }): Promise<Dataset> {
  const root = resolve(opts.root);
  const seed = opts.seed ?? 1;
  const configDir = join(root, 'config', 'amalgkit');
  const outputDir = join(root, 'output');
  const scratch = join(root, '.scratch');
  await mkdir(configDir, { recursive: true });
  let runNumber = opts.firstRun ?? 9000001;
  const names = new Set<string>();
  const species: SyntheticSpecies[] = [];

  for (const [si, spec] of opts.species.entries()) {
    const speciesId = speciesIdOf(spec.name);
    if (names.has(speciesId)) throw new Error(`generateDataset: species ${spec.name} given twice`);
    names.add(speciesId);
    const gs = genusSpeciesOf(spec.name);
    const name = gs.replace(/_/g, ' ');
    const sseed = mixSeed(seed, si);
    const rng = new Prng(sseed);
    const fastaPath = join(root, 'fasta', `${gs}.fa`);
    const seqs = await makeTranscriptome(fastaPath, {
      transcripts: spec.transcripts ?? 20,
      length: spec.transcriptLength ?? 1000,
      seed: sseed,
      prefix: `${speciesId}_tx`,
    });
    const paired = pick(spec.runs, spec.pairedFraction ?? 0.5, rng);
    const sraOnly = pick(spec.runs, spec.sraOnlyFraction ?? 0, rng);
    // Drawn only when asked for, so datasets of older specs keep their bytes.
    const singleCell = spec.singleCellFraction ? pick(spec.runs, spec.singleCellFraction, rng) : [];
    const readLength = spec.readLength ?? 100;
    const runs: SyntheticRun[] = [];
    const jobs = Array.from({ length: spec.runs }, (_, ri) => ({ ri, run: `SRR${runNumber + ri}` }));
    runNumber += spec.runs;
    const generated = new Map<number, SyntheticRun>();

    await pool(jobs, PARALLEL_RUNS, async ({ ri, run }) => {
      const isPaired = paired[ri] === true;
      const rseed = mixSeed(sseed, ri + 1);
      const reads = spec.readsPerRun ?? 2000;
      const enaDir = join(root, 'files', 'ena', enaRunDir(run));
      const sim = await simulateReads(seqs, {
        dir: enaDir, run, reads, readLength, paired: isPaired, fragmentLength: PAIRED_FRAGMENT, seed: rseed,
      });
      // Every third paired run also has unmated reads, listed first by ENA (the "three files" case).
      let orphan;
      let orphanPlain: string | undefined;
      const orphanReads = Math.max(3, Math.round(reads / 50));
      if (isPaired && ri % 3 === 0) {
        const o = await simulateReads(seqs, {
          dir: join(scratch, run), run, reads: orphanReads, readLength, paired: false,
          fragmentLength: readLength, seed: mixSeed(rseed, 7), firstRead: reads + 1,
        });
        orphan = await moveInto(o.fastqGz[0]!, join(enaDir, `${run}.fastq.gz`));
        orphanPlain = o.fastqPlain[0];
      }
      // The .sra holds every spot of the run, unpaired ones included (spots = pairs + unpaired, as ENA counts).
      const sra = await makeSra(run, sim.fastqPlain, sraFileOnDisk(root, run), orphanPlain);
      await Promise.all(sim.fastqPlain.map((p) => rm(p, { force: true })));
      generated.set(ri, {
        run, layout: isPaired ? 'paired' : 'single', reads, readLength,
        nominalLength: isPaired ? PAIRED_FRAGMENT : SINGLE_NOMINAL,
        fastq: sim.fastqGz, ...(orphan ? { orphan, orphanReads } : {}), sra, sraOnly: sraOnly[ri] === true,
        ...(singleCell[ri] ? { singleCell: true } : {}),
      });
    });
    for (let ri = 0; ri < spec.runs; ri++) runs.push(generated.get(ri)!);

    const s: SyntheticSpecies = {
      name, speciesId, taxonId: spec.taxonId ?? 7_000_001 + si, study: `PRJEB${900001 + si}`,
      fastaPath, configPath: join(configDir, `amalgkit_${gs}.yaml`),
      runTablePath: join(root, 'work', gs, 'metadata', 'metadata.tsv'), runs,
    };
    await writeSpeciesConfig(s, root, outputDir, spec.runTable !== false);
    species.push(s);
  }
  await rm(scratch, { recursive: true, force: true });
  const dataset: Dataset = { root, configDir, outputDir, species };
  await writeFile(join(root, 'dataset.json'), JSON.stringify(dataset, null, 2) + '\n');
  return dataset;
}

async function moveInto(file: { path: string; bytes: number; md5: string }, dest: string) {
  await rename(file.path, dest);
  return { name: dest.slice(dest.lastIndexOf('/') + 1), path: dest, bytes: file.bytes, md5: file.md5, mate: 0 as const };
}

/** The amalgkit YAML (docs/architecture.md §2.1) and, unless runTable is false, the run table it points at (also bench/b5/dataset.ts). */
export async function writeSpeciesConfig(s: SyntheticSpecies, root: string, outputDir: string, runTable: boolean): Promise<void> {
  const gs = genusSpeciesOf(s.name);
  const base = join(outputDir, s.speciesId);
  const config: Record<string, unknown> = {
    species_list: [gs],
    taxon_id: s.taxonId,
    work_dir: join(root, 'work', gs),
    steps: {
      getfastq: { out_dir: join(base, 'fastq') },
      // amalgkit quant --out_dir: results go to <out_dir>/quant/<RUN>
      quant: { out_dir: base, index_dir: join(base, 'index'), fasta_dir: join(root, 'fasta') },
    },
  };
  if (!runTable) config.fetchquant = { runs: s.runs.map((r) => r.run) };
  await writeFile(s.configPath, stringify(config));
  if (!runTable) return;
  const header = ['run', 'scientific_name', 'lib_layout', 'nominal_length', 'total_spots', 'exclusion', 'is_sampled'];
  // total_spots counts a 3-file run's unpaired reads too, as the archives' run tables do.
  const rows = s.runs.map((r) => [r.run, s.name, r.layout, String(r.nominalLength), String(r.reads + (r.orphan ? r.orphanReads ?? 0 : 0)), 'no', 'yes']);
  await mkdir(join(root, 'work', gs, 'metadata'), { recursive: true });
  await writeFile(s.runTablePath, [header, ...rows].map((r) => r.join('\t')).join('\n') + '\n');
}

/** Reads <root>/dataset.json written by generateDataset. */
export async function loadDataset(root: string): Promise<Dataset> {
  const path = join(resolve(root), 'dataset.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`loadDataset: no dataset at ${path} (${(err as Error).message}); create one with generateDataset`);
  }
  const d = JSON.parse(text) as Dataset;
  if (!d || !Array.isArray(d.species)) throw new Error(`loadDataset: ${path} is not a dataset (no species list)`);
  return d;
}

/** Every run of the dataset by accession. */
export function runsByAccession(d: Dataset): Map<string, { species: SyntheticSpecies; run: SyntheticRun }> {
  const m = new Map<string, { species: SyntheticSpecies; run: SyntheticRun }>();
  for (const species of d.species) for (const run of species.runs) m.set(run.run, { species, run });
  return m;
}
