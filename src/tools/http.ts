/**
 * The one HTTP client of a worker process, on Node's built-in fetch (undici).
 * - Every request passes the token bucket of its archive (ENA's Portal API, the SRA locator, file hosts),
 *   shared by every activity of the worker, so together they stay under what each archive documents
 *   (RATE_DEFAULTS). A 429 pauses that archive's bucket for everyone, not just the request that got it.
 * - 429, 5xx and network errors are retried here with exponential back-off, honouring Retry-After, so a
 *   short hiccup costs one activity attempt nothing. When retries run out it throws a retryable
 *   ApplicationFailure (ServerError / NetworkError) and Temporal retries the whole activity later.
 * - It only retries getting the response head; reading the body is the caller's business (a download
 *   resumes from its bytes on disk instead).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ApplicationFailure } from '@temporalio/common';
import { causeChain, FailureType } from '../failures.js';
import { socketGet, type SocketBody } from './socket-get.js';

/** What the retry and redirect logic needs of a response, whatever the transport. */
interface Head {
  status: number;
  headers: { get(name: string): string | null };
  /** drop the body and free the connection */
  discard(): Promise<void>;
}

/**
 * A response read straight off the socket (getStream, ./socket-get.ts): downloads take this path because it
 * costs a fraction of the CPU per byte of node:http, itself half of fetch's web streams (bench/download-cpu.ts,
 * docs/benchmarks.md).
 */
export interface StreamResponse extends Head {
  body: SocketBody;
}

/** What one try of a request met: its status (with Retry-After), or a network error. */
export interface HttpEvent {
  url: string;
  status?: number;
  retryAfterMs?: number | null;
  network?: boolean;
}
/**
 * Whoever runs code under httpObservers.run(fn, …) hears of every try that code makes (the source pacer's
 * permit holder learns of 429s, 5xx and network errors of its download: src/pacing.ts).
 */
export const httpObservers = new AsyncLocalStorage<(ev: HttpEvent) => void>();

/** A wait before each try of a request of one rate class, beside the process's own bucket (the pacer's tokens). */
export interface RequestGate {
  acquire(signal?: AbortSignal): Promise<void>;
  /** hears every retryable answer (429, 5xx) and network error of the class */
  report?(ev: HttpEvent): void;
}

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Real clock; sleeps end early (rejecting) when the signal aborts. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortReason(signal!));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.max(0, ms));
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}

/** p, or the signal's reason as soon as it aborts (p is left to settle on its own). */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    // p is abandoned: its own rejection (a query cut when the client closes at shutdown) must not go unhandled,
    // which ends the process with exit 1
    p.catch(() => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Token bucket shared by every request of the process. Waiters are served in arrival order (a chain of
 * promises), so a burst of activities cannot starve one another.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;
  private chain: Promise<void> = Promise.resolve();
  /** requests let through, and how many of them had to wait for a token */
  readonly stats = { granted: 0, delayed: 0 };

  constructor(
    readonly perSec: number,
    readonly burst: number = Math.max(1, Math.ceil(perSec)),
    private readonly clock: Clock = systemClock,
  ) {
    if (!(perSec > 0) || !(burst >= 1)) throw new Error(`rate limit must be > 0 req/s with burst >= 1 (got ${perSec}, ${burst})`);
    this.tokens = burst;
    this.last = clock.now();
  }

  private pausedUntil = 0;

  /** Nobody gets a token for `ms` (the archive said 429): every waiter of this bucket backs off together. */
  pauseFor(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + Math.max(0, ms));
  }

  acquire(signal?: AbortSignal, skipPause = false): Promise<void> {
    const turn = this.chain.then(() => this.take(signal, skipPause));
    // A cancelled waiter must not block the ones behind it.
    this.chain = turn.catch(() => undefined);
    return turn;
  }

  private async take(signal?: AbortSignal, skipPause = false): Promise<void> {
    if (signal?.aborted) throw abortReason(signal);
    const paused = skipPause ? 0 : this.pausedUntil - this.clock.now();
    if (paused > 0) {
      this.stats.delayed++;
      await this.clock.sleep(paused, signal);
    }
    this.refill();
    if (this.tokens < 1) {
      this.stats.delayed++;
      await this.clock.sleep(((1 - this.tokens) / this.perSec) * 1000, signal);
      this.refill();
    }
    this.tokens = Math.max(0, this.tokens - 1);
    this.stats.granted++;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSec);
    this.last = now;
  }
}

/** Which archive a request goes to: each has its own request-rate budget. */
export type RateClass = 'ena' | 'sra' | 'files';

/**
 * Requests per second per worker, from what the archives document: ENA's Portal API allows 50 per second
 * per IP (answering 429 beyond); NCBI's E-utilities allow 3 per second, 10 with an API key. The SRA locator
 * documents no figure, so it gets E-utilities' budget (NCBI_API_KEY raises it the same way). File hosts
 * (ENA's FTP over HTTPS, NCBI/S3 links) see a few requests per file; 10 per second is far above that.
 * FETCHQUANT_ENA_REQUESTS_PER_SEC / FETCHQUANT_SRA_REQUESTS_PER_SEC / FETCHQUANT_FILE_REQUESTS_PER_SEC
 * override them per worker (e.g. several workers behind one IP share ENA's 50).
 */
export function rateDefaults(env: Record<string, string | undefined> = process.env): Record<RateClass, number> {
  const pick = (name: string, fallback: number) => {
    const v = Number(env[name]);
    return env[name] !== undefined && env[name] !== '' && Number.isFinite(v) && v > 0 ? v : fallback;
  };
  return {
    ena: pick('FETCHQUANT_ENA_REQUESTS_PER_SEC', 50),
    sra: pick('FETCHQUANT_SRA_REQUESTS_PER_SEC', env.NCBI_API_KEY ? 10 : 3),
    files: pick('FETCHQUANT_FILE_REQUESTS_PER_SEC', 10),
  };
}

/** Redirects followed per request; more is a loop or a misconfigured host. */
export const MAX_REDIRECTS = 5;

export interface HttpClientOptions {
  /** one rate for every archive (tests); otherwise rates, else rateDefaults() */
  requestsPerSec?: number;
  /** requests per second per archive */
  rates?: Partial<Record<RateClass, number>>;
  burst?: number;
  /** one limiter for every request of this client (tests); otherwise one per archive */
  limiter?: RateLimiter;
  /** retries after the first try for 429/5xx/network errors (default 4) */
  retries?: number;
  /** first back-off; doubles per retry (default 1000 ms; tests use a few ms) */
  backoffBaseMs?: number;
  /** cap of any wait, back-off or Retry-After (default 30 s: resolveSource has a 2-minute start-to-close) */
  backoffMaxMs?: number;
  /** time allowed until the response head arrives (default 60 s) */
  headersTimeoutMs?: number;
  userAgent?: string;
  clock?: Clock;
  /** how long an archive's answer asked by one side (the plan, the work) may serve the other once (default 5 min; 0: never) */
  shareAnswersMs?: number;
}

/** Who asks an archive's API: `run`'s plan summary, or the batch's own steps (src/tools/http.ts getText). */
export type AskedBy = 'plan' | 'work';

type TextAnswer = { status: number; body: string; contentType: string };

export interface RequestOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** whose rate budget the request spends (default: files) */
  rateClass?: RateClass;
  /** time allowed until the response head arrives, for this request (a download passes its stall timeout) */
  headersTimeoutMs?: number;
  /** getText of an archive's API: who asks (default work; see HttpClient.askedBy) */
  askedBy?: AskedBy;
}

/** Parse Retry-After (delta seconds or an HTTP date) into milliseconds from now; null when absent/invalid. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  if (value == null) return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Exponential back-off with jitter in [0.5, 1] of the step so synchronized workers spread out. */
export function backoffMs(retry: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1));
  return Math.round(step * (0.5 + 0.5 * random()));
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

export class HttpClient {
  /** the files bucket (or the one shared limiter a test gave) */
  readonly limiter: RateLimiter;
  readonly limiters: Record<RateClass, RateLimiter>;
  private readonly retries: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly headersTimeoutMs: number;
  private readonly userAgent: string;
  private readonly clock: Clock;
  private readonly gates: Partial<Record<RateClass, RequestGate>> = {};
  private readonly shareMs: number;
  /** answers of the archives' APIs one side asked for, until the other side takes them (getText) */
  private readonly shared = new Map<string, { by: AskedBy; at: number; answer: Promise<TextAnswer> }>();
  /** when the plan last asked: the work's answers are kept for it only meanwhile (a worker alone keeps none) */
  private planAskedAt = Number.NEGATIVE_INFINITY;

  /** Every request of this class also passes `gate` (e.g. the shared pacer's tokens for an archive's API). */
  setGate(cls: RateClass, gate: RequestGate | undefined): void {
    if (gate) this.gates[cls] = gate;
    else delete this.gates[cls];
  }

  constructor(opts: HttpClientOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    const rates = { ...rateDefaults(), ...opts.rates };
    const make = (c: RateClass) => opts.limiter ?? new RateLimiter(opts.requestsPerSec ?? rates[c], opts.burst, this.clock);
    this.limiters = opts.limiter ? { ena: opts.limiter, sra: opts.limiter, files: opts.limiter } : { ena: make('ena'), sra: make('sra'), files: make('files') };
    this.limiter = this.limiters.files;
    this.shareMs = opts.shareAnswersMs ?? 5 * 60_000;
    this.retries = opts.retries ?? 4;
    this.baseMs = opts.backoffBaseMs ?? 1000;
    this.maxMs = opts.backoffMaxMs ?? 30_000;
    this.headersTimeoutMs = opts.headersTimeoutMs ?? 60_000;
    this.userAgent = opts.userAgent ?? 'fetchquant/0.1';
  }

  /**
   * GET url; returns the response for any status that retrying cannot change (2xx, 3xx, 4xx but 429).
   * The caller owns the body. Aborting `signal` rejects with the signal's reason, never retried.
   */
  async get(url: string, opts: RequestOptions = {}): Promise<Response> {
    const head = await this.request(url, opts, (u) => this.onceFetch(u, opts));
    return head.res;
  }

  /**
   * GET url like get(), read off the socket instead of through fetch: for large bodies (downloads). The
   * caller owns `body` and must consume or discard it; aborting `signal` destroys it.
   */
  async getStream(url: string, opts: RequestOptions = {}): Promise<StreamResponse> {
    return this.request(url, opts, (u) => this.onceSocket(u, opts));
  }

  private async request<R extends Head>(url: string, opts: RequestOptions, once: (url: string) => Promise<R>): Promise<R> {
    const limiter = this.limiters[opts.rateClass ?? 'files'];
    const gate = this.gates[opts.rateClass ?? 'files'];
    const observe = httpObservers.getStore();
    let lastProblem = '';
    let lastRetryAfter: number | null = null;
    let lastWasStatus = false;
    let lastWas429 = false;
    let tries = 0;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) {
        const wait = lastRetryAfter ?? backoffMs(attempt, this.baseMs, this.maxMs);
        await this.clock.sleep(Math.min(wait, this.maxMs), opts.signal);
      }
      // After its own 429 this request has just waited out the pause it set: only the others wait for it.
      await gate?.acquire(opts.signal);
      await limiter.acquire(opts.signal, lastWas429);
      tries++;
      const res = await this.follow(url, opts, limiter, once).catch((err: unknown) => {
        if (err instanceof ApplicationFailure) throw err;
        if (opts.signal?.aborted) throw abortReason(opts.signal);
        lastProblem = describeNetworkError(err);
        lastWasStatus = false;
        lastWas429 = false;
        lastRetryAfter = null;
        observe?.({ url, network: true });
        gate?.report?.({ url, network: true });
        return null;
      });
      if (!res) continue;
      if (!isRetryableStatus(res.status)) return res;
      lastRetryAfter = parseRetryAfter(res.headers.get('retry-after'), this.clock.now());
      observe?.({ url, status: res.status, retryAfterMs: lastRetryAfter });
      gate?.report?.({ url, status: res.status, retryAfterMs: lastRetryAfter });
      lastWasStatus = true;
      // 429 is about the whole archive, not this request: every request of this worker to it waits, with or
      // without Retry-After (then for the back-off this request would have waited anyway).
      lastWas429 = res.status === 429;
      if (lastWas429) limiter.pauseFor(Math.min(lastRetryAfter ?? backoffMs(attempt + 1, this.baseMs, this.maxMs), this.maxMs));
      lastProblem = `HTTP ${res.status}${lastRetryAfter !== null ? ` (Retry-After ${Math.round(lastRetryAfter / 1000)} s)` : ''}`;
      // Free the connection before sleeping; the body of an error page is not needed.
      await res.discard();
      // Waiting longer than the cap inside one attempt would eat the activity's timeout: hand the wait to
      // Temporal instead, which retries the activity after exactly that delay.
      if (lastRetryAfter !== null && lastRetryAfter > this.maxMs) break;
    }
    throw ApplicationFailure.create({
      type: lastWasStatus ? FailureType.ServerError : FailureType.NetworkError,
      message: `GET ${url} failed after ${tries} ${tries === 1 ? 'try' : 'tries'}: ${lastProblem}`,
      nonRetryable: false,
      nextRetryDelay: lastRetryAfter !== null && lastRetryAfter > 0 ? lastRetryAfter : undefined,
    });
  }

  /**
   * This client as `who` asks the archives' APIs (getText): `run` gives its plan summary the worker's client
   * as 'plan'. Everything else is the same client (limits, gates, the shared answers).
   */
  askedBy(who: AskedBy): HttpClient {
    return new Proxy(this, {
      get: (target, prop) => {
        if (prop === 'getText') return (url: string, opts: RequestOptions = {}) => target.getText(url, { ...opts, askedBy: who });
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  /**
   * GET and read the whole body as text (API answers, never reads).
   *
   * An archive's API answer (rateClass ena or sra) asked by one side serves the other side once, for
   * shareAnswersMs: `run` asks every run at its sources for the plan summary while the batch starts, and each
   * sample asks its run again moments later. Both wait for the same tokens (NCBI's 3 requests/s, shared by
   * every host through the source pacer), so the first samples waited behind the summary's questions (an
   * SRA-only run of B5 started downloading 2 s after the others) and every run was asked twice. Now whoever
   * asks second takes the first one's answer, or joins its request while it is on its way; a second question
   * from the same side (a retry, a parked run asking again) goes to the archive. A failed or aborted request is
   * not shared: the other side then asks itself.
   */
  async getText(url: string, opts: RequestOptions = {}): Promise<TextAnswer> {
    if ((opts.rateClass !== 'ena' && opts.rateClass !== 'sra') || this.shareMs <= 0) return this.fetchText(url, opts);
    const by = opts.askedBy ?? 'work';
    const key = `${opts.rateClass} ${url}`;
    const now = this.clock.now();
    for (const [k, e] of this.shared) {
      if (now - e.at <= this.shareMs && this.shared.size <= 10_000) break; // oldest first: the rest are newer
      this.shared.delete(k);
    }
    if (by === 'plan') this.planAskedAt = now;
    const offered = this.shared.get(key);
    if (offered && offered.by !== by) {
      this.shared.delete(key);
      try {
        return await abortable(offered.answer, opts.signal);
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        return this.fetchText(url, opts);
      }
    }
    const answer = this.fetchText(url, opts);
    if (by === 'work' && now - this.planAskedAt > this.shareMs) return answer;
    const entry = { by, at: now, answer };
    this.shared.set(key, entry);
    answer.catch(() => {
      if (this.shared.get(key) === entry) this.shared.delete(key);
    });
    return answer;
  }

  private async fetchText(url: string, opts: RequestOptions): Promise<TextAnswer> {
    const res = await this.get(url, opts);
    try {
      return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
    } catch (err) {
      if (opts.signal?.aborted) throw abortReason(opts.signal);
      throw ApplicationFailure.create({
        type: FailureType.NetworkError,
        message: `GET ${url}: reading the answer failed: ${describeNetworkError(err)}`,
        nonRetryable: false,
      });
    }
  }

  /**
   * One try, following redirects by hand: at most MAX_REDIRECTS, never to a URL already visited (a loop)
   * and only to http(s). Those fail at once, non-retryable, naming the chain: retrying cannot fix them.
   */
  private async follow<R extends Head>(url: string, opts: RequestOptions, limiter: RateLimiter, once: (url: string) => Promise<R>): Promise<R> {
    const chain = [url];
    let current = url;
    for (;;) {
      const res = await once(current);
      const location = res.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(res.status) || location === null) return res;
      await res.discard();
      let next: string;
      try {
        next = new URL(location, current).toString();
      } catch {
        throw badRedirect(url, `HTTP ${res.status} to an invalid Location ${JSON.stringify(location)}`, chain);
      }
      if (!/^https?:$/.test(new URL(next).protocol)) throw badRedirect(url, `redirected to ${next} (only http and https are fetched)`, chain);
      if (chain.includes(next)) throw badRedirect(url, `redirect loop back to ${next}`, [...chain, next]);
      chain.push(next);
      if (chain.length > MAX_REDIRECTS + 1) throw badRedirect(url, `more than ${MAX_REDIRECTS} redirects`, chain);
      await limiter.acquire(opts.signal);
      current = next;
    }
  }

  /** One request with fetch. The head must arrive within the head timeout; the body is not limited here. */
  private async onceFetch(url: string, opts: RequestOptions): Promise<Head & { res: Response }> {
    const res = await this.fetchOnce(url, opts);
    return { status: res.status, headers: res.headers, res, discard: () => res.body?.cancel().catch(() => undefined) ?? Promise.resolve() };
  }

  /** One request on its own connection (./socket-get.ts), same head timeout; the caller's signal also ends the body later. */
  private async onceSocket(url: string, opts: RequestOptions): Promise<StreamResponse> {
    const res = await socketGet(url, {
      headers: { 'user-agent': this.userAgent, ...opts.headers },
      headWithinMs: opts.headersTimeoutMs ?? this.headersTimeoutMs,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { status: res.status, headers: { get: (name) => res.headers.get(name.toLowerCase()) ?? null }, body: res.body, discard: async () => res.body.destroy() };
  }

  private async fetchOnce(url: string, opts: RequestOptions): Promise<Response> {
    const headWithin = opts.headersTimeoutMs ?? this.headersTimeoutMs;
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort(abortReason(opts.signal!));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => ctrl.abort(new Error(`no response head within ${headWithin / 1000} s (connection accepted, nothing sent)`)), headWithin);
    try {
      // The caller's abort stays wired to ctrl after this returns: it is what aborts a body being read.
      return await fetch(url, { headers: { 'user-agent': this.userAgent, ...opts.headers }, signal: ctrl.signal, redirect: 'manual' });
    } finally {
      clearTimeout(timer);
    }
  }
}

function badRedirect(url: string, what: string, chain: string[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.ServerError,
    nonRetryable: true,
    message: `GET ${url}: ${what}${chain.length > 1 ? ` (${chain.join(' -> ')})` : ''}`,
  });
}

/** "connect ECONNREFUSED 127.0.0.1:9" instead of undici's bare "fetch failed". */
export function describeNetworkError(err: unknown): string {
  const e = err as { message?: string } | undefined;
  const wrapped = causeChain(err)[1] as { message?: string; code?: string } | undefined;
  const cause = wrapped?.message ?? wrapped?.code;
  return cause ? `${e?.message ?? 'error'}: ${cause}` : (e?.message ?? String(err));
}

/** An archive's answer quoted in one line of a message: whitespace collapsed (an HTML error page spans dozens), its first `max` characters. */
export function excerpt(body: string, max = 200): string {
  return body.trim().replace(/\s+/g, ' ').slice(0, max);
}
