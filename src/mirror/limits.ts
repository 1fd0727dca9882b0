/**
 * The archives' request-rate limits and outages, for the mirror (evidence: test/fixtures/archives/README.md,
 * "Rate limits and outages").
 * - Rate: a sliding one-second window per service, counted over every client (NCBI counts per IP or API key;
 *   all our hosts behind one mirror are one client). Beyond the limit the answer is 429: NCBI's body is JSON
 *   `{"error":"API rate limit exceeded","api-key":"<ip>","count":"<n>","limit":"<limit>"}` with
 *   X-RateLimit-Limit / X-RateLimit-Remaining headers and, as far as public reports show, no Retry-After; a
 *   Retry-After is sent only when a test asks for one (ENA documents none either).
 * - Outage: a service answers 503 to everything for a window of time (an archive's maintenance or failure).
 */
import { performance } from 'node:perf_hooks';

export type LimitedService = 'ena-api' | 'sra-api' | 'ena-files' | 'sra-files';

export interface RateLimitSpec {
  /** requests allowed in any one-second window */
  perSec: number;
  /** send Retry-After: <seconds> with each 429 (default: none, as NCBI) */
  retryAfterSec?: number;
}

export interface RateLimitStats {
  accepted: number;
  rejected: number;
  /** most requests accepted within any one-second window: must never exceed perSec */
  maxInWindow: number;
}

export class SlidingWindowLimit {
  private times: number[] = [];
  readonly stats: RateLimitStats = { accepted: 0, rejected: 0, maxInWindow: 0 };
  constructor(readonly spec: RateLimitSpec, private readonly now: () => number = () => performance.now()) {
    if (!(spec.perSec >= 1)) throw new Error(`rate limit must allow >= 1 request per second (got ${spec.perSec})`);
  }

  /** true: the request may be served; false: answer 429. */
  admit(): boolean {
    const t = this.now();
    while (this.times.length > 0 && this.times[0]! <= t - 1000) this.times.shift();
    if (this.times.length >= this.spec.perSec) {
      this.stats.rejected++;
      return false;
    }
    this.times.push(t);
    this.stats.accepted++;
    this.stats.maxInWindow = Math.max(this.stats.maxInWindow, this.times.length);
    return true;
  }

  get remaining(): number {
    return Math.max(0, this.spec.perSec - this.times.length);
  }
}

/** Which service a source's outage takes down. */
export function servicesOf(source: 'ena' | 'sra'): LimitedService[] {
  return source === 'ena' ? ['ena-api', 'ena-files'] : ['sra-api', 'sra-files'];
}

/** Outages: per service, down until a time (ms, performance clock). */
export class Outages {
  private until = new Map<LimitedService, number>();
  /** requests answered 503 because of an outage, per service */
  readonly refused: Partial<Record<LimitedService, number>> = {};
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** `source` is down for `ms` from now (0: up again at once). */
  set(source: 'ena' | 'sra', ms: number): void {
    for (const s of servicesOf(source)) this.until.set(s, this.now() + Math.max(0, ms));
  }

  down(service: LimitedService): boolean {
    const d = (this.until.get(service) ?? 0) > this.now();
    if (d) this.refused[service] = (this.refused[service] ?? 0) + 1;
    return d;
  }
}
