/**
 * Scale (issue 6, docs/benchmarks.md B3): a 10,000-sample batch with tiny (in-memory) runs, on its own embedded
 * dev server, through the real workflows and worker. Every sample published exactly once, and no workflow
 * history passes Temporal's 10,240-event warning. About 20 minutes here, so it runs in `npm run test:long`
 * (FETCHQUANT_LONG=1, tests named [long]); `npm run bench` reports the same figures at 1,000 and 10,000.
 */
import { describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { describeMachine } from '../../bench/machine.js';
import { measureOrchestration } from '../../bench/orchestration.js';
import { LONG_LIVED_MAX_EVENTS } from '../../src/workflows/options.js';

const LONG = Boolean(process.env.FETCHQUANT_LONG);

(LONG ? describe : describe.skip)('scale', () => {
  it('[long] a 10,000-sample batch completes, each sample once, no history over 10,240 events', async () => {
    // 1,600 + 3 x 2,800 = 10,000 runs; the small species finishes first so its threads move.
    // Halfway the worker is replaced: the new one replays every open workflow at once, as after a crash. A
    // batch stuck in replays (the livelock of workflows/options.ts) fails after 5 minutes without progress.
    const f = await measureOrchestration({ species: 4, runs: 2_800, firstRuns: 1_600, threads: 24, restartAt: 0.5, stallSec: 300, log: (l) => process.stdout.write(`scale: ${l}\n`) });
    process.stdout.write(`scale figures: ${JSON.stringify(f)}\n`);
    // the figures for the benchmark table (bench/results/b3-10000.json) when asked for
    if (process.env.FQ_SCALE_OUT) writeFileSync(process.env.FQ_SCALE_OUT, JSON.stringify({ machine: describeMachine(), ...f }, null, 2) + '\n');
    expect(f.samples).toBe(10_000);
    expect(f.lostRuns).toBe(0);
    expect(f.duplicatedRuns).toBe(0);
    expect(f.historiesOver10240).toBe(0);
    expect(f.largestHistory.events).toBeLessThanOrEqual(10_240);
    // the long species really continued-as-new rather than growing one history, and kept each run short
    // enough to replay well within its task timeout (a refused continue-as-new adds a few events)
    expect(Math.max(...Object.values(f.speciesRuns))).toBeGreaterThan(1);
    expect(f.largestSpeciesRunEvents).toBeLessThan(LONG_LIVED_MAX_EVENTS + 300);
    expect(f.restartedAfter).toBeGreaterThan(0);
    // A replay longer than the task timeout times out on every retry: hundreds. A loaded host may time out
    // a task now and then.
    expect(f.longLivedTasks!.timedOut).toBeLessThan(10);
  }, 3 * 60 * 60 * 1000);
});
