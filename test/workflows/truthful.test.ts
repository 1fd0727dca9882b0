/**
 * What the Web UI and `history` show is the truth: a failed sample's workflow ends Failed (after telling
 * its species), so the ExecutionStatus filter finds exactly the failed samples; a healthy batch has no
 * failed event anywhere; every attempt of a retried step is kept with its error and host. Real workflows
 * on the suite's dev server, fast activities.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Client } from '@temporalio/client';
import { startWorker, type RunningWorker } from '../../src/worker.js';
import { batchWorkflowId, sampleWorkflowId } from '../../src/ids.js';
import type { BatchResult } from '../../src/workflows/batch.js';
import { auditRun, renderAudit } from '../../src/cli/history.js';
import { eventually, testTemporal, type TestTemporal } from '../helpers/temporal.js';
import { maybeRecord } from '../helpers/histories.js';
import { createFastActivities, newLog, runName } from '../helpers/fast-activities.js';

// parkWaitSec 0: the failing samples fail at once (they would park for hours by default: docs/park.md)
const FAST = { parkWaitSec: 0, checkIntervalSec: 1, monitorIntervalSec: 0.2, retryInitialSec: 0.05, hostLostTimeoutSec: 5, diskWaitSec: 0.1, stallTimeoutSec: 5 };

/** Event kinds (the `...EventAttributes` field set on each event) of every workflow of a batch. */
async function eventKinds(client: Client, batchId: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for await (const wf of client.workflow.list({ query: `BatchId = '${batchId}'` })) {
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    const kinds: string[] = [];
    for (const e of history.events ?? []) {
      for (const [k, v] of Object.entries(e)) {
        if (!v || !k.endsWith('EventAttributes')) continue;
        const x = v as { failure?: { message?: string }; signalName?: string };
        const detail = x.failure?.message ?? x.signalName;
        kinds.push(`${k.replace(/EventAttributes$/, '')}${detail ? ` (${detail})` : ''}`);
      }
    }
    out.set(`${wf.workflowId} ${wf.runId}`, kinds);
  }
  return out;
}

/** Names of the signals a workflow sent. */
async function sentSignals(client: Client, workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).flatMap((e) => (e.signalExternalWorkflowExecutionInitiatedEventAttributes ? [e.signalExternalWorkflowExecutionInitiatedEventAttributes.signalName ?? '?'] : []));
}

describe('a truthful Web UI and history (real workflows, fast activities)', () => {
  let t: TestTemporal;
  let worker: RunningWorker;
  const unknown = runName(0, 1);
  const flaky = runName(0, 2);
  const broken = runName(0, 3);

  beforeAll(async () => {
    t = await testTemporal('wf-truthful');
    const world = {
      species: [
        { id: 'alpha_one', runs: 4 },
        { id: 'beta_two', runs: 3 },
      ],
      unknownRuns: new Set([unknown]),
      // fails twice then works; fails on every attempt
      flakyDownloads: new Map([
        [flaky, 2],
        [broken, Infinity],
      ]),
      downloadMs: 30,
    };
    worker = await startWorker({ connection: t.native, client: t.client, namespace: t.namespace, hostId: 'host-a', activities: createFastActivities(world, 'host-a', newLog()), janitor: false });
  });
  afterAll(async () => {
    await worker?.shutdown();
    await t?.close();
  });

  it('ends failed samples Failed after their species counted them; the status filter finds exactly them', async () => {
    const handle = await t.client.workflow.start('batchWorkflow', { taskQueue: 'fetchquant', workflowId: batchWorkflowId('mixed'), args: [{ ...FAST, totalThreads: 4, maxRetries: 3 }] });
    const result = (await handle.result()) as BatchResult;
    expect(result.totals).toEqual({ total: 7, done: 5, skipped: 0, failed: 2 });
    expect(result.failures.map((f) => [f.run, f.failureType]).sort()).toEqual([
      [unknown, 'RunNotFound'],
      [broken, 'NetworkError'],
    ].sort());

    const failed: string[] = [];
    for await (const wf of t.client.workflow.list({ query: `BatchId = 'mixed' AND ExecutionStatus = 'Failed'` })) failed.push(wf.workflowId);
    expect(failed.sort()).toEqual([sampleWorkflowId('mixed', 'alpha_one', unknown), sampleWorkflowId('mixed', 'alpha_one', broken)].sort());
    // the species that lost two samples completed, and counted them
    // (it reports to the batch, then completes: the batch may finish first)
    await eventually(async () => (await t.client.workflow.getHandle('fetchquant/mixed/alpha_one').describe()).status.name === 'COMPLETED', 10_000);
    expect(result.species.find((s) => s.speciesId === 'alpha_one')).toMatchObject({ done: 2, failed: 2, status: 'done' });
    // a failed sample tells its species it finished, and does not claim verified reads
    for (const run of [unknown, broken]) expect(await sentSignals(t.client, sampleWorkflowId('mixed', 'alpha_one', run))).toEqual(['sampleFinished']);
    // the failure names the step and reason, and carries the outcome for history and report
    const [audit] = await auditRun(t.client, broken);
    expect(audit).toMatchObject({ status: 'FAILED', outcome: { state: 'failed', failureType: 'NetworkError' } });

    await maybeRecord(t.client, sampleWorkflowId('mixed', 'alpha_one', broken), 'v2-sample-failed-attempts');
    await maybeRecord(t.client, sampleWorkflowId('mixed', 'alpha_one', flaky), 'v2-sample-retried');
  });

  it('keeps every attempt of a retried step with its error and host, and history prints them', async () => {
    // Every attempt, whether Temporal retried it (attempts inside one activity, reported by the worker's
    // attemptFailed signals) or the sample did (one activity per attempt, each failure in the history).
    const attempts = (a: Awaited<ReturnType<typeof auditRun>>[number]) =>
      a.activities.filter((x) => x.activity === 'download').flatMap((x) => x.attempts.map((y) => [y.outcome, y.host, y.error]));
    const [broke] = await auditRun(t.client, broken);
    expect(attempts(broke!)).toEqual([1, 2, 3, 4].map((n) => ['failed', 'host-a', `${broken}: connection reset by peer (failure ${n})`]));
    const [retried] = await auditRun(t.client, flaky);
    expect(attempts(retried!)).toEqual([
      ['failed', 'host-a', `${flaky}: connection reset by peer (failure 1)`],
      ['failed', 'host-a', `${flaky}: connection reset by peer (failure 2)`],
      ['completed', 'host-a', undefined],
    ]);
    const text = renderAudit([retried!], null, t.namespace);
    expect(text.split('\n').filter((l) => /\bdownload\s+attempt/.test(l)).map((l) => /host host-a\s+(\w+)/.exec(l)?.[1])).toEqual(['failed', 'failed', 'completed']);
    expect(text).toMatch(new RegExp(`error: ${flaky}: connection reset by peer \\(failure 1\\)`));
  });

  it('leaves no failed event in any workflow of a healthy batch', async () => {
    // its own namespace and worker: a world without faults, three species finishing at different times
    const h = await testTemporal('wf-healthy');
    const world = { species: [{ id: 'one_a', runs: 2 }, { id: 'two_b', runs: 5 }, { id: 'three_c', runs: 3 }], downloadMs: 30 };
    const w = await startWorker({ connection: h.native, client: h.client, namespace: h.namespace, hostId: 'host-h', activities: createFastActivities(world, 'host-h', newLog()), janitor: false });
    let kinds: Map<string, string[]>;
    try {
      const handle = await h.client.workflow.start('batchWorkflow', { taskQueue: 'fetchquant', workflowId: batchWorkflowId('healthy'), args: [{ ...FAST, totalThreads: 3 }] });
      const result = (await handle.result()) as BatchResult;
      expect(result.totals).toMatchObject({ done: 10, failed: 0 });
      kinds = await eventKinds(h.client, 'healthy');
      await maybeRecord(h.client, 'fetchquant/healthy', 'v12-batch-children-closed');
      await maybeRecord(h.client, 'fetchquant/healthy/two_b', 'v12-species-children-closed');
    } finally {
      await w.shutdown();
      await h.close();
    }
    expect(kinds.size).toBe(1 + 3 + 10);
    // a failed event, with the events before it (what led to it) and the two after it (an UnhandledCommand
    // is followed by the event that arrived while the workflow was completing)
    const bad = [...kinds].flatMap(([wf, ks]) => ks.flatMap((k, i) => (/Failed|TimedOut/i.test(k) ? [`${wf}: ${ks.slice(Math.max(0, i - 8), i + 1).join(' > ')} ~> ${ks.slice(i + 1, i + 3).join(' > ')}`] : [])));
    expect(bad).toEqual([]);
    // A child's close and a timer's firing land in the workflow's history; one landing while the workflow
    // completes fails its task (UnhandledCommand). Rare by timing, certain by order: a workflow completes
    // with no child of its own still open and no timer still pending (CLOSE_QUIETLY).
    const pending = [...kinds].flatMap(([wf, ks]) => {
      const end = ks.indexOf('workflowExecutionCompleted');
      const before = (k: string) => ks.slice(0, end).filter((x) => x === k).length;
      const children = before('childWorkflowExecutionStarted') - before('childWorkflowExecutionCompleted');
      const timers = before('timerStarted') - before('timerFired') - before('timerCanceled');
      return end >= 0 && (children || timers) ? [`${wf}: completed with ${children} children open, ${timers} timers pending`] : [];
    });
    expect(pending).toEqual([]);
  });
});
