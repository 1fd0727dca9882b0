/**
 * download: fetch every file of a SourcePlan into the run's dir, verified by size and md5 and, for FASTQ,
 * gzip-tested and counted as the bytes arrive (src/tools/fastq.ts FileCheck): nothing reads the reads again.
 * - Bytes go to a file of the attempt's own, also named `<name>.part` while it is the newest (./part-file.ts:
 *   an attempt the server gave up on may still be writing); only a verified file is renamed to its final
 *   name, so a final name on disk always means "complete" and a later attempt skips it. Its check record (`.<name>.checked`: records,
 *   md5, the file's identity) is written before the rename; verifyReads takes the count from it.
 * - The bytes on disk are the truth for resuming (heartbeat details are only a hint: a worker killed with
 *   -9 may have written more than it reported). md5 and inflate state cannot be saved, so a resume feeds
 *   the bytes already on disk through the checks once (only that prefix is read again), then the network's.
 * - A broken connection or a stall fails the attempt but keeps the .part: Temporal retries the activity and
 *   it resumes with `Range`. Wrong bytes (md5, size, an HTML page, a gzip error, a cut record) delete the
 *   .part: resuming them is futile. A gzip error stops the transfer at the chunk that shows it.
 * - The transfer reads with node:http and writes in batches of ~1 MiB or 200 ms (one writev each): fetch's web
 *   streams and a write per 64 KiB chunk cost 3-5x curl's CPU (bench/download-cpu.ts, docs/benchmarks.md).
 * - Kept plain (input plainReads, reads deleted after quant): the gzip test inflates every byte anyway, so the
 *   check thread also writes what it inflates to `<RUN_1.fastq>.<attempt>.part`, and kallisto reads plain
 *   FASTQ instead of inflating the same bytes again (~8 CPU-s per GB of FASTQ in B5). Only while the disk
 *   has room: this worker's reservation for the run must exist and free space less the other runs'
 *   reservations must stay above the floor with PLAIN_GUESS x the .gz; the reservation grows by that much.
 *   The .gz is still written (a resume needs its bytes; md5 is of them); when it passes, the plain file gets
 *   the check record (records, and inflatedFrom: the .gz's name, bytes and md5), is renamed into place, and
 *   the .gz is deleted. Near the floor mid-transfer the plain copy is dropped and the .gz kept, as before.
 * - Whatever is published is fsynced first, and synced as it is written (src/tools/background-sync.ts) so that
 *   last sync has only the tail left; a .gz that is deleted once its plain copy is published is not synced at all.
 */
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { DISK_FLOOR, FailureType, WORKER_LOST } from '../failures.js';
import { countFastqGz, feedFromDisk, FileCheck, FileCheckError, readCheckRecord, readsKind, writeCheckRecord, checkRecordPath, type CheckResult } from '../tools/fastq.js';
import { BackgroundSync } from '../tools/background-sync.js';
import { HttpClient } from '../tools/http.js';
import { readsCheckOf } from '../reads-check.js';
import type { DownloadResult, LocalFile, RemoteFile } from '../types.js';
import type { Activities } from './contract.js';
import { freeBytesOf, type DiskLedger } from './disk.js';
import { canDownsample, downloadFirstBases } from './downsample.js';
import { claimPart, dropPart, freshPart, partStillOwn, publishPart, releasePart } from './part-file.js';
import { logInfo } from './heartbeat.js';
import { verifiedInStep } from './reads.js';

/** Names come from remote data: nothing that could leave the run dir or hide as a dot-dot. */
const SAFE_NAME = /^[A-Za-z0-9._-]+$/;

const fail = (type: FailureType, message: string, nonRetryable = false) => ApplicationFailure.create({ type, message, nonRetryable });

export function checkDownloadTarget(run: string, runDir: string, files: RemoteFile[]): void {
  if (!RUN_ACCESSION.test(run)) throw fail(FailureType.InvalidInput, `invalid run accession ${JSON.stringify(run)}`, true);
  if (!isAbsolute(runDir) || runDir.includes('\0') || runDir.split('/').includes('..')) {
    throw fail(FailureType.InvalidInput, `run ${run}: runDir must be an absolute path without '..' (got ${JSON.stringify(runDir)})`, true);
  }
  for (const f of files) {
    if (!SAFE_NAME.test(f.name) || f.name.includes('..')) {
      throw fail(FailureType.InvalidInput, `run ${run}: unsafe file name ${JSON.stringify(f.name)} (allowed: [A-Za-z0-9._-], no '..')`, true);
    }
    // Node's fetch speaks http(s) only; failing here beats retrying a request that can never work.
    if (!/^https?:\/\//i.test(f.url)) {
      throw fail(FailureType.InvalidInput, `run ${run}: ${f.name}: unsupported URL ${f.url} (use --ena-file-scheme https or http)`, true);
    }
  }
}

async function sizeOf(path: string): Promise<number | null> {
  return stat(path).then((s) => s.size, () => null);
}

/** Where a transfer stands; the heartbeat timer reports it. */
interface Progress {
  file: string;
  offset: number;
}

interface FileOutcome {
  local: LocalFile;
  fetched: number;
  kept: number;
}

// `bytes 100-199/200` -> 100; an unsatisfied-range form or no header -> null.
function rangeStart(header: string | null): number | null {
  const m = /^bytes\s+(\d+)-\d+\/(\d+|\*)$/i.exec(header?.trim() ?? '');
  return m ? Number(m[1]) : null;
}

function looksLikeHtml(chunk: Uint8Array): boolean {
  const head = Buffer.from(chunk.subarray(0, 64)).toString('latin1').trimStart().toLowerCase();
  return head.startsWith('<!doctype html') || head.startsWith('<html') || head.startsWith('<?xml') || head.startsWith('<head');
}

class Stall extends Error {}

/**
 * What a .fastq.gz is assumed to inflate to when deciding whether its plain copy fits, per byte of .gz:
 * Illumina FASTQ inflates ~3-5x (B5's simulated reads 2.6x). A larger one is still safe: free space is
 * measured on every MiB written, and the plain copy is dropped before the floor.
 */
export const PLAIN_GUESS = 4;

/** `RUN_1.fastq.gz` -> `RUN_1.fastq`: where a .gz kept plain lives. */
const plainNameOf = (final: string) => final.replace(/\.gz$/, '');

/** The disk floor (--min-free-gb) a transfer keeps, checked as it writes (issue 13: not only at admission). */
interface Floor {
  bytes: number;
  gb: number;
  free: (dir: string) => Promise<number>;
}

/**
 * Bytes gathered before one writev, and so how often free space is measured against the floor: statfs and
 * the write each cost one thread-pool round trip, paid per MiB instead of per 64 KiB socket read.
 */
const WRITE_BATCH = 1 << 20;
/**
 * ...or after this long, whichever comes first: on a slow link the bytes reach the disk (and a resume after
 * kill -9 keeps them) within a fraction of a second instead of waiting for a whole MiB.
 */
const WRITE_EVERY_MS = 200;

function floorFailure(where: string, runDir: string, free: number, floor: Floor, kept: number, why = 'stopped at the disk floor'): ApplicationFailure {
  return ApplicationFailure.create({
    type: DISK_FLOOR,
    message: `${where}: ${why}: ${runDir} has ${free} bytes free, --min-free-gb ${floor.gb} keeps ${floor.bytes}; ${kept} bytes kept to resume when there is room`,
  });
}

/** fsync of a file written earlier (or by an earlier attempt). */
async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write every byte of bufs at the end of the file: writev may write less than asked on a nearly full disk. */
async function writeAll(fh: FileHandle, bufs: Uint8Array[]): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    let n = (await fh.writev(rest)).bytesWritten;
    const next: Uint8Array[] = [];
    for (const b of rest) {
      if (n >= b.length) n -= b.length;
      else {
        next.push(n > 0 ? b.subarray(n) : b);
        n = 0;
      }
    }
    rest = next;
  }
}

async function fetchFile(
  f: RemoteFile,
  ctx: {
    run: string;
    runDir: string;
    http: HttpClient;
    stallMs: number;
    cancel?: AbortSignal;
    progress: Progress;
    floor?: Floor;
    /** may this .gz be kept plain? (asked once per transfer; see the header) */
    plainRoom?: (f: RemoteFile) => Promise<boolean>;
  },
): Promise<FileOutcome> {
  const final = join(ctx.runDir, f.name);
  const where = `run ${ctx.run}: ${f.name} from ${f.url}`;
  const kind = readsKind(f.name);
  ctx.progress.file = f.name;
  ctx.progress.offset = 0;
  const progress = (n: number) => (ctx.progress.offset = n);
  const feedOpts = { ...(ctx.cancel ? { signal: ctx.cancel } : {}), onProgress: progress };

  if (kind === 'gz') {
    // Kept plain by an earlier attempt: its record names the .gz it was inflated from, as checked.
    const plainFinal = plainNameOf(final);
    const rec = await readCheckRecord(plainFinal);
    const from = rec?.inflatedFrom;
    if (rec && from && rec.records !== null && from.name === f.name && (f.md5 === null || from.md5 === f.md5) && (f.bytes === null || from.bytes === f.bytes)) {
      await freshPart(final); // the .gz bytes of the attempt that published it, if it died before deleting them
      await rm(final, { force: true });
      return { local: { path: plainFinal, bytes: rec.bytes, md5: from.md5, inflatedFrom: { name: from.name, bytes: from.bytes } }, fetched: 0, kept: from.bytes };
    }
    if (rec || (await sizeOf(plainFinal)) !== null) {
      // Not what this plan lists (another copy's, or someone's file): never reused.
      await rm(plainFinal, { force: true });
      await rm(checkRecordPath(plainFinal), { force: true });
    }
  }

  const finalSize = await sizeOf(final);
  if (finalSize !== null) {
    if (f.bytes === null || finalSize === f.bytes) {
      // Checked when it was written and unchanged since: nothing to read.
      const rec = await readCheckRecord(final);
      if (rec && rec.md5 !== null && (f.md5 === null || rec.md5 === f.md5)) return { local: { path: final, bytes: finalSize, md5: rec.md5 }, fetched: 0, kept: finalSize };
      // No record (a crash between the rename and... nothing: the record is written first; or a file from elsewhere): check it whole, once.
      const check = new FileCheck(kind);
      const got = await feedFromDisk(final, finalSize, check, feedOpts)
        .then(() => check.finish())
        .catch((err: unknown) => {
          check.destroy();
          if (err instanceof FileCheckError) return null;
          throw err;
        });
      if (got && (f.md5 === null || got.md5 === f.md5)) {
        await writeCheckRecord(final, { records: got.records, md5: got.md5, by: 'download' });
        return { local: { path: final, bytes: finalSize, md5: got.md5 }, fetched: 0, kept: finalSize };
      }
    }
    // Only something outside this activity can have left a wrong file under the final name.
    await rm(final, { force: true });
    await rm(checkRecordPath(final), { force: true });
  }

  const { part, offset: start } = await claimPart(final, f.bytes);
  /** this attempt's plain copy while it is being written (null: kept as fetched) */
  let plain: { final: string; temp: string } | null = null;
  try {
    if (kind === 'gz' && ctx.plainRoom && (await ctx.plainRoom(f))) plain = { final: plainNameOf(final), temp: await freshPart(plainNameOf(final)) };
    return await transfer(start);
  } finally {
    releasePart(part);
    // Published (renamed away) or not wanted: either way this attempt's name for it goes.
    if (plain) await rm(plain.temp, { force: true });
  }

  /** Near the floor: the plain copy goes, the .gz stays (the transfer goes on as if it had never been asked). */
  async function dropPlain(check: FileCheck, why: string): Promise<void> {
    if (!plain) return;
    await check.dropPlain().catch(() => undefined);
    await rm(plain.temp, { force: true });
    logInfo(`download ${ctx.run}: ${f.name} kept as fetched, not plain: ${why}`);
    plain = null;
  }

  async function transfer(from: number): Promise<FileOutcome> {
    let offset = from;
    // A resumed prefix is judged before the transfer goes on (settle), which only zlib can do mid-stream
    // (src/tools/fastq.ts FileCheck): resumes inflate with zlib, fresh transfers with igzip where installed.
    const newCheck = () => new FileCheck(kind, plain?.temp, offset > 0 ? 'zlib' : 'igzip');
    let check = newCheck();
    // Every way out stops the thread's work for this file (a no-op once finish() has run).
    try {
      try {
        await feedFromDisk(part.own, offset, check, feedOpts);
      } catch (err) {
        check.destroy();
        if (!(err instanceof FileCheckError)) throw err;
        // The bytes kept by an earlier attempt are not gzip: resuming them is futile, start over.
        await truncate(part.own, 0);
        offset = 0;
        check = newCheck();
      }
      let kept = offset;
      let fetched = 0;
      /** the .part is on disk as it is now (fsynced): only then may it be published */
      let partSynced = false;

      const finish = async (): Promise<FileOutcome> => {
        if (f.bytes !== null && offset !== f.bytes) {
          check.destroy();
          if (offset > f.bytes) await dropPart(part);
          // A short body is a cut connection, not bad bytes: keep them and resume next attempt.
          throw fail(offset > f.bytes ? FailureType.ChecksumMismatch : FailureType.NetworkError, `${where}: ended at ${offset} of ${f.bytes} bytes`);
        }
        let got: CheckResult;
        try {
          got = await check.finish();
        } catch (err) {
          if (!(err instanceof FileCheckError)) throw err;
          await dropPart(part);
          // A listed md5 that does not match is the plainest account of wrong bytes (the CRC may have seen them first).
          if (f.md5 !== null && check.md5 !== null && check.md5 !== f.md5) {
            throw fail(FailureType.ChecksumMismatch, `${where}: md5 ${check.md5}, expected ${f.md5} (${offset} bytes; ${err.message}); partial file deleted`);
          }
          // Corrupt gzip is wrong bytes; whole gzip with a cut record is the archive's own short file (md5 unknown
          // or matching): both mean this copy is bad.
          const type = err.check === 'gzip' ? FailureType.ChecksumMismatch : FailureType.TruncatedReads;
          throw fail(type, `${where}: ${err.message} (${offset} bytes); partial file deleted`);
        }
        if (f.md5 !== null && got.md5 !== f.md5) {
          await dropPart(part);
          throw fail(FailureType.ChecksumMismatch, `${where}: md5 ${got.md5}, expected ${f.md5} (${offset} bytes); partial file deleted`);
        }
        if (kind === 'gz' && got.records === null) {
          // igzip wrote the plain copy itself, and the count and gzip test stopped with the copy (dropped near the
          // floor, src/tools/check-thread.ts): both done here, once, from the whole .gz, before it gets its record.
          try {
            got = { ...got, records: await countFastqGz(part.own, feedOpts) };
          } catch (err) {
            if (!(err instanceof ApplicationFailure) || err.type !== FailureType.TruncatedReads) throw err;
            await dropPart(part);
            // as above: corrupt gzip is wrong bytes, a cut record the archive's short file
            throw fail(/gzip integrity test failed/.test(err.message) ? FailureType.ChecksumMismatch : FailureType.TruncatedReads, `${where}: ${err.message}; partial file deleted`);
          }
        }
        // A newer attempt took this one's file away (./part-file.ts): this attempt is over, and not by a fault of the work.
        if (!(await partStillOwn(part))) {
          throw ApplicationFailure.create({ type: WORKER_LOST, message: `${where}: a newer attempt of this download took over its partial file; this attempt stops` });
        }
        if (plain && got.plain && 'bytes' in got.plain && got.records !== null) {
          // The plain copy holds exactly the bytes just counted and tested. Record, rename, then the .gz goes:
          // a crash in between leaves a plain file whose record a retry takes (see the top of fetchFile).
          await writeCheckRecord(plain.final, { records: got.records, md5: null, by: 'download', inflatedFrom: { name: f.name, bytes: offset, md5: got.md5 } }, plain.temp);
          try {
            await rename(plain.temp, plain.final);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
            throw ApplicationFailure.create({ type: WORKER_LOST, message: `${where}: a newer attempt of this download took over its plain copy; this attempt stops` });
          }
          await dropPart(part);
          return { local: { path: plain.final, bytes: got.plain.bytes, md5: got.md5, inflatedFrom: { name: f.name, bytes: offset } }, fetched, kept };
        }
        if (plain && got.plain && 'lost' in got.plain) logInfo(`download ${ctx.run}: ${f.name} kept as fetched, not plain: ${got.plain.lost}`);
        // Its bytes on disk before its name says "complete" (the transfer synced it unless a plain copy was wanted).
        if (!partSynced) await syncFile(part.own);
        // The record goes first: a crash before the rename leaves a whole .part, checked again next attempt.
        await writeCheckRecord(final, { records: got.records, md5: got.md5, by: 'download' }, part.own);
        await publishPart(part, final);
        return { local: { path: final, bytes: offset, md5: got.md5 }, fetched, kept };
      };
      const reject = async (why: string, body?: { destroy(): void } | null): Promise<never> => {
        body?.destroy();
        check.destroy();
        await dropPart(part);
        throw fail(FailureType.ChecksumMismatch, `${where}: ${why}; partial file deleted`);
      };

      // Complete on disk but not yet renamed (killed between the last write and the rename): just verify.
      if (f.bytes !== null && offset === f.bytes && offset > 0) return await finish();

      // Below the floor already (another process filled the disk): do not even ask.
      if (ctx.floor) {
        const free = await ctx.floor.free(ctx.runDir);
        if (free < ctx.floor.bytes) {
          check.destroy();
          throw floorFailure(where, ctx.runDir, free, ctx.floor, offset, 'waiting for the disk floor');
        }
      }
      const stall = new AbortController();
      const signal = ctx.cancel ? AbortSignal.any([ctx.cancel, stall.signal]) : stall.signal;
      // identity: a .fastq.gz served with Content-Encoding: gzip must arrive as the archive's bytes (its md5).
      const headers: Record<string, string> = { 'accept-encoding': 'identity', ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) };
      // A server that accepts the connection and never answers is a stall too: the head gets the same limit.
      const res = await ctx.http.getStream(f.url, { headers, signal, headersTimeoutMs: ctx.stallMs }).catch((err: unknown) => {
        check.destroy();
        throw err;
      });

      if (res.status === 416 && offset > 0) {
        // Nothing after our last byte: the part is whole (md5 decides), unless the plan expects more bytes
        // than the server has — then resuming can never succeed.
        if (f.bytes !== null && offset !== f.bytes) await reject(`server has nothing after byte ${offset} (HTTP 416), expected ${f.bytes} bytes`, res.body);
        await res.discard();
        return await finish();
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.discard();
        check.destroy();
        throw fail(FailureType.ServerError, `${where}: HTTP ${res.status} (expected 200 or 206)`);
      }
      if (res.status === 200 && offset > 0) {
        // The server ignored our Range: it sends the whole file, so start over from byte 0.
        offset = 0;
        kept = 0;
        check.destroy();
        check = newCheck();
      } else if (res.status === 206 && rangeStart(res.headers.get('content-range')) !== offset) {
        await reject(`asked for bytes=${offset}- but got Content-Range ${res.headers.get('content-range')}`, res.body);
      }
      if (/text\/html/i.test(res.headers.get('content-type') ?? '')) await reject('server sent an HTML page', res.body);
      const length = Number(res.headers.get('content-length') ?? NaN);
      if (f.bytes !== null && Number.isFinite(length) && offset + length !== f.bytes) {
        await reject(`server announces ${offset + length} bytes, expected ${f.bytes}`, res.body);
      }

      const fh = await open(part.own, offset === 0 ? 'w' : 'a');
      let lastByteAt = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - lastByteAt > ctx.stallMs) stall.abort(new Stall());
      }, Math.max(50, Math.min(1000, ctx.stallMs / 4)));
      let ok = false;
      /** set when the floor stopped the transfer: the bytes written are good and kept */
      let floorStop: ApplicationFailure | null = null;
      let batch: Uint8Array[] = [];
      let batchBytes = 0;
      let flushedAt = Date.now();
      /** writeback of the .part while it grows, when it is what will be published (no plain copy wanted) */
      const partSync = new BackgroundSync(() => fh.datasync());
      /** received bytes, checked but not yet written */
      const flush = async (): Promise<boolean> => {
        if (batchBytes === 0) return true;
        if (ctx.floor) {
          let free = await ctx.floor.free(ctx.runDir);
          // The plain copy grows ~PLAIN_GUESS bytes per byte written here: it goes first, before the floor.
          if (plain && free - batchBytes * (1 + PLAIN_GUESS) < ctx.floor.bytes) {
            await dropPlain(check, `${ctx.runDir} has ${free} bytes free, near the --min-free-gb ${ctx.floor.gb} floor`);
            free = await ctx.floor.free(ctx.runDir);
          }
          if (free - batchBytes < ctx.floor.bytes) {
            floorStop = floorFailure(where, ctx.runDir, free, ctx.floor, offset);
            return false;
          }
        }
        try {
          await writeAll(fh, batch);
          // Copied to the check thread and now written: the socket may read into their memory again.
          for (const b of batch) res.body.release(b);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC' || !ctx.floor) throw err;
          // The disk filled between two checks (another process): what is on disk is good, the rest is not.
          await fh.sync().catch(() => undefined);
          await fh.truncate(offset).catch(() => undefined); // a batch half written is not kept: resume re-checks what is there
          floorStop = floorFailure(where, ctx.runDir, await freeBytesOf(ctx.runDir).catch(() => 0), ctx.floor, offset, 'the disk is full');
          return false;
        }
        offset += batchBytes;
        fetched += batchBytes;
        ctx.progress.offset = offset;
        if (!plain) partSync.wrote(offset);
        batch = [];
        batchBytes = 0;
        flushedAt = Date.now();
        return true;
      };
      try {
        let first = offset === 0;
        for await (const chunk of res.body) {
          const buf = chunk as Buffer;
          lastByteAt = Date.now();
          if (first) {
            first = false;
            if (looksLikeHtml(buf) || (kind === 'gz' && (buf[0] !== 0x1f || (buf.length > 1 && buf[1] !== 0x8b)))) {
              await fh.close().catch(() => undefined);
              await reject(looksLikeHtml(buf) ? 'server sent an HTML page' : 'content is not gzip', res.body);
            }
          }
          if (f.bytes !== null && offset + batchBytes + buf.length > f.bytes) {
            await fh.close().catch(() => undefined);
            await reject(`more than the expected ${f.bytes} bytes`, res.body);
          }
          try {
            // md5, and for .gz the inflater, on a check thread (src/tools/check-thread.ts) while the socket delivers the next bytes.
            await check.update(buf);
          } catch (err) {
            if (!(err instanceof FileCheckError)) throw err;
            await fh.close().catch(() => undefined);
            // The whole file is here (the CRC is in its last bytes) and the archive lists an md5: say it in md5's words.
            const whole = f.bytes !== null && offset + batchBytes + buf.length === f.bytes;
            if (whole && f.md5 !== null && (await check.digest()) !== f.md5) await reject(`md5 ${check.md5}, expected ${f.md5} (${f.bytes} bytes; ${err.message})`, res.body);
            await reject(`${err.message}, the transfer stopped there`, res.body);
          }
          batch.push(buf);
          batchBytes += buf.length;
          ctx.progress.offset = offset + batchBytes; // received and checked; on disk at the next flush (or the failure's)
          if ((batchBytes >= WRITE_BATCH || lastByteAt - flushedAt >= WRITE_EVERY_MS) && !(await flush())) break;
        }
        if (!floorStop) await flush();
        const early = await partSync.settle();
        if (early) throw early;
        if (!plain) {
          // The rename in finish() must never publish bytes still only in the page cache. With a plain copy
          // under way this .gz is deleted once the copy is published: synced there only if it is published itself.
          await fh.sync();
          partSynced = true;
        }
        if (floorStop) {
          res.body.destroy();
          stall.abort(new Stall());
          check.destroy();
        }
        ok = true;
      } catch (err) {
        check.destroy();
        if (err instanceof ApplicationFailure) throw err;
        // Bytes received before the break are good (in order, already hashed): keep them for the resume.
        await flush().catch(() => false);
        if (ctx.cancel?.aborted) throw ctx.cancel.reason ?? err; // keep the .part: a later attempt resumes
        const how = stall.signal.aborted ? `no byte for ${ctx.stallMs / 1000} s` : `connection lost (${(err as Error).message})`;
        throw fail(FailureType.NetworkError, `${where}: ${how} at byte ${offset}; ${offset} bytes kept to resume`);
      } finally {
        clearInterval(watchdog);
        // a background sync holds the file open until it ends
        if (!ok) await partSync.settle().then(() => fh.close()).catch(() => undefined);
      }
      await fh.close();
      if (floorStop) throw floorStop;
      return await finish();
    } finally {
      check.destroy();
    }
  }
}

export function createDownloadActivities(deps: { http?: HttpClient; heartbeatEveryMs?: number; freeBytes?: (dir: string) => Promise<number>; ledger?: DiskLedger }): Pick<Activities, 'download'> {
  const http = deps.http ?? new HttpClient();
  const everyMs = deps.heartbeatEveryMs ?? 1000;
  return {
    async download(input) {
      const r = await fetchPlan(input);
      if (!input.verify || input.plan.source === 'sra') return r;
      // The reads are checked here, where they were just written (the count is in their check records).
      const { plan } = input;
      const verified = await verifiedInStep(readsCheckOf(plan, r.files.map((f) => f.path), plan.layout, r.downsampled, plan.unpaired ? null : undefined));
      return verified ? { ...r, verified } : r;
    },
  };
  /**
   * Whether f may be kept plain: this worker admitted the run (its reservation is in the ledger) and free space
   * less the other runs' reservations stays above the run's floor with PLAIN_GUESS x f's bytes more; if so the
   * reservation grows by that much, so later admissions count it. No reservation (a worker restarted since
   * admission, a test without a ledger): kept as fetched, the conservative way.
   */
  async function plainRoom(run: string, runDir: string, f: RemoteFile): Promise<boolean> {
    const r = deps.ledger?.reservation(run);
    if (!deps.ledger || !r || f.bytes === null) return false;
    const need = f.bytes * PLAIN_GUESS;
    const free = await (deps.freeBytes ?? freeBytesOf)(runDir).catch(() => null);
    if (free === null) return false;
    const others = deps.ledger.reservedExcept(run);
    if (free - others - need < r.minFreeGb * 1e9) {
      logInfo(`download ${run}: ${f.name} kept as fetched, not plain: ${free} bytes free less ${others} reserved by other runs leaves no room for ~${need} plain bytes above the --min-free-gb ${r.minFreeGb} floor`);
      return false;
    }
    deps.ledger.grow(run, `plain ${f.name}`, need);
    return true;
  }

  async function fetchPlan({ plan, runDir, stallTimeoutSec, minFreeGb, maxBp, plainReads }: Parameters<Activities['download']>[0]): Promise<DownloadResult> {
    const floor: Floor | undefined = minFreeGb === undefined ? undefined : { gb: minFreeGb, bytes: Math.round(minFreeGb * 1e9), free: deps.freeBytes ?? freeBytesOf };
    checkDownloadTarget(plan.run, runDir, plan.files);
    const context = Context.current();
    const hint = context.info.heartbeatDetails as Progress | undefined;
    if (hint?.file) context.log.info(`download ${plan.run}: previous attempt reported ${hint.file} at byte ${hint.offset}; resuming from what is on disk`);
    await mkdir(runDir, { recursive: true });
    const progress: Progress = { file: '', offset: 0 };
    // Heartbeat on a timer, not per chunk: a stalled stream must still deliver cancellation, and the
    // SDK throttles anyway.
    const beat = () => context.heartbeat({ file: progress.file, offset: progress.offset });
    beat();
    const timer = setInterval(beat, everyMs);
    const files: LocalFile[] = [];
    let bytesFetched = 0;
    let resumedFromBytes = 0;
    try {
      // steps.getfastq.max_bp: only the first reads, and the transfer stops there (./downsample.ts)
      if (maxBp && canDownsample(plan)) {
        return await downloadFirstBases(plan, runDir, maxBp, { http, stallMs: stallTimeoutSec * 1000, cancel: context.cancellationSignal, progress });
      }
      for (const f of plan.files) {
        const out = await fetchFile(f, {
          run: plan.run,
          runDir,
          http,
          stallMs: stallTimeoutSec * 1000,
          cancel: context.cancellationSignal,
          progress,
          floor,
          ...(plainReads ? { plainRoom: (rf: RemoteFile) => plainRoom(plan.run, runDir, rf) } : {}),
        });
        files.push(out.local);
        bytesFetched += out.fetched;
        resumedFromBytes += out.kept;
      }
    } finally {
      clearInterval(timer);
    }
    beat();
    return { files, bytesFetched, resumedFromBytes };
  }
}
