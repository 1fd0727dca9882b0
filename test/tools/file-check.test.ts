// FileCheck runs its md5, gzip test and count on a worker thread (src/tools/check-thread.ts): the answers must
// be those of a plain in-process computation, whatever the chunking, with many checks sharing threads, and a
// stopped check must stop its thread's work instead of leaving a caller waiting. Each with both inflaters
// (src/tools/inflate.ts): igzip (npm run setup installs it) and node's zlib.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { feedFromDisk, FileCheck, FileCheckError } from '../../src/tools/fastq.js';
import { igzipPath, igzipReason, newInflater } from '../../src/tools/inflate.js';
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

const INFLATERS = ['igzip', 'zlib'] as const;

it('finds igzip (npm run setup installs Debian package isal); FETCHQUANT_INFLATE=zlib turns it off', () => {
  expect(igzipPath()).toMatch(/\/igzip$/);
  const was = process.env.FETCHQUANT_INFLATE;
  process.env.FETCHQUANT_INFLATE = 'zlib';
  try {
    expect(igzipPath()).toBeNull();
  } finally {
    if (was === undefined) delete process.env.FETCHQUANT_INFLATE;
    else process.env.FETCHQUANT_INFLATE = was;
  }
});

it("igzip's complaints read as zlib's, with igzip's own words after", () => {
  expect(igzipReason(1, null, 'igzip: Error (null) does not contain a complete gzip file\n')).toBe('unexpected end of file (igzip exit 1: Error does not contain a complete gzip file)');
  expect(igzipReason(1, null, 'igzip: Error encountered while decompressing file (null)\n')).toBe('invalid compressed data or CRC (igzip exit 1: Error encountered while decompressing)');
  expect(igzipReason(1, null, 'igzip: Error invalid gzip header found for file (null)\n')).toBe('incorrect header check (igzip exit 1: Error invalid gzip header found)');
  expect(igzipReason(1, null, 'igzip: Error while decompressing extra concatenatedgzip files on (null)\n')).toMatch(/^invalid compressed data or CRC \(igzip exit 1: /);
  expect(igzipReason(null, 'SIGSEGV', '')).toBe('igzip killed by SIGSEGV');
});

it('igzip stopped twice (a check stopped as it ends) closes its read-back file once: a second close would hit the file opened since under that number', () => {
  const dir = tempDir();
  const out = join(dir, 'out.fastq');
  const fd = openSync(out, 'w');
  const inflater = newInflater({ data: () => undefined, fail: () => undefined, lost: () => undefined }, igzipPath(), { fd, path: out }, 1 << 18);
  expect(inflater.kind).toBe('igzip');
  inflater.destroy();
  const other = openSync(join(dir, 'other'), 'w'); // the lowest free number: the one the read-back file had
  inflater.destroy();
  expect(() => writeSync(other, 'still open')).not.toThrow();
  closeSync(other);
  closeSync(fd);
});

it('igzip killed from outside says nothing of the bytes: the copy and the count stop, the md5 goes on, no gzip failure', async () => {
  const gz = gzipSync(fastq(200_000, 7));
  const plainPath = join(tempDir(), 'killed.fastq');
  const check = new FileCheck('gz', plainPath, 'igzip');
  await feed(check, gz.subarray(0, gz.length >> 1), [1 << 20]);
  // this check's igzip: a child of this process (the check thread runs in it), once the thread has its messages
  // (live ones only: an igzip an earlier test killed may still be a zombie here)
  const live = (pid: string) => !/^\d+ \(igzip\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const igzips = () => execFileSync('pgrep', ['-P', String(process.pid), '-x', 'igzip']).toString().trim().split('\n').filter(live);
  let pids: string[] = [];
  for (let i = 0; i < 200 && pids.length === 0; i++) {
    try {
      pids = igzips();
    } catch {
      /* pgrep exits 1 while there is none */
    }
    if (pids.length === 0) await new Promise((r) => setTimeout(r, 10));
  }
  expect(pids).toHaveLength(1);
  process.kill(Number(pids[0]), 'SIGKILL');
  for (let i = 0; i < 100 && existsSync(`/proc/${pids[0]}`); i++) await new Promise((r) => setTimeout(r, 10));
  await feed(check, gz.subarray(gz.length >> 1), [1 << 20]);
  const r = await check.finish();
  expect(r.md5).toBe(md5(gz));
  expect(r.records).toBeNull(); // src/activities/download.ts counts the .gz then
  expect(r.plain).toEqual({ lost: 'igzip killed by SIGKILL' });
});

describe.each(INFLATERS)('FileCheck (on its thread), inflating with %s', (inflate) => {
  // igzip inflates only into a plain copy (src/tools/inflate.ts): its checks are given one.
  let n = 0;
  const plainFor = (kind: 'gz' | 'plain') => (inflate === 'igzip' && kind === 'gz' ? join(tempDir(), `plain-${n++}.fastq`) : undefined);
  const newCheck = (kind: 'gz' | 'plain') => new FileCheck(kind, plainFor(kind), inflate);

  it('gives the md5 and record count of the bytes fed, for 12 checks at once in odd chunk sizes', async () => {
    const files = Array.from({ length: 12 }, (_, i) => (i % 3 === 2 ? fastq(3000 + i, i) : gzipSync(fastq(20_000 + 1000 * i, i))));
    const results = await Promise.all(
      files.map(async (bytes, i) => {
        const kind = i % 3 === 2 ? 'plain' : 'gz';
        const plainPath = plainFor(kind);
        const check = new FileCheck(kind, plainPath, inflate);
        // chunks above the thread's 1 MiB slot are split; smaller ones fill a slot together
        await feed(check, bytes, [1, 7, 65_537, 3 << 20, 1000]);
        return { ...(await check.finish()), plainPath };
      }),
    );
    for (const [i, r] of results.entries()) {
      expect(r.md5).toBe(md5(files[i]!));
      expect(r.records).toBe(i % 3 === 2 ? 3000 + i : 20_000 + 1000 * i);
      if (r.plainPath) {
        const plain = readFileSync(r.plainPath);
        expect(plain.equals(fastq(20_000 + 1000 * i, i))).toBe(true);
        expect(r.plain).toEqual({ bytes: plain.length });
      }
    }
  });

  it('bytes still gathering in a partly filled slot are part of every answer: digest, settle, finish', async () => {
    const small = fastq(50, 9); // a few KiB: well under the 1 MiB a slot holds before it goes to the thread
    const d = newCheck('plain');
    await d.update(small.subarray(0, 100));
    await d.update(small.subarray(100));
    expect(await d.digest()).toBe(md5(small));
    d.destroy();
    const f = newCheck('plain');
    await f.update(small);
    expect(await f.finish()).toMatchObject({ md5: md5(small), records: 50 });
    if (inflate === 'zlib') {
      // only zlib judges a prefix at settle() (igzip has no flush)
      const notGz = newCheck('gz');
      await notGz.update(small);
      await expect(notGz.settle()).rejects.toBeInstanceOf(FileCheckError);
      notGz.destroy();
    }
  });

  it('says what is wrong: corrupt gzip, a cut record, an empty file; md5 of what was fed stays available', async () => {
    const good = gzipSync(fastq(5000, 1));
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    const corrupt = newCheck('gz');
    const fed = feed(corrupt, bad, [4096]).then(() => corrupt.finish());
    const err = await errorOf(fed);
    expect(err).toBeInstanceOf(FileCheckError);
    expect((err as FileCheckError).check).toBe('gzip');
    expect(err.message).toMatch(/gzip test failed after \d+ compressed bytes: (incorrect data check|invalid|.*igzip exit 1)/);

    // Cut short, and not gzip at all: each in the words zlib would use.
    const short = newCheck('gz');
    await short.update(good.subarray(0, good.length - 100));
    expect((await errorOf(short.finish())).message).toMatch(/gzip test failed after \d+ compressed bytes: unexpected end of file/);
    const notGz = newCheck('gz');
    await notGz.update(fastq(100, 4));
    expect((await errorOf(notGz.finish())).message).toMatch(/gzip test failed after \d+ compressed bytes: incorrect header check/);

    // The bytes of the update that reports a failure are hashed too: a whole file whose gzip fails but whose
    // md5 matches the archive's is the archive's own bad copy, and must not read as an md5 mismatch.
    // (A gzip member, then the header of a second whose first deflate block has the reserved type 3: zlib fails
    // there at once, igzip once it has read its next block of input, ~1 MiB.)
    const junk = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(3 << 20, 0xff)]);
    const member = gzipSync(fastq(2000, 5));
    const all = newCheck('gz');
    await all.update(Buffer.concat([member, junk]));
    if (inflate === 'zlib') {
      await expect(all.settle()).rejects.toBeInstanceOf(FileCheckError); // the thread has seen the bad bytes
    } else {
      // igzip has no flush: its verdict comes when it has read the bytes, to a later update.
      for (let i = 0; i < 500 && !all.error; i++) await new Promise((r) => setTimeout(r, 10));
      expect(all.error).toBeInstanceOf(FileCheckError);
    }
    await expect(all.update(junk)).rejects.toBeInstanceOf(FileCheckError); // the caller's last chunk
    expect(await all.digest()).toBe(md5(Buffer.concat([member, junk, junk])));
    all.destroy();

    const cut = newCheck('gz');
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

    const check = newCheck('gz');
    const seen: number[] = [];
    await feedFromDisk(path, half, check, { onProgress: (n) => seen.push(n) });
    expect(check.bytes).toBe(half);
    expect(seen.at(-1)).toBe(half);
    await check.update(bytes.subarray(half));
    expect((await check.finish()).md5).toBe(md5(bytes));

    const stopped = newCheck('gz');
    const ac = new AbortController();
    const reason = new Error('cancelled by the test');
    const p = feedFromDisk(path, bytes.length, stopped, { signal: ac.signal, onProgress: () => ac.abort(reason) });
    await expect(p).rejects.toBe(reason);
    stopped.destroy();

    const missing = newCheck('gz');
    expect((await errorOf(feedFromDisk(join(dir, 'nope.fastq.gz'), 10, missing))).message).toMatch(/ENOENT/);
    missing.destroy();
  });

  it('a plain copy dropped halfway (the disk needs the room): zlib counts on; igzip stops and leaves the count to a later pass', async () => {
    const whole = fastq(80_000, 6);
    const gz = gzipSync(whole);
    const plainPath = join(tempDir(), 'dropped.fastq');
    const check = new FileCheck('gz', plainPath, inflate);
    await feed(check, gz.subarray(0, gz.length >> 1), [1 << 20]);
    await check.dropPlain();
    await feed(check, gz.subarray(gz.length >> 1), [1 << 20]);
    const r = await check.finish();
    expect(r.md5).toBe(md5(gz));
    expect(r.plain).toEqual({ lost: 'dropped: the disk needs the room' });
    // zlib inflates on without the copy; igzip wrote the copy itself and stopped with it (src/tools/check-thread.ts)
    expect(r.records).toBe(inflate === 'zlib' ? 80_000 : null);
    expect(existsSync(plainPath)).toBe(true); // the caller's to delete
  });
});
