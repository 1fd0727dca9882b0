/**
 * steps.getfastq.max_bp (docs/amalgkit.md): fetch a run's FASTQ only until its reads hold max_bp bases, then
 * stop the transfer. Like amalgkit getfastq, which dumps one contiguous block of spots, this keeps the FIRST
 * reads of the run: the archive's gzip is decompressed as it arrives, whole records are taken (both mates of
 * a pair together, in step), and they are written re-compressed under the archive's file names.
 *
 * What can be checked: every record is whole (4 lines, @ and + lines, sequence and quality of equal length),
 * mates pair up one for one, the bytes received decompress as gzip, and the written files are gzip the reads
 * check and kallisto read. What cannot: the archive's md5 covers the whole file, never a prefix, so it is
 * checked only when the file ended before max_bp (then nothing was cut and this is an ordinary download).
 * An interrupted attempt starts over (the prefix is small by design; resuming mid-gzip is not possible).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { createGunzip, createGzip } from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures.js';
import { writeCheckRecord } from '../tools/fastq.js';
import type { HttpClient } from '../tools/http.js';
import type { DownloadResult, LocalFile, SourcePlan } from '../types.js';
import { freshPart } from './part-file.js';

const fail = (type: FailureType, message: string, nonRetryable = false) => ApplicationFailure.create({ type, message, nonRetryable });

/** Whole FASTQ records from a stream of decompressed text chunks. */
class RecordReader {
  private buf = '';
  private lines: string[] = [];
  /** index of the first unread line (an array shift per record would be quadratic) */
  private head = 0;
  private ended = false;
  private waiting: (() => void) | null = null;
  error: Error | null = null;

  push(text: string): void {
    this.buf += text;
    const parts = this.buf.split('\n');
    this.buf = parts.pop() ?? '';
    if (this.head > 65_536) {
      this.lines = this.lines.slice(this.head);
      this.head = 0;
    }
    for (const l of parts) this.lines.push(l.endsWith('\r') ? l.slice(0, -1) : l);
    this.wake();
  }
  end(err?: Error): void {
    if (this.buf !== '') this.lines.push(this.buf);
    this.buf = '';
    this.ended = true;
    if (err) this.error = err;
    this.wake();
  }
  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }
  get buffered(): number {
    return this.lines.length - this.head;
  }
  /** Resolves once a whole record is buffered, or the stream ended or failed. */
  async ready(): Promise<void> {
    while (this.buffered < 4 && !this.ended && !this.error) await new Promise<void>((r) => (this.waiting = r));
    if (this.error) throw this.error;
  }
  /** Whole records buffered now. */
  get records(): number {
    return Math.floor(this.buffered / 4);
  }
  /** True at the end of the stream with no record left; throws on a cut last record. */
  get done(): boolean {
    if (!this.ended || this.buffered >= 4) return false;
    // a blank last line is a file's final newline, anything else is a cut record
    if (this.lines.slice(this.head).every((l) => l === '')) return true;
    throw new Error(`stream ended inside a record (${this.buffered} of 4 lines)`);
  }
  /** The next record's 4 lines (call only while records > 0). */
  take(): string[] {
    const rec = this.lines.slice(this.head, this.head + 4);
    this.head += 4;
    return rec;
  }
}

export interface DownsampleDeps {
  http: HttpClient;
  stallMs: number;
  cancel?: AbortSignal;
  progress: { file: string; offset: number };
}

/** ENA FASTQ only: one .fastq.gz (single) or mates _1 and _2 (paired). A .sra is fetched whole. */
export function canDownsample(plan: SourcePlan): boolean {
  if (plan.source !== 'ena' || !plan.files.every((f) => f.name.endsWith('.fastq.gz'))) return false;
  const mates = plan.files.map((f) => f.mate).sort().join(',');
  return plan.layout === 'paired' ? mates === '1,2' : plan.files.length === 1;
}

/** Fetch the first reads of the run holding at least maxBp bases; see the header. */
export async function downloadFirstBases(plan: SourcePlan, runDir: string, maxBp: number, deps: DownsampleDeps): Promise<DownloadResult> {
  const where = `run ${plan.run}`;
  await mkdir(runDir, { recursive: true });
  // mates in order _1, _2 (ENA's order is not a promise: chooseFastqFiles picked them by suffix)
  const files = [...plan.files].sort((a, b) => a.mate - b.mate);
  const abort = new AbortController();
  const signal = deps.cancel ? AbortSignal.any([deps.cancel, abort.signal]) : abort.signal;
  let lastByteAt = Date.now();
  const watchdog = setInterval(() => {
    if (Date.now() - lastByteAt > deps.stallMs) abort.abort(new Error(`no byte for ${deps.stallMs / 1000} s`));
  }, Math.max(50, Math.min(1000, deps.stallMs / 4)));

  let stopped = false;
  const streams = await Promise.all(
    files.map(async (f) => {
      const res = await deps.http.get(f.url, { headers: { 'accept-encoding': 'identity' }, signal });
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        throw fail(FailureType.ServerError, `${where}: ${f.name} from ${f.url}: HTTP ${res.status} (expected 200)`);
      }
      const reader = new RecordReader();
      const gunzip = createGunzip();
      gunzip.setEncoding('latin1');
      gunzip.on('data', (t: string) => reader.push(t));
      gunzip.on('end', () => reader.end());
      gunzip.on('error', (e) => reader.end(new Error(`not gzip: ${e.message}`)));
      const md5 = createHash('md5');
      // A file of this attempt's own: an older attempt still running writes only its own (./part-file.ts).
      const part = await freshPart(join(runDir, f.name));
      const gz = createGzip();
      const out = createWriteStream(part);
      gz.pipe(out);
      // md5 of what is written, as it is written (no second read of the file)
      const outMd5 = createHash('md5');
      gz.on('data', (c: Buffer) => outMd5.update(c));
      const s = { f, res, reader, gunzip, md5, raw: 0, part, gz, out, outMd5, complete: false };
      // Pump raw bytes: hashed (for the whole-file case) and decompressed; paused while records pile up.
      void (async () => {
        try {
          for await (const chunk of res.body ?? []) {
            const buf = chunk as Uint8Array;
            lastByteAt = Date.now();
            s.raw += buf.length;
            md5.update(buf);
            deps.progress.file = f.name;
            deps.progress.offset = s.raw;
            if (!gunzip.write(buf)) await once(gunzip, 'drain');
            // Fetch no further ahead than ~2,000 records not yet taken: what is read past max_bp is only what
            // sits in this buffer and the socket's when the transfer is stopped.
            while (reader.buffered > 8_000 && !signal.aborted && !stopped) await new Promise((r) => setTimeout(r, 1));
          }
          s.complete = true;
          gunzip.end();
        } catch (err) {
          reader.end(stopped ? undefined : (err as Error));
        }
      })();
      return s;
    }),
  );

  let reads = 0;
  let bases = 0;
  let cut = false;
  try {
    while (!cut) {
      await Promise.all(streams.map((s) => s.reader.ready()));
      // whole pairs only: as many records as every mate has now, taken without awaiting each one
      const k = Math.min(...streams.map((s) => s.reader.records));
      if (k === 0) {
        const done = streams.map((s) => s.reader.done);
        if (done.every(Boolean)) break; // every file ended before max_bp: nothing was cut
        throw fail(FailureType.TruncatedReads, `${where}: mates out of step: ${streams.map((s, i) => `${s.f.name} ${done[i] ? 'ended' : 'has more'}`).join(', ')} after ${reads} reads`);
      }
      const out: string[][] = streams.map(() => []);
      for (let j = 0; j < k && !cut; j++) {
        for (const [i, s] of streams.entries()) {
          const rec = s.reader.take();
          if (!rec[0]!.startsWith('@') || !rec[2]!.startsWith('+') || rec[1]!.length !== rec[3]!.length) {
            throw fail(FailureType.ChecksumMismatch, `${where}: ${s.f.name}: read ${reads + 1} is not a FASTQ record`);
          }
          bases += rec[1]!.length;
          out[i]!.push(rec.join('\n'));
        }
        reads++;
        if (bases >= maxBp) cut = true;
      }
      for (const [i, s] of streams.entries()) {
        if (!s.gz.write(`${out[i]!.join('\n')}\n`)) await once(s.gz, 'drain');
      }
    }
  } catch (err) {
    stopped = true;
    abort.abort();
    clearInterval(watchdog);
    for (const s of streams) {
      s.gz.destroy();
      s.out.destroy();
      await rm(s.part, { force: true });
    }
    if (err instanceof ApplicationFailure) throw err;
    if (deps.cancel?.aborted) throw deps.cancel.reason ?? err;
    const how = (err as Error).message;
    throw fail(/not gzip/.test(how) ? FailureType.ChecksumMismatch : FailureType.NetworkError, `${where}: first ${maxBp} bases: ${how} after ${reads} reads`);
  }
  stopped = true;
  // Enough reads: stop the transfer now, without fetching the rest of any file.
  if (cut) abort.abort();
  clearInterval(watchdog);
  for (const s of streams) {
    s.gunzip.destroy();
    await s.res.body?.cancel().catch(() => undefined);
  }
  const local: LocalFile[] = [];
  for (const s of streams) {
    s.gz.end();
    await once(s.out, 'close');
    // Not cut and the archive gave its md5: the whole file arrived, check it as any download would.
    if (!cut && s.complete && s.f.md5 !== null) {
      const got = s.md5.digest('hex');
      if (got !== s.f.md5) {
        await rm(s.part, { force: true });
        throw fail(FailureType.ChecksumMismatch, `${where}: ${s.f.name}: md5 ${got}, expected ${s.f.md5}`);
      }
    }
    const final = join(runDir, s.f.name);
    const md5 = s.outMd5.digest('hex');
    // every file holds exactly the `reads` whole records taken: the count verifyReads takes (src/tools/fastq.ts)
    await writeCheckRecord(final, { records: reads, md5, by: 'downsample' }, s.part);
    await rename(s.part, final);
    const written = await stat(final);
    local.push({ path: final, bytes: written.size, md5 });
  }
  const bytesFetched = streams.reduce((n, s) => n + s.raw, 0);
  return { files: local, bytesFetched, resumedFromBytes: 0, ...(cut ? { downsampled: { maxBp, reads, bases } } : {}) };
}
