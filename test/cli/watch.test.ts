// `run`'s progress (src/cli/run.ts watchUntilDone) on a terminal and in a log: the plan summary that arrives
// while the batch runs stays above a terminal's redrawn progress, and each screen is written once.
import { afterEach, describe, expect, it } from '@jest/globals';
import type { WorkflowHandle } from '@temporalio/client';
import { watchUntilDone, type ScreenHeader } from '../../src/cli/run.js';
import type { BatchProgress } from '../../src/workflows/messages.js';

const progress = (done: number): BatchProgress => ({
  batchId: 'b1',
  paused: false,
  totalThreads: 2,
  allocation: { sp: 2 },
  startedAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:01.000Z',
  species: [{ speciesId: 'sp', name: 'Sp', status: 'running', threads: 2, total: 3, done, skipped: 0, failed: 0, downloading: 1, processing: 0, remaining: 3 - done, bytes: 0 }],
});

/** A batch that answers `ticks` progress queries, then ends. */
function fakeBatch(ticks: number): WorkflowHandle {
  let asked = 0;
  let finish: (v: unknown) => void = () => undefined;
  const result = new Promise((r) => (finish = r));
  return {
    query: async () => {
      asked++;
      if (asked >= ticks) setTimeout(() => finish({ batchId: 'b1' }), 5);
      return progress(Math.min(asked, 3));
    },
    result: () => result,
  } as unknown as WorkflowHandle;
}

const realIsTTY = process.stdout.isTTY;
const realWrite = process.stdout.write.bind(process.stdout);
afterEach(() => {
  process.stdout.isTTY = realIsTTY;
  process.stdout.write = realWrite;
});

describe('watchUntilDone', () => {
  it('on a terminal: each screen written once, the plan summary above the progress once it has come', async () => {
    process.stdout.isTTY = true;
    const screens: string[] = [];
    process.stdout.write = ((s: string) => (screens.push(String(s)), true)) as typeof process.stdout.write;
    const lines: string[] = [];
    const header: ScreenHeader = { lines: [], drawn: false };
    setTimeout(() => header.lines.push('plan: 3 run(s), 0 already done, 3 to fetch; 3 can be had now, 0 cannot'), 30);
    await watchUntilDone(fakeBatch(4), (l) => lines.push(l), 0.02, true, [], header);
    expect(lines).toEqual([]); // a terminal gets redrawn screens, not appended lines
    expect(screens.length).toBeGreaterThanOrEqual(3);
    expect(screens[0]).toMatch(/^\x1b\[2J\x1b\[Hbatch b1: 1\/3 samples finished/);
    const last = screens.at(-1)!;
    expect(last).toMatch(/^\x1b\[2J\x1b\[Hplan: 3 run\(s\), 0 already done, 3 to fetch; 3 can be had now, 0 cannot\n\nbatch b1: /);
    expect(header.drawn).toBe(true);
  });

  it('in a log: one line per change, nothing redrawn', async () => {
    process.stdout.isTTY = false;
    const screens: string[] = [];
    process.stdout.write = ((s: string) => (screens.push(String(s)), true)) as typeof process.stdout.write;
    const lines: string[] = [];
    await watchUntilDone(fakeBatch(4), (l) => lines.push(l), 0.02, true, [], { lines: ['plan: …'], drawn: false });
    expect(screens).toEqual([]);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.every((l) => l.startsWith('batch b1: '))).toBe(true);
  });
});
