/**
 * Transcriptome and read simulation. Reads are sampled from the transcripts (either strand, a low
 * substitution rate) so kallisto really pseudoaligns them; quality lines are all 'I' (PHRED 40).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { RUN_ACCESSION } from '../config/schema.js';
import { Prng } from './prng.js';
import type { SyntheticFile } from './types.js';

const BASES = 'ACGT';
/** One substitution per 500 bases: realistic enough, and far below what breaks pseudoalignment. */
const ERROR_RATE = 0.002;

export async function fileInfo(path: string, mate: 0 | 1 | 2): Promise<SyntheticFile> {
  const data = await readFile(path);
  return {
    name: path.slice(path.lastIndexOf('/') + 1),
    path,
    bytes: data.length,
    md5: createHash('md5').update(data).digest('hex'),
    mate,
  };
}

/** Writes a FASTA of random transcripts (`>prefixN`), returns the sequences in order. */
export async function makeTranscriptome(
  path: string,
  opts: { transcripts: number; length: number; seed: number; prefix?: string },
): Promise<string[]> {
  if (opts.transcripts < 1 || opts.length < 50) throw new Error(`makeTranscriptome: need >= 1 transcript of >= 50 bases (got ${opts.transcripts} x ${opts.length})`);
  const rng = new Prng(opts.seed);
  const prefix = opts.prefix ?? 'tx';
  const seqs: string[] = [];
  const lines: string[] = [];
  for (let t = 0; t < opts.transcripts; t++) {
    // Lengths vary +-25 % so transcripts are distinguishable by effective length, as in real data.
    const len = Math.max(50, Math.round(opts.length * (0.75 + rng.next() * 0.5)));
    let s = '';
    for (let i = 0; i < len; i++) s += BASES[rng.int(4)];
    seqs.push(s);
    lines.push(`>${prefix}${t + 1}`);
    for (let i = 0; i < s.length; i += 60) lines.push(s.slice(i, i + 60));
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, lines.join('\n') + '\n');
  return seqs;
}

const COMPLEMENT: Record<string, string> = { A: 'T', C: 'G', G: 'C', T: 'A', N: 'N' };
export function reverseComplement(s: string): string {
  let out = '';
  for (let i = s.length - 1; i >= 0; i--) out += COMPLEMENT[s[i] as string] ?? 'N';
  return out;
}

function mutate(s: string, rng: Prng): string {
  let out = s;
  for (let i = 0; i < s.length; i++) {
    if (rng.next() < ERROR_RATE) {
      const b = BASES[(BASES.indexOf(s[i] as string) + 1 + rng.int(3)) % 4] as string;
      out = out.slice(0, i) + b + out.slice(i + 1);
    }
  }
  return out;
}

/** One fragment of `fragLen` bases from a random transcript, on a random strand. */
function fragment(seqs: string[], fragLen: number, rng: Prng): string {
  const tx = seqs[rng.int(seqs.length)] as string;
  const len = Math.min(fragLen, tx.length);
  const start = rng.int(tx.length - len + 1);
  const frag = tx.slice(start, start + len);
  return rng.next() < 0.5 ? frag : reverseComplement(frag);
}

function record(name: string, seq: string): string {
  return `@${name}\n${seq}\n+\n${'I'.repeat(seq.length)}\n`;
}

/**
 * Simulates `reads` spots into <dir>/<RUN>.fastq (single) or <RUN>_1.fastq + <RUN>_2.fastq (paired),
 * plain (kept for makeSra), and their gzipped copies (what the mirror serves). Read names: `@<RUN>.<n>`.
 */
export async function simulateReads(
  seqs: string[],
  opts: { dir: string; run: string; reads: number; readLength: number; paired: boolean; fragmentLength: number; seed: number; firstRead?: number },
): Promise<{ fastqPlain: string[]; fastqGz: SyntheticFile[] }> {
  if (!RUN_ACCESSION.test(opts.run)) throw new Error(`simulateReads: invalid run accession ${JSON.stringify(opts.run)}`);
  if (seqs.length === 0) throw new Error('simulateReads: no transcripts to sample from');
  const rng = new Prng(opts.seed);
  const first = opts.firstRead ?? 1;
  const r1: string[] = [];
  const r2: string[] = [];
  for (let n = 0; n < opts.reads; n++) {
    const name = `${opts.run}.${first + n}`;
    if (opts.paired) {
      // Fragment lengths jitter by +-10 % around the nominal length, as a library prep would.
      const fl = Math.max(opts.readLength, Math.round(opts.fragmentLength * (0.9 + rng.next() * 0.2)));
      const frag = fragment(seqs, fl, rng);
      r1.push(record(name, mutate(frag.slice(0, opts.readLength), rng)));
      r2.push(record(name, mutate(reverseComplement(frag).slice(0, opts.readLength), rng)));
    } else {
      r1.push(record(name, mutate(fragment(seqs, opts.readLength, rng), rng)));
    }
  }
  await mkdir(opts.dir, { recursive: true });
  const names = opts.paired ? [`${opts.run}_1.fastq`, `${opts.run}_2.fastq`] : [`${opts.run}.fastq`];
  const bodies = opts.paired ? [r1, r2] : [r1];
  const fastqPlain: string[] = [];
  const fastqGz: SyntheticFile[] = [];
  for (let i = 0; i < names.length; i++) {
    const plain = join(opts.dir, names[i] as string);
    const text = Buffer.from((bodies[i] as string[]).join(''));
    await writeFile(plain, text);
    // Fixed gzip level: the same seed gives byte-identical .gz (and md5) on every machine.
    await writeFile(`${plain}.gz`, gzipSync(text, { level: 6 }));
    fastqPlain.push(plain);
    fastqGz.push(await fileInfo(`${plain}.gz`, opts.paired ? ((i + 1) as 1 | 2) : 0));
  }
  return { fastqPlain, fastqGz };
}
