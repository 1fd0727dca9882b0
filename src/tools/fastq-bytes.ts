/**
 * FASTQ at the byte level, shared by the main side (./fastq.ts) and the check threads (./check-thread.ts).
 * No imports: a check thread loads this and nothing of the product's module graph.
 */

export const NL = 0x0a;

/**
 * zlib's output chunk. Node's default (16 KiB) means one thread-pool round trip and one 'data' event per
 * 16 KiB of FASTQ: 256 KiB halves the CPU of inflating a 150 MB .fastq.gz here (3.9 -> 1.9 CPU-s,
 * docs/benchmarks.md "download path").
 */
export const INFLATE_CHUNK = 1 << 18;

/**
 * src/tools/newlines.wat assembled (that file says how): counts the 0x0a bytes of its memory's first `len`
 * bytes, 16 at a time: a third of the CPU of one indexOf per line (bench/newlines.ts: 0.44 -> 0.14 CPU-s per
 * GB of FASTQ; B5's 1.7 GB: ~0.75 -> ~0.24), paid on every byte a check thread inflates and every file
 * fasterq-dump writes.
 */
const NEWLINES_WASM =
  'AGFzbQEAAAABBgFgAX8BfwMCAQAFAwEAEAcVAgZtZW1vcnkCAAhuZXdsaW5lcwAACrkBAbYBAgR/A3tBCv0PIQcgAEFwcSECAkADQCABIAJPDQEgAUHwH2ohAyADIAJLBEAgAiEDC/0MAAAAAAAAAAAAAAAAAAAAACEFA0AgBSAB/QAEACAH/SP9cSEFIAFBEGohASABIANJDQALIAYgBf19/X/9rgEhBgwACwsgBv0bACAG/RsBaiAG/RsCIAb9GwNqaiEEAkADQCABIABPDQEgBCABLQAAQQpGaiEEIAFBAWohAQwACwsgBAs=';
/** The module's memory: the most it counts per call. */
const WASM_CHUNK = 1 << 20;

interface NewlineCounter {
  memory: Uint8Array;
  count: (len: number) => number;
}
/** The little of the WebAssembly global used here (this project's TypeScript libs do not declare it). */
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: { memory: { buffer: ArrayBuffer }; newlines: (len: number) => number } };
}
let counter: NewlineCounter | null | undefined;
/** This thread's instance (each thread has its own memory), or null where WebAssembly SIMD is missing. */
function wasmCounter(): NewlineCounter | null {
  if (counter !== undefined) return counter;
  try {
    const wasm = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;
    const { exports } = new wasm.Instance(new wasm.Module(Buffer.from(NEWLINES_WASM, 'base64')));
    counter = { memory: new Uint8Array(exports.memory.buffer), count: exports.newlines };
  } catch {
    counter = null;
  }
  return counter;
}

/** How this thread counts newlines: 'wasm-simd', or 'indexOf' where WebAssembly SIMD is missing. */
export function newlineCounterKind(): 'wasm-simd' | 'indexOf' {
  return wasmCounter() ? 'wasm-simd' : 'indexOf';
}

/** Newlines in a chunk, one indexOf (memchr) per line: the reference, and the way without WebAssembly SIMD. */
export function newlinesByIndexOf(c: Uint8Array): number {
  const b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
  let n = 0;
  for (let i = b.indexOf(NL); i !== -1; i = b.indexOf(NL, i + 1)) n++;
  return n;
}

/** Newlines in a chunk of any size. */
export function newlines(c: Uint8Array): number {
  const w = wasmCounter();
  if (w === null) return newlinesByIndexOf(c);
  let n = 0;
  for (let at = 0; at < c.length; at += WASM_CHUNK) {
    const part = c.subarray(at, Math.min(at + WASM_CHUNK, c.length));
    w.memory.set(part, 0);
    n += w.count(part.length);
  }
  return n;
}

/**
 * The whole-record rule of a FASTQ (4 lines a record) or of fasterq-dump's FASTA (`perRecord` 2: a defline and
 * one unwrapped sequence line): not empty (`bytes` read), and its lines, a trailing partial line counted (`last`
 * is the last byte, NL when none was read), a whole number of records.
 */
export function wholeRecords(lines: number, last: number, bytes: number, perRecord: 2 | 4 = 4): { records: number } | { problem: string } {
  if (bytes === 0) return { problem: 'file is empty' };
  const n = lines + (last !== NL ? 1 : 0);
  if (n % perRecord !== 0) return { problem: `${n} lines is not a whole number of ${perRecord === 4 ? 'FASTQ' : 'FASTA'} records (${perRecord} lines each); the file is cut short` };
  return { records: n / perRecord };
}
