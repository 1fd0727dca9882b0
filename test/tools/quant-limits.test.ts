// kallisto under control: the corrupted-.gz spin is cut by the timeout, cancellation kills it, and the
// per-process quant limit queues runs (heartbeating) instead of oversubscribing the host.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createIndexActivities } from '../../src/activities/index-build.js';
import { createQuantActivities, QuantSlots, quantThreadsNow } from '../../src/activities/quant.js';
import { makeTranscriptome, simulateReads } from '../../src/mirror/fixtures.js';
import type { ReadSet } from '../../src/types.js';
import { act, cleanTempDirs, errorOf, eventually, failureOf, livePids, pidGone, quiet, tempDir } from './util.js';

let root: string;
let indexPath: string;
let good: ReadSet;
let spinning: ReadSet;

/** pids of kallisto processes writing into outDir (kallisto's -o is a dir of the attempt's own inside it). */
const kallistoPids = (outDir: string): number[] =>
  livePids((argv) => !!argv[0]?.endsWith('kallisto') && (argv[argv.indexOf('-o') + 1] ?? '').startsWith(`${outDir}/`));

beforeAll(async () => {
  root = tempDir('fq-qlimit-');
  const seqs = await makeTranscriptome(join(root, 'tx.fa'), { transcripts: 8, length: 1000, seed: 21 });
  indexPath = join(root, 'tx.idx');
  await act(quiet(), createIndexActivities().ensureIndex, { indexPath, fastaPaths: [join(root, 'tx.fa')], timeoutSec: 60 });
  const a = await simulateReads(seqs, { dir: join(root, 'a'), run: 'SRR7600001', reads: 3000, readLength: 100, paired: true, fragmentLength: 250, seed: 1 });
  good = { layout: 'paired', files: a.fastqGz.map((f) => f.path), reads: 3000 };
  const b = await simulateReads(seqs, { dir: join(root, 'b'), run: 'SRR7600002', reads: 3000, readLength: 100, paired: true, fragmentLength: 250, seed: 2 });
  // A crc error (the gzip trailer's CRC32 no longer matches): kallisto 0.48 spins at 100 % CPU on it forever.
  for (const f of b.fastqGz) {
    const data = readFileSync(f.path);
    data[data.length - 8] = data[data.length - 8]! ^ 0xff;
    writeFileSync(f.path, data);
  }
  spinning = { layout: 'paired', files: b.fastqGz.map((f) => f.path), reads: 3000 };
});
afterAll(cleanTempDirs);

const input = (run: string, reads: ReadSet, quantDir: string, over: { timeoutSec?: number; quantThreads?: number } = {}) => ({
  run, indexPath, reads, quantDir, fragmentLength: 200, fragmentSd: 20, kallistoThreads: 1,
  quantThreads: over.quantThreads ?? 4, timeoutSec: over.timeoutSec ?? 600,
});

describe('kallisto under a timeout and cancellation', () => {
  it('the corrupted-.gz spin ends at the timeout as a retryable ToolFailed, with kallisto killed', async () => {
    const quantDir = tempDir();
    const f = await failureOf(act(quiet(), createQuantActivities({}).quant, input('SRR7600002', spinning, quantDir, { timeoutSec: 3 })));
    expect([f.type, f.nonRetryable]).toEqual(['ToolFailed', false]);
    expect(f.message).toMatch(/^run SRR7600002: kallisto quant: kallisto quant --threads 1 -i .* timed out after 3 s; its process group was killed/);
    expect(await eventually(() => kallistoPids(join(quantDir, '.SRR7600002.tmp')).length === 0)).toBe(true);
  });

  it('cancelling the activity kills the running kallisto', async () => {
    const quantDir = tempDir();
    const outDir = join(quantDir, '.SRR7600002.tmp');
    const env = quiet();
    const pending = errorOf(act(env, createQuantActivities({}).quant, input('SRR7600002', spinning, quantDir)));
    expect(await eventually(() => kallistoPids(outDir).length === 1)).toBe(true);
    const [pid] = kallistoPids(outDir);
    env.cancel();
    expect(await pending).toBeInstanceOf(CancelledFailure);
    expect(await eventually(() => pidGone(pid!))).toBe(true);
  });
});

describe("the host's last quant takes every core", () => {
  it('quantThreadsNow: widened only when fetchquant chose, nothing waits and nothing more is coming', () => {
    const base = { planned: 1, userSet: false, waiting: 0, feeding: false, cores: 4 };
    expect(quantThreadsNow(base)).toBe(4);
    expect(quantThreadsNow({ ...base, userSet: true })).toBe(1);
    expect(quantThreadsNow({ ...base, waiting: 1 })).toBe(1);
    expect(quantThreadsNow({ ...base, feeding: true })).toBe(1);
    // never narrower than planned (a host whose cores shrank under a running worker)
    expect(quantThreadsNow({ ...base, planned: 4, cores: 2 })).toBe(4);
  });

  const threadsOf = (command: string[]) => command[command.indexOf('--threads') + 1];
  const unset = (run: string, quantDir: string) => ({ ...input(run, good, quantDir), kallistoThreads: null, quantThreads: null });

  it('kallisto runs with -t = the cores when it is the last, with what src/cores.ts plans while downloads go on, and as the user said always', async () => {
    const last = await act(quiet(), createQuantActivities({ feeding: () => false, cores: () => 3 }).quant, unset('SRR7600001', tempDir()));
    expect(threadsOf(last.command)).toBe('3');
    const more = await act(quiet(), createQuantActivities({ feeding: () => true, cores: () => 3 }).quant, unset('SRR7600001', tempDir()));
    expect(threadsOf(more.command)).toBe('1'); // floor(sqrt(3)) of this host (src/cores.ts), not 3
    const given = await act(quiet(), createQuantActivities({ feeding: () => false, cores: () => 3 }).quant, input('SRR7600001', good, tempDir()));
    expect(threadsOf(given.command)).toBe('1');
    // the same counts either way: -t changes who does the work, not the result
    expect([last.nProcessed, last.nPseudoaligned]).toEqual([more.nProcessed, more.nPseudoaligned]);
  });
});

describe('quant slots', () => {
  it('QuantSlots: at most `limit` at once, equal waiters first come first served, a cancelled waiter leaves the queue', async () => {
    const slots = new QuantSlots();
    const never = new AbortController().signal;
    const order: string[] = [];
    const r1 = await slots.acquire(2, never, () => undefined);
    const r2 = await slots.acquire(2, never, () => undefined);
    const cancel = new AbortController();
    const w3 = slots.acquire(2, never, () => undefined).then((r) => (order.push('3'), r));
    const w4 = slots.acquire(2, cancel.signal, () => undefined).then((r) => (order.push('4'), r), (e: unknown) => (order.push('4 cancelled'), e));
    const w5 = slots.acquire(2, never, () => undefined).then((r) => (order.push('5'), r));
    expect([slots.inUse, slots.waiting]).toEqual([2, 3]);
    cancel.abort(new Error('cancelled'));
    await w4;
    expect(slots.waiting).toBe(2);
    r1();
    r1(); // a double release must not free a second slot
    const r3 = await w3;
    expect([slots.inUse, slots.waiting]).toEqual([2, 1]);
    r2();
    const r5 = await w5;
    expect(order).toEqual(['4 cancelled', '3', '5']);
    r3();
    r5();
    expect(slots.inUse).toBe(0);
  });

  it('QuantSlots: waiters are served largest first (equal ones in arrival order), and one that has waited past AGE_MS before any', async () => {
    let now = 0;
    const slots = new QuantSlots(() => now);
    const never = new AbortController().signal;
    const order: string[] = [];
    const wait = (name: string, weight: number) => slots.acquire(1, never, () => undefined, 1000, weight).then((r) => (order.push(name), r));
    let release = await slots.acquire(1, never, () => undefined, 1000, 5);
    const small = wait('small', 1_000);
    now += 1;
    const big = wait('big', 9_000);
    const mid = wait('mid', 4_000);
    const big2 = wait('big, later', 9_000);
    for (const next of [big, big2, mid, small]) {
      release();
      release = await next;
    }
    expect(order).toEqual(['big', 'big, later', 'mid', 'small']);

    // A small run waiting past AGE_MS goes before a larger one that came later.
    const tiny = wait('tiny', 10);
    now += QuantSlots.AGE_MS;
    const huge = wait('huge', 1e9);
    release();
    release = await tiny;
    release();
    release = await huge;
    release();
    expect(order.slice(4)).toEqual(['tiny', 'huge']);
    expect([slots.inUse, slots.waiting]).toEqual([0, 0]);
  });

  it('a quant waits (heartbeating every half heartbeat timeout) while the host\'s quant limit is taken, then runs', async () => {
    const slots = new QuantSlots();
    const acts = createQuantActivities({ quantSlots: slots });
    const quantDir = tempDir();
    const holder = quiet();
    const first = errorOf(act(holder, acts.quant, input('SRR7600002', spinning, quantDir, { quantThreads: 1 })));
    expect(await eventually(() => kallistoPids(join(quantDir, '.SRR7600002.tmp')).length === 1)).toBe(true);

    // Each heartbeat that reaches the server is a write there: a waiter beats every 3 s under a 6 s timeout
    // (it beat every second before, 3 times in the 2.5 s below).
    const waiter = new MockActivityEnvironment({ heartbeatTimeoutMs: 6000 }, { logger: new DefaultLogger('ERROR') });
    const details: unknown[] = [];
    waiter.on('heartbeat', (d: unknown) => details.push(d));
    const second = act(waiter, acts.quant, input('SRR7600001', good, quantDir, { quantThreads: 1 }));
    expect(await eventually(() => slots.waiting === 1 && details.length > 0)).toBe(true);
    expect(details[0]).toEqual({ waitingForQuantSlot: true });
    await new Promise((r) => setTimeout(r, 2500));
    expect(details).toHaveLength(1);
    expect(await eventually(() => details.length === 2, 50)).toBe(true);
    expect(readdirSync(quantDir)).toEqual(['.SRR7600002.tmp']); // the second has not started kallisto

    holder.cancel();
    expect(await first).toBeInstanceOf(CancelledFailure);
    const q = await second;
    expect(q.nProcessed).toBe(3000);
    expect(slots.inUse).toBe(0);
  });
});
