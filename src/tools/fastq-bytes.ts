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

/** Newlines in a chunk (memchr-backed indexOf: one native call per line). */
export function newlines(c: Uint8Array): number {
  const b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
  let n = 0;
  for (let i = b.indexOf(NL); i !== -1; i = b.indexOf(NL, i + 1)) n++;
  return n;
}

/**
 * The whole-record rule of a FASTQ: not empty (`bytes` read), and its lines, a trailing partial line
 * counted (`last` is the last byte, NL when none was read), a whole number of 4-line records.
 */
export function wholeRecords(lines: number, last: number, bytes: number): { records: number } | { problem: string } {
  if (bytes === 0) return { problem: 'file is empty' };
  const n = lines + (last !== NL ? 1 : 0);
  if (n % 4 !== 0) return { problem: `${n} lines is not a whole number of FASTQ records (4 lines each); the file is cut short` };
  return { records: n / 4 };
}
