/**
 * Writing response bodies the way real servers (and their failures) do: Range, 416, the bandwidth
 * cap, and the body-level faults (reset, truncate, stall, flipped bytes). Bytes are counted only once
 * the socket accepted them, so stats show what a client could really have received.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { open } from 'node:fs/promises';
import type { RequestFault } from './faults.js';
import type { TokenBucket } from './throttle.js';

export interface BodySource {
  size: number;
  read(pos: number, len: number): Promise<Buffer>;
}

export function bufferSource(buf: Buffer): BodySource {
  return { size: buf.length, read: async (pos, len) => buf.subarray(pos, pos + len) };
}

/** Reads through a short-lived handle per chunk: no descriptor outlives an aborted request. */
export function fileSource(path: string, size: number): BodySource {
  return {
    size,
    read: async (pos, len) => {
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.allocUnsafe(len); // only the bytes read are handed out
        const { bytesRead } = await fh.read(buf, 0, len, pos);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    },
  };
}

export interface SendContext {
  bucket: TokenBucket | null;
  /** called with bytes the socket accepted */
  count(bytes: number): void;
  /** aborted when the mirror stops: stalls and throttled sends end */
  signal: AbortSignal;
}

/** `bytes=N-`, `bytes=N-M`, `bytes=-K`; anything else is ignored (full body), as RFC 9110 allows. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const k = Number(m[2]);
    if (k === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - k), end: size - 1 };
  }
  const start = Number(m[1]);
  if (start >= size) return 'unsatisfiable';
  const end = m[2] === '' ? size - 1 : Math.min(size - 1, Number(m[2]));
  if (end < start) return null;
  return { start, end };
}

/**
 * Bytes per read and write: up to 1 MiB, as a server's sendfile does (64 KiB reads through a handle each cost
 * the mirror ~1 CPU-s per 100 MB, taken from the cores the client under test runs on: B5), and under a
 * bandwidth cap no more than a quarter of the bucket's burst (at least 64 KiB), so the cap stays smooth.
 */
const MAX_CHUNK = 1 << 20;
const MIN_CHUNK = 64 * 1024;
const chunkFor = (bucket: TokenBucket | null) => (bucket ? Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, Math.floor(bucket.burst / 4))) : MAX_CHUNK);

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function write(res: ServerResponse, buf: Buffer, ctx: SendContext): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onClose = () => resolve(false);
    res.once('close', onClose);
    const ok = res.write(buf, (err) => {
      if (!err) ctx.count(buf.length);
    });
    if (ok) {
      res.off('close', onClose);
      resolve(true);
    } else {
      res.once('drain', () => {
        res.off('close', onClose);
        resolve(true);
      });
    }
  });
}

/**
 * Sends source[start..end] (inclusive) after the head was written.
 * `flip` lists absolute offsets whose bytes are XOR-ed (wrong-bytes, corrupt .sra).
 */
export async function sendBody(
  res: ServerResponse,
  source: BodySource,
  start: number,
  end: number,
  fault: RequestFault | null,
  flip: number[],
  ctx: SendContext,
): Promise<void> {
  let pos = start;
  let limit = end + 1;
  if (fault?.kind === 'truncate') limit = Math.min(limit, start + fault.bytes);
  if (fault?.kind === 'reset') limit = Math.min(limit, start + fault.afterBytes);
  let stallAt = fault?.kind === 'stall' ? start + fault.afterBytes : -1;
  const chunk = chunkFor(ctx.bucket);
  while (pos < limit && !res.destroyed && !ctx.signal.aborted) {
    let want = Math.min(chunk, limit - pos);
    if (stallAt > pos) want = Math.min(want, stallAt - pos);
    if (pos === stallAt && fault?.kind === 'stall') {
      // The socket stays open and silent: clients must notice a stall by time, not by an error.
      await sleep(fault.ms, ctx.signal);
      stallAt = -1;
      continue;
    }
    if (ctx.bucket) want = await ctx.bucket.take(want);
    let buf = await source.read(pos, want);
    const flipHere = flip.filter((off) => off >= pos && off < pos + buf.length);
    if (flipHere.length > 0) {
      buf = Buffer.from(buf); // a copy: a buffer source hands out views of its one body
      for (const off of flipHere) buf[off - pos]! ^= 0x5a;
    }
    if (buf.length === 0 || !(await write(res, buf, ctx))) return;
    pos += buf.length;
  }
  if (fault?.kind === 'reset') {
    // Give the accepted bytes a moment to reach the client, then drop the connection without an end.
    await new Promise((r) => setImmediate(r));
    res.socket?.destroy();
    res.destroy();
    return;
  }
  res.end();
}

/** Answers a head-only error (status, 429, HTML page) for a fault; true if it answered. */
export function answerHeadFault(req: IncomingMessage, res: ServerResponse, fault: RequestFault | null, ctx: SendContext): boolean {
  if (!fault) return false;
  if (fault.kind === 'no-head') {
    // The connection is open and the request read; the answer never starts.
    const timer = setTimeout(() => res.destroy(), fault.ms);
    res.on('close', () => clearTimeout(timer));
    ctx.signal.addEventListener('abort', () => res.destroy(), { once: true });
    return true;
  }
  let status: number;
  let body: string;
  const headers: Record<string, string> = {};
  if (fault.kind === 'status') {
    status = fault.status;
    body = `mirror: injected HTTP ${fault.status}\n`;
    headers['Content-Type'] = 'text/plain';
  } else if (fault.kind === 'retry-after') {
    status = 429;
    body = 'Too Many Requests\n';
    headers['Content-Type'] = 'text/plain';
    headers['Retry-After'] = String(fault.seconds);
  } else if (fault.kind === 'html') {
    // What a misrouted request has been seen to get: 200 and a small page instead of the file.
    status = 200;
    body = '<!DOCTYPE html>\n<html><head><title>Error</title></head><body><h1>Service temporarily unavailable</h1></body></html>\n';
    headers['Content-Type'] = 'text/html; charset=utf-8';
  } else return false;
  headers['Content-Length'] = String(Buffer.byteLength(body));
  res.writeHead(status, headers);
  if (req.method === 'HEAD') res.end();
  else res.end(body, () => ctx.count(Buffer.byteLength(body)));
  return true;
}
