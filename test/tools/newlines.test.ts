// The record count of every FASTQ rides on newlines() (src/tools/fastq-bytes.ts): 16 bytes per step in
// WebAssembly SIMD, which must give indexOf's count for every size and alignment, including the limits of
// its per-byte accumulators (255 blocks) and of its one-MiB memory.
import { createHash } from 'node:crypto';
import { newlineCounterKind, newlines, newlinesByIndexOf } from '../../src/tools/fastq-bytes.js';

/** Deterministic bytes (sha256 in counter mode), about `nlShare` of them newlines. */
function bytes(len: number, seed: number, nlShare: number): Buffer {
  const b = Buffer.alloc(len);
  for (let at = 0, i = 0; at < len; at += 32, i++) createHash('sha256').update(`${seed}.${i}`).digest().copy(b, at);
  const cut = Math.round(nlShare * 256);
  for (let i = 0; i < len; i++) {
    const v = b[i]!;
    b[i] = v < cut ? 0x0a : v === 0x0a ? 0x0b : v;
  }
  return b;
}

describe('newlines', () => {
  test('runs as WebAssembly SIMD on this Node (else every check counts the slow way)', () => {
    expect(newlineCounterKind()).toBe('wasm-simd');
  });

  test('equals indexOf on sizes around 16 bytes, 255 blocks and 1 MiB', () => {
    const sizes = [0, 1, 15, 16, 17, 31, 32, 33, 4079, 4080, 4081, 4096, 65_536, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 77];
    sizes.forEach((n, i) => {
      for (const share of [0, 0.01, 0.3, 1]) {
        const b = bytes(n, 7 + i, share);
        expect([n, share, newlines(b)]).toEqual([n, share, newlinesByIndexOf(b)]);
      }
    });
  });

  test('every byte a newline: no per-byte accumulator wraps (255 per lane and block)', () => {
    for (const n of [4080, 4096, 8191, (1 << 20) + 5]) expect(newlines(Buffer.alloc(n, 0x0a))).toBe(n);
  });

  test('views at any offset of a larger buffer, and plain Uint8Arrays', () => {
    const big = bytes(200_000, 99, 0.05);
    for (const [from, to] of [[1, 199_999], [3, 4083], [15, 16], [16, 17], [12_345, 150_001]] as const) {
      const view = new Uint8Array(big.buffer, big.byteOffset + from, to - from);
      expect(newlines(view)).toBe(newlinesByIndexOf(big.subarray(from, to)));
    }
  });

  test('the FASTQ shape: 4 lines per record', () => {
    const rec = '@r1\nACGTACGTAC\n+\nIIIIIIIIII\n';
    expect(newlines(Buffer.from(rec.repeat(12_345)))).toBe(4 * 12_345);
  });
});
