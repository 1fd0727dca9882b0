/**
 * The download transport (src/tools/socket-get.ts) against real servers on 127.0.0.1: a raw TCP one that
 * writes exactly the bytes each case needs (framing split anywhere, connections cut), and an https one with a
 * self-signed certificate (test/fixtures/tls, valid for localhost and 127.0.0.1 until 2126).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readBufferCounts, socketGet } from '../../src/tools/socket-get.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
const BIG = randomBytes(5 * 1024 * 1024 + 123);

/** What the raw server answers, by path: a list of byte pieces written with a pause between them, then close (or not). */
type Script = { pieces: (string | Buffer)[]; close?: boolean; pauseMs?: number };
const scripts = new Map<string, Script>();

let raw: Server;
let base = '';
const open = new Set<Socket>();
beforeAll(async () => {
  raw = createServer((sock: Socket) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    let head = '';
    sock.on('data', async (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const path = /^GET (\S+) /.exec(head)?.[1] ?? '';
      const s = scripts.get(path);
      if (!s) return void sock.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      for (const p of s.pieces) {
        if (sock.destroyed) return;
        sock.write(p);
        await sleep(s.pauseMs ?? 0);
      }
      if (s.close !== false) sock.end();
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const s of open) s.destroy();
  await new Promise((r) => raw.close(r));
});

async function readAll(body: AsyncIterable<Buffer>, slowMs = 0): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const c of body) {
    chunks.push(c);
    if (slowMs) await sleep(slowMs);
  }
  return chunks;
}

describe('socketGet', () => {
  it('a Content-Length body of 5 MiB to a slow consumer: every byte, and no piece handed out is written over later', async () => {
    scripts.set('/big', { pieces: [`HTTP/1.1 200 OK\r\nContent-Length: ${BIG.length}\r\nX-Two: a\r\nx-two: b\r\n\r\n`, ...Array.from({ length: 40 }, (_, i) => BIG.subarray(i * 131072 + (i ? 0 : 0), Math.min(BIG.length, (i + 1) * 131072))), BIG.subarray(40 * 131072)] });
    const res = await socketGet(`${base}/big`, { headers: { 'user-agent': 't' }, headWithinMs: 5000 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-two')).toBe('a, b');
    // Kept until the end: a transport that reused its buffer would have changed the early pieces by now.
    const chunks = await readAll(res.body, 40);
    expect(md5(Buffer.concat(chunks))).toBe(md5(BIG));
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(1 << 20);
  });

  it('pieces given back are read into again, and only once every piece of their buffer is back: every byte still right', async () => {
    scripts.set('/big-again', { pieces: [`HTTP/1.1 200 OK\r\nContent-Length: ${BIG.length}\r\n\r\n`, ...Array.from({ length: 41 }, (_, i) => BIG.subarray(i * 131072, Math.min(BIG.length, (i + 1) * 131072)))] });
    const before = readBufferCounts();
    const res = await socketGet(`${base}/big-again`, { headers: {}, headWithinMs: 5000 });
    // As download.ts does: a few pieces held at a time (a write batch), given back together once written; the
    // copies taken when each piece came are compared with the pieces as they are when given back.
    const held: { piece: Buffer; copy: Buffer }[] = [];
    const got: Buffer[] = [];
    let changed = 0;
    for await (const c of res.body) {
      held.push({ piece: c, copy: Buffer.from(c) });
      got.push(held.at(-1)!.copy);
      if (held.length === 3) {
        await sleep(5);
        for (const h of held.splice(0)) {
          if (!h.piece.equals(h.copy)) changed++;
          res.body.release(h.piece);
        }
      }
    }
    for (const h of held.splice(0)) res.body.release(h.piece);
    expect(changed).toBe(0);
    expect(md5(Buffer.concat(got))).toBe(md5(BIG));
    const after = readBufferCounts();
    expect(after.reused - before.reused).toBeGreaterThan(0);
    // a later connection starts from the spare buffers
    scripts.set('/small-again', { pieces: ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'] });
    const again = await socketGet(`${base}/small-again`, { headers: {}, headWithinMs: 5000 });
    expect(Buffer.concat(await readAll(again.body)).toString()).toBe('hello');
    expect(readBufferCounts().allocated).toBe(after.allocated);
  });

  it('chunked coding split at every byte of its framing (extensions, trailers) gives exactly the data', async () => {
    const data = ['hello ', 'chunked ', 'world'.repeat(1000)];
    const wire = 'HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n' + data.map((d, i) => `${d.length.toString(16)}${i === 1 ? ';ext=1' : ''}\r\n${d}\r\n`).join('') + '0\r\nX-Trailer: t\r\n\r\n';
    // one byte per write for the framing-heavy start, then the rest in one piece
    scripts.set('/chunked', { pieces: [...wire.slice(0, 120).split(''), wire.slice(120)], close: false });
    const res = await socketGet(`${base}/chunked`, { headers: {}, headWithinMs: 5000 });
    expect(res.status).toBe(206);
    expect(Buffer.concat(await readAll(res.body)).toString()).toBe(data.join(''));
  });

  it('skips interim answers (103 Early Hints) to the real head', async () => {
    scripts.set('/early', { pieces: ['HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'] });
    const res = await socketGet(`${base}/early`, { headers: {}, headWithinMs: 5000 });
    expect(res.status).toBe(200);
    expect(Buffer.concat(await readAll(res.body)).toString()).toBe('ok');
  });

  it('a connection closed before Content-Length is reached is an error, with the bytes before it delivered', async () => {
    scripts.set('/cut', { pieces: ['HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n', 'x'.repeat(600)] });
    const res = await socketGet(`${base}/cut`, { headers: {}, headWithinMs: 5000 });
    const got: Buffer[] = [];
    await expect(
      (async () => {
        for await (const c of res.body) got.push(c);
      })(),
    ).rejects.toThrow('connection closed with 400 bytes of the body still to come');
    expect(Buffer.concat(got).length).toBe(600);
  });

  it('a chunked body cut before its last chunk is an error; a body with no framing ends at the close', async () => {
    scripts.set('/chunk-cut', { pieces: ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nhello\r\n'] });
    const cut = await socketGet(`${base}/chunk-cut`, { headers: {}, headWithinMs: 5000 });
    await expect(readAll(cut.body)).rejects.toThrow('connection closed inside a chunked body');
    scripts.set('/close', { pieces: ['HTTP/1.1 200 OK\r\n\r\n', 'until ', 'close'] });
    const res = await socketGet(`${base}/close`, { headers: {}, headWithinMs: 5000 });
    expect(Buffer.concat(await readAll(res.body)).toString()).toBe('until close');
  });

  it('refuses a malformed head, a header with a line break, and a head that never comes', async () => {
    scripts.set('/garbage', { pieces: ['SSH-2.0-OpenSSH\r\n\r\n'] });
    await expect(socketGet(`${base}/garbage`, { headers: {}, headWithinMs: 5000 })).rejects.toThrow('not an HTTP/1.x response');
    await expect(socketGet(`${base}/x`, { headers: { range: 'bytes=0-\r\nEvil: 1' }, headWithinMs: 5000 })).rejects.toThrow('line break');
    scripts.set('/silent', { pieces: [], close: false });
    await expect(socketGet(`${base}/silent`, { headers: {}, headWithinMs: 300 })).rejects.toThrow('no response head within 0.3 s');
  });

  it('the signal ends a body being read with its reason', async () => {
    scripts.set('/slow', { pieces: ['HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n', ...Array.from({ length: 100 }, () => 'y'.repeat(100))], pauseMs: 20 });
    const ctrl = new AbortController();
    const res = await socketGet(`${base}/slow`, { headers: {}, headWithinMs: 5000, signal: ctrl.signal });
    setTimeout(() => ctrl.abort(new Error('cancelled by the test')), 200);
    await expect(readAll(res.body)).rejects.toThrow('cancelled by the test');
  });
});

describe('socketGet over TLS', () => {
  let srv: HttpsServer;
  let url = '';
  const tlsDir = join(process.cwd(), 'test', 'fixtures', 'tls');
  const cert = readFileSync(join(tlsDir, 'cert.pem'));
  beforeAll(async () => {
    srv = createHttpsServer({ key: readFileSync(join(tlsDir, 'key.pem')), cert }, (req, res) => {
      res.writeHead(200, { 'content-length': String(BIG.length) });
      res.end(BIG);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    url = `https://localhost:${(srv.address() as AddressInfo).port}/f`;
  });
  afterAll(async () => {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  });

  it('reads a body over https, and refuses a certificate nobody vouches for', async () => {
    const res = await socketGet(url, { headers: {}, headWithinMs: 5000, ca: cert });
    expect(md5(Buffer.concat(await readAll(res.body)))).toBe(md5(BIG));
    await expect(socketGet(url, { headers: {}, headWithinMs: 5000 })).rejects.toThrow(/self.signed/);
  });
});
