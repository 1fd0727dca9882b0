/**
 * The HTTP client against a real server on 127.0.0.1 (a tiny one here: these are client-level status
 * sequences; archive faults end to end are in download/source tests against the mirror).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { backoffMs, HttpClient, parseRetryAfter, RateLimiter, type Clock } from '../../src/tools/http.js';

/** A clock that only moves when someone sleeps: counts waits exactly, no timing in the assertion. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    sleep: async (ms) => {
      slept.push(ms);
      t += ms;
    },
  };
}

describe('pure helpers', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter('0.5', 0)).toBe(500);
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:09 GMT', now)).toBe(9000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });

  it('doubles the back-off per retry, jittered to [0.5, 1] of the step, capped', () => {
    expect(backoffMs(1, 100, 10_000, () => 1)).toBe(100);
    expect(backoffMs(3, 100, 10_000, () => 1)).toBe(400);
    expect(backoffMs(3, 100, 10_000, () => 0)).toBe(200);
    expect(backoffMs(20, 100, 1000, () => 1)).toBe(1000);
  });

  it('rate limiter: a burst passes, every further request waits 1/rate', async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(4, 2, clock);
    await Promise.all(Array.from({ length: 10 }, () => limiter.acquire()));
    expect(limiter.stats).toEqual({ granted: 10, delayed: 8 });
    expect(clock.slept).toHaveLength(8);
    for (const ms of clock.slept) expect(ms).toBeCloseTo(250, 6);
    expect(clock.now()).toBeCloseTo(2000, 6);
  });

  it('rate limiter: a cancelled waiter does not block those behind it', async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(1, 1, clock);
    await limiter.acquire();
    const ctrl = new AbortController();
    ctrl.abort(new Error('cancelled'));
    await expect(limiter.acquire(ctrl.signal)).rejects.toThrow('cancelled');
    await limiter.acquire();
    expect(limiter.stats.granted).toBe(2);
  });
});

describe('HttpClient against a local server', () => {
  let server: Server;
  let base: string;
  /** per path: statuses to answer before a 200, and Retry-After to send with them */
  const plans: Record<string, { statuses: number[]; retryAfter?: string }> = {};
  const hits: Record<string, number> = {};

  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = req.url ?? '/';
      hits[path] = (hits[path] ?? 0) + 1;
      const next = plans[path]?.statuses.shift();
      if (next !== undefined) {
        res.writeHead(next, plans[path]?.retryAfter ? { 'retry-after': plans[path]!.retryAfter! } : {});
        return res.end('busy');
      }
      res.writeHead(path === '/missing' ? 404 : 200, { 'content-type': 'text/plain' });
      res.end(`ok ${path}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('retries 5xx and returns the success', async () => {
    plans['/a'] = { statuses: [500, 503] };
    const http = new HttpClient({ backoffBaseMs: 5 });
    const r = await http.getText(`${base}/a`);
    expect(r).toMatchObject({ status: 200, body: 'ok /a' });
    expect(hits['/a']).toBe(3);
  });

  it('honours Retry-After on 429, and hands a wait above the cap to Temporal as nextRetryDelay', async () => {
    const clock = { now: () => Date.now(), slept: [] as number[], sleep: async (ms: number) => void clock.slept.push(ms) };
    plans['/b'] = { statuses: [429], retryAfter: '2' };
    const http = new HttpClient({ backoffBaseMs: 1, backoffMaxMs: 5000, clock, requestsPerSec: 1000 });
    expect((await http.getText(`${base}/b`)).status).toBe(200);
    expect(clock.slept).toEqual([2000]);

    plans['/c'] = { statuses: [429, 429], retryAfter: '120' };
    const err = await new HttpClient({ backoffMaxMs: 1000, clock }).getText(`${base}/c`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('ServerError');
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
    expect((err as ApplicationFailure).message).toBe(`GET ${base}/c failed after 1 try: HTTP 429 (Retry-After 120 s)`);
    expect((err as ApplicationFailure).nextRetryDelay).toBe(120_000);
    expect(hits['/c']).toBe(1);
  });

  it('gives up after its retries with a retryable ServerError naming the URL', async () => {
    plans['/d'] = { statuses: [502, 502, 502] };
    const err = await new HttpClient({ retries: 2, backoffBaseMs: 1 }).getText(`${base}/d`).catch((e: unknown) => e);
    expect((err as ApplicationFailure).type).toBe('ServerError');
    expect((err as Error).message).toBe(`GET ${base}/d failed after 3 tries: HTTP 502`);
    expect(hits['/d']).toBe(3);
  });

  it('returns 4xx answers without retrying', async () => {
    const r = await new HttpClient({ backoffBaseMs: 1 }).getText(`${base}/missing`);
    expect(r.status).toBe(404);
    expect(hits['/missing']).toBe(1);
  });

  it('reports a refused connection as a retryable NetworkError after retries', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const err = await new HttpClient({ retries: 1, backoffBaseMs: 1 }).getText(`http://127.0.0.1:${port}/x`).catch((e: unknown) => e);
    expect((err as ApplicationFailure).type).toBe('NetworkError');
    expect((err as Error).message).toMatch(/failed after 2 tries: .*ECONNREFUSED/);
  });

  it('stops at once, without retrying, when the caller aborts', async () => {
    plans['/e'] = { statuses: [503, 503, 503, 503] };
    const ctrl = new AbortController();
    const http = new HttpClient({ backoffBaseMs: 60_000, backoffMaxMs: 60_000 });
    const p = http.getText(`${base}/e`, { signal: ctrl.signal });
    setTimeout(() => ctrl.abort(new Error('cancelled by test')), 50);
    await expect(p).rejects.toThrow('cancelled by test');
    expect(hits['/e']).toBe(1);
  });
});
