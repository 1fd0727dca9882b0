/**
 * Newline counting (issue 15): the record count of every FASTQ rides on newlines() (src/tools/fastq-bytes.ts).
 * CPU-seconds of the WebAssembly SIMD counter and of one indexOf per line (its fallback, and the code before
 * it) over the same bytes in 1 MiB chunks, alternating, in one process; the counts must agree.
 *
 *   node dist/bench/newlines.js [--mb 200] [--reps 5] [FILE]
 *
 * FILE: a plain FASTQ to read (e.g. one B5 run, gunzipped); without it, seeded random 100 bp reads.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { newlineCounterKind, newlines, newlinesByIndexOf } from '../src/tools/fastq-bytes.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

function randomFastq(mb: number): Buffer {
  const out = Buffer.alloc(mb * 1e6);
  let x = 2463534242;
  let at = 0;
  for (let r = 0; at < out.length; r++) {
    const head = `@r${r}\n`;
    at += out.write(head, at, 'latin1');
    for (let i = 0; i < 100 && at < out.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[at++] = 'ACGT'.charCodeAt((x >>> 0) & 3);
    }
    at += out.write(`\n+\n${'I'.repeat(100)}\n`, at, 'latin1');
  }
  return out;
}

function cpuOf(count: (c: Uint8Array) => number, bytes: Buffer): { sec: number; n: number } {
  const t0 = process.cpuUsage();
  let n = 0;
  for (let at = 0; at < bytes.length; at += 1 << 20) n += count(bytes.subarray(at, at + (1 << 20)));
  const t = process.cpuUsage(t0);
  return { sec: (t.user + t.system) / 1e6, n };
}

const file = process.argv.slice(2).find((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
const bytes = file ? readFileSync(file) : randomFastq(arg('mb', 200));
const reps = arg('reps', 5);
const simd: number[] = [];
const indexOf: number[] = [];
for (let r = 0; r < reps; r++) {
  const a = cpuOf(newlines, bytes);
  const b = cpuOf(newlinesByIndexOf, bytes);
  if (a.n !== b.n) throw new Error(`counts differ: ${a.n} (newlines) vs ${b.n} (indexOf)`);
  simd.push(a.sec);
  indexOf.push(b.sec);
}
const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
const gb = bytes.length / 1e9;
console.log(`${(bytes.length / 1e6).toFixed(0)} MB (${file ?? 'random reads'}), ${reps} reps, ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
console.log(`newlines (${newlineCounterKind()}): median ${med(simd).toFixed(3)} CPU-s, ${(med(simd) / gb).toFixed(3)} CPU-s/GB`);
console.log(`indexOf per line:          median ${med(indexOf).toFixed(3)} CPU-s, ${(med(indexOf) / gb).toFixed(3)} CPU-s/GB`);
console.log(`ratio: ${(med(indexOf) / med(simd)).toFixed(1)}x less CPU`);
