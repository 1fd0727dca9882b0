/**
 * The source pacer (docs/pacing.md) on the suite's real Temporal server, with two "hosts" (two PacerClients,
 * two HTTP clients) sharing it: download permits bound concurrency across both, a 429 pauses the source
 * for everyone and halves its pace, a crashed holder's permit comes back when its lease runs out, a
 * saturated source is asked after the next one (spill), and API requests of both hosts together stay
 * within a rate-limited mirror's window — and back off when the mirror allows less than the pacer thinks.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PACER_WORKFLOW_ID } from '../../src/ids.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { PacerClient } from '../../src/pacing.js';
import { HttpClient } from '../../src/tools/http.js';
import { startWorker, type RunningWorker } from '../../src/worker.js';
import { acquirePermitUpdate, paceQuery, releasePermitSignal, type PaceLimits, type PaceSource, type SourcePace } from '../../src/workflows/messages.js';
import { testTemporal, type TestTemporal } from '../helpers/temporal.js';
import { maybeRecord, patchMarkers } from '../helpers/histories.js';
import { TICK_TIMER } from '../../src/workflows/tick.js';
import { createActivities } from '../../src/activities/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sourcePacerWorkflow', () => {
  let t: TestTemporal;
  let worker: RunningWorker;
  let mirror: Mirror | undefined;
  const limits: Record<PaceSource, PaceLimits> = { ena: { maxConcurrency: 2, maxRatePerSec: 4 }, sra: { maxConcurrency: 2, maxRatePerSec: 3 } };
  const client = (holder: string, leaseSec = 60) => new PacerClient({ client: t.client, holder, limits, leaseSec });
  const pace = async (source: PaceSource): Promise<SourcePace> =>
    (await t.client.workflow.getHandle(PACER_WORKFLOW_ID).query(paceQuery)).find((p) => p.source === source)!;

  beforeAll(async () => {
    t = await testTemporal('wf-pacer');
    worker = await startWorker({ connection: t.native, client: t.client, namespace: t.namespace, hostId: 'pacer', activities: createActivities({ hostId: 'pacer', cwd: '/', pacer: null }), janitor: false });
    await client('setup').ensureStarted();
  });
  afterAll(async () => {
    await mirror?.stop();
    await t.client.workflow.getHandle(PACER_WORKFLOW_ID).terminate('test over').catch(() => undefined);
    await worker?.shutdown();
    await t?.close();
  });

  it('two hosts never hold more download permits of a source than its limit, and every holder gets one', async () => {
    const a = client('host-a');
    const b = client('host-b');
    let now = 0;
    let most = 0;
    const work = async () => {
      now++;
      most = Math.max(most, now);
      await sleep(300);
      now--;
      return 'ok';
    };
    const results = await Promise.all([...[1, 2, 3].map(() => a.withPermit('sra', work)), ...[1, 2, 3].map(() => b.withPermit('sra', work))]);
    expect(results).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    expect(most).toBe(2);
    const p = await pace('sra');
    expect(p).toMatchObject({ limit: 2, maxLimit: 2, inFlight: 0, granted: 6 });
    // its idle loop waits on one 60 s tick (TICK_TIMER), not on a 60 s timer started per update or signal
    const history = await t.client.workflow.getHandle(PACER_WORKFLOW_ID).fetchHistory();
    expect(patchMarkers(history)).toContain(TICK_TIMER);
    const idleTimers = (history.events ?? []).filter((e) => e.timerStartedEventAttributes && Number(e.timerStartedEventAttributes.startToFireTimeout?.seconds ?? 0) === 60);
    expect(idleTimers.length).toBe(1);
    await maybeRecord(t.client, PACER_WORKFLOW_ID, 'v7-pacer-tick');
  });

  it('a 429 with Retry-After pauses the source for every host and halves its concurrency; clean downloads raise it again', async () => {
    const a = client('host-a');
    const b = client('host-b');
    // host a's download meets a 429 with Retry-After 2 s
    await a.withPermit('ena', async () => {
      const { httpObservers } = await import('../../src/tools/http.js');
      httpObservers.getStore()?.({ url: 'x', status: 429, retryAfterMs: 2000 });
    });
    const after = await pace('ena');
    expect(after.limit).toBe(1);
    expect(after.throttled).toBe(1);
    expect(after.pausedUntil).not.toBeNull();
    const pausedUntil = Date.parse(after.pausedUntil!);
    // host b asks at once and is let in only when the pause is over
    let grantedAt = 0;
    await b.withPermit('ena', async () => {
      grantedAt = Date.now();
    });
    expect(grantedAt).toBeGreaterThanOrEqual(pausedUntil - 50); // workflow time vs this clock: same machine
    // one clean download at limit 1 is `limit` clean downloads: one more permit
    expect((await pace('ena')).limit).toBe(2);
    expect((await pace('ena')).lastChange).toMatch(/up: 2 permits/);
  });

  it("a crashed holder's permit comes back when its lease runs out", async () => {
    const h = t.client.workflow.getHandle(PACER_WORKFLOW_ID);
    // two permits taken by a host that then dies: never released, never renewed (lease 2 s)
    const grants = await Promise.all([1, 2].map(() => h.executeUpdate(acquirePermitUpdate, { args: [{ source: 'sra', holder: 'dead-host', leaseSec: 2, waitMs: 0, limits: limits.sra }] })));
    expect(grants.every((g) => g.granted)).toBe(true);
    const full = await h.executeUpdate(acquirePermitUpdate, { args: [{ source: 'sra', holder: 'live-host', leaseSec: 60, waitMs: 0, limits: limits.sra }] });
    expect(full).toMatchObject({ granted: false, reason: expect.stringMatching(/saturated: 2 of 2/) });
    // the live host waits in the pacer and gets a permit once the dead one's leases expire
    const later = await h.executeUpdate(acquirePermitUpdate, { args: [{ source: 'sra', holder: 'live-host', leaseSec: 60, waitMs: 15_000, limits: limits.sra }] });
    expect(later.granted).toBe(true);
    if (later.granted) await h.signal(releasePermitSignal, { leaseId: later.leaseId, outcome: { throttled: 0, serverErrors: 0, stalled: false } });
  });

  it('spills: a source that pushed back is asked after one with a permit free; our own ceiling alone never spills', async () => {
    const a = client('host-a');
    const { httpObservers } = await import('../../src/tools/http.js');
    let release!: () => void;
    let held = new Promise<void>((r) => (release = r));
    // every permit of ENA taken at its ceiling: full, but the archive did not push back
    let holding: Promise<unknown> = Promise.all([a.withPermit('ena', () => held), a.withPermit('ena', () => held)]);
    await sleep(300);
    expect((await pace('ena')).inFlight).toBe(2);
    expect(await a.order(['ena', 'sra'])).toEqual(['ena', 'sra']);
    release();
    await holding;
    // two downloads meet 5xx: ENA backs off to one permit; with it taken, runs spill to SRA
    await Promise.all([1, 2].map(() => a.withPermit('ena', async () => httpObservers.getStore()?.({ url: 'x', status: 503 }))));
    expect((await pace('ena')).limit).toBe(1);
    held = new Promise<void>((r) => (release = r));
    holding = Promise.all([a.withPermit('ena', () => held)]);
    await sleep(300);
    expect(await a.order(['ena', 'sra'])).toEqual(['sra', 'ena']);
    release();
    await holding;
  });

  it('API requests of two hosts share one window: within a 3/s mirror, no 429', async () => {
    mirror = await startMirror({ dataset: { root: '/nonexistent', configDir: '/nonexistent', outputDir: '/nonexistent', species: [] }, rateLimits: { 'sra-api': { perSec: 3 } } });
    const hosts = ['host-a', 'host-b'].map((h) => {
      const http = new HttpClient({ rates: { ena: 100, sra: 100, files: 100 }, backoffBaseMs: 200, retries: 6 });
      http.setGate('sra', client(h).gate('sra'));
      return http;
    });
    const url = (i: number) => `${mirror!.sraLocateUrl}?acc=SRR${String(9100000 + i)}&filetype=run`;
    const answers = await Promise.all([...Array(12).keys()].map((i) => hosts[i % 2]!.getText(url(i), { rateClass: 'sra' })));
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
    expect(mirror.stats().rateLimits['sra-api']).toMatchObject({ accepted: 12, rejected: 0 });
    expect(mirror.stats().rateLimits['sra-api']!.maxInWindow).toBeLessThanOrEqual(3);
    // the same requests without the pacer's gate (each host's own bucket only) are refused: the mirror bites
    await sleep(1100);
    const alone = new HttpClient({ rates: { ena: 100, sra: 100, files: 100 }, backoffBaseMs: 200, retries: 6 });
    await Promise.all([...Array(12).keys()].map((i) => alone.getText(url(i), { rateClass: 'sra' })));
    expect(mirror.stats().rateLimits['sra-api']!.rejected).toBeGreaterThan(0);
    await mirror.stop();
    mirror = undefined;
  });

  it('a mirror that allows less than the pacer thinks: 429s back the pace off and every request still completes', async () => {
    // a fresh pacer (the earlier cases moved ENA's pace): its ceiling for ENA is 4/s; this mirror allows 2/s
    // and says Retry-After: 1
    await t.client.workflow.getHandle(PACER_WORKFLOW_ID).terminate('fresh pace for this case');
    mirror = await startMirror({ dataset: { root: '/nonexistent', configDir: '/nonexistent', outputDir: '/nonexistent', species: [] }, rateLimits: { 'ena-api': { perSec: 2, retryAfterSec: 1 } } });
    const hosts = ['host-a', 'host-b'].map((h) => {
      const http = new HttpClient({ rates: { ena: 100, sra: 100, files: 100 }, backoffBaseMs: 200, retries: 8 });
      http.setGate('ena', client(h).gate('ena'));
      return http;
    });
    const url = (i: number) => `${mirror!.enaPortalUrl}/filereport?accession=SRR${String(9200000 + i)}&result=read_run&fields=run_accession&format=tsv`;
    const n = 16;
    const answers = await Promise.all([...Array(n).keys()].map((i) => hosts[i % 2]!.getText(url(i), { rateClass: 'ena' })));
    // unknown runs: ENA's 204 — answered, not refused
    expect(answers.every((a) => a.status === 200 || a.status === 204)).toBe(true);
    const st = mirror.stats().rateLimits['ena-api']!;
    expect(st.accepted).toBe(n);
    // 2 hosts at the pacer's 4/s against 2/s would see about every other request refused; the pacer halves
    // on the first 429 and pauses for Retry-After, so few are
    expect(st.rejected).toBeGreaterThan(0);
    expect(st.rejected).toBeLessThanOrEqual(n / 4);
    const p = await pace('ena');
    expect(p.throttled).toBeGreaterThan(0);
    expect(p.lastChange).toMatch(/down: 429/);
  });
});
