import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startWorker, type RunningWorker } from '../../src/worker.js';
import { batchWorkflowId } from '../../src/ids.js';
import type { BatchResult } from '../../src/workflows/batch.js';
import { testTemporal, type TestTemporal } from '../helpers/temporal.js';
import { maybeRecord, patchMarkers } from '../helpers/histories.js';
import { TICK_TIMER } from '../../src/workflows/tick.js';
import { createFastActivities, newLog, runName, type FastLog, type FastWorld } from '../helpers/fast-activities.js';

const FAST = { checkIntervalSec: 1, monitorIntervalSec: 0.2, retryInitialSec: 0.05, hostLostTimeoutSec: 5, diskWaitSec: 0.1, stallTimeoutSec: 5 };

describe('batchWorkflow on a real dev server (fast activities)', () => {
  let t: TestTemporal;
  let worker: RunningWorker;
  let log: FastLog;
  let world: FastWorld;

  beforeAll(async () => {
    t = await testTemporal('wf-batch');
    log = newLog();
    world = {
      species: [
        { id: 'alpha_one', runs: 3 },
        { id: 'beta_two', runs: 12 },
        { id: 'gamma_three', runs: 2, indexFails: true },
      ],
      unknownRuns: new Set([runName(1, 5)]),
      downloadMs: 80,
    };
    worker = await startWorker({
      connection: t.native,
      client: t.client,
      namespace: t.namespace,
      hostId: 'host-a',
      activities: createFastActivities(world, 'host-a', log),
      janitor: false,
    });
  });
  afterAll(async () => {
    await worker?.shutdown();
    await t?.close();
  });

  it('runs every sample, reallocates as species finish, fails the index-less species fast and lists failures', async () => {
    const handle = await t.client.workflow.start('batchWorkflow', {
      taskQueue: 'fetchquant',
      workflowId: batchWorkflowId('b1'),
      args: [{ ...FAST, totalThreads: 4 }],
    });
    const result = (await handle.result()) as BatchResult;
    expect(result.batchId).toBe('b1');
    const byId = Object.fromEntries(result.species.map((s) => [s.speciesId, s]));
    expect(byId.alpha_one).toMatchObject({ done: 3, failed: 0 });
    expect(byId.beta_two).toMatchObject({ done: 11, failed: 1 });
    expect(byId.gamma_three).toMatchObject({ status: 'failed', done: 0 });
    expect(result.failures).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ species: 'beta_two', run: runName(1, 5), failureType: 'RunNotFound' }),
        expect.objectContaining({ species: 'gamma_three', failureType: 'IndexError' }),
      ]),
    );
    // the index-less species downloaded nothing
    expect(log.events.filter((e) => e.kind === 'download-start' && e.run?.startsWith('SRR12')).length).toBe(0);
    // never more downloads at once than the budget
    expect(log.active.maxDownloads).toBeLessThanOrEqual(4);
    // every allocation respects the budget and the species' remaining runs
    for (const a of log.allocations) expect(Object.values(a.alloc).reduce((x, y) => x + y, 0)).toBeLessThanOrEqual(a.total);
    // once alpha had nothing left to download, beta got every slot it could use: all 4 while it had 4 runs
    // to go. (Asserting 4 once alpha had *finished* failed in CI: alpha's quant and report can take longer
    // than beta's last downloads, and an allotment never exceeds the runs a species has left.)
    const alphaOut = log.allocations.filter((a) => (a.alloc.alpha_one ?? 0) === 0 && (a.remaining.alpha_one ?? 0) === 0 && a.remaining.beta_two !== undefined);
    expect(alphaOut.length).toBeGreaterThan(0);
    for (const a of alphaOut) expect(a.alloc.beta_two).toBe(Math.min(4, a.remaining.beta_two!));
    expect(alphaOut.some((a) => a.alloc.beta_two === 4)).toBe(true);
    // quant started for every done sample, and reads were deleted after finalize
    for (let i = 0; i < 3; i++) {
      const run = runName(0, i);
      const kinds = log.events.filter((e) => e.run === run).map((e) => e.kind);
      expect(kinds).toEqual(['download-start', 'download-end', 'quant-start', 'finalize', 'delete']);
    }
    // every sample workflow is found through visibility on Species
    const found: string[] = [];
    for await (const wf of t.client.workflow.list({ query: `Species = 'beta_two' AND WorkflowType = 'sampleWorkflow'` })) found.push(wf.workflowId);
    expect(found.sort()).toEqual(Array.from({ length: 12 }, (_, i) => `fetchquant/b1/beta_two/${runName(1, i)}`).sort());
    // the sample's memo records bytes, checksums, stages and attempts for the Web UI
    const memo = (await t.client.workflow.getHandle(`fetchquant/b1/beta_two/${runName(1, 0)}`).describe()).memo as Record<string, unknown>;
    expect(memo.outcome).toMatchObject({ state: 'done', bytes: 100 });
    expect(memo.files).toEqual([{ name: `${runName(1, 0)}.fastq.gz`, bytes: 100, md5: 'x' }]);
    expect((memo.stages as { stage: string }[]).map((s) => s.stage)).toEqual(['queued', 'downloading', 'quantifying', 'done']);
    expect((memo.stages as { attempt?: number }[])[1]!.attempt).toBe(1);
    // allocations run as local activities (ALLOCATE_LOCALLY): markers, no activity task, no second workflow task
    const batchHistory = await handle.fetchHistory();
    const scheduled = (batchHistory.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : []));
    expect(scheduled).not.toContain('allocate');
    const localAllocations = (batchHistory.events ?? []).filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length;
    expect(localAllocations).toBeGreaterThan(1);
    // one tick timer per period (TICK_TIMER), never a timer started and cancelled per wake-up; at the end the
    // pending tick is cancelled (CLOSE_QUIETLY), and a species' wait for the batch's reportReceived is cancelled
    // when it comes: the batch may cancel one timer, a species two
    for (const [id, ends] of [['fetchquant/b1', 1], ['fetchquant/b1/beta_two', 2]] as const) {
      const h = id === 'fetchquant/b1' ? batchHistory : await t.client.workflow.getHandle(id).fetchHistory();
      expect(patchMarkers(h)).toContain(TICK_TIMER);
      expect((h.events ?? []).filter((e) => e.timerCanceledEventAttributes).length).toBeLessThanOrEqual(ends);
    }
    await maybeRecord(t.client, 'fetchquant/b1', 'batch-3-species');
    await maybeRecord(t.client, 'fetchquant/b1/beta_two', 'species-beta');
    await maybeRecord(t.client, 'fetchquant/b1/gamma_three', 'species-index-failed');
    await maybeRecord(t.client, `fetchquant/b1/beta_two/${runName(1, 0)}`, 'sample-done');
    await maybeRecord(t.client, `fetchquant/b1/beta_two/${runName(1, 5)}`, 'sample-run-not-found');
  });

  it('with --max-retries 0, attempts lost with a killed worker do not fail the batch or a species (its own calls get at least 10)', async () => {
    // Before: the batch's and species' calls used --max-retries + 1 attempts, so the first WorkerLost ended the batch.
    world.lostAttempts = new Map([
      ['discoverBatch', 2],
      ['listRuns', 2],
    ]);
    const handle = await t.client.workflow.start('batchWorkflow', {
      taskQueue: 'fetchquant',
      workflowId: batchWorkflowId('b-lost'),
      args: [{ ...FAST, totalThreads: 4, maxRetries: 0 }],
    });
    const result = (await handle.result()) as BatchResult;
    expect(world.lostAttempts).toEqual(new Map([['discoverBatch', 0], ['listRuns', 0]]));
    const byId = Object.fromEntries(result.species.map((s) => [s.speciesId, s]));
    expect(byId.alpha_one).toMatchObject({ done: 3, failed: 0 });
  }, 60_000);
});
