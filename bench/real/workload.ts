/**
 * The B1/B2/B4 workload: a synthetic dataset (cached between benchmark runs: generating 100 runs of a few
 * MB takes minutes), one prebuilt kallisto index per species shared by fetchquant and the baseline, and a
 * fresh output tree per scenario (configs rewritten to point there) so no scenario sees another's results.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { genusSpeciesOf } from '../../src/ids.js';
import { defaultSpeciesSpecs, generateDataset, loadDataset, type Dataset, type SpeciesSpec } from '../../src/mirror/fixtures.js';
import type { SyntheticRun } from '../../src/mirror/types.js';

export interface Workload {
  species: SpeciesSpec[];
  seed: number;
  /** the mirror's total bandwidth cap, bytes/s */
  bandwidthBytesPerSec: number;
  /** per-request latency of the mirror, ms */
  latencyMs: number;
  /** --total-threads for fetchquant, -P for the baseline */
  totalThreads: number;
  /** worker kills in B4 */
  kills: number;
  /** --stall-timeout given to fetchquant (null = the product default) */
  stallTimeoutSec: number | null;
}

/**
 * Full: 4 species, one smaller so it finishes first (B2), 20 % SRA-only, half paired; 40,000 spots
 * make 1.2 MB (single) to 2.9 MB (paired .sra) per run. The cap is chosen from measured CPU: one sample
 * costs fetchquant ~0.3 s (ENA) to ~1 s (SRA: vdb-validate, fasterq-dump, gzip) of the 2 cores, so
 * 1.5 MB/s keeps the network, not the CPU, the bottleneck with room to spare.
 */
export function workloadOf(quick: boolean): Workload {
  if (quick) {
    return {
      species: defaultSpeciesSpecs(2, 3, { pairedFraction: 0.5, sraOnlyFraction: 0.34, readsPerRun: 4000 }).map((s, i) => ({ ...s, runs: i === 0 ? 2 : 4 })),
      seed: 11,
      bandwidthBytesPerSec: 1_000_000,
      latencyMs: 5,
      totalThreads: 3,
      kills: 1,
      // The smoke test checks the machinery, not the figures: a 5 s heartbeat timeout keeps its kill cheap.
      stallTimeoutSec: 5,
    };
  }
  return {
    species: defaultSpeciesSpecs(4, 30, { pairedFraction: 0.5, sraOnlyFraction: 0.2, readsPerRun: 40_000 }).map((s, i) => ({ ...s, runs: i === 0 ? 10 : 30 })),
    seed: 7,
    bandwidthBytesPerSec: 1_500_000,
    latencyMs: 20,
    totalThreads: 8,
    kills: 3,
    stallTimeoutSec: null,
  };
}

/** Where generated datasets are kept: FQ_BENCH_CACHE, else the OS temp dir. */
function cacheRoot(): string {
  return process.env.FQ_BENCH_CACHE ?? join(tmpdir(), 'fetchquant-bench-cache');
}

/** Index of a species in the cache: `<root>/index/<Genus_species>.idx`. */
export function indexPathOf(d: Dataset, speciesName: string): string {
  return join(d.root, 'index', `${genusSpeciesOf(speciesName)}.idx`);
}

/** The dataset for a workload: from the cache when complete (dataset.json is written last), else generated. */
export async function prepareDataset(w: Workload, log: (l: string) => void): Promise<Dataset> {
  const key = createHash('sha256').update(JSON.stringify({ species: w.species, seed: w.seed, v: 1 })).digest('hex').slice(0, 12);
  const root = join(cacheRoot(), key);
  let d: Dataset;
  if (existsSync(join(root, 'dataset.json'))) {
    d = await loadDataset(root);
    log(`dataset: cached at ${root}`);
  } else {
    await rm(root, { recursive: true, force: true });
    const t0 = Date.now();
    log(`dataset: generating ${w.species.reduce((n, s) => n + s.runs, 0)} runs into ${root} (once; cached for later runs)`);
    d = await generateDataset({ root, species: w.species, seed: w.seed });
    log(`dataset: generated in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  // Built once, outside every measurement: the baseline is given "the same already-built index".
  for (const s of d.species) {
    const idx = indexPathOf(d, s.name);
    if (existsSync(idx)) continue;
    await mkdir(join(d.root, 'index'), { recursive: true });
    await execa('kallisto', ['index', '-i', `${idx}.tmp`, s.fastaPath]);
    await execa('mv', [`${idx}.tmp`, idx]);
  }
  return d;
}

/** Files a run needs fetched: ENA mates (or the single file), or the .sra of an SRA-only run. */
export function neededFiles(r: SyntheticRun): { name: string; bytes: number; path: string }[] {
  return r.sraOnly ? [r.sra] : r.fastq;
}
export function neededBytes(d: Dataset): number {
  return d.species.reduce((n, s) => n + s.runs.reduce((m, r) => m + neededFiles(r).reduce((k, f) => k + f.bytes, 0), 0), 0);
}

export interface Scenario {
  /** <work>/<name>: configs, outputs and reads of this scenario only */
  dir: string;
  configDir: string;
  /** per species: reads dir (fetchquant's getfastq parent) and quant dir */
  species: { speciesId: string; readsDir: string; quantDir: string; runs: SyntheticRun[] }[];
}

/**
 * Copies the dataset's configs into `<dir>/config`, pointing outputs (reads, quant) into `<dir>/out`
 * and the index at the shared prebuilt one; run tables and FASTA stay where the dataset has them.
 */
export async function makeScenario(d: Dataset, dir: string): Promise<Scenario> {
  await rm(dir, { recursive: true, force: true });
  const configDir = join(dir, 'config');
  await mkdir(configDir, { recursive: true });
  const species: Scenario['species'] = [];
  for (const s of d.species) {
    const cfg = parse(await readFile(s.configPath, 'utf8')) as { steps: { getfastq: { out_dir: string }; quant: { out_dir: string; index_dir: string } } };
    const base = join(dir, 'out', s.speciesId);
    cfg.steps.getfastq.out_dir = join(base, 'fastq');
    cfg.steps.quant.out_dir = base; // amalgkit's meaning: results in <out_dir>/quant/<RUN>
    cfg.steps.quant.index_dir = join(d.root, 'index');
    await writeFile(join(configDir, s.configPath.slice(s.configPath.lastIndexOf('/') + 1)), stringify(cfg));
    species.push({ speciesId: s.speciesId, readsDir: join(base, 'fastq'), quantDir: join(base, 'quant'), runs: s.runs });
  }
  return { dir, configDir, species };
}
