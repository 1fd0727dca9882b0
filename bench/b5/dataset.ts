/**
 * B5's data (docs/benchmarks.md): a transcriptome of realistic size and shape and runs of 100+ MB of FASTQ
 * sampled from it, so kallisto pseudoaligns for real and its CPU is what a user pays.
 *
 * Transcriptome: genes of 1-4 isoforms built from shared exons (isoforms of one gene share sequence, so
 * kallisto's equivalence classes and EM have work to do), lengths log-normal around a ~1.5 kb median
 * (200 nt to 12 kb), as in annotated eukaryotic transcriptomes. Reads: expression log-normal over
 * transcripts, either strand, 0.2 % substitutions, HiSeq-like qualities, names `@<RUN>.<n>` like
 * simulate.ts. Each run is served gzipped (ENA) and as a real .sra made by latf-load + kar (SRA).
 *
 * Everything is cached under FQ_BENCH_CACHE (default <tmp>/fetchquant-bench-cache), keyed by what made
 * it: the transcriptome and its kallisto index by (seed, genes), the runs by the whole spec; dataset.json
 * is written last, so an interrupted generation starts again.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
import { mkdir, open, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { execa } from 'execa';
import { genusSpeciesOf, speciesIdOf } from '../../src/ids.js';
import { loadDataset, makeSra, writeSpeciesConfig, type Dataset, type SyntheticFile, type SyntheticRun, type SyntheticSpecies } from '../../src/mirror/fixtures.js';
import { enaRunDir, sraFileOnDisk } from '../../src/mirror/paths.js';
import { mixSeed, Prng } from '../../src/mirror/prng.js';

export interface B5Spec {
  seed: number;
  /** genes; with 1-4 isoforms each, ~1.85 transcripts per gene */
  genes: number;
  runs: number;
  /** uncompressed FASTQ per run, spread evenly from min to max */
  minMB: number;
  maxMB: number;
  /** every k-th run (from the second) is SRA-only */
  sraOnlyEvery: number;
  readLength: number;
}

/** 12 runs of 100-180 MB, 4 SRA-only, half paired; ~24,000 transcripts. */
export const B5_FULL: B5Spec = { seed: 15, genes: 13_000, runs: 12, minMB: 100, maxMB: 180, sraOnlyEvery: 3, readLength: 100 };

export const B5_SPECIES = 'Synthetica realis';
const PAIRED_FRAGMENT = 250;
const SINGLE_NOMINAL = 200;
const ERROR_RATE = 0.002;
const BASES = 'ACGT';
const COMPLEMENT: Record<string, string> = { A: 'T', C: 'G', G: 'C', T: 'A' };

export function cacheRoot(): string {
  return process.env.FQ_BENCH_CACHE ?? join(tmpdir(), 'fetchquant-bench-cache');
}
const keyOf = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 12);

/** Standard normal from two uniforms (Box-Muller). */
function normal(rng: Prng): number {
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}
function randomSeq(n: number, rng: Prng): string {
  const out: string[] = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = BASES[rng.int(4)]!;
  return out.join('');
}
function revcomp(s: string): string {
  const out: string[] = new Array<string>(s.length);
  for (let i = 0, j = s.length - 1; j >= 0; i++, j--) out[i] = COMPLEMENT[s[j]!] ?? 'N';
  return out.join('');
}

/** Genes of shared exons -> isoforms; returns the transcripts (in FASTA order). */
export function makeRealisticTranscriptome(genes: number, seed: number, prefix: string): { names: string[]; seqs: string[] } {
  const rng = new Prng(seed);
  const names: string[] = [];
  const seqs: string[] = [];
  for (let g = 1; g <= genes; g++) {
    // log-normal: median ~1.5 kb, sigma 0.6 (most 600 nt - 4 kb), clipped to 200 nt - 12 kb
    const len = Math.min(12_000, Math.max(200, Math.round(1500 * Math.exp(0.6 * normal(rng)))));
    const nExons = Math.max(1, Math.round(len / 300));
    const cuts = Array.from({ length: nExons - 1 }, () => 1 + rng.int(len - 1)).sort((a, b) => a - b);
    const full = randomSeq(len, rng);
    const exons: string[] = [];
    let at = 0;
    for (const c of [...cuts, len]) {
      if (c > at) exons.push(full.slice(at, c));
      at = c;
    }
    // 1-4 isoforms (geometric, p = 0.5): the first has every exon, the others skip some
    let isoforms = 1;
    while (isoforms < 4 && rng.next() < 0.5) isoforms++;
    const seen = new Set<string>();
    for (let i = 0; i < isoforms; i++) {
      let s = full;
      if (i > 0 && exons.length > 1) {
        s = exons.filter(() => rng.next() < 0.75).join('');
        if (s.length < 200) s = full.slice(0, Math.max(200, Math.round(len * 0.6)));
      }
      if (seen.has(s)) continue;
      seen.add(s);
      names.push(`${prefix}g${g}.t${i + 1}`);
      seqs.push(s);
    }
  }
  return { names, seqs };
}

export interface B5Data {
  dataset: Dataset;
  transcripts: number;
  transcriptomeBases: number;
  /** uncompressed FASTQ bytes per run */
  fastqBytes: Record<string, number>;
}

/** The transcriptome FASTA and its kallisto index (built once per seed/genes: minutes). */
async function prepareTranscriptome(spec: B5Spec, log: (l: string) => void): Promise<{ dir: string; fasta: string; index: string; transcripts: number; bases: number }> {
  const dir = join(cacheRoot(), `b5-tx-${keyOf({ seed: spec.seed, genes: spec.genes, v: 1 })}`);
  const fasta = join(dir, `${genusSpeciesOf(B5_SPECIES)}.fa`);
  const index = join(dir, `${genusSpeciesOf(B5_SPECIES)}.idx`);
  const meta = join(dir, 'transcriptome.json');
  if (existsSync(meta) && existsSync(index)) {
    const m = readFileSync(meta, 'utf8');
    const { transcripts, bases } = JSON.parse(m) as { transcripts: number; bases: number };
    log(`B5: transcriptome and index cached at ${dir}`);
    return { dir, fasta, index, transcripts, bases };
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const t0 = Date.now();
  const { names, seqs } = makeRealisticTranscriptome(spec.genes, mixSeed(spec.seed, 1), `${speciesIdOf(B5_SPECIES)}_`);
  const lines: string[] = [];
  for (let i = 0; i < seqs.length; i++) {
    lines.push(`>${names[i]}`);
    for (let j = 0; j < seqs[i]!.length; j += 60) lines.push(seqs[i]!.slice(j, j + 60));
  }
  await writeFile(fasta, lines.join('\n') + '\n');
  const bases = seqs.reduce((n, s) => n + s.length, 0);
  log(`B5: ${seqs.length} transcripts (${(bases / 1e6).toFixed(1)} Mb); building the kallisto index (once)`);
  await execa('kallisto', ['index', '-i', `${index}.tmp`, fasta]);
  await rename(`${index}.tmp`, index);
  await writeFile(meta, JSON.stringify({ transcripts: seqs.length, bases }) + '\n');
  log(`B5: transcriptome + index in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return { dir, fasta, index, transcripts: seqs.length, bases };
}

/** Reads the FASTA back (names and sequences). */
async function readFasta(path: string): Promise<string[]> {
  const text = readFileSync(path, 'utf8');
  const seqs: string[] = [];
  let cur: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('>')) {
      if (cur.length) seqs.push(cur.join(''));
      cur = [];
    } else if (line) cur.push(line);
  }
  if (cur.length) seqs.push(cur.join(''));
  return seqs;
}

function mutate(s: string, rng: Prng): string {
  let out = s;
  for (let i = 0; i < s.length; i++) {
    if (rng.next() < ERROR_RATE) out = out.slice(0, i) + BASES[(BASES.indexOf(s[i]!) + 1 + rng.int(3)) % 4] + out.slice(i + 1);
  }
  return out;
}

class Sink {
  private plain: WriteStream;
  private gz = createGzip({ level: 6 });
  private gzFile: WriteStream;
  private md5 = createHash('md5');
  gzBytes = 0;
  plainBytes = 0;
  constructor(readonly plainPath: string) {
    this.plain = createWriteStream(plainPath);
    this.gzFile = createWriteStream(`${plainPath}.gz`);
    this.gz.on('data', (d: Buffer) => {
      this.md5.update(d);
      this.gzBytes += d.length;
    });
    this.gz.pipe(this.gzFile);
  }
  async write(chunk: string): Promise<void> {
    this.plainBytes += Buffer.byteLength(chunk);
    const a = this.plain.write(chunk);
    const b = this.gz.write(chunk);
    if (!a) await new Promise<void>((r) => this.plain.once('drain', () => r()));
    if (!b) await new Promise<void>((r) => this.gz.once('drain', () => r()));
  }
  async end(mate: 0 | 1 | 2): Promise<SyntheticFile> {
    await new Promise<void>((r) => this.plain.end(() => r()));
    await new Promise<void>((r) => {
      this.gzFile.once('close', () => r());
      this.gz.end();
    });
    const path = `${this.plainPath}.gz`;
    return { name: path.slice(path.lastIndexOf('/') + 1), path, bytes: this.gzBytes, md5: this.md5.digest('hex'), mate };
  }
}

/** Simulates one run, streaming: plain FASTQ (for makeSra, then removed) and its .gz (served). */
async function simulateRun(o: { seqs: string[]; cumWeights: Float64Array; dir: string; run: string; reads: number; readLength: number; paired: boolean; seed: number }): Promise<{ plain: string[]; gz: SyntheticFile[] }> {
  const rng = new Prng(o.seed);
  await mkdir(o.dir, { recursive: true });
  const names = o.paired ? [`${o.run}_1.fastq`, `${o.run}_2.fastq`] : [`${o.run}.fastq`];
  const sinks = names.map((n) => new Sink(join(o.dir, n)));
  const total = o.cumWeights[o.cumWeights.length - 1]!;
  const pick = () => {
    const x = rng.next() * total;
    let lo = 0;
    let hi = o.cumWeights.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (o.cumWeights[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return o.seqs[lo]!;
  };
  // Qualities as an Illumina HiSeq run has them, not all 'I': high, drifting down along the read, with
  // noise and occasional dips. They make the gzip ratio (~4x) and the inflate cost what real FASTQ gives.
  const quality = (n: number) => {
    const q: string[] = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      let v = 38 - (i >> 5) + rng.int(5) - 2;
      if (rng.next() < 0.04) v -= 8 + rng.int(20);
      q[i] = String.fromCharCode(33 + Math.max(2, Math.min(41, v)));
    }
    return q.join('');
  };
  const CHUNK = 20_000;
  for (let start = 0; start < o.reads; start += CHUNK) {
    const r1: string[] = [];
    const r2: string[] = [];
    for (let n = start; n < Math.min(o.reads, start + CHUNK); n++) {
      const name = `@${o.run}.${n + 1}\n`;
      const tx = pick();
      const fl = Math.min(tx.length, o.paired ? Math.max(o.readLength, Math.round(PAIRED_FRAGMENT * (0.9 + rng.next() * 0.2))) : o.readLength);
      const at = rng.int(tx.length - fl + 1);
      let frag = tx.slice(at, at + fl);
      if (rng.next() < 0.5) frag = revcomp(frag);
      const a = mutate(frag.slice(0, o.readLength), rng);
      r1.push(`${name}${a}\n+\n${quality(a.length)}\n`);
      if (o.paired) {
        const b = mutate(revcomp(frag).slice(0, o.readLength), rng);
        r2.push(`${name}${b}\n+\n${quality(b.length)}\n`);
      }
    }
    await sinks[0]!.write(r1.join(''));
    if (o.paired) await sinks[1]!.write(r2.join(''));
  }
  const gz: SyntheticFile[] = [];
  for (const [i, s] of sinks.entries()) gz.push(await s.end(o.paired ? ((i + 1) as 1 | 2) : 0));
  return { plain: sinks.map((s) => s.plainPath), gz };
}

/** Bytes of one FASTQ record of a run: `@RUN.n\n` + read + `\n+\n` + quality + `\n`. */
const recordBytes = (run: string, readLength: number, reads: number) => `@${run}.${reads}\n`.length + 2 * readLength + 4;

export async function prepareB5(spec: B5Spec, log: (l: string) => void): Promise<B5Data> {
  const tx = await prepareTranscriptome(spec, log);
  const root = join(cacheRoot(), `b5-${keyOf({ ...spec, v: 2 })}`);
  const fastqBytesFile = join(root, 'fastq-bytes.json');
  if (existsSync(join(root, 'dataset.json')) && existsSync(fastqBytesFile)) {
    log(`B5: dataset cached at ${root}`);
    const fastqBytes = JSON.parse(readFileSync(fastqBytesFile, 'utf8')) as Record<string, number>;
    return { dataset: await loadDataset(root), transcripts: tx.transcripts, transcriptomeBases: tx.bases, fastqBytes };
  }
  await rm(root, { recursive: true, force: true });
  await mkdir(join(root, 'fasta'), { recursive: true });
  await mkdir(join(root, 'index'), { recursive: true });
  const gs = genusSpeciesOf(B5_SPECIES);
  // the dataset layout of fixtures.ts (fasta/, index/ as bench/real/workload.ts's indexPathOf expects)
  await symlink(tx.fasta, join(root, 'fasta', `${gs}.fa`));
  await symlink(tx.index, join(root, 'index', `${gs}.idx`));
  const t0 = Date.now();
  const seqs = await readFasta(tx.fasta);
  const wrng = new Prng(mixSeed(spec.seed, 2));
  const cumWeights = new Float64Array(seqs.length);
  let acc = 0;
  for (let i = 0; i < seqs.length; i++) {
    acc += Math.exp(1.5 * normal(wrng)); // expression: log-normal, a few transcripts dominate
    cumWeights[i] = acc;
  }
  const runs: SyntheticRun[] = [];
  const fastqBytes: Record<string, number> = {};
  log(`B5: generating ${spec.runs} runs of ${spec.minMB}-${spec.maxMB} MB into ${root} (once; cached for later runs)`);
  for (let i = 0; i < spec.runs; i++) {
    const run = `SRR${9_500_001 + i}`;
    const paired = i % 2 === 1;
    const sraOnly = spec.sraOnlyEvery > 0 && i % spec.sraOnlyEvery === 1;
    const targetBytes = (spec.minMB + (spec.runs > 1 ? ((spec.maxMB - spec.minMB) * i) / (spec.runs - 1) : 0)) * 1e6;
    const reads = Math.round(targetBytes / (recordBytes(run, spec.readLength, 500_000) * (paired ? 2 : 1)));
    const enaDir = join(root, 'files', 'ena', enaRunDir(run));
    const sim = await simulateRun({ seqs, cumWeights, dir: enaDir, run, reads, readLength: spec.readLength, paired, seed: mixSeed(spec.seed, 100 + i) });
    const sra = await makeSra(run, sim.plain, sraFileOnDisk(root, run), undefined, { timeoutMs: 20 * 60_000 });
    let plainBytes = 0;
    for (const p of sim.plain) {
      const fh = await open(p, 'r');
      plainBytes += (await fh.stat()).size;
      await fh.close();
      await rm(p, { force: true });
    }
    fastqBytes[run] = plainBytes;
    runs.push({ run, layout: paired ? 'paired' : 'single', reads, readLength: spec.readLength, nominalLength: paired ? PAIRED_FRAGMENT : SINGLE_NOMINAL, fastq: sim.gz, sra, sraOnly });
    log(`  ${run}: ${paired ? 'paired' : 'single'}${sraOnly ? ', SRA-only' : ''}, ${reads} spots, ${(plainBytes / 1e6).toFixed(0)} MB FASTQ, ${(sim.gz.reduce((n, f) => n + f.bytes, 0) / 1e6).toFixed(0)} MB gz, ${(sra.bytes / 1e6).toFixed(0)} MB .sra (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  const configDir = join(root, 'config', 'amalgkit');
  await mkdir(configDir, { recursive: true });
  const species: SyntheticSpecies = {
    name: B5_SPECIES, speciesId: speciesIdOf(B5_SPECIES), taxonId: 7_150_001, study: 'PRJEB915001',
    fastaPath: join(root, 'fasta', `${gs}.fa`), configPath: join(configDir, `amalgkit_${gs}.yaml`),
    runTablePath: join(root, 'work', gs, 'metadata', 'metadata.tsv'), runs,
  };
  await writeSpeciesConfig(species, root, join(root, 'output'), true);
  const dataset: Dataset = { root, configDir, outputDir: join(root, 'output'), species: [species] };
  await writeFile(fastqBytesFile, JSON.stringify(fastqBytes) + '\n');
  await writeFile(join(root, 'dataset.json'), JSON.stringify(dataset, null, 2) + '\n');
  log(`B5: dataset generated in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return { dataset, transcripts: tx.transcripts, transcriptomeBases: tx.bases, fastqBytes };
}
