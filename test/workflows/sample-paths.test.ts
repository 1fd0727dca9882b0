/**
 * The sample's less travelled paths, each end to end on the suite's dev server with fast activities: a copy
 * that stays bad at ENA is fetched from SRA (fallback on a bad copy), converted, found bad once and fetched
 * again; admission waits for disk; the species' amalgkit settings reach the steps; no source with a good
 * copy fails the sample naming both. Their histories are recorded fixtures (v3-sample-*) for the replay test.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import type { Activities } from '../../src/activities/contract.js';
import { FailureType } from '../../src/failures.js';
import type { AmalgkitRunSettings, Provenance, SampleInput, SampleOptions, SourcePlan } from '../../src/types.js';
import { startWorker, type RunningWorker } from '../../src/worker.js';
import { CHAIN_QUANT_PATHS, ONE_FIRST_UPSERT_PATHS, PREPARE_LOCALLY_PATHS, VERIFIED_IN_STEP } from '../../src/workflows/sample.js';
import { composeSteps, createFastParts, newLog } from '../helpers/fast-activities.js';
import { maybeRecord, patchMarkers } from '../helpers/histories.js';
import { runVirtualSample } from '../helpers/sample.js';
import { testTemporal, type TestTemporal } from '../helpers/temporal.js';

describe("a sample's less travelled paths (real workflows, fast activities)", () => {
  let t: TestTemporal;
  let worker: RunningWorker;
  /** every call a step made, with the inputs the tests look at */
  const calls: { step: string; run: string; data?: unknown }[] = [];
  /** runs whose copy is bad at a source (ChecksumMismatch on every download from it) */
  const badAt = new Map<string, Set<string>>();
  /** runs whose local reads fail verification this many more times */
  const badReads = new Map<string, number>();
  /** runs resolved at SRA first (as when the source pacer spills them from a saturated ENA) */
  const spilled = new Set<string>();
  /** runs whose disk reservation is refused this many more times */
  const noRoom = new Map<string, number>();
  /** runs whose quant fails this many more times, with this failure */
  const quantFails = new Map<string, { left: number; type: string; nonRetryable?: boolean }>();
  /** runs whose conversion checks its reads (as the real convertSra does when asked) */
  const convertVerifies = new Set<string>();
  /** the provenance each run was published with */
  const provenances = new Map<string, Provenance>();

  beforeAll(async () => {
    t = await testTemporal('wf-paths');
    const base = createFastParts({ species: [{ id: 'sp', runs: 1 }] }, 'paths-host', newLog());
    const parts: Omit<Activities, 'prepareSample' | 'publish'> = {
      ...base,
      async resolveSource({ run, options }) {
        calls.push({ step: 'resolveSource', run: run.run, data: options.sources });
        // a run the source pacer spills: SRA first although ENA is listed first
        const source = options.sources[0] === 'ena' && (!spilled.has(run.run) || !options.sources.includes('sra')) ? 'ena' : 'sra';
        const plan: SourcePlan =
          source === 'sra'
            ? { source, run: run.run, layout: 'single', files: [{ url: `http://x/${run.run}.sra`, name: `${run.run}.sra`, bytes: 100, md5: 'x', mate: 0 }], expectedReads: 10, reserveBytes: 300 }
            : { source, run: run.run, layout: 'single', files: [{ url: `http://x/${run.run}.fastq.gz`, name: `${run.run}.fastq.gz`, bytes: 100, md5: 'x', mate: 0 }], expectedReads: 10, reserveBytes: 100 };
        return plan;
      },
      async reserveDisk(input) {
        const left = noRoom.get(input.run) ?? 0;
        calls.push({ step: 'reserveDisk', run: input.run, data: left === 0 });
        if (left > 0) {
          noRoom.set(input.run, left - 1);
          return { granted: false, freeBytes: 0, reservedBytes: 0, neededBytes: input.bytes };
        }
        return base.reserveDisk(input);
      },
      async download(input) {
        calls.push({ step: 'download', run: input.plan.run, data: { source: input.plan.source, maxBp: input.maxBp } });
        if (badAt.get(input.plan.run)?.has(input.plan.source)) {
          throw ApplicationFailure.create({ type: FailureType.ChecksumMismatch, message: `${input.plan.run}: md5 ${'0'.repeat(32)}, expected ${'1'.repeat(32)}` });
        }
        return base.download(input);
      },
      async convertSra({ run, sraPath, verify, fastaReads }) {
        calls.push({ step: 'convertSra', run, data: { sraPath, fasta: fastaReads === true } });
        const files = [`/virtual/${run}.fastq`];
        return { files, layout: 'single', ...(verify && convertVerifies.has(run) ? { verified: { layout: 'single' as const, files, reads: 10 } } : {}) };
      },
      async verifyReads(input) {
        const left = badReads.get(input.run) ?? 0;
        calls.push({ step: 'verifyReads', run: input.run, data: input.files });
        if (left > 0) {
          badReads.set(input.run, left - 1);
          throw ApplicationFailure.create({ type: FailureType.TruncatedReads, message: `${input.run}: gzip test failed` });
        }
        return base.verifyReads(input);
      },
      async quant(input) {
        calls.push({ step: 'quant', run: input.run, data: { l: input.fragmentLength, s: input.fragmentSd } });
        const fails = quantFails.get(input.run);
        if (fails && fails.left > 0) {
          fails.left--;
          throw ApplicationFailure.create({ type: fails.type, message: `${input.run}: kallisto quant exited 1`, nonRetryable: fails.nonRetryable ?? false });
        }
        return base.quant(input);
      },
      async finalize(input) {
        provenances.set(input.run, input.provenance);
        return base.finalize(input);
      },
      async deleteReads(input) {
        calls.push({ step: 'deleteReads', run: input.run, data: input.keep ?? false });
        return base.deleteReads(input);
      },
      // an index path naming 'unbuilt' is not on this host until a step that may build it asks
      async ensureIndex(input) {
        calls.push({ step: 'ensureIndex', run: input.indexPath, data: input.onlyIfBuilt ?? false });
        if (input.indexPath.includes('unbuilt') && input.onlyIfBuilt) return { indexPath: input.indexPath, built: false, missing: true };
        return base.ensureIndex(input);
      },
    };
    worker = await startWorker({ connection: t.native, client: t.client, namespace: t.namespace, hostId: 'paths-host', janitor: false, activities: composeSteps({ ...parts, publishedQuant: async () => null }) });
  });
  afterAll(async () => {
    await worker?.shutdown();
    await t?.close();
  });

  const sample = (run: string, amalgkit?: AmalgkitRunSettings, sources: SampleOptions['sources'] = ['ena', 'sra'], extra: Partial<SampleInput> = {}) =>
    runVirtualSample(t.client, 'paths', { run, nominalLength: 250 }, { sources, maxRetries: 1 }, amalgkit, extra);
  const of = (run: string) => calls.filter((c) => c.run === run).map((c) => c.step);

  it('fetches a copy that stays bad at ENA from SRA, fetches bad local reads again, waits for disk, and follows the amalgkit settings', async () => {
    const run = 'SRR1400001';
    badAt.set(run, new Set(['ena']));
    badReads.set(run, 1);
    noRoom.set(run, 1);
    const out = await sample(run, { maxBp: 5_000_000, keepReads: true, fragmentFromConfig: false, sources: ['ena', 'sra'], sraServices: ['ncbi'] });
    expect([out.state, out.source, out.reason]).toEqual(['done', 'sra', undefined]);
    expect(of(run)).toEqual([
      'resolveSource', // prepareSample
      'reserveDisk', // refused: waits for disk
      'reserveDisk',
      'download', // ENA, bad; one retry (--max-retries 1)
      'download',
      'deleteReads', // the bad copy
      'resolveSource', // SRA only
      'reserveDisk',
      'download',
      'convertSra',
      'verifyReads', // bad reads: deleted, fetched again
      'deleteReads',
      'reserveDisk',
      'download',
      'convertSra',
      'verifyReads',
      'quant',
      'deleteReads', // publish, reads kept (keep_fastq)
    ]);
    const data = (step: string) => calls.filter((c) => c.run === run && c.step === step).map((c) => c.data);
    expect(data('resolveSource')).toEqual([['ena', 'sra'], ['sra']]);
    expect(data('download')).toEqual([
      { source: 'ena', maxBp: 5_000_000 },
      { source: 'ena', maxBp: 5_000_000 },
      { source: 'sra', maxBp: 5_000_000 },
      { source: 'sra', maxBp: 5_000_000 },
    ]);
    expect(data('deleteReads')).toEqual([false, false, true]);
    // reads kept after quant stay FASTQ (with their qualities)
    expect(data('convertSra').map((d) => (d as { fasta: boolean }).fasta)).toEqual([false, false]);
    // amalgkit quant's -l/-s from the run's nominal length, not the config's 200/20
    expect(data('quant')).toEqual([{ l: 250, s: 25 }]);
    const memo = (await t.client.workflow.getHandle(`fetchquant/paths/sp/${run}`).describe()).memo as { stages: { stage: string }[] };
    expect(memo.stages.map((s) => s.stage)).toEqual(['queued', 'waiting-for-disk', 'downloading', 'downloading', 'converting', 'downloading', 'converting', 'quantifying', 'done']);
    await maybeRecord(t.client, `fetchquant/paths/sp/${run}`, 'v3-sample-bad-copy-fallback');
  }, 60_000);

  it('fails a sample no source has a good copy of, naming both; its workflow ends Failed', async () => {
    const run = 'SRR1400002';
    badAt.set(run, new Set(['ena', 'sra']));
    const out = await sample(run);
    expect([out.state, out.failureType]).toEqual(['failed', FailureType.ChecksumMismatch]);
    expect(out.reason).toMatch(/no source has a good copy: ena: .*md5.*; sra: .*md5/);
    expect(of(run)).toEqual(['resolveSource', 'reserveDisk', 'download', 'download', 'deleteReads', 'resolveSource', 'reserveDisk', 'download', 'download', 'deleteReads']);
    const { status } = await t.client.workflow.getHandle(`fetchquant/paths/sp/${run}`).describe();
    expect(status.name).toBe('FAILED');
    await maybeRecord(t.client, `fetchquant/paths/sp/${run}`, 'v3-sample-no-good-copy');
  }, 60_000);

  it('a clean run is checked by the download that wrote it: no verifyReads round trip (VERIFIED_IN_STEP)', async () => {
    const run = 'SRR1400005';
    // started as a species of an older release would (no `paths`): the patches are asked, their markers written
    const out = await sample(run, undefined, ['ena'], { paths: undefined });
    expect([out.state, out.source]).toEqual(['done', 'ena']);
    expect(of(run)).toEqual(['resolveSource', 'reserveDisk', 'download', 'quant', 'deleteReads']);
    const history = await t.client.workflow.getHandle(`fetchquant/paths/sp/${run}`).fetchHistory();
    expect(patchMarkers(history)).toContain(VERIFIED_IN_STEP);
    const activities = (history.events ?? []).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    expect(activities).not.toContain('verifyReads');
    await maybeRecord(t.client, `fetchquant/paths/sp/${run}`, 'v5-sample-verified-in-step');
  }, 60_000);

  it('a clean sample publishes in its quant step and asks no patch: 39 history events, not 52', async () => {
    const run = 'SRR1400006';
    const out = await sample(run, undefined, ['ena']);
    expect([out.state, out.source]).toEqual(['done', 'ena']);
    // quant, then (same step) finalize and deleteReads
    expect(of(run)).toEqual(['resolveSource', 'reserveDisk', 'download', 'quant', 'deleteReads']);
    const history = await t.client.workflow.getHandle(`fetchquant/paths/sp/${run}`).fetchHistory();
    const events = history.events ?? [];
    const activities = events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    expect(activities).toEqual(['prepareSample', 'download', 'quant']);
    // The last stage the sample's search attribute showed before done is quantifying (no 'deleting').
    const { stages } = (await t.client.workflow.getHandle(`fetchquant/paths/sp/${run}`).describe()).memo as { stages: { stage: string }[] };
    expect(stages.map((s) => s.stage)).toEqual(['queued', 'downloading', 'quantifying', 'done']);
    // Its input settles the patches (SAMPLE_PATHS): no patch markers, no TemporalChangeVersion upserts.
    expect(patchMarkers(history)).toEqual([]);
    expect(events.filter((e) => e.upsertWorkflowSearchAttributesEventAttributes)).toHaveLength(4);
    // 52 events before (test/replay/histories/v5-sample-verified-in-step.json: 3 patches, quant, then publish);
    // 39 or fewer now (how many workflow tasks the species' absent-target answers take varies)
    expect(events.length).toBeLessThanOrEqual(39);
    // No species to tell here (fetchquant/paths/sp never ran): the steps could not, so the sample sent both
    // signals itself, as before the steps told (the next test has a species)
    const signals = events.map((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName).filter(Boolean);
    expect(signals).toEqual(['readsVerified', 'sampleFinished']);
    await maybeRecord(t.client, `fetchquant/paths/sp/${run}`, 'v6-sample-quant-publishes');
  }, 60_000);

  /**
   * Runs fn beside a stand-in for the species `fetchquant/<batch>/sp`: a workflow no worker runs, so it stays open
   * and its history keeps every signal the sample's steps send it. Terminated afterwards.
   */
  async function besideSpecies(batch: string, fn: (species: WorkflowHandle) => Promise<void>): Promise<void> {
    const species = await t.client.workflow.start('speciesStandIn', { taskQueue: 'fetchquant-test-nobody', workflowId: `fetchquant/${batch}/sp`, args: [] });
    try {
      await fn(species);
    } finally {
      await species.terminate('test over');
    }
  }

  /** Every signal the stand-in species received: its name, then its arguments. */
  async function signalsReceived(species: WorkflowHandle): Promise<unknown[][]> {
    return ((await species.fetchHistory()).events ?? [])
      .map((e) => e.workflowExecutionSignaledEventAttributes)
      .filter((a) => a !== null && a !== undefined)
      .map((a) => [a.signalName, ...(a.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p))]);
  }

  it('a clean sample whose species is there is told about by its steps: no signal of its own, 4 workflow tasks, 29 events', async () => {
    const run = 'SRR1400007';
    await besideSpecies('told', async (species) => {
      const out = await runVirtualSample(t.client, 'told', { run, nominalLength: 250 }, { sources: ['ena'], maxRetries: 1 });
      expect([out.state, out.source]).toEqual(['done', 'ena']);
      const events = (await t.client.workflow.getHandle(`fetchquant/told/sp/${run}`).fetchHistory()).events ?? [];
      // The download that verified its reads sent readsVerified, the quant step that published sent sampleFinished.
      expect(events.filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes)).toEqual([]);
      expect(events.filter((e) => e.workflowTaskCompletedEventAttributes)).toHaveLength(4);
      // 39 before (test/replay/histories/v6-sample-quant-publishes.json): two signals (4 events) and their two
      // workflow tasks (6 events) fewer
      expect(events.length).toBeLessThanOrEqual(29);
      const received = await signalsReceived(species);
      expect(received).toEqual([
        ['readsVerified', run, 10],
        ['sampleFinished', out],
      ]);
      await maybeRecord(t.client, `fetchquant/told/sp/${run}`, 'v8-sample-told-by-steps');
    });
  }, 60_000);

  it('a sample of paths 2 prepares in the workflow task that claimed its host: 3 workflow tasks, 24 events, download and quant its only activity tasks', async () => {
    const run = 'SRR1400008';
    await besideSpecies('local', async () => {
      const out = await runVirtualSample(t.client, 'local', { run, nominalLength: 250 }, { sources: ['ena'], maxRetries: 1 }, undefined, { paths: PREPARE_LOCALLY_PATHS });
      expect([out.state, out.source]).toEqual(['done', 'ena']);
      const handle = t.client.workflow.getHandle(`fetchquant/local/sp/${run}`);
      const events = (await handle.fetchHistory()).events ?? [];
      const scheduled = events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
      expect(scheduled).toEqual(['download', 'quant']);
      expect(events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity')).toHaveLength(2); // claimHost, prepareSample
      expect(events.filter((e) => e.workflowTaskCompletedEventAttributes)).toHaveLength(3);
      // 29 before (test/replay/histories/v8-sample-told-by-steps.json): the activity task (3 events) and its workflow
      // task (3) fewer, one marker more (the 'downloading' upsert moves into the first workflow task)
      expect(events.length).toBeLessThanOrEqual(24);
      const { stages } = (await handle.describe()).memo as { stages: { stage: string }[] };
      expect(stages.map((x) => x.stage)).toEqual(['queued', 'downloading', 'quantifying', 'done']);
      await maybeRecord(t.client, `fetchquant/local/sp/${run}`, 'v9-sample-prepared-locally');
    });
  }, 60_000);

  /** Each UpsertWorkflowSearchAttributes event of a history (each one visibility task on the server): the keys it set. */
  const upserts = (events: { upsertWorkflowSearchAttributesEventAttributes?: { searchAttributes?: { indexedFields?: Record<string, unknown> | null } | null } | null }[]) =>
    events.map((e) => e.upsertWorkflowSearchAttributesEventAttributes).filter((a) => a !== null && a !== undefined).map((a) => Object.keys(a.searchAttributes?.indexedFields ?? {}).sort());

  it('a sample of paths 3 sends the first claim and the first stage in one upsert: 23 events, three upserts, all five search attributes', async () => {
    const run = 'SRR1400010';
    await besideSpecies('upsert', async () => {
      const out = await runVirtualSample(t.client, 'upsert', { run, nominalLength: 250 }, { sources: ['ena'], maxRetries: 1 }, undefined, { paths: ONE_FIRST_UPSERT_PATHS });
      expect([out.state, out.source]).toEqual(['done', 'ena']);
      const handle = t.client.workflow.getHandle(`fetchquant/upsert/sp/${run}`);
      const events = (await handle.fetchHistory()).events ?? [];
      // 24 and four upserts before (test/replay/histories/v9-sample-prepared-locally.json): claimHost's and
      // 'downloading' were two upserts in the first workflow task
      expect(upserts(events)).toEqual([['BatchId', 'RunAccession', 'SampleStage', 'Species', 'WorkerHost'], ['SampleStage'], ['SampleStage']]);
      expect(events.filter((e) => e.workflowTaskCompletedEventAttributes)).toHaveLength(3);
      expect(events.length).toBeLessThanOrEqual(23);
      const described = await handle.describe();
      expect(described.searchAttributes).toMatchObject({ SampleStage: ['done'], RunAccession: [run], WorkerHost: ['paths-host'], Species: ['sp'] });
      const { stages } = described.memo as { stages: { stage: string }[] };
      expect(stages.map((x) => x.stage)).toEqual(['queued', 'downloading', 'quantifying', 'done']);
      await maybeRecord(t.client, `fetchquant/upsert/sp/${run}`, 'v10-sample-one-first-upsert');
    });
  }, 60_000);

  it('a sample of paths 4 quantifies in the download that verified its reads: 2 workflow tasks, 16 events, two upserts; memo and provenance still record quantifying', async () => {
    const run = 'SRR1400012';
    await besideSpecies('chain', async (species) => {
      const out = await runVirtualSample(t.client, 'chain', { run, nominalLength: 250 }, { sources: ['ena'], maxRetries: 1 }, undefined, { paths: CHAIN_QUANT_PATHS });
      expect([out.state, out.source]).toEqual(['done', 'ena']);
      expect(of(run)).toEqual(['resolveSource', 'reserveDisk', 'download', 'quant', 'deleteReads']);
      const handle = t.client.workflow.getHandle(`fetchquant/chain/sp/${run}`);
      const events = (await handle.fetchHistory()).events ?? [];
      const scheduled = events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
      expect(scheduled).toEqual(['download']);
      expect(events.filter((e) => e.workflowTaskCompletedEventAttributes)).toHaveLength(2);
      // 23 before (test/replay/histories/v10-sample-one-first-upsert.json): the quant's activity task (3 events), its
      // workflow task (3) and the 'quantifying' upsert (1) fewer
      expect(events.length).toBeLessThanOrEqual(16);
      expect(upserts(events)).toEqual([['BatchId', 'RunAccession', 'SampleStage', 'Species', 'WorkerHost'], ['SampleStage']]);
      const described = await handle.describe();
      expect(described.searchAttributes).toMatchObject({ SampleStage: ['done'], RunAccession: [run] });
      const { stages } = described.memo as { stages: { stage: string; startedAt: string; endedAt?: string }[] };
      expect(stages.map((x) => x.stage)).toEqual(['queued', 'downloading', 'quantifying', 'done']);
      // quantifying began when the step had verified the reads, and the download ended then
      expect(stages[1]!.endedAt).toBe(stages[2]!.startedAt);
      expect(Date.parse(stages[2]!.startedAt)).toBeGreaterThanOrEqual(Date.parse(stages[1]!.startedAt));
      const prov = provenances.get(run)!;
      expect(prov.stages.map((x) => x.stage)).toEqual(['queued', 'downloading', 'quantifying']);
      expect(prov.stages[2]!.startedAt).toBe(stages[2]!.startedAt);
      expect(prov).toMatchObject({ reads: 10, host: 'paths-host', files: [{ path: `/virtual/${run}.fastq.gz` }] });
      // the species heard both from the step, as before, with the outcome the sample ended with (bytes included)
      const received = await signalsReceived(species);
      expect(out.bytes).toBe(100);
      expect(received).toEqual([
        ['readsVerified', run, 10],
        ['sampleFinished', out],
      ]);
      await maybeRecord(t.client, `fetchquant/chain/sp/${run}`, 'v11-sample-quant-chained');
    });
  }, 60_000);

  it('paths 4, SRA: the conversion that verified the reads quantifies them (3 workflow tasks), stages downloading, converting, quantifying', async () => {
    const run = 'SRR1400013';
    spilled.add(run);
    convertVerifies.add(run);
    await besideSpecies('chainsra', async () => {
      const out = await runVirtualSample(t.client, 'chainsra', { run, nominalLength: 250 }, { sources: ['ena', 'sra'], maxRetries: 1 }, undefined, { paths: CHAIN_QUANT_PATHS });
      expect([out.state, out.source]).toEqual(['done', 'sra']);
      expect(of(run)).toEqual(['resolveSource', 'reserveDisk', 'download', 'convertSra', 'quant', 'deleteReads']);
      // reads deleted after quant: fasterq-dump writes FASTA (src/tools/fasterq-dump.ts)
      expect(calls.filter((c) => c.run === run && c.step === 'convertSra').map((c) => (c.data as { fasta: boolean }).fasta)).toEqual([true]);
      const handle = t.client.workflow.getHandle(`fetchquant/chainsra/sp/${run}`);
      const events = (await handle.fetchHistory()).events ?? [];
      expect(events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean)).toEqual(['download', 'convertSra']);
      expect(events.filter((e) => e.workflowTaskCompletedEventAttributes)).toHaveLength(3);
      const { stages } = (await handle.describe()).memo as { stages: { stage: string }[] };
      expect(stages.map((x) => x.stage)).toEqual(['queued', 'downloading', 'converting', 'quantifying', 'done']);
      expect(provenances.get(run)!.stages.map((x) => x.stage)).toEqual(['queued', 'downloading', 'converting', 'quantifying']);
      await maybeRecord(t.client, `fetchquant/chainsra/sp/${run}`, 'v11-sample-sra-quant-chained');
    });
  }, 60_000);

  it('paths 4: a quant that fails in the download step leaves verified reads; the sample quantifies them in a step of its own, that failure counted', async () => {
    const run = 'SRR1400014';
    quantFails.set(run, { left: 1, type: FailureType.ToolFailed });
    await besideSpecies('chainfail', async () => {
      const out = await runVirtualSample(t.client, 'chainfail', { run, nominalLength: 250 }, { sources: ['ena'], maxRetries: 1 }, undefined, { paths: CHAIN_QUANT_PATHS });
      expect([out.state, out.source]).toEqual(['done', 'ena']);
      // one download: the reads are not fetched again
      expect(of(run)).toEqual(['resolveSource', 'reserveDisk', 'download', 'quant', 'quant', 'deleteReads']);
      const handle = t.client.workflow.getHandle(`fetchquant/chainfail/sp/${run}`);
      const events = (await handle.fetchHistory()).events ?? [];
      expect(events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean)).toEqual(['download', 'quant']);
      const { stages } = (await handle.describe()).memo as { stages: { stage: string }[] };
      expect(stages.map((x) => x.stage)).toEqual(['queued', 'downloading', 'quantifying', 'done']);
    });
    // --max-retries 1: the failure in the download step was the quant's first attempt, its own step the last
    const runOut = 'SRR1400015';
    quantFails.set(runOut, { left: 2, type: FailureType.ToolFailed });
    await besideSpecies('chainfail2', async () => {
      const out = await runVirtualSample(t.client, 'chainfail2', { run: runOut, nominalLength: 250 }, { sources: ['ena'], maxRetries: 1 }, undefined, { paths: CHAIN_QUANT_PATHS });
      expect([out.state, out.failureType]).toEqual(['failed', FailureType.ToolFailed]);
      expect(of(runOut)).toEqual(['resolveSource', 'reserveDisk', 'download', 'quant', 'quant', 'deleteReads']);
    });
  }, 60_000);

  it('paths 4: a quant failure no retry can fix (IndexError) fails the sample at once, naming quant', async () => {
    const run = 'SRR1400016';
    quantFails.set(run, { left: 5, type: FailureType.IndexError, nonRetryable: true });
    await besideSpecies('chainidx', async () => {
      const out = await runVirtualSample(t.client, 'chainidx', { run, nominalLength: 250 }, { sources: ['ena'], maxRetries: 3 }, undefined, { paths: CHAIN_QUANT_PATHS });
      expect([out.state, out.failureType]).toEqual(['failed', FailureType.IndexError]);
      expect(out.reason).toMatch(/kallisto quant exited 1/);
      expect(of(run)).toEqual(['resolveSource', 'reserveDisk', 'download', 'quant', 'deleteReads']);
      const events = (await t.client.workflow.getHandle(`fetchquant/chainidx/sp/${run}`).fetchHistory()).events ?? [];
      expect(events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean)).toEqual(['download', 'deleteReads']);
    });
  }, 60_000);

  it('paths 3 with no index on the host yet: the first claim is visible (stage queued, host) before the host activity builds the index', async () => {
    const run = 'SRR1400011';
    const out = await sample(run, undefined, ['ena'], { paths: ONE_FIRST_UPSERT_PATHS, indexPath: '/virtual/unbuilt-3/sp.idx' });
    expect([out.state, out.source]).toEqual(['done', 'ena']);
    const events = (await t.client.workflow.getHandle(`fetchquant/paths/sp/${run}`).fetchHistory()).events ?? [];
    const firstUpsert = events.findIndex((e) => e.upsertWorkflowSearchAttributesEventAttributes);
    const prepare = events.findIndex((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'prepareSample');
    expect(prepare).toBeGreaterThan(firstUpsert);
    expect(firstUpsert).toBeGreaterThan(-1);
    const first = events[firstUpsert]!.upsertWorkflowSearchAttributesEventAttributes!.searchAttributes!.indexedFields!;
    expect(Object.keys(first).sort()).toEqual(['BatchId', 'RunAccession', 'SampleStage', 'Species', 'WorkerHost']);
    expect(defaultPayloadConverter.fromPayload(first.SampleStage!)).toBe('queued');
  }, 60_000);

  it('paths 2 with no index on the host yet: the local step defers before asking any archive, and the host activity builds the index', async () => {
    const run = 'SRR1400009';
    const indexPath = '/virtual/unbuilt/sp.idx';
    const out = await sample(run, undefined, ['ena'], { paths: PREPARE_LOCALLY_PATHS, indexPath });
    expect([out.state, out.source]).toEqual(['done', 'ena']);
    const steps = calls.filter((c) => c.run === run || c.run === indexPath).map((c) => `${c.step}${c.step === 'ensureIndex' ? (c.data ? ' (only if built)' : ' (may build)') : ''}`);
    expect(steps).toEqual(['ensureIndex (only if built)', 'resolveSource', 'ensureIndex (may build)', 'reserveDisk', 'download', 'quant', 'deleteReads']);
    const events = (await t.client.workflow.getHandle(`fetchquant/paths/sp/${run}`).fetchHistory()).events ?? [];
    expect(events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean)).toEqual(['prepareSample', 'download', 'quant']);
  }, 60_000);

  it('after a bad copy at a source the pacer spilled to first, asks the source it skipped', async () => {
    const run = 'SRR1400004';
    spilled.add(run);
    badAt.set(run, new Set(['sra']));
    const out = await sample(run);
    expect([out.state, out.source]).toEqual(['done', 'ena']);
    expect(calls.filter((c) => c.run === run && c.step === 'resolveSource').map((c) => c.data)).toEqual([['ena', 'sra'], ['ena']]);
  }, 60_000);

  it("asks SRA's copies (named aws, ncbi) once: bad at ENA and at SRA fails the sample, it does not go back to ENA", async () => {
    const run = 'SRR1400003';
    badAt.set(run, new Set(['ena', 'sra']));
    const out = await sample(run, undefined, ['ena', 'aws', 'ncbi']);
    expect([out.state, out.failureType]).toEqual(['failed', FailureType.ChecksumMismatch]);
    expect(out.reason).toMatch(/no source has a good copy: ena: .*; sra: .*md5/);
    expect(calls.filter((c) => c.run === run && c.step === 'resolveSource').map((c) => c.data)).toEqual([
      ['ena', 'aws', 'ncbi'],
      ['aws', 'ncbi'],
    ]);
  }, 60_000);
});
