/**
 * A worker killed with -9 and started again on the same machine hands its dead predecessor's attempts
 * back to the server at once (by task token), instead of leaving the host's slots idle until the
 * heartbeat timeout (20 s here) or the retry back-off (30 s here). The retried download resumes from the
 * bytes on disk; the batch ends with every sample done once.
 */
import { describe, expect, it } from '@jest/globals';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { attemptsDir } from '../../src/activity-attempts.js';
import { WORKER_LOST } from '../../src/failures.js';
import { eventually } from '../helpers/temporal.js';
import { eachRun, expectEverySampleDoneOnce, killHard, resultOrWhereItStands, runDirOf, startMirrorBatch, useE2eWorld } from '../helpers/e2e.js';
import { isSharedPartName } from '../../src/activities/part-file.js';

const BATCH = 'handback';

describe('a worker restarted after kill -9 hands back the attempts it left', () => {
  const world = useE2eWorld({
    label: 'e2e-handback',
    prefix: 'handback',
    // Two ~1.1 MB FASTQ through 150 KB/s: each download takes ~15 s, so the kill lands mid-transfer.
    data: { seed: 5, species: [{ name: 'Handbackus alpha', runs: 2, pairedFraction: 0, sraOnlyFraction: 0, readsPerRun: 40_000 }] },
    mirror: () => ({ bandwidthBytesPerSec: 150_000 }),
    timeoutMs: 300_000,
  });

  it('fails them as WorkerLost at start, long before the heartbeat timeout, and the batch completes', async () => {
    const first = await world.cliWorker('handback-host');
    // stall timeout 60 s: the host heartbeat timeout is its 20 s cap
    // and a 30 s retry back-off, which a handed-back attempt skips
    await startMirrorBatch(world.t.client, BATCH, world.dataset, world.mirror, { totalThreads: 2, stallTimeoutSec: 60, retryInitialSec: 30 });
    const parts = () =>
      eachRun(world.dataset).flatMap(({ sp, r }) => {
        const dir = runDirOf(world.dataset, sp, r.run);
        try {
          return readdirSync(dir).filter(isSharedPartName).map((n) => statSync(join(dir, n)).size);
        } catch {
          return [];
        }
      });
    // ~3 s at the mirror's pace; a stall fails here, with the worker's words, not at jest's timeout
    await eventually(async () => parts().length === 2 && parts().every((n) => n > 200_000), 60_000).catch((err: Error) => {
      throw new Error(`${err.message}; part files ${JSON.stringify(parts())}; worker said:\n${first.output().slice(-3000)}`);
    });
    const attemptsBefore = readdirSync(attemptsDir()).filter((n) => n.startsWith(`${first.pid}-`));
    expect(attemptsBefore.length).toBeGreaterThanOrEqual(2); // both downloads recorded while they ran

    await killHard(first);
    const second = await world.cliWorker('handback-host');
    const secondUp = Date.now();
    // Printed before it polls: both downloads went back to the server at start.
    expect(second.output().match(/handed back download attempt 1 of /g)?.length).toBe(2);
    expect(readdirSync(attemptsDir()).filter((n) => n.startsWith(`${first.pid}-`))).toEqual([]);

    // ~15 s here; where every workflow stands if it is not done in 2 minutes (CI once met jest's timeout here)
    const r = await resultOrWhereItStands(world.t.client, BATCH, 120_000, () => `restarted worker said:\n${second.output().slice(-3000)}`);
    expect(r.totals).toEqual({ total: 2, done: 2, skipped: 0, failed: 0 });
    await expectEverySampleDoneOnce(world.t.client, world.dataset, BATCH);
    // Each sample's download was retried after a WorkerLost failure, not after a heartbeat timeout.
    for (const { r: run } of eachRun(world.dataset)) {
      const query = `BatchId = '${BATCH}' AND RunAccession = '${run.run}'`;
      for await (const wf of world.t.client.workflow.list({ query })) {
        const events = (await world.t.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory()).events ?? [];
        // The sample retries its steps itself (one attempt per activity): the handed-back attempt ended
        // failed as WorkerLost, none timed out, and a new download started soon after the restart.
        const failedTypes = events.filter((e) => e.activityTaskFailedEventAttributes).map((e) => e.activityTaskFailedEventAttributes!.failure?.applicationFailureInfo?.type);
        expect(failedTypes).toContain(WORKER_LOST);
        expect(events.filter((e) => e.activityTaskTimedOutEventAttributes)).toEqual([]);
        const ms = (e: (typeof events)[number]) => Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);
        const startedAt = events.filter((e) => e.activityTaskStartedEventAttributes && ms(e) >= secondUp).map(ms);
        expect(Math.min(...startedAt) - secondUp).toBeLessThan(15_000);
      }
    }
  }, 240_000);
});
