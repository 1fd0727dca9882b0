/**
 * download: fetch every file of a SourcePlan into the run's dir, verified by size and md5.
 * - Bytes go to `<name>.part`; only a verified file is renamed to its final name, so a final name on disk
 *   always means "complete" and a later attempt skips it.
 * - The bytes on disk are the truth for resuming (heartbeat details are only a hint: a worker killed with
 *   -9 may have written more than it reported). A resume re-hashes them first so the md5 covers the file.
 * - A broken connection or a stall fails the attempt but keeps the .part: Temporal retries the activity and
 *   it resumes with `Range`. Wrong bytes (md5, size, an HTML page) delete the .part: resuming them is futile.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { DISK_FLOOR, FailureType } from '../failures.js';
import { HttpClient } from '../tools/http.js';
import type { LocalFile, RemoteFile } from '../types.js';
import type { Activities } from './contract.js';
import { freeBytesOf } from './disk.js';
import { canDownsample, downloadFirstBases } from './downsample.js';

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

/** md5 state over the first `bytes` of a file, streamed in chunks so a large file never blocks the loop. */
async function hashPrefix(path: string, bytes: number, onProgress: (n: number) => void, signal?: AbortSignal): Promise<Hash> {
  const hash = createHash('md5');
  if (bytes <= 0) return hash;
  let n = 0;
  for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1, highWaterMark: 1 << 20, signal })) {
    hash.update(chunk as Buffer);
    n += (chunk as Buffer).length;
    onProgress(n);
  }
  return hash;
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

/** The disk floor (--min-free-gb) a transfer keeps, checked as it writes (issue 13: not only at admission). */
interface Floor {
  bytes: number;
  gb: number;
  free: (dir: string) => Promise<number>;
}

/** Free space is measured again after this many bytes written (statfs costs microseconds; a chunk is ~64 KiB). */
const FLOOR_CHECK_EVERY = 1 << 20;

function floorFailure(where: string, runDir: string, free: number, floor: Floor, kept: number, why = 'stopped at the disk floor'): ApplicationFailure {
  return ApplicationFailure.create({
    type: DISK_FLOOR,
    message: `${where}: ${why}: ${runDir} has ${free} bytes free, --min-free-gb ${floor.gb} keeps ${floor.bytes}; ${kept} bytes kept to resume when there is room`,
  });
}

async function fetchFile(
  f: RemoteFile,
  ctx: { run: string; runDir: string; http: HttpClient; stallMs: number; cancel?: AbortSignal; progress: Progress; floor?: Floor },
): Promise<FileOutcome> {
  const final = join(ctx.runDir, f.name);
  const part = `${final}.part`;
  const where = `run ${ctx.run}: ${f.name} from ${f.url}`;
  ctx.progress.file = f.name;
  ctx.progress.offset = 0;
  const progress = (n: number) => (ctx.progress.offset = n);

  const finalSize = await sizeOf(final);
  if (finalSize !== null) {
    if (f.bytes === null || finalSize === f.bytes) {
      const md5 = (await hashPrefix(final, finalSize, progress, ctx.cancel)).digest('hex');
      if (f.md5 === null || md5 === f.md5) return { local: { path: final, bytes: finalSize, md5 }, fetched: 0, kept: finalSize };
    }
    // Only something outside this activity can have left a wrong file under the final name.
    await rm(final, { force: true });
  }

  let offset = (await sizeOf(part)) ?? 0;
  if (f.bytes !== null && offset > f.bytes) {
    await rm(part, { force: true });
    offset = 0;
  }
  let hash = await hashPrefix(part, offset, progress, ctx.cancel);
  let kept = offset;
  let fetched = 0;

  const finish = async (): Promise<FileOutcome> => {
    const md5 = hash.digest('hex');
    if (f.bytes !== null && offset !== f.bytes) {
      if (offset > f.bytes) await rm(part, { force: true });
      // A short body is a cut connection, not bad bytes: keep them and resume next attempt.
      throw fail(offset > f.bytes ? FailureType.ChecksumMismatch : FailureType.NetworkError, `${where}: ended at ${offset} of ${f.bytes} bytes`);
    }
    if (f.md5 !== null && md5 !== f.md5) {
      await rm(part, { force: true });
      throw fail(FailureType.ChecksumMismatch, `${where}: md5 ${md5}, expected ${f.md5} (${offset} bytes); partial file deleted`);
    }
    await rename(part, final);
    return { local: { path: final, bytes: offset, md5 }, fetched, kept };
  };
  const reject = async (why: string, body?: ReadableStream | null): Promise<never> => {
    await body?.cancel().catch(() => undefined);
    await rm(part, { force: true });
    throw fail(FailureType.ChecksumMismatch, `${where}: ${why}; partial file deleted`);
  };

  // Complete on disk but not yet renamed (killed between the last write and the rename): just verify.
  if (f.bytes !== null && offset === f.bytes && offset > 0) return finish();

  // Below the floor already (another process filled the disk): do not even ask.
  if (ctx.floor) {
    const free = await ctx.floor.free(ctx.runDir);
    if (free < ctx.floor.bytes) throw floorFailure(where, ctx.runDir, free, ctx.floor, offset, 'waiting for the disk floor');
  }
  const stall = new AbortController();
  const signal = ctx.cancel ? AbortSignal.any([ctx.cancel, stall.signal]) : stall.signal;
  // identity: fetch would silently gunzip a .fastq.gz served with Content-Encoding: gzip (md5 never matches).
  const headers: Record<string, string> = { 'accept-encoding': 'identity', ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) };
  // A server that accepts the connection and never answers is a stall too: the head gets the same limit.
  const res = await ctx.http.get(f.url, { headers, signal, headersTimeoutMs: ctx.stallMs });

  if (res.status === 416 && offset > 0) {
    // Nothing after our last byte: the part is whole (md5 decides), unless the plan expects more bytes
    // than the server has — then resuming can never succeed.
    if (f.bytes !== null && offset !== f.bytes) await reject(`server has nothing after byte ${offset} (HTTP 416), expected ${f.bytes} bytes`, res.body);
    await res.body?.cancel().catch(() => undefined);
    return finish();
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel().catch(() => undefined);
    throw fail(FailureType.ServerError, `${where}: HTTP ${res.status} (expected 200 or 206)`);
  }
  if (res.status === 200 && offset > 0) {
    // The server ignored our Range: it sends the whole file, so start over from byte 0.
    offset = 0;
    kept = 0;
    hash = createHash('md5');
  } else if (res.status === 206 && rangeStart(res.headers.get('content-range')) !== offset) {
    await reject(`asked for bytes=${offset}- but got Content-Range ${res.headers.get('content-range')}`, res.body);
  }
  if (/text\/html/i.test(res.headers.get('content-type') ?? '')) await reject('server sent an HTML page', res.body);
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (f.bytes !== null && Number.isFinite(length) && offset + length !== f.bytes) {
    await reject(`server announces ${offset + length} bytes, expected ${f.bytes}`, res.body);
  }

  const fh = await open(part, offset === 0 ? 'w' : 'a');
  let lastByteAt = Date.now();
  const watchdog = setInterval(() => {
    if (Date.now() - lastByteAt > ctx.stallMs) stall.abort(new Stall());
  }, Math.max(50, Math.min(1000, ctx.stallMs / 4)));
  let ok = false;
  let checkedAt = -Infinity;
  /** set when the floor stopped the transfer: the bytes written are good and kept */
  let floorStop: ApplicationFailure | null = null;
  try {
    for await (const chunk of res.body ?? []) {
      const buf = chunk as Uint8Array;
      lastByteAt = Date.now();
      if (offset === 0 && fetched === 0 && (looksLikeHtml(buf) || (f.name.endsWith('.gz') && (buf[0] !== 0x1f || (buf.length > 1 && buf[1] !== 0x8b))))) {
        await fh.close().catch(() => undefined);
        await reject(looksLikeHtml(buf) ? 'server sent an HTML page' : 'content is not gzip', res.body);
      }
      if (f.bytes !== null && offset + buf.length > f.bytes) {
        await fh.close().catch(() => undefined);
        await reject(`more than the expected ${f.bytes} bytes`, res.body);
      }
      if (ctx.floor && fetched + buf.length - checkedAt >= FLOOR_CHECK_EVERY) {
        checkedAt = fetched;
        const free = await ctx.floor.free(ctx.runDir);
        if (free - buf.length < ctx.floor.bytes) {
          floorStop = floorFailure(where, ctx.runDir, free, ctx.floor, offset);
          break;
        }
      }
      try {
        // write(2) may write less than asked on a nearly full disk, without an error: finish the chunk, or
        // the next one would land at the wrong offset.
        for (let done = 0; done < buf.length; ) done += (await fh.write(buf, done, buf.length - done)).bytesWritten;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC' || !ctx.floor) throw err;
        // The disk filled between two checks (another process): what is on disk is good, the rest is not.
        await fh.sync().catch(() => undefined);
        await fh.truncate(offset).catch(() => undefined); // a chunk half written is not kept: resume re-hashes what is there
        floorStop = floorFailure(where, ctx.runDir, await freeBytesOf(ctx.runDir).catch(() => 0), ctx.floor, offset, 'the disk is full');
        break;
      }
      hash.update(buf);
      offset += buf.length;
      fetched += buf.length;
      ctx.progress.offset = offset;
    }
    await fh.sync(); // the rename below must never publish bytes still only in the page cache
    if (floorStop) {
      await res.body?.cancel().catch(() => undefined);
      stall.abort(new Stall());
    }
    ok = true;
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    if (ctx.cancel?.aborted) throw ctx.cancel.reason ?? err; // keep the .part: a later attempt resumes
    const how = stall.signal.aborted ? `no byte for ${ctx.stallMs / 1000} s` : `connection lost (${(err as Error).message})`;
    throw fail(FailureType.NetworkError, `${where}: ${how} at byte ${offset}; ${offset} bytes kept to resume`);
  } finally {
    clearInterval(watchdog);
    if (!ok) await fh.close().catch(() => undefined);
  }
  await fh.close();
  if (floorStop) throw floorStop;
  return finish();
}

export function createDownloadActivities(deps: { http?: HttpClient; heartbeatEveryMs?: number; freeBytes?: (dir: string) => Promise<number> }): Pick<Activities, 'download'> {
  const http = deps.http ?? new HttpClient();
  const everyMs = deps.heartbeatEveryMs ?? 1000;
  return {
    async download({ plan, runDir, stallTimeoutSec, minFreeGb, maxBp }) {
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
          const out = await fetchFile(f, { run: plan.run, runDir, http, stallMs: stallTimeoutSec * 1000, cancel: context.cancellationSignal, progress, floor });
          files.push(out.local);
          bytesFetched += out.fetched;
          resumedFromBytes += out.kept;
        }
      } finally {
        clearInterval(timer);
      }
      beat();
      return { files, bytesFetched, resumedFromBytes };
    },
  };
}
