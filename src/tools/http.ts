/**
 * The one HTTP client of a worker process, on Node's built-in fetch (undici).
 * - Every request passes one token bucket, so all activities of a worker together stay under the archives'
 *   rate limits (ENA reports ~50 req/s; we default to 10 per worker so several hosts fit under it).
 * - 429, 5xx and network errors are retried here with exponential back-off, honouring Retry-After, so a
 *   short hiccup costs one activity attempt nothing. When retries run out it throws a retryable
 *   ApplicationFailure (ServerError / NetworkError) and Temporal retries the whole activity later.
 * - It only retries getting the response head; reading the body is the caller's business (a download
 *   resumes from its bytes on disk instead).
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures.js';

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

  acquire(signal?: AbortSignal): Promise<void> {
    const turn = this.chain.then(() => this.take(signal));
    // A cancelled waiter must not block the ones behind it.
    this.chain = turn.catch(() => undefined);
    return turn;
  }

  private async take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw abortReason(signal);
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

export interface HttpClientOptions {
  /** requests per second for the whole process (default 10) */
  requestsPerSec?: number;
  burst?: number;
  /** share a limiter between clients (otherwise each client owns one) */
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
}

export interface RequestOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
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
  readonly limiter: RateLimiter;
  private readonly retries: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly headersTimeoutMs: number;
  private readonly userAgent: string;
  private readonly clock: Clock;

  constructor(opts: HttpClientOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.limiter = opts.limiter ?? new RateLimiter(opts.requestsPerSec ?? 10, opts.burst, this.clock);
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
    let lastProblem = '';
    let lastRetryAfter: number | null = null;
    let lastWasStatus = false;
    let tries = 0;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) {
        const wait = lastRetryAfter ?? backoffMs(attempt, this.baseMs, this.maxMs);
        await this.clock.sleep(Math.min(wait, this.maxMs), opts.signal);
      }
      await this.limiter.acquire(opts.signal);
      tries++;
      const res = await this.once(url, opts).catch((err: unknown) => {
        if (opts.signal?.aborted) throw abortReason(opts.signal);
        lastProblem = describeNetworkError(err);
        lastWasStatus = false;
        lastRetryAfter = null;
        return null;
      });
      if (!res) continue;
      if (!isRetryableStatus(res.status)) return res;
      lastRetryAfter = parseRetryAfter(res.headers.get('retry-after'), this.clock.now());
      lastWasStatus = true;
      lastProblem = `HTTP ${res.status}${lastRetryAfter !== null ? ` (Retry-After ${Math.round(lastRetryAfter / 1000)} s)` : ''}`;
      // Free the connection before sleeping; the body of an error page is not needed.
      await res.body?.cancel().catch(() => undefined);
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

  /** GET and read the whole body as text (API answers, never reads). */
  async getText(url: string, opts: RequestOptions = {}): Promise<{ status: number; body: string; contentType: string }> {
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

  /** One try. The head must arrive within headersTimeoutMs; the body is not limited here. */
  private async once(url: string, opts: RequestOptions): Promise<Response> {
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort(abortReason(opts.signal!));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => ctrl.abort(new Error(`no response head within ${this.headersTimeoutMs} ms`)), this.headersTimeoutMs);
    try {
      // The caller's abort stays wired to ctrl after this returns: it is what aborts a body being read.
      return await fetch(url, { headers: { 'user-agent': this.userAgent, ...opts.headers }, signal: ctrl.signal, redirect: 'follow' });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** "connect ECONNREFUSED 127.0.0.1:9" instead of undici's bare "fetch failed". */
export function describeNetworkError(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string; code?: string } };
  const cause = e?.cause?.message ?? e?.cause?.code;
  return cause ? `${e.message ?? 'error'}: ${cause}` : (e?.message ?? String(err));
}
