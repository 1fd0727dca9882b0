/**
 * The thread side of FileCheck (./fastq.ts): md5, gzip test and FASTQ line count of the bytes a transfer
 * receives, run on a worker thread. The inflater is igzip or zlib (./inflate.ts).
 *
 * Why a thread (issue 15, docs/benchmarks.md B5): inflating a GB of FASTQ hands the JavaScript side a GB of
 * zlib output buffers. V8 starts a full mark-compact of the heap that owns them whenever tens of MB of such
 * buffers have come and gone, and the worker's main heap is ~40 MB of Temporal SDK: in B5 that was one full
 * GC every ~250 ms of download, most of fetchquant's "V8 platform threads" CPU. Here the buffers belong to a
 * heap of a few MB, whose GCs cost next to nothing; md5 leaves the event loop too.
 *
 * The bytes come through a SharedArrayBuffer of SLOTS slots the main side fills (no allocation there per
 * chunk); each message names a slot, which is free again when the chunk has been hashed and inflated (the
 * 'ack'), so the main side reads no further ahead than SLOTS chunks. It imports only ./fastq-bytes.ts of the
 * product's modules, so the thread starts in milliseconds.
 *
 * A check opened with a plainPath also writes what it inflates to that file (src/activities/download.ts
 * decides when): kallisto then reads plain FASTQ instead of inflating the same bytes a second time, which
 * cost it ~1 CPU-s per 120 MB of FASTQ in B5 (5.3 s on .gz, 4.3 s plain, one paired run). A write error,
 * or dropPlain (the disk needs the room), ends only the copy: the checks go on and 'done' says why. The copy
 * is synced as it grows (./background-sync.ts), so the fdatasync before it is renamed has only the tail left.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fdatasync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { parentPort, workerData } from 'node:worker_threads';
import { BackgroundSync } from './background-sync.js';
import { INFLATE_CHUNK, NL, newlines } from './fastq-bytes.js';
import { newInflater, type Inflater } from './inflate.js';

/** fdatasync of the plain copy: in the background as it grows, and once more before it is renamed. */
const datasync = promisify(fdatasync);

/** Read size when the thread reads a file prefix itself (a resumed download). */
const FILE_READ = 1 << 20;

/** Main side to thread. */
export type ToThread =
  | { t: 'open'; id: number; kind: 'gz' | 'plain' | null; ring: SharedArrayBuffer; slotBytes: number; plainPath?: string; igzip: string | null }
  | { t: 'data'; id: number; slot: number; len: number }
  | { t: 'file'; id: number; path: string; bytes: number }
  | { t: 'settle'; id: number }
  | { t: 'end'; id: number }
  | { t: 'digest'; id: number }
  | { t: 'dropPlain'; id: number }
  | { t: 'destroy'; id: number };

/** Thread to main side. */
export type FromThread =
  | { t: 'ack'; id: number; slot: number }
  | { t: 'progress'; id: number; fed: number }
  | { t: 'failed'; id: number; check: 'gzip' | 'records' | 'io'; message: string; code?: string }
  | { t: 'settled'; id: number }
  | { t: 'digest'; id: number; md5: string }
  | { t: 'done'; id: number; md5: string; lines: number; last: number; fed: number; plain?: { bytes: number } | { lost: string }; uncounted?: string }
  | { t: 'plainDropped'; id: number }
  | { t: 'closed'; id: number };

class Check {
  private readonly hash: Hash = createHash('md5');
  /** igzip or zlib (./inflate.ts); null for a check that inflates nothing, or no longer (uncounted) */
  private inflater: Inflater | null;
  /** why the inflating stopped before the end with no fault of the bytes (igzip's plain copy dropped or lost) */
  uncounted: string | null = null;
  lines = 0;
  last = NL;
  fed = 0;
  failed = false;
  md5: string | null = null;
  /** messages of this check run one after another */
  tail: Promise<void> = Promise.resolve();
  /** the inflated bytes also go to this file (plainPath): the reads as kallisto reads them fastest */
  private plainFd: number | null = null;
  /** fdatasync of the plain copy every few tens of MB while it grows */
  private plainSync: BackgroundSync | null = null;
  plainBytes = 0;
  /** why the inflated copy stopped (a write error, or dropPlain: the disk needs the room) */
  plainLost: string | null = null;
  /** destroy(): a prefix read in progress stops, and nothing waits on the inflater any more */
  readonly stop = new AbortController();
  private readonly stopped = new Promise<void>((r) => this.stop.signal.addEventListener('abort', () => r(), { once: true }));

  constructor(
    readonly id: number,
    readonly kind: 'gz' | 'plain' | null,
    readonly ring: Uint8Array,
    readonly slotBytes: number,
    plainPath: string | undefined,
    igzip: string | null,
  ) {
    if (plainPath !== undefined && kind === 'gz') {
      try {
        const fd = openSync(plainPath, 'w');
        this.plainFd = fd;
        this.plainSync = new BackgroundSync(() => datasync(fd), syncPermits);
      } catch (err) {
        this.plainLost = `cannot write ${plainPath}: ${(err as Error).message}`;
      }
    }
    this.inflater =
      kind === 'gz'
        ? newInflater(
            {
              data: (c) => this.count(c),
              fail: (why) => this.fail('gzip', `gzip test failed after ${this.fed} compressed bytes: ${why}`),
              lost: (why) => this.closePlain(why),
            },
            igzip,
            this.plainFd !== null && plainPath !== undefined ? { fd: this.plainFd, path: plainPath } : null,
            INFLATE_CHUNK,
          )
        : null;
  }

  /** igzip writes the plain copy itself (./inflate.ts); zlib's bytes are written here. */
  private get inflaterWrites(): boolean {
    return this.inflater?.kind === 'igzip';
  }

  fail(check: 'gzip' | 'records' | 'io', message: string, code?: string): void {
    if (this.failed) return;
    this.failed = true;
    post({ t: 'failed', id: this.id, check, message, ...(code ? { code } : {}) });
  }

  private count(c: Buffer): void {
    if (c.length === 0) return;
    this.lines += newlines(c);
    this.last = c[c.length - 1] as number;
    if (this.inflaterWrites) this.plainBytes += c.length;
    else if (this.plainFd !== null) this.writePlain(c);
    if (this.plainFd !== null) this.plainSync?.wrote(this.plainBytes);
  }

  /** Synchronous: this thread does nothing else meanwhile, and the page cache takes a MiB in well under a ms. */
  private writePlain(c: Buffer): void {
    try {
      for (let at = 0; at < c.length; ) at += writeSync(this.plainFd!, c, at, c.length - at);
      this.plainBytes += c.length;
    } catch (err) {
      this.closePlain(`writing the inflated reads failed after ${this.plainBytes} bytes: ${(err as Error).message}`);
    }
  }

  /**
   * Stops the inflated copy (its file is the main side's to delete). When igzip writes it, the inflating stops
   * too: igzip's output cannot be turned elsewhere mid-stream, so the count and the gzip test are given up
   * (uncounted) and the download counts the whole .gz once more before it writes its record
   * (src/activities/download.ts).
   */
  closePlain(why: string): void {
    if (this.inflaterWrites) {
      this.inflater!.destroy();
      this.inflater = null;
      this.uncounted = `the inflated copy stopped (${why}); to be counted from the .gz`;
    }
    if (this.plainFd === null) return;
    this.plainLost ??= why;
    this.closeFd();
  }

  private closeFd(): void {
    const fd = this.plainFd;
    this.plainFd = null;
    if (fd === null) return;
    const close = () => {
      try {
        closeSync(fd);
      } catch {
        /* closed either way */
      }
    };
    // A background sync still holds the number: closed after it, so it cannot reach a file opened since under it.
    if (this.plainSync?.running) void this.plainSync.settle().then(close);
    else close();
  }

  /** After end(): the inflated copy on disk (fdatasync: it is renamed into place next), or why there is none. */
  async finishPlain(): Promise<{ bytes: number } | { lost: string } | undefined> {
    if (this.plainFd === null) return this.plainLost === null ? undefined : { lost: this.plainLost };
    const fd = this.plainFd;
    const synced = (await this.plainSync?.settle()) ?? (await datasync(fd).then(() => null, (e: unknown) => e as Error));
    if (synced) {
      this.closePlain(`fdatasync of the inflated reads failed: ${synced.message}`);
      return { lost: this.plainLost! };
    }
    this.closeFd();
    return { bytes: this.plainBytes };
  }

  /** Hash and inflate (or count) one chunk, which the inflater may keep until it resolves: when it has taken all of it. */
  async feed(chunk: Uint8Array): Promise<void> {
    if (this.stop.signal.aborted) return;
    // The inflater takes the chunk first and this thread hashes it while igzip's pipe (or zlib in the thread
    // pool) works through it: hashing first left igzip idle for every chunk's md5 (docs/benchmarks.md,
    // "Writeback during the transfer").
    const inflater = this.failed ? null : this.inflater;
    const taking = inflater?.write(chunk);
    // md5 goes on after a failure: it is of every byte fed, and may be the clearer story.
    this.hash.update(chunk);
    this.fed += chunk.length;
    if (this.failed) return;
    if (inflater && taking) {
      // A failed stream ends `ended`.
      await Promise.race([taking, inflater.ended, this.stopped]);
    } else if (this.kind === 'plain') {
      this.count(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    }
  }

  async settle(): Promise<void> {
    const g = this.inflater;
    if (g && !this.failed && !this.stop.signal.aborted) await Promise.race([g.flush(), g.ended, this.stopped]);
  }

  digest(): string {
    return (this.md5 ??= this.hash.digest('hex'));
  }

  async end(): Promise<void> {
    if (this.inflater && !this.stop.signal.aborted) await Promise.race([this.inflater.end(), this.stopped]);
  }

  destroy(): void {
    this.stop.abort();
    this.inflater?.destroy();
    this.closePlain('the check was stopped');
  }
}

const checks = new Map<number, Check>();
const port = parentPort!;
/** The process's background-sync permits (./background-sync.ts), from the main side. */
const syncPermits = (workerData as { syncPermits: SharedArrayBuffer }).syncPermits;
const post = (m: FromThread) => port.postMessage(m);

/** The first `bytes` of a file, read here (a resumed download's kept prefix), fed in order. */
async function feedFile(c: Check, path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'r');
  try {
    let at = 0;
    while (at < bytes && !c.failed && !c.stop.signal.aborted) {
      // The inflater may keep a chunk until it has taken it: a new buffer each read (this heap is small).
      const buf = Buffer.allocUnsafe(Math.min(FILE_READ, bytes - at));
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead === 0) break;
      await c.feed(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      at += bytesRead;
      post({ t: 'progress', id: c.id, fed: at });
    }
  } finally {
    await fh.close();
  }
}

async function handle(m: ToThread): Promise<void> {
  const c = checks.get(m.id);
  if (!c) return;
  switch (m.t) {
    case 'data': {
      // A view of the slot, not a copy: feed() resolves once the hash and the inflater have taken every byte
      // (zlib has consumed it, or the pipe to igzip has), and only then is the slot acknowledged for reuse.
      const chunk = Buffer.from(c.ring.buffer, c.ring.byteOffset + m.slot * c.slotBytes, m.len);
      await c.feed(chunk);
      post({ t: 'ack', id: c.id, slot: m.slot });
      return;
    }
    case 'file':
      try {
        await feedFile(c, m.path, m.bytes);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        c.fail('io', e.message, e.code);
      }
      return;
    case 'settle':
      await c.settle();
      post({ t: 'settled', id: c.id });
      return;
    case 'digest':
      post({ t: 'digest', id: c.id, md5: c.digest() });
      return;
    case 'dropPlain':
      c.closePlain('dropped: the disk needs the room');
      post({ t: 'plainDropped', id: c.id });
      return;
    case 'end': {
      await c.end();
      const plain = await c.finishPlain();
      post({ t: 'done', id: c.id, md5: c.digest(), lines: c.lines, last: c.last, fed: c.fed, ...(plain ? { plain } : {}), ...(c.uncounted ? { uncounted: c.uncounted } : {}) });
      checks.delete(c.id);
      post({ t: 'closed', id: c.id });
      return;
    }
    case 'destroy':
      c.destroy();
      checks.delete(c.id);
      post({ t: 'closed', id: c.id });
      return;
  }
}

port.on('message', (m: ToThread) => {
  if (m.t === 'open') {
    checks.set(m.id, new Check(m.id, m.kind, new Uint8Array(m.ring), m.slotBytes, m.plainPath, m.igzip));
    return;
  }
  const c = checks.get(m.id);
  if (!c) return;
  if (m.t === 'destroy') c.destroy(); // at once, not behind a read in progress
  c.tail = c.tail.then(() => handle(m)).catch((err: unknown) => c.fail('io', (err as Error).message));
});
