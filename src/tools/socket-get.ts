/**
 * One HTTP/1.1 GET read straight off the socket, for large bodies (downloads).
 *
 * Why not node:http: its socket reads are 64 KiB buffers allocated per read, parsed by llhttp and pushed
 * through a Readable, which cost 3-6x curl's CPU per byte (docs/benchmarks.md, "Download path CPU"). Here the
 * kernel reads into 1 MiB buffers through net/tls `onread` (no allocation per read, no stream machinery):
 * the body comes out as views into those buffers, each handed out once and never written again, so a
 * consumer may keep them (batch them for one writev, hand them to zlib) without copying. A consumer that is
 * done with a view may give it back (SocketBody.release): once every view of a buffer is back, the buffer
 * serves the next reads of this process's connections instead of a fresh one. In B5 the fresh MiBs were
 * what made the worker's main heap mark and compact every 200-400 ms while data came in (docs/benchmarks.md,
 * "Read buffers used again").
 *
 * What it speaks: a request with `Connection: close` (one request per connection, the body ends at the
 * close at the latest), a status line and headers, and a body framed by Content-Length, by chunked
 * transfer coding, or by the close. Anything else in the head is the caller's to read (Content-Range,
 * Location, Retry-After…). A connection that closes before the framing says the body is whole is an
 * error, as node:http's "aborted".
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/** Size of each read buffer: one allocation per MiB instead of one per 64 KiB (or per 16 KiB TLS record). */
const BUFFER = 1 << 20;
/** A buffer with less room than this left is retired and a new one read into. */
const MIN_ROOM = 64 * 1024;
/** Longest response head accepted. */
const MAX_HEAD = 64 * 1024;
/** Read buffers given back whole (SocketBody.release), for the next reads of any connection of this process. */
const spare: Buffer[] = [];
const MAX_SPARE = 16;
const counts = { allocated: 0, reused: 0 };
function takeBuffer(): Buffer {
  const b = spare.pop();
  if (b) counts.reused++;
  else counts.allocated++;
  return b ?? Buffer.allocUnsafe(BUFFER);
}
/** Read buffers allocated and used again by this process so far, and spare now (tests, benchmarks). */
export function readBufferCounts(): { allocated: number; reused: number; spare: number } {
  return { ...counts, spare: spare.length };
}

export interface SocketGetOptions {
  headers: Record<string, string>;
  signal?: AbortSignal;
  /** the response head must arrive within this many ms of the request */
  headWithinMs: number;
  /** extra trusted certificates (tests); otherwise Node's store, NODE_EXTRA_CA_CERTS included */
  ca?: string | Buffer;
}

export interface SocketResponse {
  status: number;
  /** lower-cased names; repeated headers joined with ", " */
  headers: Map<string, string>;
  body: SocketBody;
}

type Framing = { kind: 'length'; left: number } | { kind: 'close' } | { kind: 'chunked' };

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}

/**
 * The body as an async iterable of Buffers. Each Buffer is every body byte that arrived since the last one
 * was taken (up to 1 MiB), a view that stays valid. Breaking out of a `for await` or calling destroy()
 * closes the connection.
 */
export class SocketBody implements AsyncIterable<Buffer> {
  /** raw bytes received and not yet parsed: full buffers' tails, then the current buffer from `parsed` */
  private readonly tails: Buffer[] = [];
  /**
   * Per read buffer of this body: its views handed out and not given back, +1 while the body may still hand
   * out more of it (it is `cur`, or its tail waits in `tails`). At 0 it is spare.
   */
  private readonly holds = new Map<ArrayBufferLike, number>();
  /** buffers no longer read into whose tail waits in `tails`: their body hold ends once the tail is parsed */
  private retired: ArrayBufferLike[] = [];
  /** letGo() has run */
  private letGone = false;
  private cur = this.adopt(takeBuffer());
  private filled = 0;
  private parsed = 0;
  /** body pieces parsed and not yet handed out */
  private readonly ready: Buffer[] = [];
  private paused = false;
  private eof = false;
  private failure: unknown = null;
  private done = false;
  private wake: (() => void) | null = null;
  private framing: Framing | null = null;
  /** chunked coding: bytes of the current chunk still to come, or the partial size/trailer line */
  private chunkLeft = 0;
  private line = '';
  private state: 'size' | 'data' | 'data-crlf' | 'trailer' = 'size';
  socket!: Socket;

  /** For the onread option: where the next read goes (a fresh buffer once this one is nearly full). */
  nextBuffer = (): Buffer => {
    // Let go already (the socket is closed; a read the kernel still hands over is not looked at): not into a
    // buffer that may be serving another connection by now.
    if (this.letGone) return Buffer.allocUnsafe(MIN_ROOM);
    if (BUFFER - this.filled < MIN_ROOM) {
      if (this.parsed < this.filled) {
        this.tails.push(this.cur.subarray(this.parsed, this.filled));
        this.retired.push(this.cur.buffer);
      } else this.unhold(this.cur.buffer);
      this.cur = this.adopt(takeBuffer());
      this.filled = 0;
      this.parsed = 0;
    }
    return this.cur.subarray(this.filled);
  };

  /** For the onread option: `n` bytes landed at cur[filled]. False pauses the socket: a whole buffer waits. */
  onRead = (n: number): boolean => {
    if (this.letGone) return false;
    this.filled += n;
    this.poke();
    const waiting = this.tails.length > 0 && BUFFER - this.filled < MIN_ROOM;
    if (waiting) this.paused = true;
    return !waiting;
  };

  /**
   * `view` (a body piece this body handed out) will not be used again by whoever had it: when every view of its
   * buffer is back, the buffer is used for later reads. Call once per piece, and only for pieces of this body;
   * pieces not given back are left to the garbage collector as before.
   */
  release(view: Uint8Array): void {
    this.unhold(view.buffer);
  }

  private adopt(buf: Buffer): Buffer {
    this.holds.set(buf.buffer, 1);
    return buf;
  }

  private hold(view: Buffer): Buffer {
    const n = this.holds.get(view.buffer);
    if (n !== undefined) this.holds.set(view.buffer, n + 1);
    return view;
  }

  private unhold(ab: ArrayBufferLike): void {
    const n = this.holds.get(ab);
    if (n === undefined) return;
    if (n > 1) {
      this.holds.set(ab, n - 1);
      return;
    }
    this.holds.delete(ab);
    if (spare.length < MAX_SPARE && ab.byteLength === BUFFER) spare.push(Buffer.from(ab as ArrayBuffer));
  }

  /** After the tails taken by takeRaw() were parsed or copied: the retired buffers they came from hold only their views now. */
  private dropRetired(): void {
    for (const ab of this.retired.splice(0)) this.unhold(ab);
  }

  end(err?: unknown): void {
    if (err !== undefined && err !== null && this.failure === null) this.failure = err;
    this.eof = true;
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Raw bytes received and not parsed yet, taken (views, no copy). */
  private takeRaw(): Buffer[] {
    const out = this.tails.splice(0);
    if (this.parsed < this.filled) {
      out.push(this.cur.subarray(this.parsed, this.filled));
      this.parsed = this.filled;
    }
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    return out;
  }

  /**
   * The response head, once it is all here: status and headers; the bytes after it stay for the body. The
   * head is copied out of the buffers (it is small); the body is not.
   */
  async head(): Promise<{ status: number; headers: Map<string, string> }> {
    let acc = Buffer.alloc(0);
    for (;;) {
      const raw = this.takeRaw();
      if (raw.length > 0) acc = Buffer.concat([acc, ...raw]);
      this.dropRetired();
      const end = acc.indexOf('\r\n\r\n');
      if (end >= 0) {
        const rest = acc.subarray(end + 4);
        const head = parseHead(acc.subarray(0, end).toString('latin1'));
        if (head.status >= 100 && head.status < 200) {
          // an interim answer (100 Continue, 103 Early Hints): the real one follows
          acc = Buffer.from(rest);
          continue;
        }
        this.framing = framingOf(head.status, head.headers);
        if (rest.length > 0) this.tails.unshift(rest);
        return head;
      }
      if (acc.length > MAX_HEAD) throw new Error(`response head longer than ${MAX_HEAD} bytes`);
      if (this.failure !== null) throw this.failure;
      if (this.eof) throw new Error(acc.length === 0 ? 'connection closed before any response' : 'connection closed inside the response head');
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      for (;;) {
        if (this.ready.length === 0 && !this.done) {
          this.parse(this.takeRaw());
          this.dropRetired();
        }
        if (this.ready.length > 0) {
          yield this.ready.shift()!;
          continue;
        }
        if (this.done) return;
        if (this.failure !== null) throw this.failure;
        if (this.eof) {
          if (this.framing?.kind === 'close') return;
          throw new Error(this.framing?.kind === 'length' ? `connection closed with ${this.framing.left} bytes of the body still to come` : 'connection closed inside a chunked body');
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      this.destroy();
    }
  }

  destroy(): void {
    this.done = true;
    this.socket.destroy();
    this.letGo();
  }

  /** Once the socket is closed: nothing is read into this body's buffers any more, nor handed out of them. */
  private letGo(): void {
    if (this.letGone) return;
    this.letGone = true;
    this.dropRetired();
    this.unhold(this.cur.buffer);
  }

  /** Body bytes out of raw bytes, by the framing; views into the raw buffers. */
  private parse(raw: Buffer[]): void {
    const f = this.framing!;
    for (const r of raw) {
      if (this.done) return;
      if (f.kind === 'close') this.ready.push(this.hold(r));
      else if (f.kind === 'length') {
        const take = Math.min(f.left, r.length);
        if (take > 0) this.ready.push(this.hold(r.subarray(0, take)));
        f.left -= take;
        if (f.left === 0) this.finished();
      } else this.unchunk(r);
    }
  }

  private finished(): void {
    this.done = true;
    this.socket.destroy();
    this.letGo();
  }

  /** Chunked transfer coding (RFC 9112 §7.1): size line, data, CRLF … a 0 size, trailers, empty line. */
  private unchunk(r: Buffer): void {
    let i = 0;
    while (i < r.length && !this.done) {
      if (this.state === 'data') {
        const take = Math.min(this.chunkLeft, r.length - i);
        this.ready.push(this.hold(r.subarray(i, i + take)));
        i += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.state = 'data-crlf';
        continue;
      }
      const nl = r.indexOf(0x0a, i);
      const end = nl === -1 ? r.length : nl + 1;
      this.line += r.toString('latin1', i, end);
      i = end;
      if (this.line.length > 4096) throw new Error('chunked body: a framing line longer than 4096 bytes');
      if (nl === -1) break;
      const line = this.line.replace(/\r?\n$/, '');
      this.line = '';
      if (this.state === 'data-crlf') {
        if (line !== '') throw new Error('chunked body: no CRLF after a chunk');
        this.state = 'size';
      } else if (this.state === 'size') {
        const m = /^([0-9a-fA-F]{1,12})(;.*)?$/.exec(line.trim());
        if (!m) throw new Error(`chunked body: bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
        this.chunkLeft = parseInt(m[1]!, 16);
        this.state = this.chunkLeft === 0 ? 'trailer' : 'data';
      } else if (line === '') this.finished(); // trailer: the empty line ends the message
    }
  }
}

function parseHead(text: string): { status: number; headers: Map<string, string> } {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) throw new Error(`not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 60))}`);
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    if (c <= 0) throw new Error(`bad response header line ${JSON.stringify(l.slice(0, 60))}`);
    const name = l.slice(0, c).trim().toLowerCase();
    const value = l.slice(c + 1).trim();
    const had = headers.get(name);
    headers.set(name, had === undefined ? value : `${had}, ${value}`);
  }
  return { status: Number(m[1]), headers };
}

function framingOf(status: number, headers: Map<string, string>): Framing {
  if (status === 204 || status === 304) return { kind: 'length', left: 0 };
  const te = headers.get('transfer-encoding');
  if (te !== undefined) {
    if (/(^|,)\s*chunked\s*$/i.test(te)) return { kind: 'chunked' };
    throw new Error(`unsupported Transfer-Encoding ${JSON.stringify(te)}`);
  }
  const cl = headers.get('content-length');
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new Error(`bad Content-Length ${JSON.stringify(cl)}`);
    return { kind: 'length', left: Number(cl) };
  }
  return { kind: 'close' };
}

/**
 * GET `url` (http or https) over a fresh connection. Resolves at the response head; rejects on a connection
 * error, a malformed head, no head within `headWithinMs`, or the signal (with its reason).
 */
export function socketGet(url: string, opts: SocketGetOptions): Promise<SocketResponse> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  if (!secure && u.protocol !== 'http:') return Promise.reject(new Error(`only http and https are fetched: ${url}`));
  if (/[\r\n]/.test(Object.entries(opts.headers).flat().join(''))) return Promise.reject(new Error('a request header holds a line break'));
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = u.port ? Number(u.port) : secure ? 443 : 80;
  const body = new SocketBody();
  const onread = { buffer: body.nextBuffer, callback: (n: number) => body.onRead(n) };
  // tls.connect takes net.connect's onread too (its types do not say so).
  const socket = secure ? tlsConnect({ host, port, onread, ...(opts.ca ? { ca: opts.ca } : {}) } as ConnectionOptions) : netConnect({ host, port, onread });
  body.socket = socket;
  const request =
    `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n` +
    Object.entries({ connection: 'close', ...opts.headers })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('') +
    '\r\n';
  socket.once(secure ? 'secureConnect' : 'connect', () => socket.write(request));
  socket.on('error', (e) => body.end(e));
  socket.on('end', () => body.end());
  socket.on('close', () => body.end());
  const signal = opts.signal;
  const onAbort = () => {
    body.end(abortReason(signal!));
    socket.destroy();
  };
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  socket.once('close', () => signal?.removeEventListener('abort', onAbort));
  const timer = setTimeout(() => {
    body.end(new Error(`no response head within ${opts.headWithinMs / 1000} s (connection accepted, nothing sent)`));
    socket.destroy();
  }, opts.headWithinMs);
  return body.head().then(
    (head) => {
      clearTimeout(timer);
      return { ...head, body };
    },
    (err: unknown) => {
      clearTimeout(timer);
      socket.destroy();
      throw err;
    },
  );
}
