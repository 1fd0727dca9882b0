/**
 * The inflater of a check thread (./check-thread.ts): ISA-L's `igzip -dc` (Debian package isal) for a download
 * kept plain, node's zlib otherwise. Only node: imports, like everything a check thread loads.
 *
 * Why igzip (issue 15, docs/benchmarks.md "Inflating with igzip"): the gzip test inflates every byte an ENA
 * download brings, and a download kept plain also writes every inflated byte. With zlib the check thread did
 * both, in 256 KiB pieces; igzip inflates at about a third of zlib's CPU and writes the plain copy itself in
 * 1 MiB writes, which the thread reads back from the page cache to count. bench/download-cpu.ts, one 150 MB
 * .fastq.gz (0.9 GB of FASTQ) kept plain: 4.4-4.7 CPU-s with zlib, 2.3-3.2 with igzip (its own CPU included).
 * Through a pipe instead (igzip's stdout read by the thread) it saved next to nothing: the socket's small
 * buffer makes both sides trade the CPU every 64 KiB. So a .gz kept as fetched (nowhere to write the inflated
 * bytes) keeps zlib, and so does a resumed download, whose kept prefix must be judged before the transfer
 * goes on (igzip has no flush).
 *
 * What each calls bad (both: a flipped byte, a wrong CRC or length, a stream cut short, not gzip at all; isa-l
 * programs/igzip_cli.c, docs/archives-and-tools.md "isal"): zlib also fails on bytes after the last gzip member
 * that are not another member; igzip ignores them, as zlib's own gzread does, so kallisto reads the same reads,
 * and an ENA file's md5 covers them either way. igzip reads 1 MiB at a time, so its verdict on bad bytes comes
 * up to that much later than zlib's, and at the end of the stream at the latest. Exit 1 is the bytes; any other
 * failure of igzip (could not run, write or read; killed) says nothing of them: the copy and the count stop
 * (lost) and the download counts the whole .gz once more with zlib (src/activities/download.ts).
 * FETCHQUANT_INFLATE=zlib turns igzip off (tests, and A/B runs of the benchmarks).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { createGunzip, type Gunzip } from 'node:zlib';

/** What an inflater tells its check. */
export interface InflaterEvents {
  /** inflated bytes, in order; the buffer is the inflater's until the call returns */
  data(c: Buffer): void;
  /** the stream is bad: why, in words; called at most once */
  fail(reason: string): void;
  /** igzip stopped for a reason of its own (could not run, could not write, killed): nothing is known of the bytes */
  lost(reason: string): void;
}

export interface Inflater {
  /** Resolves when the inflater has taken the chunk (it may still be inflating it). */
  write(chunk: Uint8Array): Promise<void>;
  /** zlib: every byte written so far inflated and handed to data(). igzip: written to its pipe (it has no flush). */
  flush(): Promise<void>;
  /** No more input: resolves once every inflated byte has been handed to data() and the stream judged. */
  end(): Promise<void>;
  /** Resolves (never rejects) once the inflater failed or ended. */
  readonly ended: Promise<void>;
  destroy(): void;
  /** igzip writes the plain file itself; zlib leaves that to data()'s receiver */
  readonly kind: 'igzip' | 'zlib';
}

let found: string | null | undefined;
/** igzip's path, or null: not on PATH, or FETCHQUANT_INFLATE=zlib. Looked up once per process (the main side's). */
export function igzipPath(): string | null {
  if (process.env.FETCHQUANT_INFLATE === 'zlib') return null;
  if (found !== undefined) return found;
  found = null;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    // A relative entry would run whatever igzip the worker's current directory holds.
    if (!isAbsolute(dir)) continue;
    try {
      accessSync(join(dir, 'igzip'), constants.X_OK);
      found = join(dir, 'igzip');
      break;
    } catch {
      /* not here */
    }
  }
  return found;
}

/** For the run log: what inflates downloads kept plain on this host. */
export function inflaterInUse(): string {
  const igzip = igzipPath();
  if (igzip) return `downloads kept plain are inflated by ${igzip}`;
  return process.env.FETCHQUANT_INFLATE === 'zlib'
    ? "downloads are inflated by node's zlib (FETCHQUANT_INFLATE=zlib)"
    : "downloads are inflated by node's zlib: no igzip on PATH (Debian package isal; about three times zlib's speed)";
}

/** Read-back size of igzip's output (its own writes are 1 MiB). */
const READ_BACK = 1 << 20;

/**
 * igzip at that path when the inflated bytes go to a file (plain: its open fd and path), else zlib with that
 * output chunk. igzip's inflater writes the file itself; zlib's hands every byte to data() only.
 */
export function newInflater(on: InflaterEvents, igzip: string | null, plain: { fd: number; path: string } | null, zlibChunk: number): Inflater {
  return igzip && plain ? new IgzipInflater(igzip, plain.fd, plain.path, on) : new ZlibInflater(on, zlibChunk);
}

class ZlibInflater implements Inflater {
  readonly kind = 'zlib';
  private readonly g: Gunzip;
  readonly ended: Promise<void>;

  constructor(on: InflaterEvents, chunkSize: number) {
    const g = createGunzip({ chunkSize });
    g.on('data', (c: Buffer) => on.data(c));
    this.ended = new Promise<void>((resolve) => {
      g.once('end', () => resolve());
      g.once('error', (e) => {
        on.fail(e.message);
        resolve();
      });
    });
    this.g = g;
  }

  write(chunk: Uint8Array): Promise<void> {
    // The callback runs once zlib has consumed the whole chunk.
    return new Promise<void>((resolve) => this.g.write(chunk, () => resolve()));
  }

  flush(): Promise<void> {
    return new Promise<void>((r) => this.g.flush(() => r()));
  }

  async end(): Promise<void> {
    this.g.end();
    await this.ended;
  }

  destroy(): void {
    this.g.destroy();
  }
}

/**
 * igzip's complaints (isa-l 2.30, programs/igzip_cli.c), in the words zlib would use, with igzip's own after.
 * Its messages name the input file, "(null)" for a pipe.
 */
export function igzipReason(code: number | null, signal: NodeJS.Signals | null, stderr: string): string {
  const said = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => l.replace(/^igzip: /, '').replace(/ (for )?file \(null\)$/, '').replace(/ \(null\)/, ''))
    .join('; ');
  const how = signal ? `igzip killed by ${signal}` : `igzip exit ${code}`;
  if (/does not contain a complete gzip file/.test(stderr)) return `unexpected end of file (${how}: ${said})`;
  if (/invalid gzip header/.test(stderr)) return `incorrect header check (${how}: ${said})`;
  if (/encountered while decompressing|while decompressing extra concatenated/.test(stderr)) return `invalid compressed data or CRC (${how}: ${said})`;
  return said ? `${how}: ${said}` : how;
}

/**
 * igzip writing the inflated bytes straight to the plain copy's file (outFd), which is read back from the page
 * cache to count them (data()) after each write and at the end. Not a pipe: a pipe's 64 KiB buffer makes
 * igzip and its reader trade the CPU every 64 KiB, and that cost (bench/download-cpu.ts, docs/benchmarks.md)
 * ate most of what igzip saves; only a plain copy's bytes have somewhere to go without one.
 */
class IgzipInflater implements Inflater {
  readonly kind = 'igzip';
  private readonly child: ChildProcessWithoutNullStreams;
  private stderr = '';
  private stopped = false;
  /** the plain file, opened again for reading; and how far it has been counted */
  private readonly readFd: number;
  private readAt = 0;
  private readClosed = false;
  private readonly buf = Buffer.allocUnsafe(READ_BACK);
  readonly ended: Promise<void>;

  constructor(
    path: string,
    outFd: number,
    outPath: string,
    private readonly on: InflaterEvents,
  ) {
    this.readFd = openSync(outPath, 'r');
    const child = spawn(path, ['-dc'], { stdio: ['pipe', outFd, 'pipe'] }) as unknown as ChildProcessWithoutNullStreams;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (this.stderr.length < 4096) this.stderr += s;
    });
    // EPIPE once igzip has stopped on bad bytes: its exit says why.
    child.stdin.on('error', () => undefined);
    this.ended = new Promise<void>((resolve) => {
      child.once('error', (e) => {
        if (!this.stopped) on.lost(`igzip could not run: ${e.message}`);
        resolve();
      });
      child.once('close', (code, signal) => {
        if (!this.stopped) {
          // Every byte igzip wrote is in the file now: count the rest.
          this.readBack();
          // Exit 1: the bytes (programs/igzip_cli.c of isa-l: decompress_file); 252/253 (exit(-4)/exit(-3)):
          // it could not write its output or read its input; a signal: killed from outside.
          if (code === 1) on.fail(igzipReason(code, signal, this.stderr));
          else if (code !== 0) on.lost(igzipReason(code, signal, this.stderr));
        }
        resolve();
      });
    });
    this.child = child;
  }

  /** Counts what igzip has written since the last call (the page cache hands it back without a disk read). */
  readBack(): void {
    if (this.stopped || this.readClosed) return;
    for (;;) {
      const n = readSync(this.readFd, this.buf, 0, this.buf.length, this.readAt);
      if (n === 0) return;
      this.readAt += n;
      this.on.data(this.buf.subarray(0, n));
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    // The callback runs once the chunk is in the pipe (or the pipe is gone: `ended` tells the rest).
    const taken = new Promise<void>((resolve) => this.child.stdin.write(chunk, () => resolve()));
    // What igzip wrote of the chunks before is counted while it works through this one: counting after the
    // write left it idle meanwhile (the pipe holds a fraction of a MiB). The rest is counted at its exit.
    this.readBack();
    await taken;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  async end(): Promise<void> {
    this.child.stdin.end();
    await this.ended;
    this.closeRead();
  }

  destroy(): void {
    this.stopped = true;
    this.child.stdin.destroy();
    this.child.kill('SIGKILL');
    this.closeRead();
  }

  /**
   * Once only: end() and destroy() may both come (a check stopped while it ends), and a second close of the
   * same number could close a file this thread opened since under that number.
   */
  private closeRead(): void {
    if (this.readClosed) return;
    this.readClosed = true;
    try {
      closeSync(this.readFd);
    } catch {
      /* closed either way */
    }
  }
}
