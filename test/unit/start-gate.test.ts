// A host's start (src/activities/start-gate.ts): downloads one at a time until kallisto has work for every
// quant slot, then side by side; at the latest after the window.
import { describe, expect, it } from '@jest/globals';
import { QuantSlots } from '../../src/activities/quant.js';
import { StartGate } from '../../src/activities/start-gate.js';

const never = new AbortController().signal;
const tick = () => new Promise((r) => setTimeout(r, 5));

/** enter() with a record of when it passed */
function download(gate: StartGate, name: string, passed: string[], limit: number | null = 2, signal = never) {
  return gate.enter(limit, signal, () => undefined).then((release) => {
    passed.push(name);
    return release;
  });
}

describe('StartGate', () => {
  it('one transfer at a time until every quant slot has work, then all side by side', async () => {
    const slots = new QuantSlots();
    const gate = new StartGate(slots, 2, 60_000);
    const passed: string[] = [];
    const a = download(gate, 'a', passed);
    const b = download(gate, 'b', passed);
    const c = download(gate, 'c', passed);
    const d = download(gate, 'd', passed);
    await tick();
    expect(passed).toEqual(['a']);
    // a's reads verified: its transfer ends and its quant takes a slot; b (only b) transfers next
    (await a)();
    const q1 = await slots.acquire(2, never, () => undefined);
    await tick();
    expect(passed).toEqual(['a', 'b']);
    expect(gate.isOpen).toBe(false);
    // b's quant takes the second slot: every slot has work, so c and d transfer at once, b's still running
    const q2 = await slots.acquire(2, never, () => undefined);
    await tick();
    expect(passed).toEqual(['a', 'b', 'c', 'd']);
    expect(gate.isOpen).toBe(true);
    // open for good: the cores idle again, and a new download still does not wait
    q1();
    q2();
    (await b)();
    const e = await Promise.race([download(gate, 'e', passed), tick().then(() => null)]);
    expect(e).not.toBeNull();
    for (const r of [await c, await d, e!]) r();
  });

  it('busy (more quants may come) before the start has passed and while a transfer or a conversion runs; not after', async () => {
    const slots = new QuantSlots();
    const gate = new StartGate(slots, 1, 60_000);
    expect(gate.busy).toBe(true); // nothing downloaded yet: the first downloads are still to come
    const a = await gate.enter(1, never, () => undefined);
    expect(gate.busy).toBe(true);
    const q = await slots.acquire(1, never, () => undefined);
    const b = await gate.enter(1, never, () => undefined); // every slot has work: b passes, the gate opens
    expect(gate.isOpen).toBe(true);
    expect(gate.busy).toBe(true);
    a();
    expect(gate.busy).toBe(true); // b still transfers
    b();
    expect(gate.busy).toBe(false);
    let during: boolean | null = null;
    await gate.converting(async () => {
      during = gate.busy;
    });
    expect([during, gate.busy]).toEqual([true, false]);
    q();
  });

  it('a quant waiting for a slot and an SRA conversion count as work for the cores', async () => {
    const slots = new QuantSlots();
    const gate = new StartGate(slots, 2, 60_000);
    const passed: string[] = [];
    const held = await slots.acquire(1, never, () => undefined); // another batch's quant, limit 1
    const waiting = slots.acquire(1, never, () => undefined);
    const a = download(gate, 'a', passed);
    const b = download(gate, 'b', passed);
    await tick();
    expect(passed).toEqual(['a', 'b']); // one running + one waiting = 2 slots' work: open at once
    held();
    (await waiting)();
    (await a)();
    (await b)();

    const gate2 = new StartGate(new QuantSlots(), 2, 60_000);
    const passed2: string[] = [];
    const x = download(gate2, 'x', passed2, null);
    const y = download(gate2, 'y', passed2, null);
    await tick();
    expect(passed2).toEqual(['x']);
    let endConversion!: () => void;
    const conversion = gate2.converting(() => new Promise<void>((r) => (endConversion = r)));
    (await x)(); // x's .sra is in; its conversion runs (one core) and y transfers
    await tick();
    expect(passed2).toEqual(['x', 'y']);
    const z = download(gate2, 'z', passed2, null);
    await tick();
    expect(passed2).toEqual(['x', 'y']); // one conversion is one slot's work of the default 2
    endConversion();
    await conversion;
    (await y)();
    await tick();
    expect(passed2).toEqual(['x', 'y', 'z']);
    (await z)();
  });

  it('the window bounds the wait: a slow first transfer holds the others no longer', async () => {
    const gate = new StartGate(new QuantSlots(), 2, 150);
    const passed: string[] = [];
    const a = download(gate, 'a', passed);
    const b = download(gate, 'b', passed);
    await tick();
    expect(passed).toEqual(['a']);
    await new Promise((r) => setTimeout(r, 300));
    expect(passed).toEqual(['a', 'b']);
    expect(gate.isOpen).toBe(true);
    (await a)();
    (await b)();
  });

  it('a cancelled waiter leaves the queue; the next one transfers after the running one', async () => {
    const gate = new StartGate(new QuantSlots(), 2, 60_000);
    const passed: string[] = [];
    const a = download(gate, 'a', passed);
    const cancel = new AbortController();
    const b = download(gate, 'b', passed, 2, cancel.signal).catch((e: unknown) => e);
    const c = download(gate, 'c', passed);
    await tick();
    cancel.abort(new Error('cancelled'));
    expect(((await b) as Error).message).toBe('cancelled');
    const release = await a;
    release();
    release(); // a second call changes nothing
    await tick();
    expect(passed).toEqual(['a', 'c']);
    (await c)();
  });
});
