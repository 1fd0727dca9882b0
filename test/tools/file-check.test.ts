// FileCheck runs its md5, gzip test and count on a worker thread (src/tools/check-thread.ts): the answers must
// be those of a plain in-process computation, whatever the chunking, with many checks sharing threads, and a
// stopped check must stop its thread's work instead of leaving a caller waiting.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { feedFromDisk, FileCheck, FileCheckError } from '../../src/tools/fastq.js';
import { cleanTempDirs, errorOf, tempDir } from './util.js';

afterAll(cleanTempDirs);

function fastq(records: number, seed: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < records; i++) {
    const seq = 'ACGT'.repeat(10 + ((i * 7 + seed) % 30));
    lines.push(`@r${seed}.${i}`, seq, '+', 'I'.repeat(seq.length));
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** Feeds `bytes` in chunks of the given sizes, cycling. */
async function feed(check: FileCheck, bytes: Buffer, sizes: number[]): Promise<void> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    await check.update(bytes.subarray(at, at + n));
    at += n;
  }
}

describe('FileCheck (on its thread)', () => {
  it('gives the md5 and record count of the bytes fed, for 12 checks at once in odd chunk sizes', async () => {
    const files = Array.from({ length: 12 }, (_, i) => (i % 3 === 2 ? fastq(3000 + i, i) : gzipSync(fastq(20_000 + 1000 * i, i))));
    const results = await Promise.all(
      files.map(async (bytes, i) => {
        const check = new FileCheck(i % 3 === 2 ? 'plain' : 'gz');
        // chunks above the thread's 1 MiB slot are split; tiny ones are not merged
        await feed(check, bytes, [1, 7, 65_537, 3 << 20, 1000]);
        return check.finish();
      }),
    );
    for (const [i, r] of results.entries()) {
      expect(r.md5).toBe(md5(files[i]!));
      expect(r.records).toBe(i % 3 === 2 ? 3000 + i : 20_000 + 1000 * i);
    }
  });

  it('says what is wrong: corrupt gzip, a cut record, an empty file; md5 of what was fed stays available', async () => {
    const good = gzipSync(fastq(5000, 1));
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    const corrupt = new FileCheck('gz');
    const fed = feed(corrupt, bad, [4096]).then(() => corrupt.finish());
    const err = await errorOf(fed);
    expect(err).toBeInstanceOf(FileCheckError);
    expect((err as FileCheckError).check).toBe('gzip');
    expect(err.message).toMatch(/gzip test failed after \d+ compressed bytes/);

    // The bytes of the update that reports a failure are hashed too: a whole file whose gzip fails but whose
    // md5 matches the archive's is the archive's own bad copy, and must not read as an md5 mismatch.
    // (A gzip member followed by bytes that are not gzip: zlib fails on them at once.)
    const junk = Buffer.alloc(8192, 0x41);
    const member = gzipSync(fastq(2000, 5));
    const all = new FileCheck('gz');
    await all.update(Buffer.concat([member, junk]));
    await expect(all.settle()).rejects.toBeInstanceOf(FileCheckError); // the thread has seen the bad bytes
    await expect(all.update(junk)).rejects.toBeInstanceOf(FileCheckError); // the caller's last chunk
    expect(await all.digest()).toBe(md5(Buffer.concat([member, junk, junk])));
    all.destroy();

    const cut = new FileCheck('gz');
    const whole = fastq(10, 2);
    await feed(cut, gzipSync(whole.subarray(0, whole.lastIndexOf('\n+\n'))), [100]); // the last record's + and quality lines gone
    const cutErr = await errorOf(cut.finish());
    expect(cutErr.message).toBe('38 lines is not a whole number of FASTQ records (4 lines each); the file is cut short');
    expect(cut.md5).toMatch(/^[0-9a-f]{32}$/);

    const empty = new FileCheck('plain');
    expect((await errorOf(empty.finish())).message).toBe('file is empty');
  });

  it('reads a kept prefix from disk on the thread; an abort stops it with the abort reason, and the check can be dropped', async () => {
    const dir = tempDir();
    const bytes = gzipSync(fastq(60_000, 3));
    const path = join(dir, 'x.fastq.gz');
    writeFileSync(path, bytes);
    const half = Math.floor(bytes.length / 2);

    const check = new FileCheck('gz');
    const seen: number[] = [];
    await feedFromDisk(path, half, check, { onProgress: (n) => seen.push(n) });
    expect(check.bytes).toBe(half);
    expect(seen.at(-1)).toBe(half);
    await check.update(bytes.subarray(half));
    expect((await check.finish()).md5).toBe(md5(bytes));

    const stopped = new FileCheck('gz');
    const ac = new AbortController();
    const reason = new Error('cancelled by the test');
    const p = feedFromDisk(path, bytes.length, stopped, { signal: ac.signal, onProgress: () => ac.abort(reason) });
    await expect(p).rejects.toBe(reason);
    stopped.destroy();

    const missing = new FileCheck('gz');
    expect((await errorOf(feedFromDisk(join(dir, 'nope.fastq.gz'), 10, missing))).message).toMatch(/ENOENT/);
    missing.destroy();
  });
});
