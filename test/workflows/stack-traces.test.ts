/**
 * Workflow stack traces (src/worker/no-stack-traces.cts): off by default, so the SDK's per-promise stack
 * capture costs nothing, and the Web UI's Stack Trace tab gets the SDK's own "not enabled" answer; on with
 * --workflow-stack-traces (startWorker's workflowStackTraces), the query answers with the workflow's stack.
 * Real dev server, real worker, a real (janitor) workflow waiting on its timer.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker as NodeWorker } from 'node:worker_threads';
import { createActivities } from '../../src/activities/index.js';
import { KnownDirs } from '../../src/activities/known-dirs.js';
import { janitorWorkflowId } from '../../src/ids.js';
import { startWorker } from '../../src/worker.js';
import { killHard, startCliWorker } from '../helpers/e2e.js';
import { testTemporal, type TestTemporal } from '../helpers/temporal.js';

describe('workflow stack traces', () => {
  let t: TestTemporal;
  const dir = mkdtempSync(join(tmpdir(), 'fq-stack-'));

  beforeAll(async () => {
    t = await testTemporal('wf-stack');
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function stackTraceAnswer(workflowStackTraces: boolean | undefined, workflowId: string): Promise<string> {
    const worker = await startWorker({
      connection: t.native,
      client: t.client,
      namespace: t.namespace,
      hostId: 'st',
      activities: createActivities({ hostId: 'st', cwd: dir, client: t.client, knownDirs: new KnownDirs(join(dir, 'state', 'reads-dirs.json')) }),
      janitor: false,
      ...(workflowStackTraces === undefined ? {} : { workflowStackTraces }),
    });
    try {
      const handle = await t.client.workflow.start('janitorWorkflow', {
        taskQueue: 'fetchquant',
        workflowId,
        args: [{ hostId: 'st', readsDirs: [], healthCheckIntervalSec: 3600, autoCleanupThresholdGb: 0 }],
      });
      try {
        return await handle.query<string>('__stack_trace').catch((err: Error) => `refused: ${err.message}`);
      } finally {
        await handle.terminate('test over');
      }
    } finally {
      await worker.shutdown();
    }
  }

  it('are off by default: the query gets the SDK answer "not enabled"', async () => {
    expect(await stackTraceAnswer(undefined, 'st-default')).toMatch(/^refused: .*Workflow stack traces are not enabled on this worker/);
  });

  it('are collected with workflowStackTraces (--workflow-stack-traces): the query names the workflow function', async () => {
    expect(await stackTraceAnswer(true, 'st-on')).toMatch(/janitorWorkflow/);
  });

  it('`fetchquant worker` answers "not enabled"; `fetchquant worker --workflow-stack-traces` answers with the stack', async () => {
    const env = { TEMPORAL_ADDRESS: t.address, TEMPORAL_NAMESPACE: t.namespace };
    const ask = async (hostId: string, args: string[]) => {
      // each worker starts its host's janitor workflow, and is the only worker while it is asked
      const w = await startCliWorker(hostId, env, 60_000, args);
      try {
        return await t.client.workflow.getHandle(janitorWorkflowId(hostId)).query<string>('__stack_trace').catch((err: Error) => `refused: ${err.message}`);
      } finally {
        await killHard(w);
        await t.client.workflow.getHandle(janitorWorkflowId(hostId)).terminate('test over').catch(() => undefined);
      }
    };
    expect(await ask('st-cli-off', [])).toMatch(/^refused: .*Workflow stack traces are not enabled on this worker/);
    expect(await ask('st-cli-on', ['--workflow-stack-traces'])).toMatch(/janitorWorkflow/);
  }, 120_000);

  it('leave every other thread as it was (its file, its flags)', async () => {
    const w = new NodeWorker("require('node:worker_threads').parentPort.postMessage(process.argv.slice(2))", { eval: true });
    const argv = await new Promise((resolve) => w.once('message', resolve));
    await w.terminate();
    expect(argv).toEqual([]);
  });
});
