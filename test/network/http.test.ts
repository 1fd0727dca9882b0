/**
 * The HTTP client against a real server on 127.0.0.1 (a tiny one here: these are client-level status
 * sequences; archive faults end to end are in download/source tests against the mirror).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { backoffMs, HttpClient, parseRetryAfter, RateLimiter, rateDefaults, type Clock } from '../../src/tools/http.js';

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

describe('request-rate budgets per archive', () => {
  it('defaults to what the archives document: ENA 50/s, the SRA locator 3/s (10/s with NCBI_API_KEY)', () => {
    expect(rateDefaults({})).toEqual({ ena: 50, sra: 3, files: 10 });
    expect(rateDefaults({ NCBI_API_KEY: 'k' }).sra).toBe(10);
    expect(rateDefaults({ FETCHQUANT_ENA_REQUESTS_PER_SEC: '12.5', FETCHQUANT_SRA_REQUESTS_PER_SEC: 'x' })).toEqual({ ena: 12.5, sra: 3, files: 10 });
  });

  it('a pause (after a 429) holds every waiter of that bucket', async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(100, 100, clock);
    limiter.pauseFor(3000);
    await Promise.all([limiter.acquire(), limiter.acquire()]);
    expect(clock.slept[0]).toBe(3000);
    expect(clock.now()).toBe(3000);
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
      if (path === '/hang') return; // accepts the connection, never answers
      const redirect: Record<string, string> = { '/r1': '/r2', '/r2': '/r1', '/to-ftp': 'ftp://ftp.example.org/x.fastq.gz', '/moved': '/a-moved' };
      if (redirect[path]) {
        res.writeHead(302, { location: redirect[path]! });
        return res.end();
      }
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

  it("an archive's answer asked by the plan serves the work once (and the other way round); same-side questions, other classes and failures go to the server", async () => {
    const http = new HttpClient({ backoffBaseMs: 1, requestsPerSec: 1000 });
    const plan = http.askedBy('plan');
    const url = (p: string) => `${base}${p}`;
    // the plan asks, then a sample: one request
    expect(await plan.getText(url('/s1'), { rateClass: 'sra' })).toMatchObject({ status: 200, body: 'ok /s1' });
    expect(await http.getText(url('/s1'), { rateClass: 'sra' })).toMatchObject({ status: 200, body: 'ok /s1' });
    expect(hits['/s1']).toBe(1);
    // once: the sample asking again (a retry, a parked run) reaches the server
    await http.getText(url('/s1'), { rateClass: 'sra' });
    expect(hits['/s1']).toBe(2);
    // joined while on its way: both ask at once, one request
    const [a, b] = await Promise.all([plan.getText(url('/s2'), { rateClass: 'ena' }), http.getText(url('/s2'), { rateClass: 'ena' })]);
    expect([a.body, b.body, hits['/s2']]).toEqual(['ok /s2', 'ok /s2', 1]);
    // a sample's answer serves the plan, while the plan is asking
    await http.getText(url('/s3'), { rateClass: 'ena' });
    await plan.getText(url('/s3'), { rateClass: 'ena' });
    expect(hits['/s3']).toBe(1);
    // the same side twice: two requests; downloads (files) never shared
    await plan.getText(url('/s4'), { rateClass: 'ena' });
    await plan.getText(url('/s4'), { rateClass: 'ena' });
    await plan.getText(url('/s5'));
    await http.getText(url('/s5'));
    expect([hits['/s4'], hits['/s5']]).toEqual([2, 2]);
    // a failed question is not shared: the other side asks itself (and gets the answer the archive gives now)
    plans['/s6'] = { statuses: [503, 503] };
    const failing = new HttpClient({ retries: 1, backoffBaseMs: 1, requestsPerSec: 1000 });
    await expect(failing.askedBy('plan').getText(url('/s6'), { rateClass: 'sra' })).rejects.toThrow(/HTTP 503/);
    expect(await failing.getText(url('/s6'), { rateClass: 'sra' })).toMatchObject({ status: 200 });
    expect(hits['/s6']).toBe(3);
  });

  it('shared answers last shareAnswersMs; a worker with no plan keeps none', async () => {
    let t = 0;
    const clock = { now: () => t, sleep: async (ms: number) => void (t += ms) };
    const http = new HttpClient({ clock, requestsPerSec: 1000, shareAnswersMs: 1000 });
    await http.askedBy('plan').getText(`${base}/t1`, { rateClass: 'ena' });
    t = 1500;
    await http.getText(`${base}/t1`, { rateClass: 'ena' });
    expect(hits['/t1']).toBe(2);
    // the plan last asked 1.5 s ago (> 1 s): the work's answers are not kept for it
    await http.getText(`${base}/t2`, { rateClass: 'ena' });
    await http.askedBy('plan').getText(`${base}/t2`, { rateClass: 'ena' });
    expect(hits['/t2']).toBe(2);
    const off = new HttpClient({ requestsPerSec: 1000, shareAnswersMs: 0 });
    await off.askedBy('plan').getText(`${base}/t3`, { rateClass: 'ena' });
    await off.getText(`${base}/t3`, { rateClass: 'ena' });
    expect(hits['/t3']).toBe(2);
  });

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

  it('spends each archive\'s own budget: many locator requests wait, ENA ones do not', async () => {
    const clock = fakeClock();
    const http = new HttpClient({ clock, rates: { ena: 50, sra: 3 } });
    for (let i = 0; i < 6; i++) await http.getText(`${base}/ena${i}`, { rateClass: 'ena' });
    expect(http.limiters.ena.stats).toEqual({ granted: 6, delayed: 0 });
    for (let i = 0; i < 6; i++) await http.getText(`${base}/sra${i}`, { rateClass: 'sra' });
    expect(http.limiters.sra.stats).toEqual({ granted: 6, delayed: 3 });
    expect(clock.now()).toBeCloseTo(1000, 6); // 3 past the burst of 3, at 3 per second
  });

  it('a 429 pauses every request of the worker to that archive, with or without Retry-After', async () => {
    const clock = fakeClock();
    const http = new HttpClient({ clock, retries: 0, backoffBaseMs: 800, rates: { ena: 1000, sra: 1000 } });
    plans['/busy'] = { statuses: [429], retryAfter: '3' };
    await expect(http.getText(`${base}/busy`, { rateClass: 'ena' })).rejects.toThrow(/HTTP 429 \(Retry-After 3 s\)/);
    const before = clock.now();
    await http.getText(`${base}/other`, { rateClass: 'ena' }); // someone else's request to ENA waits out the 429
    expect(clock.now() - before).toBe(3000);
    const t = clock.now();
    await http.getText(`${base}/other`, { rateClass: 'sra' }); // the locator's budget is not paused
    expect(clock.now()).toBe(t);
    plans['/busy2'] = { statuses: [429] };
    await expect(http.getText(`${base}/busy2`, { rateClass: 'ena' })).rejects.toThrow(/HTTP 429$/);
    const t2 = clock.now();
    await http.getText(`${base}/other`, { rateClass: 'ena' }); // no Retry-After: the back-off step
    expect(clock.now() - t2).toBeGreaterThanOrEqual(400);
  });

  it('follows a redirect; fails a loop or a non-http(s) redirect at once, without retries, naming the chain', async () => {
    expect((await new HttpClient({ backoffBaseMs: 1 }).getText(`${base}/moved`)).body).toBe('ok /a-moved');
    const loop = (await new HttpClient({ backoffBaseMs: 1 }).getText(`${base}/r1`).catch((e: unknown) => e)) as ApplicationFailure;
    expect(loop).toBeInstanceOf(ApplicationFailure);
    expect(loop.nonRetryable).toBe(true);
    expect(loop.message).toBe(`GET ${base}/r1: redirect loop back to ${base}/r1 (${base}/r1 -> ${base}/r2 -> ${base}/r1)`);
    expect(hits['/r1']).toBe(1);
    const ftp = (await new HttpClient({ backoffBaseMs: 1 }).getText(`${base}/to-ftp`).catch((e: unknown) => e)) as ApplicationFailure;
    expect(ftp.nonRetryable).toBe(true);
    expect(ftp.message).toBe(`GET ${base}/to-ftp: redirected to ftp://ftp.example.org/x.fastq.gz (only http and https are fetched)`);
    expect(hits['/to-ftp']).toBe(1);
  });

  it('a server that accepts the connection but never sends headers: given up after the head timeout', async () => {
    const started = Date.now();
    const err = (await new HttpClient({ retries: 1, backoffBaseMs: 1 }).getText(`${base}/hang`, { headersTimeoutMs: 200 }).catch((e: unknown) => e)) as ApplicationFailure;
    expect(err.type).toBe('NetworkError');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toBe(`GET ${base}/hang failed after 2 tries: no response head within 0.2 s (connection accepted, nothing sent)`);
    expect(hits['/hang']).toBe(2);
    expect(Date.now() - started).toBeLessThan(20_000); // never the 60 s default, never forever
  });
});
