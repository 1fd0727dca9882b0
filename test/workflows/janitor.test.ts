/**
 * The disk janitor (docs/architecture.md §5.5) with the real sweep activity on real files: below the threshold it removes
 * orphaned partial downloads and never the reads of a sample still running on the host (known from
 * Temporal visibility), and above the threshold it removes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActivities } from '../../src/activities/index.js';
import { KnownDirs } from '../../src/activities/known-dirs.js';
import { janitorWorkflowId } from '../../src/ids.js';
import { DEFAULTS } from '../../src/config/schema.js';
import type { JanitorReport, SampleInput } from '../../src/types.js';
import { startWorker, type RunningWorker } from '../../src/worker.js';
import { eventually, testTemporal, type TestTemporal } from '../helpers/temporal.js';

describe('janitorWorkflow', () => {
  let t: TestTemporal;
  let worker: RunningWorker;
  const dir = mkdtempSync(join(tmpdir(), 'fq-janitor-'));
  const readsDir = join(dir, 'fastq');
  const orphan = join(readsDir, 'getfastq', 'SRR0000001');
  const busy = join(readsDir, 'getfastq', 'SRR0000002');

  beforeAll(async () => {
    t = await testTemporal('wf-janitor');
    for (const d of [orphan, busy]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `${d.slice(-10)}_1.fastq.gz.part`), Buffer.alloc(4096, 7));
    }
    const knownDirs = new KnownDirs(join(dir, 'state', 'reads-dirs.json'));
    knownDirs.add(readsDir); // as reserveDisk would have recorded it
    worker = await startWorker({
      connection: t.native,
      client: t.client,
      namespace: t.namespace,
      hostId: 'jan',
      activities: createActivities({ hostId: 'jan', cwd: dir, client: t.client, knownDirs }),
      janitor: false,
    });
  });
  afterAll(async () => {
    // The stuck sample ends with the test: its retries would otherwise call a server whose connection
    // closes below, and that error lands in whichever test file this jest worker runs next.
    await t?.client.workflow.getHandle('fetchquant/jb/sp/SRR0000002').terminate('test over').catch(() => undefined);
    await worker?.shutdown();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('removes orphans below the threshold but never the reads of a sample in flight on this host', async () => {
    // A real sample workflow, stuck retrying an archive that does not answer: in flight on host `jan`.
    const input: SampleInput = {
      batchId: 'jb',
      speciesId: 'sp',
      speciesName: 'Sp sp',
      speciesWorkflowId: 'fetchquant/jb/sp',
      run: { run: 'SRR0000002' },
      readsDir,
      quantDir: join(dir, 'quant'),
      indexPath: join(dir, 'x.idx'),
      fastaPaths: [],
      fragmentLength: 200,
      fragmentSd: 20,
      options: { ...DEFAULTS, sources: ['ena'], enaPortalUrl: 'http://127.0.0.1:1', maxRetries: 50, retryInitialSec: 5 },
    };
    const sample = await t.client.workflow.start('sampleWorkflow', { taskQueue: 'fetchquant', workflowId: 'fetchquant/jb/sp/SRR0000002', args: [input] });
    await eventually(async () => {
      for await (const wf of t.client.workflow.list({ query: `RunAccession = 'SRR0000002' AND WorkerHost = 'jan' AND ExecutionStatus = 'Running'` })) return wf;
      return null;
    });

    // Above the threshold: looks, records free space, removes nothing.
    const calm = (await t.client.workflow.execute('janitorWorkflow', {
      taskQueue: 'fetchquant',
      workflowId: `${janitorWorkflowId('jan')}-calm`,
      args: [{ hostId: 'jan', readsDirs: [], healthCheckIntervalSec: 1, autoCleanupThresholdGb: 0, maxSweeps: 1 }],
    })) as JanitorReport;
    expect(calm.removed).toEqual([]);
    expect(calm.freeBytes).toBeGreaterThan(0);
    expect(existsSync(orphan)).toBe(true);

    // Below the threshold (every disk is below 1e9 GB): the orphan goes, the in-flight run stays.
    const report = (await t.client.workflow.execute('janitorWorkflow', {
      taskQueue: 'fetchquant',
      workflowId: janitorWorkflowId('jan'),
      args: [{ hostId: 'jan', readsDirs: [], healthCheckIntervalSec: 1, autoCleanupThresholdGb: 1e9, maxSweeps: 1 }],
    })) as JanitorReport;
    expect(report.removed).toEqual([orphan]);
    expect(report.kept).toEqual([busy]);
    expect(report.freedBytes).toBeGreaterThanOrEqual(4096);
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(busy)).toBe(true);
    await sample.terminate('test over');
  });
});
