/**
 * FASTQ.gz integrity and counting in-process (node zlib, streamed): the gzip test kallisto never does.
 * A flipped byte surfaces as a zlib data/crc error and a cut-off file as "unexpected end of file"; both
 * become TruncatedReads naming the file, so the sample downloads again instead of feeding kallisto a
 * file it would spin on forever or half-quantify with exit 0.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures.js';

const NL = 0x0a;

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
  const gunzip = createGunzip();
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
