/**
 * FASTQ.gz integrity and counting in-process (node zlib, streamed): the gzip test kallisto never does.
 * A flipped byte surfaces as a zlib data/crc error and a cut-off file as "unexpected end of file"; both
 * become TruncatedReads naming the file, so the sample downloads again instead of feeding kallisto a
 * file it would spin on forever or half-quantify with exit 0.
 */
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, type Gunzip } from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures.js';

const NL = 0x0a;

/**
 * zlib's output chunk. Node's default (16 KiB) means one thread-pool round trip and one 'data' event per
 * 16 KiB of FASTQ: 256 KiB halves the CPU of inflating a 150 MB .fastq.gz here (3.9 -> 1.9 CPU-s,
 * docs/benchmarks.md "download path").
 */
export const INFLATE_CHUNK = 1 << 18;

export interface CountOptions {
  signal?: AbortSignal;
  /** called with compressed bytes read so far, for heartbeats */
  onProgress?: (compressedBytes: number) => void;
}

const truncated = (message: string) => ApplicationFailure.create({ type: FailureType.TruncatedReads, message });

/** Records (4 lines each) in a gzipped FASTQ; throws TruncatedReads on any gzip error or a partial record. */
export async function countFastqGz(path: string, opts: CountOptions = {}): Promise<number> {
  let lines = 0;
  let last = NL;
  let compressed = 0;
  let any = false;
  const input = createReadStream(path, { highWaterMark: 1 << 20, signal: opts.signal });
  input.on('data', (c) => {
    compressed += c.length;
    opts.onProgress?.(compressed);
  });
  const gunzip = createGunzip({ chunkSize: INFLATE_CHUNK });
  try {
    await pipeline(input, gunzip, async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        if (chunk.length === 0) continue;
        any = true;
        for (let i = chunk.indexOf(NL); i !== -1; i = chunk.indexOf(NL, i + 1)) lines++;
        last = chunk[chunk.length - 1] as number;
      }
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (opts.signal?.aborted) throw opts.signal.reason ?? err;
    if (e.code === 'ENOENT') throw truncated(`${basename(path)}: file is missing (${path})`);
    // Z_DATA_ERROR (crc, bad block), Z_BUF_ERROR / "unexpected end of file" (truncated), not gzip at all.
    throw truncated(`${basename(path)}: gzip integrity test failed after ${compressed} compressed bytes: ${e.message} (${path})`);
  }
  if (compressed === 0) throw truncated(`${basename(path)}: file is empty (${path})`);
  if (any && last !== NL) lines++;
  if (lines % 4 !== 0) {
    throw truncated(`${basename(path)}: ${lines} lines is not a whole number of FASTQ records (4 lines each); the file is cut short (${path})`);
  }
  return lines / 4;
}

/**
 * Streams src into dst.gz-style output through a temp name, so a crash never leaves a plausible but short
 * dst. Level 1: these files live only until quant is done, so speed beats size.
 */
export async function gzipFile(src: string, dst: string, opts: { signal?: AbortSignal; level?: number } = {}): Promise<void> {
  const tmp = `${dst}.part`;
  try {
    const streams = [createReadStream(src, { highWaterMark: 1 << 20 }), createGzip({ level: opts.level ?? 1 }), createWriteStream(tmp)] as const;
    if (opts.signal) await pipeline(...streams, { signal: opts.signal });
    else await pipeline(...streams);
    await rename(tmp, dst);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Records in a plain FASTQ (fasterq-dump's unpaired RUN.fastq); a trailing partial record counts as one. */
export async function countFastqPlain(path: string, signal?: AbortSignal): Promise<number> {
  let lines = 0;
  let last = NL;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, signal })) {
    const c = chunk as Buffer;
    if (c.length === 0) continue;
    for (let i = c.indexOf(NL); i !== -1; i = c.indexOf(NL, i + 1)) lines++;
    last = c[c.length - 1] as number;
  }
  if (last !== NL) lines++;
  return Math.ceil(lines / 4);
}

/** Newlines in a chunk (memchr-backed indexOf: one native call per line). */
function newlines(c: Buffer): number {
  let n = 0;
  for (let i = c.indexOf(NL); i !== -1; i = c.indexOf(NL, i + 1)) n++;
  return n;
}

/** What kind of reads a file name says it holds: gzipped FASTQ, plain FASTQ, or something else (.sra). */
export function readsKind(name: string): 'gz' | 'plain' | null {
  if (/\.f(ast)?q\.gz$/.test(name)) return 'gz';
  if (/\.f(ast)?q$/.test(name)) return 'plain';
  return null;
}

/** The outcome of a FileCheck: md5 of the bytes, and FASTQ records when the file holds reads. */
export interface CheckResult {
  md5: string;
  /** null for a file that is not FASTQ (.sra) */
  records: number | null;
}

/**
 * The checks that ride on a file's bytes as they are written, so nothing reads the file again: md5 and, for
 * FASTQ, the record count; for .gz also the gzip test (inflated as the bytes arrive, CRC and length
 * included, on libuv's thread pool). A gzip error or a cut record is a FileCheckError naming the offset.
 *
 * md5 runs on the calling thread: ~1.5 CPU-s per GB here, i.e. ~15 % of one core at 100 MB/s; a worker
 * thread would add a copy or transfer per chunk and save no CPU, so it stays (docs/benchmarks.md).
 */
export class FileCheck {
  private readonly hash: Hash = createHash('md5');
  private readonly gunzip: Gunzip | null;
  private lines = 0;
  private last = NL;
  private any = false;
  private fed = 0;
  private failure: Error | null = null;
  private readonly ended: Promise<void> | null;

  constructor(readonly kind: 'gz' | 'plain' | null) {
    if (kind !== 'gz') {
      this.gunzip = null;
      this.ended = null;
      return;
    }
    const g = createGunzip({ chunkSize: INFLATE_CHUNK });
    g.on('data', (c: Buffer) => this.count(c));
    this.ended = new Promise<void>((resolve) => {
      g.once('end', () => resolve());
      g.once('error', (e) => {
        this.failure ??= new FileCheckError('gzip', `gzip test failed after ${this.fed} compressed bytes: ${e.message}`);
        resolve();
      });
    });
    this.gunzip = g;
  }

  private count(c: Buffer): void {
    if (c.length === 0) return;
    this.any = true;
    this.lines += newlines(c);
    this.last = c[c.length - 1] as number;
  }

  /** Bytes fed so far. */
  get bytes(): number {
    return this.fed;
  }

  /** The first gzip error seen so far, if any (checked between chunks: a bad byte stops the transfer early). */
  get error(): Error | null {
    return this.failure;
  }

  /**
   * Feed the next bytes of the file, in order. Resolves at once unless the inflater is behind (then when it
   * has drained): the caller reads no further ahead than zlib can follow. Throws the gzip error, if any.
   */
  async update(buf: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    this.hash.update(buf);
    this.fed += buf.length;
    if (this.gunzip) {
      if (!this.gunzip.write(buf)) await Promise.race([once(this.gunzip, 'drain'), this.ended]);
      if (this.failure) throw this.failure;
    } else if (this.kind === 'plain') {
      this.count(buf as Buffer);
    }
  }

  /** Wait until the inflater has taken every byte fed so far; throws its error, if any (a resumed prefix). */
  async settle(): Promise<void> {
    const g = this.gunzip;
    if (g && !this.failure) await Promise.race([new Promise<void>((r) => g.flush(() => r())), this.ended]);
    if (this.failure) throw this.failure;
  }

  /** md5 of every byte fed, once finish() or digest() has run (also when finish threw: the md5 may be the clearer story). */
  md5: string | null = null;

  /** md5 of the bytes fed so far; feed nothing after this. */
  digest(): string {
    return (this.md5 ??= this.hash.digest('hex'));
  }

  /** All bytes fed: the md5, and the records after the gzip test and the whole-record check. */
  async finish(): Promise<CheckResult> {
    if (this.gunzip) {
      this.gunzip.end();
      await this.ended;
    }
    const md5 = this.digest();
    if (this.failure) throw this.failure;
    if (this.kind === null) return { md5, records: null };
    if (this.fed === 0) throw new FileCheckError('records', 'file is empty');
    const lines = this.lines + (this.any && this.last !== NL ? 1 : 0);
    if (lines % 4 !== 0) throw new FileCheckError('records', `${lines} lines is not a whole number of FASTQ records (4 lines each); the file is cut short`);
    return { md5, records: lines / 4 };
  }

  /** Stop inflating (the transfer failed): frees zlib's memory and thread-pool work. */
  destroy(): void {
    this.gunzip?.destroy();
  }
}

/** A file's bytes failed a check: not gzip / corrupt ('gzip'), or not whole FASTQ records ('records'). */
export class FileCheckError extends Error {
  constructor(
    readonly check: 'gzip' | 'records',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Stream the first `bytes` of a file from disk through a check (a resumed download: its checks must cover
 * the bytes an earlier attempt wrote, and hash or inflate state cannot be persisted, so the prefix is read
 * once more, and only it).
 */
export async function feedFromDisk(path: string, bytes: number, check: FileCheck, opts: { signal?: AbortSignal; onProgress?: (n: number) => void } = {}): Promise<void> {
  if (bytes <= 0) return;
  let n = 0;
  for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1, highWaterMark: 1 << 20, signal: opts.signal })) {
    await check.update(chunk as Buffer);
    n += (chunk as Buffer).length;
    opts.onProgress?.(n);
  }
  await check.settle();
}

/**
 * The record of what a check found, beside the file (`.<name>.checked`): verifyReads takes the count from it
 * instead of reading the file again, but only while the file is the same one (device, inode, size and
 * mtime): anything that rewrote the file since makes the record stale and the file is counted again.
 */
export interface CheckRecord {
  name: string;
  bytes: number;
  /** null for a file that is not FASTQ (.sra) */
  records: number | null;
  md5: string | null;
  /** how the count was made: 'download' (inflated as it arrived), 'convert' (fasterq-dump output), 'downsample' */
  by: string;
  dev: number;
  ino: number;
  mtimeMs: number;
}

export const checkRecordPath = (path: string): string => join(dirname(path), `.${basename(path)}.checked`);

/** Write the record for `path` as it is now on disk (its final name: the record follows renames only by name). */
export async function writeCheckRecord(path: string, r: { records: number | null; md5: string | null; by: string }, statPath = path): Promise<void> {
  const st = await stat(statPath);
  const rec: CheckRecord = { name: basename(path), bytes: st.size, records: r.records, md5: r.md5, by: r.by, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs };
  const out = checkRecordPath(path);
  await writeFile(`${out}.tmp`, JSON.stringify(rec));
  await rename(`${out}.tmp`, out);
}

/** The record for `path` when it still describes the file on disk; null when absent, unreadable or stale. */
export async function readCheckRecord(path: string): Promise<CheckRecord | null> {
  const [raw, st] = await Promise.all([readFile(checkRecordPath(path), 'utf8').catch(() => null), stat(path).catch(() => null)]);
  if (raw === null || st === null) return null;
  try {
    const r = JSON.parse(raw) as CheckRecord;
    const same = r.name === basename(path) && r.bytes === st.size && r.dev === st.dev && r.ino === st.ino && r.mtimeMs === st.mtimeMs;
    return same && (r.records === null || (Number.isInteger(r.records) && r.records >= 0)) ? r : null;
  } catch {
    return null;
  }
}

/** Records of a FASTQ, gzipped or plain by its name, read from disk (a file with no check record). */
export async function countFastq(path: string, opts: CountOptions = {}): Promise<number> {
  if (readsKind(path) === 'gz') return countFastqGz(path, opts);
  const check = new FileCheck('plain');
  try {
    await feedFromDisk(path, Number.MAX_SAFE_INTEGER, check, { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
    return (await check.finish()).records!;
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason ?? err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw truncated(`${basename(path)}: file is missing (${path})`);
    throw truncated(`${basename(path)}: ${e.message} (${path})`);
  }
}
