/**
 * Issue 13 item 2: an attempt lost with its worker (handed back as WorkerLost by the next worker on the
 * machine, or silent until the heartbeat timeout) is not a fault of the work and must not use --max-retries:
 * a sample survives any number of them, while typed failures of the work still count.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WORKER_LOST } from '../../src/failures.js';
import { startWorker, type RunningWorker } from '../../src/worker.js';
import { createFastActivities, newLog } from '../helpers/fast-activities.js';
import { maybeRecord } from '../helpers/histories.js';
import { runVirtualSample } from '../helpers/sample.js';
import { testTemporal, type TestTemporal } from '../helpers/temporal.js';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, pidGone, tempDir } from '../tools/util.js';

const lost = (what: string) => ApplicationFailure.create({ type: WORKER_LOST, message: `worker killed during ${what}; retrying`, nextRetryDelay: 10 });

describe('attempts lost with the worker cost no retries', () => {
  let t: TestTemporal;
  let worker: RunningWorker;
  /** per run: the failures each step throws, in order, before it succeeds ('lost', 'silent' = no heartbeat until the timeout, or a failure type) */
  const script = new Map<string, { download: string[]; quant: string[]; publish: string[] }>();
  const calls: string[] = [];

  beforeAll(async () => {
    t = await testTemporal('wf-lost');
    const base = createFastActivities({ species: [{ id: 'sp', runs: 1 }] }, 'lost-host', newLog());
    const next = async (run: string, stepName: 'download' | 'quant' | 'publish') => {
      calls.push(`${run} ${stepName}`);
      const s = script.get(run)?.[stepName];
      const what = s?.shift();
      if (what === undefined) return;
      if (what === 'lost') throw lost(stepName);
      if (what === 'silent') {
        // a worker that stopped answering: no heartbeat, no result, until the server times the attempt out
        await new Promise((r) => setTimeout(r, 8000));
        Context.current().heartbeat();
        throw new Error('too late');
      }
      throw ApplicationFailure.create({ type: what, message: `${stepName} failed (${what})` });
    };
    worker = await startWorker({
      connection: t.native,
      client: t.client,
      namespace: t.namespace,
      hostId: 'lost-host',
      janitor: false,
      activities: {
        ...base,
        async download(input) {
          await next(input.plan.run, 'download');
          return base.download(input);
        },
        async quant(input) {
          await next(input.run, 'quant');
          const r = await base.quant(input);
          // The quant step publishes too: 'publish' scripts a worker lost after publishing, before reporting.
          if (input.publish) await next(input.run, 'publish');
          return r;
        },
        async publish(input) {
          await next(input.run, 'publish');
          return base.publish(input);
        },
      },
    });
  });
  afterAll(async () => {
    await worker?.shutdown();
    await t?.close();
  });

  const sample = (run: string, maxRetries: number) => runVirtualSample(t.client, 'lost', { run }, { maxRetries });

  it('with --max-retries 0 a sample survives lost attempts at download, quant and publish, and a heartbeat timeout', async () => {
    script.set('SRR1300001', { download: ['lost', 'lost', 'silent', 'lost'], quant: ['lost', 'lost', 'lost'], publish: ['lost', 'lost'] });
    const out = await sample('SRR1300001', 0);
    expect([out.state, out.reason]).toEqual(['done', undefined]);
    // every lost attempt was retried, and the step then ran once more to completion; the quant step (which
    // publishes) ran 3 times lost before kallisto, then 2 times lost after publishing, then once through
    expect(calls.filter((c) => c === 'SRR1300001 download')).toHaveLength(5);
    expect(calls.filter((c) => c === 'SRR1300001 quant')).toHaveLength(6);
    expect(calls.filter((c) => c === 'SRR1300001 publish')).toHaveLength(3);
    const memo = (await t.client.workflow.getHandle('fetchquant/lost/sp/SRR1300001').describe()).memo as { lostAttempts?: number };
    expect(memo.lostAttempts).toBe(9);
    await maybeRecord(t.client, 'fetchquant/lost/sp/SRR1300001', 'sample-lost-attempts');
  }, 60_000);

  it('a download stopped at the disk floor waits for disk and resumes, using no retry', async () => {
    script.set('SRR1300005', { download: ['DiskFloor', 'DiskFloor'], quant: [], publish: [] });
    const out = await sample('SRR1300005', 0);
    expect(out.state).toBe('done');
    expect(calls.filter((c) => c === 'SRR1300005 download')).toHaveLength(3);
    const memo = (await t.client.workflow.getHandle('fetchquant/lost/sp/SRR1300005').describe()).memo as { stages: { stage: string; error?: string }[] };
    expect(memo.stages.filter((st) => st.stage === 'waiting-for-disk').map((st) => st.error)).toEqual(['download failed (DiskFloor)', 'download failed (DiskFloor)']);
  }, 60_000);

  it('faults of the work still use the budget, lost attempts between them do not', async () => {
    // --max-retries 1: one ToolFailed is retried, the second ends the sample, however many lost attempts came between
    script.set('SRR1300002', { download: [], quant: ['lost', 'ToolFailed', 'lost', 'lost', 'ToolFailed'], publish: [] });
    const failed = await sample('SRR1300002', 1);
    expect([failed.state, failed.failureType, failed.reason]).toEqual(['failed', 'ToolFailed', 'quant failed (ToolFailed)']);
    expect(calls.filter((c) => c === 'SRR1300002 quant')).toHaveLength(5);
    await maybeRecord(t.client, 'fetchquant/lost/sp/SRR1300002', 'sample-lost-then-failed');
    script.set('SRR1300003', { download: [], quant: ['lost', 'ToolFailed', 'lost', 'lost', 'lost'], publish: [] });
    expect((await sample('SRR1300003', 1)).state).toBe('done');
    // a failure retrying cannot fix is final at once
    script.set('SRR1300004', { download: [], quant: ['lost', 'IndexError'], publish: [] });
    const final = await sample('SRR1300004', 5);
    expect([final.state, final.failureType]).toEqual(['failed', 'IndexError']);
    expect(calls.filter((c) => c === 'SRR1300004 quant')).toHaveLength(2);
  }, 60_000);
});

describe('a running worker kills the tools a dead worker of its machine left running', () => {
  it('within its reaping interval, not only when the next worker starts', async () => {
    const t = await testTemporal('wf-reap');
    const state = tempDir('fq-reap-');
    const saved = process.env.FETCHQUANT_STATE_DIR;
    process.env.FETCHQUANT_STATE_DIR = state;
    let live: RunningWorker | undefined;
    let orphanPgid = 0;
    try {
      // This worker is up first: its start-up reap finds nothing.
      live = await startWorker({ connection: t.native, client: t.client, namespace: t.namespace, hostId: 'reap-host', janitor: false, reapEveryMs: 200, activities: createFastActivities({ species: [{ id: 'sp', runs: 1 }] }, 'reap-host', newLog()) });
      // Then another worker of the machine dies with -9 while its tool runs (the cluster test's lost host).
      const processModule = fileURLToPath(new URL('../../src/tools/process.js', import.meta.url));
      const other = spawn(process.execPath, ['--input-type=module', '-e', `const { runTool } = await import(${JSON.stringify(processModule)}); await runTool('sleep', ['300'], { timeoutSec: 600 });`], { env: process.env, stdio: 'ignore' });
      const groups = join(state, 'tool-groups');
      expect(await eventually(() => existsSync(groups) && readdirSync(groups).length === 1)).toBe(true);
      orphanPgid = (JSON.parse(readFileSync(join(groups, readdirSync(groups)[0]!), 'utf8')) as { pgid: number }).pgid;
      other.kill('SIGKILL');
      expect(await eventually(() => pidGone(other.pid!))).toBe(true);
      expect(await eventually(() => pidGone(orphanPgid), 50)).toBe(true);
      expect(readdirSync(groups)).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.FETCHQUANT_STATE_DIR;
      else process.env.FETCHQUANT_STATE_DIR = saved;
      if (orphanPgid) {
        try {
          process.kill(-orphanPgid, 'SIGKILL');
        } catch {
          /* reaped */
        }
      }
      await live?.shutdown();
      await t.close();
    }
  });
});

