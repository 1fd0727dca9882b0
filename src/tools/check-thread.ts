/**
 * The thread side of FileCheck (./fastq.ts): md5, gzip test and FASTQ line count of the bytes a transfer
 * receives, run on a worker thread.
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
 */
import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { createGunzip, type Gunzip } from 'node:zlib';
import { INFLATE_CHUNK, NL, newlines } from './fastq-bytes.js';

/** Read size when the thread reads a file prefix itself (a resumed download). */
const FILE_READ = 1 << 20;

/** Main side to thread. */
export type ToThread =
  | { t: 'open'; id: number; kind: 'gz' | 'plain' | null; ring: SharedArrayBuffer; slotBytes: number }
  | { t: 'data'; id: number; slot: number; len: number }
  | { t: 'file'; id: number; path: string; bytes: number }
  | { t: 'settle'; id: number }
  | { t: 'end'; id: number }
  | { t: 'digest'; id: number }
  | { t: 'destroy'; id: number };

/** Thread to main side. */
export type FromThread =
  | { t: 'ack'; id: number; slot: number }
  | { t: 'progress'; id: number; fed: number }
  | { t: 'failed'; id: number; check: 'gzip' | 'records' | 'io'; message: string; code?: string }
  | { t: 'settled'; id: number }
  | { t: 'digest'; id: number; md5: string }
  | { t: 'done'; id: number; md5: string; lines: number; last: number; fed: number }
  | { t: 'closed'; id: number };

class Check {
  private readonly hash: Hash = createHash('md5');
  private readonly gunzip: Gunzip | null;
  private readonly ended: Promise<void> | null;
  lines = 0;
  last = NL;
  fed = 0;
  failed = false;
  md5: string | null = null;
  /** messages of this check run one after another */
  tail: Promise<void> = Promise.resolve();
  /** destroy(): a prefix read in progress stops, and nothing waits on zlib any more */
  readonly stop = new AbortController();
  private readonly stopped = new Promise<void>((r) => this.stop.signal.addEventListener('abort', () => r(), { once: true }));

  constructor(
    readonly id: number,
    readonly kind: 'gz' | 'plain' | null,
    readonly ring: Uint8Array,
    readonly slotBytes: number,
  ) {
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
        this.fail('gzip', `gzip test failed after ${this.fed} compressed bytes: ${e.message}`);
        resolve();
      });
    });
    this.gunzip = g;
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
  }

  /** Hash and inflate (or count) one chunk, which zlib may keep until it resolves: when zlib has taken all of it. */
  async feed(chunk: Uint8Array): Promise<void> {
    if (this.stop.signal.aborted) return;
    // md5 goes on after a failure: it is of every byte fed, and may be the clearer story.
    this.hash.update(chunk);
    this.fed += chunk.length;
    if (this.failed) return;
    if (this.gunzip) {
      // The callback runs once zlib has consumed the whole chunk; a failed stream ends `ended`.
      await Promise.race([new Promise<void>((resolve) => this.gunzip!.write(chunk, () => resolve())), this.ended, this.stopped]);
    } else if (this.kind === 'plain') {
      this.count(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    }
  }

  async settle(): Promise<void> {
    const g = this.gunzip;
    if (g && !this.failed && !this.stop.signal.aborted) await Promise.race([new Promise<void>((r) => g.flush(() => r())), this.ended, this.stopped]);
  }

  digest(): string {
    return (this.md5 ??= this.hash.digest('hex'));
  }

  async end(): Promise<void> {
    if (this.gunzip && !this.stop.signal.aborted) {
      this.gunzip.end();
      await Promise.race([this.ended, this.stopped]);
    }
  }

  destroy(): void {
    this.stop.abort();
    this.gunzip?.destroy();
  }
}

const checks = new Map<number, Check>();
const port = parentPort!;
const post = (m: FromThread) => port.postMessage(m);

/** The first `bytes` of a file, read here (a resumed download's kept prefix), fed in order. */
async function feedFile(c: Check, path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'r');
  try {
    let at = 0;
    while (at < bytes && !c.failed && !c.stop.signal.aborted) {
      // zlib may keep a chunk until it has inflated it: a new buffer each read (this heap is small).
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
      // Copied out of the ring so the slot is free as soon as zlib is done with this chunk's bytes here.
      const chunk = Buffer.from(c.ring.subarray(m.slot * c.slotBytes, m.slot * c.slotBytes + m.len));
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
    case 'end':
      await c.end();
      post({ t: 'done', id: c.id, md5: c.digest(), lines: c.lines, last: c.last, fed: c.fed });
      checks.delete(c.id);
      post({ t: 'closed', id: c.id });
      return;
    case 'destroy':
      c.destroy();
      checks.delete(c.id);
      post({ t: 'closed', id: c.id });
      return;
  }
}

port.on('message', (m: ToThread) => {
  if (m.t === 'open') {
    checks.set(m.id, new Check(m.id, m.kind, new Uint8Array(m.ring), m.slotBytes));
    return;
  }
  const c = checks.get(m.id);
  if (!c) return;
  if (m.t === 'destroy') c.destroy(); // at once, not behind a read in progress
  c.tail = c.tail.then(() => handle(m)).catch((err: unknown) => c.fail('io', (err as Error).message));
});
