/**
 * FASTQ.gz integrity and counting in-process (node zlib, streamed): the gzip test kallisto never does.
 * A flipped byte surfaces as a zlib data/crc error and a cut-off file as "unexpected end of file"; both
 * become TruncatedReads naming the file, so the sample downloads again instead of feeding kallisto a
 * file it would spin on forever or half-quantify with exit 0.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { createGunzip, createGzip } from 'node:zlib';
import { syncPermits } from './background-sync.js';
import type { FromThread, ToThread } from './check-thread.js';
import { INFLATE_CHUNK, NL, newlines, wholeRecords } from './fastq-bytes.js';
import { igzipPath } from './inflate.js';
import { cachedHostCores } from '../cores.js';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures.js';

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
        lines += newlines(chunk);
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
  return recordsOrTruncated(path, wholeRecords(lines, last, compressed, linesPerRecord(path)));
}

/**
 * Lines per record of a reads file, by its name: 2 for fasterq-dump's FASTA (`.fasta`, `.fasta.gz`; see
 * src/tools/fasterq-dump.ts), 4 for FASTQ.
 */
export function linesPerRecord(path: string): 2 | 4 {
  return /\.fasta(\.gz)?$/.test(path) ? 2 : 4;
}

/** The whole-record rule's answer for a file on disk; its problem as TruncatedReads naming the file. */
function recordsOrTruncated(path: string, w: ReturnType<typeof wholeRecords>): number {
  if ('problem' in w) throw truncated(`${basename(path)}: ${w.problem} (${path})`);
  return w.records;
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

/**
 * Lines of a plain file, read through one reused buffer: no md5 (nothing asks for the md5 of a file we wrote)
 * and no buffer per chunk for the garbage collector, which a GB of fasterq-dump output made a visible cost
 * (issue 15). `last` is the last byte (NL for an empty file).
 */
async function plainLines(path: string, opts: CountOptions = {}): Promise<{ lines: number; last: number; bytes: number }> {
  const fh = await open(path, 'r');
  const buf = Buffer.allocUnsafe(PLAIN_READ);
  let lines = 0;
  let last = NL;
  let bytes = 0;
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, buf.length, bytes);
      if (bytesRead === 0) break;
      const c = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      lines += newlines(c);
      last = c[bytesRead - 1] as number;
      bytes += bytesRead;
      opts.onProgress?.(bytes);
    }
  } finally {
    await fh.close();
  }
  return { lines, last, bytes };
}

/** The read size of plainLines: one thread-pool round trip per MiB. */
const PLAIN_READ = 1 << 20;

/** Records in a plain FASTQ or FASTA (fasterq-dump's unpaired RUN.fastq / RUN.fasta); a trailing partial record counts as one. */
export async function countFastqPlain(path: string, signal?: AbortSignal): Promise<number> {
  const { lines, last } = await plainLines(path, signal ? { signal } : {});
  return Math.ceil((lines + (last !== NL ? 1 : 0)) / linesPerRecord(path));
}

/** What kind of reads a file name says it holds: gzipped or plain (FASTQ, or fasterq-dump's FASTA), or something else (.sra). */
export function readsKind(name: string): 'gz' | 'plain' | null {
  if (/\.(f(ast)?q|fasta)\.gz$/.test(name)) return 'gz';
  if (/\.(f(ast)?q|fasta)$/.test(name)) return 'plain';
  return null;
}

/** The outcome of a FileCheck: md5 of the bytes, and FASTQ records when the file holds reads. */
export interface CheckResult {
  md5: string;
  /** null for a file that is not FASTQ (.sra), or a .gz whose count was given up (its plain copy, which igzip wrote, stopped: ./check-thread.ts; src/activities/download.ts counts it then) */
  records: number | null;
  /** a check opened with plainPath: the inflated copy written whole (bytes), or why it stopped */
  plain?: { bytes: number } | { lost: string };
}

/**
 * The checks that ride on a file's bytes as they are written, so nothing reads the file again: md5 and, for
 * FASTQ, the record count; for .gz also the gzip test (inflated as the bytes arrive, CRC and length
 * included). A gzip error or a cut record is a FileCheckError naming the offset.
 *
 * The work runs on a worker thread (./check-thread.ts says why: the garbage collector). update() copies the
 * chunk into one of the check's SLOTS shared slots and returns; it waits only when all slots are still being
 * worked on, so the caller reads no further ahead than the thread can follow. Chunks fill a slot before it is
 * handed over (one message each way per MiB, not per socket read: a loopback download arrives in ~80 KiB
 * reads); whatever sits in a partly filled slot goes before any other request to the thread.
 */
export class FileCheck {
  private readonly thread: CheckThread;
  private readonly id: number;
  private readonly ring: Ring;
  private next = 0;
  private inFlight = 0;
  /** bytes copied into slot `next` and not yet handed to the thread */
  private filled = 0;
  private fed = 0;
  private failure: Error | null = null;
  private closed = false;
  private destroyed = false;
  /** resolves the wait for a free slot / an answer of the thread */
  private wake: (() => void) | null = null;
  private answer: FromThread | null = null;
  /** bytes the thread has read itself (feedFile), for the caller's progress */
  private fileProgress: ((n: number) => void) | null = null;

  /**
   * plainPath (a .gz check only): the thread also writes the inflated bytes there (./check-thread.ts).
   * inflate: igzip (when installed, ./inflate.ts) or zlib. Only zlib judges a prefix at settle(): igzip has no
   * flush, so its verdict on bytes already fed may come with a later update() or finish().
   */
  constructor(
    readonly kind: 'gz' | 'plain' | null,
    plainPath?: string,
    inflate: 'igzip' | 'zlib' = 'igzip',
  ) {
    this.thread = checkThread();
    this.ring = takeRing();
    this.id = this.thread.open(this, kind, this.ring, plainPath, kind === 'gz' && inflate === 'igzip' ? igzipPath() : null);
  }

  /** Stop the inflated copy (the caller deletes its file); the checks go on. */
  async dropPlain(): Promise<void> {
    await this.ask({ t: 'dropPlain', id: this.id }, 'plainDropped');
  }

  /** From the thread (CheckThread routes by id). */
  receive(m: FromThread): void {
    switch (m.t) {
      case 'ack':
        this.inFlight--;
        break;
      case 'progress':
        this.fileProgress?.(m.fed);
        return;
      case 'failed':
        this.failure ??= m.check === 'io' ? Object.assign(new Error(m.message), m.code ? { code: m.code } : {}) : new FileCheckError(m.check, m.message);
        break;
      case 'closed':
        this.closed = true;
        giveRing(this.ring);
        this.thread.close(this.id);
        break;
      default:
        this.answer = m;
    }
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async until(ready: () => boolean): Promise<void> {
    if (ready()) return;
    this.thread.hold(1);
    try {
      while (!ready()) {
        if (this.thread.dead) throw this.thread.dead;
        if (this.destroyed) throw new Error('the file check was stopped');
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      this.thread.hold(-1);
    }
  }

  private async ask<T extends FromThread['t']>(m: ToThread, t: T): Promise<Extract<FromThread, { t: T }>> {
    this.answer = null;
    this.handOver();
    this.thread.post(m);
    await this.until(() => this.answer?.t === t);
    return this.answer as unknown as Extract<FromThread, { t: T }>;
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
   * Feed the next bytes of the file, in order (the caller may reuse `buf` once this resolves). Resolves at once
   * while a slot is free; throws the gzip error, if any, once these bytes are in too: the md5 covers every
   * byte fed (a whole file whose gzip fails but whose md5 matches the archive's is the archive's bad copy).
   */
  async update(buf: Uint8Array): Promise<void> {
    for (let at = 0; at < buf.length; ) {
      // Slots are acknowledged in order: while fewer than SLOTS are out, slot `next` is free.
      if (this.filled === 0) await this.until(() => this.inFlight < SLOTS);
      const len = Math.min(SLOT_BYTES - this.filled, buf.length - at);
      this.ring.bytes.set(buf.subarray(at, at + len), this.next * SLOT_BYTES + this.filled);
      this.filled += len;
      at += len;
      this.fed += len;
      if (this.filled === SLOT_BYTES) this.handOver();
    }
    if (this.failure) throw this.failure;
  }

  /** The partly filled slot, if any, to the thread: before anything else is asked of it, so bytes stay in order. */
  private handOver(): void {
    if (this.filled === 0) return;
    const slot = this.next;
    const len = this.filled;
    this.next = (this.next + 1) % SLOTS;
    this.filled = 0;
    this.inFlight++;
    this.thread.post({ t: 'data', id: this.id, slot, len });
  }

  /**
   * The first `bytes` of a file on disk, read and fed by the thread itself (a resumed download: the checks must
   * cover the bytes an earlier attempt wrote, and hash or inflate state cannot be persisted, so the prefix is
   * read once more, and only it). Throws the file's read error or the check's failure.
   */
  async feedFile(path: string, bytes: number, onProgress?: (n: number) => void): Promise<void> {
    if (bytes <= 0) return;
    const before = this.fed;
    this.fileProgress = (n) => {
      this.fed = before + n;
      onProgress?.(n);
    };
    try {
      this.handOver();
      this.thread.post({ t: 'file', id: this.id, path, bytes });
      await this.settle();
    } finally {
      this.fileProgress = null;
    }
  }

  /** Wait until the thread has taken every byte fed so far; throws its error, if any (a resumed prefix; zlib judges all of it, igzip what it has seen). */
  async settle(): Promise<void> {
    await this.ask({ t: 'settle', id: this.id }, 'settled');
    if (this.failure) throw this.failure;
  }

  /** md5 of every byte fed, once finish() or digest() has run (also when finish threw: the md5 may be the clearer story). */
  md5: string | null = null;

  /** md5 of the bytes fed so far; feed nothing after this. */
  async digest(): Promise<string> {
    if (this.md5 === null) this.md5 = (await this.ask({ t: 'digest', id: this.id }, 'digest')).md5;
    return this.md5;
  }

  /** All bytes fed: the md5, and the records after the gzip test and the whole-record check. */
  async finish(): Promise<CheckResult> {
    const done = await this.ask({ t: 'end', id: this.id }, 'done');
    this.md5 ??= done.md5;
    const md5 = this.md5;
    if (this.failure) throw this.failure;
    // Not FASTQ (.sra); or the inflating was given up with igzip's plain copy (the download counts the .gz).
    if (this.kind === null || done.uncounted) return { md5, records: null, ...(done.plain ? { plain: done.plain } : {}) };
    const w = wholeRecords(done.lines, done.last, done.fed);
    if ('problem' in w) throw new FileCheckError('records', w.problem);
    return { md5, records: w.records, ...(done.plain ? { plain: done.plain } : {}) };
  }

  /** Stop (the transfer failed): frees zlib's memory and the thread's work. */
  destroy(): void {
    if (this.destroyed || this.closed) return;
    this.destroyed = true;
    this.thread.post({ t: 'destroy', id: this.id });
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

/** Chunks the main side may hand the thread ahead of it, and the largest chunk per message. */
const SLOTS = 4;
const SLOT_BYTES = 1 << 20;

interface Ring {
  shared: SharedArrayBuffer;
  bytes: Uint8Array;
}
/** Rings of checks that are over, for the next check: one allocation per concurrent check, not per file. */
const freeRings: Ring[] = [];
function takeRing(): Ring {
  const r = freeRings.pop();
  if (r) return r;
  const shared = new SharedArrayBuffer(SLOTS * SLOT_BYTES);
  return { shared, bytes: new Uint8Array(shared) };
}
function giveRing(r: Ring): void {
  if (freeRings.length < 16) freeRings.push(r);
}

/**
 * One worker thread running ./check-thread.ts for many checks at once. It keeps the process alive only while
 * someone waits for its answer (a check abandoned without destroy() does not). If it dies, every open check
 * fails with the reason.
 */
class CheckThread {
  private readonly worker: Worker;
  private readonly open_ = new Map<number, FileCheck>();
  private nextId = 1;
  private waiting = 0;
  dead: Error | null = null;

  constructor() {
    // the process's background-sync permits (./background-sync.ts), shared with the thread
    this.worker = new Worker(new URL('./check-thread.js', import.meta.url), { workerData: { syncPermits: syncPermits() } });
    this.worker.unref();
    this.worker.on('message', (m: FromThread) => this.open_.get(m.id)?.receive(m));
    const die = (err: Error) => {
      this.dead ??= err;
      const i = threads.indexOf(this);
      if (i >= 0) threads.splice(i, 1);
      for (const c of this.open_.values()) c.receive({ t: 'failed', id: 0, check: 'io', message: `the check thread stopped: ${err.message}` });
      this.open_.clear();
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`exit code ${code}`)));
  }

  get load(): number {
    return this.open_.size;
  }

  open(c: FileCheck, kind: 'gz' | 'plain' | null, ring: Ring, plainPath: string | undefined, igzip: string | null): number {
    const id = this.nextId++;
    this.open_.set(id, c);
    this.post({ t: 'open', id, kind, ring: ring.shared, slotBytes: SLOT_BYTES, igzip, ...(plainPath !== undefined ? { plainPath } : {}) });
    return id;
  }

  close(id: number): void {
    this.open_.delete(id);
  }

  /** One more (+1) or one fewer (-1) caller waiting for an answer. */
  hold(n: 1 | -1): void {
    this.waiting += n;
    if (n === 1 && this.waiting === 1) this.worker.ref();
    if (n === -1 && this.waiting === 0) this.worker.unref();
  }

  post(m: ToThread): void {
    if (!this.dead) this.worker.postMessage(m);
  }
}

/**
 * Check threads: a new one while all are busy, up to one per 4 cores (at least 2, at most 8). One thread
 * hashes and counts ~0.3-0.5 GB/s here, so a 16-core host's downloads get 4 of them.
 */
const MAX_THREADS = Math.min(8, Math.max(2, Math.ceil(cachedHostCores() / 4)));
const threads: CheckThread[] = [];
function checkThread(): CheckThread {
  const least = threads.reduce<CheckThread | null>((a, t) => (a && a.load <= t.load ? a : t), null);
  if (least && (least.load === 0 || threads.length >= MAX_THREADS)) return least;
  const t = new CheckThread();
  threads.push(t);
  return t;
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

/** The first `bytes` of a file on disk through a check (see FileCheck.feedFile). */
export async function feedFromDisk(path: string, bytes: number, check: FileCheck, opts: { signal?: AbortSignal; onProgress?: (n: number) => void } = {}): Promise<void> {
  opts.signal?.throwIfAborted();
  const onAbort = () => check.destroy();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await check.feedFile(path, bytes, opts.onProgress);
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason ?? err;
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  opts.signal?.throwIfAborted();
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
  /**
   * On a converted paired run's first mate: the unpaired reads fasterq-dump --split-3 wrote to RUN.fastq
   * (counted, not kept). A retry that finds the finished outputs after the .sra is gone reads it back: the
   * run's spots are pairs plus these (src/activities/convert.ts).
   */
  unpaired?: number;
  /** a download kept plain: the archive's .gz file these bytes were inflated from, as checked (name, bytes, md5) */
  inflatedFrom?: { name: string; bytes: number; md5: string };
}

export const checkRecordPath = (path: string): string => join(dirname(path), `.${basename(path)}.checked`);

/** Write the record for `path` as it is now on disk (its final name: the record follows renames only by name). */
export async function writeCheckRecord(
  path: string,
  r: { records: number | null; md5: string | null; by: string; unpaired?: number; inflatedFrom?: CheckRecord['inflatedFrom'] },
  statPath = path,
): Promise<void> {
  const st = await stat(statPath);
  const rec: CheckRecord = {
    name: basename(path),
    bytes: st.size,
    records: r.records,
    md5: r.md5,
    by: r.by,
    dev: st.dev,
    ino: st.ino,
    mtimeMs: st.mtimeMs,
    ...(r.unpaired !== undefined ? { unpaired: r.unpaired } : {}),
    ...(r.inflatedFrom ? { inflatedFrom: r.inflatedFrom } : {}),
  };
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

/** Records of a FASTQ (or fasterq-dump's FASTA: linesPerRecord), gzipped or plain by its name, read from disk (a file with no check record). */
export async function countFastq(path: string, opts: CountOptions = {}): Promise<number> {
  if (readsKind(path) === 'gz') return countFastqGz(path, opts);
  let counted: { lines: number; last: number; bytes: number };
  try {
    counted = await plainLines(path, opts);
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason ?? err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw truncated(`${basename(path)}: file is missing (${path})`);
    throw truncated(`${basename(path)}: ${e.message} (${path})`);
  }
  return recordsOrTruncated(path, wholeRecords(counted.lines, counted.last, counted.bytes, linesPerRecord(path)));
}
