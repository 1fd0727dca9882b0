/**
 * One run, as a short sequence of steps on one host (each a method of SampleRun below):
 *
 *   claimHost -> admit (done already? source, index, first disk grant) -> fetchVerified (wait for disk,
 *   download, convert an .sra, verify; a bad local copy is fetched again, a copy that stays bad is fetched
 *   from the next source) -> quantify (frees the species' download slot first; folded, the quant step also
 *   publishes: provenance, rename, delete the reads) -> publish (only when quant did not: older workers and
 *   recorded histories).
 *
 * Every file step runs on the claimed host's queue; if that host disappears the sample starts over elsewhere.
 * A failure ends the sample (failed), a cancellation removes its files.
 *
 * The species hears of a clean sample from its steps: the download or conversion that verified the reads
 * signals readsVerified, the quant step that published signals sampleFinished, and each says `told` in its
 * result (src/activities/sample-steps.ts). Without `told` (older workers, recorded histories, a species the
 * step could not reach) the sample signals itself, as it always does on every other path.
 *
 * Older paths kept because recorded histories (test/replay/histories) still take them:
 * - FOLD_HOST_STEPS: before it, claimHost was a normal activity and admit/publish were six activities
 *   (v1-sample-*).
 * - COUNT_WORK_FAILURES: before it, the server retried each step (sample-done, sample-host-lost, v2-*).
 * - FAIL_LOUD: before it, a failed sample sent readsVerified and completed (sample-run-not-found,
 *   sample-lost-then-failed, v1-sample-run-not-found).
 * VERIFIED_IN_STEP (new): the download or conversion checks the reads it wrote and returns them verified, so a
 * clean sample needs no verifyReads round trip; histories without its marker still ask verifyReads.
 * SAMPLE_PATHS (new): samples started by species of this release take all of these paths (and PARK_UNAVAILABLE)
 * without a patched() call, so their histories carry no patch markers; samples started before ask as they did.
 * AMALGKIT_RUN_SETTINGS and FALLBACK_ON_BAD_COPY are deprecated (deprecatePatch): every recorded history that
 * reaches them (v3-sample-bad-copy-fallback, v3-sample-no-good-copy) was recorded with the patch, so only
 * the new path is left; the call stays so their markers keep their place.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  deprecatePatch,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { ActivityInterfaceFor, ActivityOptions, ExternalWorkflowHandle, LocalActivityOptions, RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities/contract.js';
import { archivesOf, type Source, type SourceName } from '../config/sources.js';
import { causeChain, DISK_FLOOR, FailureType, isRetryable, NON_RETRYABLE, WORKER_LOST } from '../failures.js';
import { amalgkitFragment, hostQueue, runReadsDir, TASK_QUEUE } from '../ids.js';
import { SA } from '../search-attributes.js';
import { expectedReadsOf, readsCheckOf } from '../reads-check.js';
import { completeProvenance, downsamplingRecord } from '../provenance.js';
import type { AmalgkitRunSettings, ChainedQuant, DiskGrant, DownloadResult, Layout, LocalFile, ProvenanceDraft, QuantAfter, QuantResult, ReadSet, SampleInput, SampleOptions, SampleOutcome, SampleStage, SourcePlan, StageRecord } from '../types.js';
import { HUMAN_LINE, failedLine, retryLine } from '../human.js';
import { attemptFailedSignal, readsVerifiedSignal, sampleFinishedSignal, sampleParkedSignal, stageQuery, type ParkedRun, type SampleStatus } from './messages.js';
import { hostActivityOptions, readCheckRetry, retryPolicy, sharedActivityOptions } from './options.js';
import { targetClosed } from './signal.js';
import { Parking, type ParkDecision } from './park.js';

/** Fewer round trips per sample: local claimHost, prepareSample and publish (see the header). */
export const FOLD_HOST_STEPS = 'fold-host-steps';
/** A failed sample ends its workflow Failed (after telling its species), and sends no readsVerified. */
export const FAIL_LOUD = 'failed-sample-fails';
/** The species' amalgkit settings (max_bp, keep reads, sources, amalgkit's -l/-s) reach the sample's steps. Deprecated. */
export const AMALGKIT_RUN_SETTINGS = 'amalgkit-run-settings';
/** A copy that stays bad at one source is fetched from the next configured source before the sample fails. Deprecated. */
export const FALLBACK_ON_BAD_COPY = 'fallback-on-bad-copy';
/** The download (or the .sra's conversion) checks the reads it wrote: verifyReads runs only when that check fails. */
export const VERIFIED_IN_STEP = 'verified-in-step';

/**
 * A sample whose input says `paths: SAMPLE_PATHS` (or more) takes every patch below, and PARK_UNAVAILABLE,
 * without asking patched() or deprecatePatch(): each such call writes a marker and a TemporalChangeVersion
 * search-attribute upsert (2 events, a visibility write) into every new history, 6 to 8 of a clean sample's
 * events. Deterministic: a workflow's input never changes. Species of this release set it
 * (src/workflows/species.ts); samples started before ask patched() as they did. A patch added later is asked
 * with patched() until SAMPLE_PATHS is raised to settle it too.
 */
export const SAMPLE_PATHS = 1;

/**
 * From `paths: 2` on, prepareSample runs as a local activity in the workflow task that claimed the host: the
 * worker running that task is the host (claimHost), so the step runs where it would have anyway, with no
 * activity task and no workflow task of its own (a clean sample: 3 workflow tasks and 24 events, not 4 and
 * 29). With no index on the host yet it returns `deferred` at once and the host activity builds it, while
 * heartbeating. Samples of `paths: 1` (species of the release before) ask the host activity as they did.
 */
export const PREPARE_LOCALLY_PATHS = 2;
/**
 * From `paths: 3` on, the first claim's search attributes (batch, species, run, host) wait for the stage that
 * the same workflow task enters next, and go with it in one upsert. The server turns every
 * UpsertWorkflowSearchAttributes event into a visibility task (one write of the visibility record); the first
 * workflow task of a clean sample had two (claimHost's, then 'downloading' after the local prepareSample), both
 * in one transaction, so the Web UI never showed the first. Now one (a clean sample: 23 events, 6 visibility
 * writes, not 24 and 7). When prepareSample does not answer in that task (deferred to the host activity, failed)
 * they go at once, as before.
 */
export const ONE_FIRST_UPSERT_PATHS = 3;
/**
 * From `paths: 4` on, the download (or the .sra's conversion) that verified the reads and told the species runs
 * the quant step too (quant + publish, `quantAfter`, src/activities/sample-steps.ts): no activity task, no
 * workflow task and no 'quantifying' upsert between the reads and kallisto. A clean sample: 2 workflow tasks
 * and 16 events, not 3 and 23, and two visibility writes, not three. The stage history (memo, provenance) still
 * records quantifying, from the moment the step verified the reads; the SampleStage search attribute goes
 * from downloading (converting for an .sra) to done. A quant that fails there leaves verified reads: the sample
 * quantifies them in a step of its own, that failure counted as the step's first. A worker of an older release
 * ignores quantAfter and the sample quantifies as before.
 */
export const CHAIN_QUANT_PATHS = 4;
/** What species of this release give their samples. */
export const LATEST_SAMPLE_PATHS = CHAIN_QUANT_PATHS;

/** One of fetchquant's search attributes and its value, as upserted. */
type SearchAttribute = { key: (typeof SA)[keyof typeof SA]; value: string };

/** Failures that mean "this source's bytes are bad", as opposed to the run, the host or a tool. */
function isBadCopy(type: string | undefined): boolean {
  return type === FailureType.ChecksumMismatch || type === FailureType.TruncatedReads;
}

/**
 * The --sources names whose archive has not had a bad copy yet (aws, gcp and ncbi are SRA's copies, all asked by
 * one SRA resolve), in their order: what is left to ask. Not "the names after this one": the source pacer may
 * have spilled a run to a later source first.
 */
function sourcesLeft(names: readonly SourceName[], bad: readonly Source[]): SourceName[] {
  return names.filter((n) => !bad.includes(archivesOf([n])[0]!));
}

/**
 * Since this patch the sample retries its host steps itself (each activity gets one attempt) so that it can
 * tell a fault of the work (typed failures, tool timeouts: these use --max-retries) from an attempt lost to
 * its worker (killed: handed back as WorkerLost, or silent until the heartbeat timeout; or a server restart
 * that outlived the heartbeat timeout), which is retried at once and costs nothing, however often it happens.
 * A download stopped at the disk floor (DiskFloor) waits for disk as at admission and uses no retry either.
 */
export const COUNT_WORK_FAILURES = 'count-work-failures';

/** The attempt died with its worker: nothing is known to be wrong with the work. */
function isWorkerLost(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const c = err.cause;
  return (c instanceof ApplicationFailure && c.type === WORKER_LOST) || (c instanceof TimeoutFailure && c.timeoutType === TimeoutType.HEARTBEAT);
}

/** The retry policy's back-off before retry number `n` (1-based), in ms. */
function backoffMs(p: RetryPolicy, n: number): number {
  const initial = typeof p.initialInterval === 'number' ? p.initialInterval : 1000;
  const max = typeof p.maximumInterval === 'number' ? p.maximumInterval : initial * 100;
  return Math.min(max, initial * (p.backoffCoefficient ?? 2) ** (n - 1));
}

function isHostLost(err: unknown): boolean {
  return (
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START
  );
}

/** ActivityFailure wraps the failure the activity threw: that failure (err itself when it is no ActivityFailure). */
function activityCause(err: unknown): unknown {
  const chain = causeChain(err);
  return chain.find((e) => !(e instanceof ActivityFailure)) ?? chain.at(-1) ?? err;
}

function describe(err: unknown): { reason: string; type?: string } {
  const e = activityCause(err);
  if (e instanceof ApplicationFailure) return { reason: e.message, type: e.type ?? undefined };
  if (e instanceof TimeoutFailure) return { reason: `timed out (${String(e.timeoutType ?? 'timeout')})`, type: FailureType.ToolFailed };
  return { reason: (e as Error)?.message ?? String(e) };
}

/** The step that failed: the activity, else the stage the sample was in. */
function failedStep(err: unknown, stage: SampleStage): string {
  return err instanceof ActivityFailure && err.activityType ? err.activityType : stage;
}

/** One try of the sample on one host: what its steps learned so far. */
interface OnHost {
  hostId: string;
  host: ActivityInterfaceFor<Activities>;
  runDir: string;
  /** where the reads come from (the next source's plan after a bad copy) */
  plan?: SourcePlan;
  /** the grant admit already asked for (folded path), used by the first admission check */
  firstGrant?: DiskGrant;
  bytesFetched: number;
  downsampled: DownloadResult['downsampled'];
  /** CHAIN_QUANT_PATHS: what the step that verified the reads did with them (quant published, or its failure) */
  chained?: ChainedQuant;
}

export async function sampleWorkflow(input: SampleInput): Promise<SampleOutcome> {
  const sample = new SampleRun(input);
  for (;;) {
    const at = await sample.claimHost();
    try {
      if (!(await sample.admit(at))) return await sample.skip(at);
      const reads = await sample.fetchVerified(at);
      const quant = await sample.quantify(at, reads);
      return await sample.publish(at, reads, quant);
    } catch (err) {
      if (isCancellation(err)) return await sample.cancelled(at, err);
      if (isHostLost(err)) {
        sample.hostLost(at);
        continue;
      }
      // No source can serve the run now: wait on a timer and start over (docs/park.md), or fail past the deadline.
      const parked = await sample.park(at, err);
      if (parked?.kind === 'again') continue;
      return await sample.failed(at, parked?.kind === 'fail' ? parked.error : err);
    }
  }
}

/** A sample's state between its steps, and the steps. Commands go out in the order recorded histories hold. */
class SampleRun {
  private readonly run: SampleInput['run'];
  private options: SampleOptions;
  private readonly status: SampleStatus;
  private readonly species: ExternalWorkflowHandle;
  private readonly shared: ActivityInterfaceFor<Activities>;
  private readonly local = proxyLocalActivities<Activities>({ startToCloseTimeout: '30 seconds' });
  private readonly identity: SearchAttribute[];
  /** the input's `paths` settles every patch of this file (SAMPLE_PATHS): no patched() calls */
  private readonly settled: boolean;
  /** patched FOLD_HOST_STEPS (see the header) */
  private readonly folded: boolean;
  /** patched COUNT_WORK_FAILURES: the sample retries its steps itself (see runStep) */
  private readonly ownRetries: boolean;
  /** patched VERIFIED_IN_STEP: download/convertSra check the reads; verifyReads only when that check fails */
  private readonly verifiedInStep: boolean;
  /** PREPARE_LOCALLY_PATHS: prepareSample as a local activity */
  private readonly prepareLocally: boolean;
  /** CHAIN_QUANT_PATHS: the step that verifies the reads quantifies them too */
  private readonly chainQuant: boolean;
  /** what the species' amalgkit config asks of this run (docs/amalgkit.md); samples of older plans have none */
  private readonly ak: AmalgkitRunSettings | undefined;
  private lostAttempts = 0;
  private firstClaim = true;
  /** ONE_FIRST_UPSERT_PATHS: the first claim's search attributes, until the next stage takes them along */
  private pendingSearchAttributes: SearchAttribute[] | null = null;
  private slotReleased = false;
  /** the verified files of the current host attempt (memo + provenance) */
  private files: LocalFile[] = [];
  /** park and revisit (./park.ts): its resumeParked handler is registered with the others */
  private readonly parking: Parking;

  constructor(private readonly input: SampleInput) {
    this.run = input.run;
    this.options = input.options;
    this.shared = proxyActivities<Activities>({ taskQueue: TASK_QUEUE, ...sharedActivityOptions(this.options) });
    const status: SampleStatus = { run: this.run.run, stage: 'queued', host: null, restarts: 0, history: [], attempts: [] };
    this.status = status;
    setHandler(stageQuery, () => status);
    // Each failed activity attempt, as its worker reported it (the signal itself is the durable record).
    setHandler(attemptFailedSignal, (r) => void status.attempts!.push(r));
    this.species = getExternalWorkflowHandle(input.speciesWorkflowId);
    this.identity = [
      { key: SA.BatchId, value: input.batchId },
      { key: SA.Species, value: input.speciesId },
      { key: SA.RunAccession, value: this.run.run },
    ];
    this.settled = (input.paths ?? 0) >= SAMPLE_PATHS;
    this.folded = this.has(FOLD_HOST_STEPS);
    this.ownRetries = this.has(COUNT_WORK_FAILURES);
    this.verifiedInStep = this.has(VERIFIED_IN_STEP);
    this.prepareLocally = this.folded && (input.paths ?? 0) >= PREPARE_LOCALLY_PATHS;
    this.chainQuant = this.prepareLocally && this.verifiedInStep && this.ownRetries && (input.paths ?? 0) >= CHAIN_QUANT_PATHS;
    // Folded: the first claim comes first and all five search attributes go in one upsert (claimHost).
    if (!this.folded) upsertSearchAttributes(this.identity);
    this.enter('queued', {}, !this.folded);
    if (input.amalgkit && !this.settled) deprecatePatch(AMALGKIT_RUN_SETTINGS);
    this.ak = input.amalgkit;
    if (this.ak) {
      const probe = this.ak.sraProbeServices;
      this.options = { ...this.options, sources: this.ak.sources, sraServices: this.ak.sraServices, ...(probe ? { sraProbeServices: probe } : {}) };
    }
    this.parking = new Parking(this.run.run, this.options, (id) => this.has(id));
  }

  /** A patch's path: taken when the input settles it (SAMPLE_PATHS), else as patched() says. */
  private has(patchId: string): boolean {
    return this.settled || patched(patchId);
  }

  /** The host is whichever worker runs this workflow task: it is alive now, which is all a claim needs. */
  async claimHost(): Promise<OnHost> {
    const { hostId } = this.folded ? await this.local.claimHost() : await this.shared.claimHost();
    this.status.host = hostId;
    if (this.folded && this.firstClaim) {
      const all = [...this.identity, { key: SA.SampleStage, value: 'queued' }, { key: SA.WorkerHost, value: hostId }];
      if (this.prepareLocally && (this.input.paths ?? 0) >= ONE_FIRST_UPSERT_PATHS) this.pendingSearchAttributes = all;
      else upsertSearchAttributes(all);
    } else {
      // A first claim still held (nothing leaves it so today: admit() sends it or a stage takes it along) goes
      // with this one, under the host claimed now.
      upsertSearchAttributes([...this.takeHeld(SA.WorkerHost), { key: SA.WorkerHost, value: hostId }]);
    }
    this.firstClaim = false;
    this.files = [];
    return { hostId, host: proxyActivities<Activities>(this.hostOptions(hostId)), runDir: runReadsDir(this.input.readsDir, this.run.run), bytesFetched: 0, downsampled: undefined };
  }

  /** Not done yet? Then where the reads come from, the index, and (folded) a first disk grant. False: done already. */
  async admit(at: OnHost): Promise<boolean> {
    const { run, options, input } = this;
    if (!this.folded) return this.admitUnfolded(at);
    const args = { run, options, quantDir: input.quantDir, readsDir: input.readsDir, indexPath: input.indexPath, fastaPaths: input.fastaPaths };
    const summary = `done? resolve ${run.run} at ${options.sources.join(', ')}, index, reserve disk`;
    let quick: Awaited<ReturnType<Activities['prepareSample']>> | null = null;
    try {
      quick = this.prepareLocally ? await this.runStep(this.localPrepareOptions(), (o) => this.local.prepareSample.executeWithOptions(o as LocalActivityOptions, [{ ...args, quick: true }])) : null;
    } finally {
      // Answered here: the stage entered next (downloading, waiting-for-disk, skipped) takes the first claim's
      // search attributes along, with no await in between. Otherwise they go now.
      if (!quick || 'deferred' in quick) this.flushSearchAttributes();
    }
    const prep = quick && !('deferred' in quick) ? quick : await this.runStep({ ...this.hostOptions(at.hostId), summary }, (o) => at.host.prepareSample.executeWithOptions(o, [args]));
    if (prep.done) return false;
    if ('deferred' in prep) throw ApplicationFailure.nonRetryable(`${run.run}: prepareSample deferred without the quick flag`, 'InternalError');
    at.plan = prep.plan;
    at.firstGrant = prep.grant;
    return true;
  }

  /** Before FOLD_HOST_STEPS: three activities, the disk is reserved later. */
  private async admitUnfolded(at: OnHost): Promise<boolean> {
    const { run, options, input } = this;
    if (await at.host.checkDone({ quantDir: input.quantDir, run: run.run })) return false;
    at.plan = await this.shared.resolveSource.executeWithOptions({ ...sharedActivityOptions(options), taskQueue: TASK_QUEUE, summary: `resolve ${run.run} at ${options.sources.join(', ')}` }, [{ run, options }]);
    await at.host.ensureIndex({ indexPath: input.indexPath, fastaPaths: input.fastaPaths, timeoutSec: options.processTimeoutSec });
    return true;
  }

  async skip(at: OnHost): Promise<SampleOutcome> {
    this.enter('skipped');
    return this.finish({ run: this.run.run, speciesId: this.input.speciesId, state: 'skipped', host: at.hostId });
  }

  /** Verified reads on the host: from the planned source, or the next one when its copy stays bad. */
  async fetchVerified(at: OnHost): Promise<ReadSet> {
    /** what each source's copy did, when one turned out bad and the next source was asked */
    const badCopies: { source: Source; reason: string }[] = [];
    for (;;) {
      try {
        return await this.fetchFromSource(at);
      } catch (err) {
        await this.nextSource(at, err, badCopies);
      }
    }
  }

  /**
   * Download (after admission) and verify, from at.plan's source. A verification failure after a checksum-clean
   * download, or a .sra that vdb-validate rejects, means the local copy is bad: delete it and fetch again
   * (complete, verified files are kept), up to --max-retries times.
   */
  private async fetchFromSource(at: OnHost): Promise<ReadSet> {
    const { run, options } = this;
    for (let attempt = 1; ; attempt++) {
      await this.waitForDisk(at);
      this.enter('downloading', { attempt });
      const dl = await this.download(at);
      try {
        return await this.verify(at, dl, attempt);
      } catch (err) {
        if (isHostLost(err) || attempt > options.maxRetries || !isRetryable(describe(err).type)) throw err;
        const { reason } = describe(err);
        log.warn('local reads are bad; downloading again', { run: run.run, attempt, error: reason, [HUMAN_LINE]: retryLine(run.run, `${this.status.stage} (reads bad, downloading again)`, attempt, options.maxRetries + 1, at.hostId, reason) });
        await at.host.deleteReads({ run: run.run, runDir: at.runDir });
        await sleep(Math.round(options.retryInitialSec * 1000 * 2 ** (attempt - 1)));
      }
    }
  }

  /** Admission: wait (never fail) until the host has room for this sample above the floor. */
  private async waitForDisk(at: OnHost): Promise<void> {
    for (let waited = 0; ; waited++) {
      const reserve = { run: this.run.run, dir: this.input.readsDir, bytes: at.plan!.reserveBytes, minFreeGb: this.options.minFreeGb };
      // No grant from prepareSample (its contract always gives one): the first claim must not wait out an activity.
      if (!at.firstGrant) this.flushSearchAttributes();
      const grant = at.firstGrant ?? (await this.runStep(this.hostOptions(at.hostId), (o) => at.host.reserveDisk.executeWithOptions(o, [reserve])));
      at.firstGrant = undefined;
      if (grant.granted) return;
      if (waited === 0) this.enter('waiting-for-disk');
      await sleep(Math.round(this.options.diskWaitSec * 1000));
    }
  }

  private async download(at: OnHost): Promise<DownloadResult> {
    const { ak, options } = this;
    const plan = at.plan!;
    // CHAIN_QUANT_PATHS: a FASTQ download that verifies its reads quantifies them too (an .sra's conversion does).
    const chain = this.chainQuant && plan.source !== 'sra' ? { quantAfter: this.quantAfter(at) } : {};
    const fetched = `${plan.source} ${plan.files.map((f) => f.name).join(' + ')}`;
    const dl = await this.runStep({ ...this.hostOptions(at.hostId, chain.quantAfter ? 2 : 1), summary: chain.quantAfter ? `${fetched}, then kallisto quant, publish, delete its reads` : fetched }, (o) =>
      at.host.download.executeWithOptions(o, [
        {
          plan,
          runDir: at.runDir,
          stallTimeoutSec: options.stallTimeoutSec,
          ...(ak?.maxBp ? { maxBp: ak.maxBp } : {}),
          ...(this.ownRetries ? { minFreeGb: options.minFreeGb } : {}),
          // Verified where written: the step tells the species itself (readsVerified) and says `told`.
          ...(this.verifiedInStep ? { verify: true, tell: { speciesWorkflowId: this.input.speciesWorkflowId } } : {}),
          // Reads kept after quant stay as the archive sends them; reads deleted after quant may be kept plain
          // while they wait (kallisto then inflates nothing). An activity argument: no patch needed.
          ...(ak?.keepReads ? {} : { plainReads: true }),
          ...chain,
        },
      ]),
    );
    this.files = dl.files;
    at.chained = dl.chained;
    if (dl.told) this.slotReleased = true;
    at.bytesFetched += dl.bytesFetched;
    at.downsampled = dl.downsampled;
    return dl;
  }

  /** Convert an .sra, then check the reads (gzip test, read counts). */
  private async verify(at: OnHost, dl: DownloadResult, attempt: number): Promise<ReadSet> {
    const { run, options } = this;
    const plan = at.plan!;
    // Before FOLD_HOST_STEPS read checks were tried once.
    const checkRetry = this.folded ? readCheckRetry(options) : { maximumAttempts: 1 };
    let fastq = dl.files.map((f) => f.path);
    let layout = plan.layout;
    // Unpaired reads of a paired run: listed by ENA but not fetched (null), or counted by the conversion.
    // Data only (no new command), so recorded histories replay unchanged.
    let unpairedReads: number | null | undefined = plan.unpaired ? null : undefined;
    let verified = dl.verified;
    if (plan.source === 'sra') {
      this.enter('converting', { attempt });
      const verify = this.verifiedInStep ? { verify: { expectedReads: expectedReadsOf(plan, dl.downsampled) }, tell: { speciesWorkflowId: this.input.speciesWorkflowId } } : {};
      const chain = this.chainQuant ? { quantAfter: this.quantAfter(at) } : {};
      const summary = `vdb-validate + fasterq-dump ${run.run}${chain.quantAfter ? ', then kallisto quant, publish, delete its reads' : ''}`;
      const conv = await this.runStep({ ...this.hostOptions(at.hostId, chain.quantAfter ? 2 : 1), retry: checkRetry, summary }, (o) =>
        at.host.convertSra.executeWithOptions(o, [{ run: run.run, sraPath: dl.files[0]!.path, runDir: at.runDir, threads: options.kallistoThreads, timeoutSec: options.processTimeoutSec, ...(this.ak?.keepReads ? {} : { fastaReads: true }), ...verify, ...chain }]),
      );
      at.chained = conv.chained;
      fastq = conv.files;
      layout = conv.layout;
      unpairedReads = conv.unpairedReads;
      verified = conv.verified;
      if (conv.told) this.slotReleased = true;
    }
    // Checked already by the step that wrote them: no verifyReads round trip. Otherwise (not asked, or the
    // check failed) verifyReads checks them and fails with the reason, as before VERIFIED_IN_STEP.
    if (verified) return verified;
    const verifyInput = readsCheckOf(plan, fastq, layout, dl.downsampled, unpairedReads);
    return this.runStep({ ...this.hostOptions(at.hostId), retry: checkRetry, summary: `gzip test + read counts ${run.run}` }, (o) => at.host.verifyReads.executeWithOptions(o, [verifyInput]));
  }

  /**
   * A copy that keeps failing integrity (md5 after the download's retries, gzip/count/vdb-validate after
   * maxRetries downloads) is this source's problem: the next source may hold a good one. Rethrows anything else,
   * and fails the sample when no source is left.
   */
  private async nextSource(at: OnHost, err: unknown, badCopies: { source: Source; reason: string }[]): Promise<void> {
    const { run, options } = this;
    const from = at.plan!;
    const bad = describe(err);
    const rest = sourcesLeft(options.sources, [...badCopies.map((b) => b.source), from.source]);
    if (isHostLost(err) || isCancellation(err) || !isBadCopy(bad.type)) throw err;
    // Asked only here, so a clean sample's history gets no marker.
    if (!this.settled) deprecatePatch(FALLBACK_ON_BAD_COPY);
    badCopies.push({ source: from.source, reason: bad.reason });
    const said = badCopies.map((b) => `${b.source}: ${b.reason}`).join('; ');
    if (rest.length === 0) {
      if (badCopies.length === 1) throw err;
      throw ApplicationFailure.create({ type: bad.type, nonRetryable: true, message: `run ${run.run}: no source has a good copy: ${said}` });
    }
    log.warn('the copy at this source stays bad; asking the next source', {
      run: run.run,
      source: from.source,
      error: bad.reason,
      [HUMAN_LINE]: retryLine(run.run, `${this.status.stage} (bad copy at ${from.source}, asking ${rest.join(', ')})`, badCopies.length, null, at.hostId, bad.reason),
    });
    await at.host.deleteReads({ run: run.run, runDir: at.runDir });
    this.files = [];
    try {
      const next = await this.shared.resolveSource.executeWithOptions(
        { ...sharedActivityOptions(options), taskQueue: TASK_QUEUE, summary: `resolve ${run.run} at ${rest.join(', ')} (bad copy at ${from.source})` },
        [{ run, options: { ...options, sources: rest } }],
      );
      // The provenance says why these reads come from the second choice.
      at.plan = { ...next, notes: [...(next.notes ?? []), `bad copy before this one: ${said}`] };
    } catch (e) {
      if (isCancellation(e)) throw e;
      throw ApplicationFailure.create({ type: bad.type, nonRetryable: true, message: `run ${run.run}: ${said}; then ${describe(e).reason}` });
    }
  }

  /** Free the species' download slot, then kallisto quant. */
  async quantify(at: OnHost, reads: ReadSet): Promise<QuantResult> {
    const { run, options } = this;
    // CHAIN_QUANT_PATHS: quantified (and published) by the step that verified the reads, or it says why not.
    const chained = at.chained;
    at.chained = undefined;
    if (chained && 'quant' in chained) {
      this.enter('quantifying', {}, false, chained.verifiedAt);
      return chained.quant;
    }
    let failedBefore = 0;
    if (chained) {
      const e = chained.error;
      this.enter('quantifying');
      // As runStep would judge the step's first failure: final, or the step's first retry.
      const final = Boolean(e.nonRetryable) || NON_RETRYABLE.includes(e.type as FailureType) || options.maxRetries < 1;
      if (final) throw ApplicationFailure.create({ type: e.type ?? FailureType.ToolFailed, message: e.message, nonRetryable: true });
      failedBefore = 1;
      log.warn('quant failed in the step that verified the reads; retrying as its own step', { run: run.run, [HUMAN_LINE]: retryLine(run.run, 'quant', 1, options.maxRetries + 1, at.hostId, e.message) });
    }
    // Folded: the slot signal and the quant go out in the same workflow task, so quant does not wait a
    // round trip for the species to acknowledge the freed slot.
    const slotSignal = this.folded ? this.releaseSlot(reads.reads) : undefined;
    if (!this.folded) await this.releaseSlot(reads.reads);
    if (!chained) this.enter('quantifying');
    // Folded: the quant step also publishes (provenance, rename, reads deleted): one round trip and 7 history
    // events fewer per sample. Data only, no new command: a quant result without `published` (an older
    // worker, or a history recorded before) is followed by the publish step as before.
    // It also tells the species (sampleFinished) once published, and says `told`: the sample then completes
    // without a signal of its own. Data too: a result without `told` is followed by the sample's signal.
    const publish = this.folded ? { publish: this.publishPart(at, this.provenanceDraft(at, reads)) } : {};
    const summary = `kallisto quant ${run.run} (${reads.layout}, ${reads.reads} reads)${this.folded ? ', publish, delete its reads' : ''}`;
    const fragment = this.fragmentFor(reads.layout);
    const quanting = this.runStep(
      { ...this.hostOptions(at.hostId), summary },
      (o) =>
        at.host.quant.executeWithOptions(o, [
          { ...publish, ...this.quantPart(), reads, fragmentLength: fragment.length, fragmentSd: fragment.sd },
        ]),
      failedBefore,
    );
    const [, quant] = await Promise.all([slotSignal, quanting]);
    return quant;
  }

  /** kallisto's -l/-s for reads of this layout: amalgkit quant's unless the config gives fetchquant.fragment_length. */
  private fragmentFor(layout: Layout): { length: number; sd: number } {
    const { run, input, ak } = this;
    if (ak && !ak.fragmentFromConfig) return amalgkitFragment(run.nominalLength);
    return { length: run.nominalLength && layout === 'single' && !ak ? run.nominalLength : input.fragmentLength, sd: input.fragmentSd };
  }

  /**
   * CHAIN_QUANT_PATHS: what the step that will verify the reads needs to quantify and publish them. The reads,
   * their files and the stage times are the step's to fill in (src/activities/sample-steps.ts quantAfter).
   */
  private quantAfter(at: OnHost): QuantAfter {
    const draft = this.provenanceDraft(at, { layout: at.plan!.layout, files: [], reads: 0 });
    delete draft.downsampling;
    return {
      quant: { ...this.quantPart(), publish: this.publishPart(at, draft) },
      fragment: { single: this.fragmentFor('single'), paired: this.fragmentFor('paired') },
      // the bytes of the steps before this one (the step adds its own)
      bytesFetchedBefore: at.bytesFetched,
      ...(this.ak?.maxBp ? { maxBp: this.ak.maxBp } : {}),
    };
  }

  /** The quant step's input but the reads, kallisto's -l/-s and the publish part. */
  private quantPart(): Omit<QuantAfter['quant'], 'publish'> {
    const { run, input, options } = this;
    return { run: run.run, indexPath: input.indexPath, quantDir: input.quantDir, kallistoThreads: options.kallistoThreads, quantThreads: options.quantThreads, timeoutSec: options.processTimeoutSec };
  }

  /** The quant step's `publish`: provenance, reads deleted (kept if the config says so), then the species told. */
  private publishPart(at: OnHost, provenance: ProvenanceDraft): QuantAfter['quant']['publish'] {
    return { provenance, runDir: at.runDir, ...(this.ak?.keepReads ? { keepReads: true } : {}), tell: { speciesWorkflowId: this.input.speciesWorkflowId, outcome: this.doneOutcome(at) } };
  }

  /** What the provenance file says, but for what quant finds (src/types.ts Provenance). */
  private provenanceDraft(at: OnHost, reads: ReadSet): ProvenanceDraft {
    const { run, input, ak, status } = this;
    const plan = at.plan!;
    const info = workflowInfo();
    return {
      run: run.run,
      species: input.speciesName,
      source: plan,
      files: this.files,
      reads: reads.reads,
      ...(reads.unpairedReads !== undefined ? { unpairedReads: reads.unpairedReads } : {}),
      host: at.hostId,
      stages: status.history.map((h) => ({ ...h })),
      restarts: status.restarts,
      workflowId: info.workflowId,
      runId: info.runId,
      ...(ak?.maxBp ? { downsampling: downsamplingRecord(ak.maxBp, at.downsampled, plan, at.bytesFetched) } : {}),
    };
  }

  /**
   * Done when the quant step published (folded, current workers). Otherwise: the provenance and the quant's
   * rename into place, then the reads deleted (kept if the config says so), as its own step.
   */
  async publish(at: OnHost, reads: ReadSet, quant: QuantResult): Promise<SampleOutcome> {
    const { run, input, ak } = this;
    if (quant.published) {
      this.enter('done');
      return this.finish(this.doneOutcome(at), Boolean(quant.published.told));
    }
    const { tmpDir, ...quantRecord } = quant;
    this.enter('deleting');
    const provenance = completeProvenance(this.provenanceDraft(at, reads), quantRecord, new Date().toISOString());
    if (this.folded) {
      await this.runStep({ ...this.hostOptions(at.hostId), summary: `publish ${run.run} (provenance + rename), delete its reads` }, (o) =>
        at.host.publish.executeWithOptions(o, [{ run: run.run, quantDir: input.quantDir, tmpDir, provenance, runDir: at.runDir, ...(ak?.keepReads ? { keepReads: true } : {}) }]),
      );
    } else {
      await at.host.finalize({ run: run.run, quantDir: input.quantDir, tmpDir, provenance });
      await at.host.deleteReads({ run: run.run, runDir: at.runDir, ...(ak?.keepReads ? { keep: true } : {}) });
    }
    this.enter('done');
    return this.finish(this.doneOutcome(at));
  }

  private doneOutcome(at: OnHost): SampleOutcome {
    return { run: this.run.run, speciesId: this.input.speciesId, state: 'done', host: at.hostId, source: at.plan!.source, bytes: at.bytesFetched };
  }

  /** Cancelled batch: leave no partial files behind, then let the cancellation through. */
  async cancelled(at: OnHost, err: unknown): Promise<never> {
    await CancellationScope.nonCancellable(async () => {
      await at.host.deleteReads({ run: this.run.run, runDir: at.runDir, quantDir: this.input.quantDir }).catch(() => undefined);
    });
    throw err;
  }

  hostLost(at: OnHost): void {
    const { run, status } = this;
    status.restarts++;
    log.warn('host lost; restarting the sample on another host', { run: run.run, host: at.hostId, [HUMAN_LINE]: retryLine(run.run, `${status.stage} (host lost, restarting elsewhere)`, status.restarts, null, at.hostId, `no worker of ${at.hostId} took the task`) });
    this.enter('queued', { error: `host ${at.hostId} lost` });
  }

  /**
   * A failure no source can help with now (outage, 5xx beyond retries, not yet at the allowed source): park
   * the run (reads deleted, stage 'parked', the species frees its slot), wait, and say 'again'; past the
   * deadline, the ParkedPastDeadline failure to end with; null: not a parking matter (./park.ts).
   */
  async park(at: OnHost, err: unknown): Promise<ParkDecision> {
    const { run, input } = this;
    const tell = async (p: ParkedRun | null) => {
      try {
        await this.species.signal(sampleParkedSignal, run.run, p);
      } catch (e) {
        if (!targetClosed(e, input.speciesWorkflowId)) throw e;
      }
    };
    return this.parking.decide(err, {
      describe,
      clear: async () => {
        await at.host.deleteReads({ run: run.run, runDir: at.runDir }).catch(() => undefined);
      },
      parked: async (p) => {
        this.enter('parked', { error: p.reason });
        log.warn('no source can serve the run now: parked', { run: run.run, until: p.until, error: p.reason, [HUMAN_LINE]: `${run.run}: parked until ${p.until} (no source can serve it now): ${p.reason}` });
        await upsertMemo({ parked: p });
        await tell(p);
      },
      unparked: async () => {
        await upsertMemo({ parked: null });
        await tell(null);
        this.enter('queued');
      },
    });
  }

  /** Tell the species, then (FAIL_LOUD) end the workflow Failed with the outcome in the failure's details. */
  async failed(at: OnHost, err: unknown): Promise<SampleOutcome> {
    const { run, input } = this;
    const { reason, type } = describe(err);
    const step = failedStep(err, this.status.stage);
    this.enter('failed', { error: reason });
    log.warn('sample failed', { run: run.run, step, error: reason, [HUMAN_LINE]: failedLine(run.run, step, reason, type) });
    // Reads of a failed sample are useless and occupy the disk floor: remove them (best effort).
    await at.host.deleteReads({ run: run.run, runDir: at.runDir, quantDir: input.quantDir }).catch(() => undefined);
    const loud = this.has(FAIL_LOUD);
    // The species frees the slot on sampleFinished as well; readsVerified would claim reads that never were.
    if (!loud) await this.releaseSlot(0);
    const outcome: SampleOutcome = { run: run.run, speciesId: input.speciesId, state: 'failed', reason, failureType: type, host: at.hostId, source: at.plan?.source, bytes: at.bytesFetched };
    await this.finish(outcome);
    if (!loud) return outcome;
    throw ApplicationFailure.create({ type: type ?? 'SampleFailed', message: `${run.run} failed while ${step}: ${reason}`, nonRetryable: true, details: [outcome] });
  }

  /**
   * One host step under its retry policy. COUNT_WORK_FAILURES: one attempt per activity, retried here; attempts
   * lost to the worker are retried without counting, a download stopped at the disk floor waits for disk,
   * everything else as the policy says. Before it: the server retries.
   */
  private async runStep<R>(opts: ActivityOptions, call: (o: ActivityOptions) => Promise<R>, failedBefore = 0): Promise<R> {
    if (!this.ownRetries) return call(opts);
    const { run, status } = this;
    const policy = opts.retry ?? {};
    const once: ActivityOptions = { ...opts, retry: { maximumAttempts: 1 } };
    // failed already elsewhere (a quant in the step that verified the reads): its back-off first
    if (failedBefore > 0) await sleep(backoffMs(policy, failedBefore));
    for (let failures = failedBefore; ; ) {
      try {
        return await call(once);
      } catch (err) {
        const stepName = failedStep(err, status.stage);
        if (isWorkerLost(err)) {
          this.lostAttempts++;
          const reason = describe(err).reason;
          log.warn('attempt lost with its worker; retrying without using a retry', {
            run: run.run,
            error: reason,
            [HUMAN_LINE]: retryLine(run.run, `${stepName} (worker lost, not counted)`, this.lostAttempts, null, status.host ?? '?', reason),
          });
          continue;
        }
        if (isCancellation(err) || isHostLost(err)) throw err;
        const inner = activityCause(err);
        if (inner instanceof ApplicationFailure && inner.type === DISK_FLOOR) {
          // Stopped at the disk floor with its bytes kept: wait for room as at admission, then resume.
          const was = status.stage;
          this.enter('waiting-for-disk', { error: inner.message });
          await sleep(Math.round(this.options.diskWaitSec * 1000));
          this.enter(was);
          continue;
        }
        // As the server would: only an ApplicationFailure's type is matched against the non-retryable list.
        const app = inner instanceof ApplicationFailure ? inner : null;
        const max = policy.maximumAttempts ?? 0;
        const final = Boolean(app?.nonRetryable) || (typeof app?.type === 'string' && (policy.nonRetryableErrorTypes ?? []).includes(app.type));
        if (final || (max > 0 && failures + 1 >= max)) throw err;
        failures++;
        // The worker does not say it (one attempt per activity): the terminal's one line per retry comes from here.
        log.warn('step failed; retrying', { run: run.run, [HUMAN_LINE]: retryLine(run.run, stepName, failures, max || null, status.host ?? '?', describe(err).reason) });
        await sleep(backoffMs(policy, failures));
      }
    }
  }

  /**
   * prepareSample in the claiming workflow task: an archive's answer can take a while behind the source pacer,
   * and a local activity past the workflow task timeout keeps the task alive with a heartbeat of its own (3
   * events each), so the time it gets is bounded; the sample retries it as it retries any step (runStep).
   */
  private localPrepareOptions(): ActivityOptions {
    return { startToCloseTimeout: '2 minutes', retry: retryPolicy(this.options) };
  }

  /** `steps`: how many tool steps the activity runs in turn (a step that also quantifies: 2), each within the process timeout */
  private hostOptions(hostId: string, steps = 1): ActivityOptions {
    const o = hostActivityOptions(hostQueue(hostId), this.options);
    return steps > 1 ? { ...o, startToCloseTimeout: Math.round((this.options.processTimeoutSec * steps + 60) * 1000) } : o;
  }

  /** `at`: when the stage began, if not now (a step's own clock: CHAIN_QUANT_PATHS) */
  private enter(stage: SampleStage, extra: Partial<StageRecord> = {}, upsert = true, at?: string): void {
    const { status } = this;
    const now = at ?? new Date().toISOString();
    const last = status.history[status.history.length - 1];
    if (last && !last.endedAt) last.endedAt = now;
    status.stage = stage;
    status.history.push({ stage, host: status.host, startedAt: now, ...extra });
    if (upsert) upsertSearchAttributes([...this.takeHeld(SA.SampleStage), { key: SA.SampleStage, value: stage }]);
  }

  /** ONE_FIRST_UPSERT_PATHS: the first claim's search attributes still held, less `replaced` (the caller's value goes instead); held no longer. */
  private takeHeld(replaced?: SearchAttribute['key']): SearchAttribute[] {
    const held = this.pendingSearchAttributes ?? [];
    this.pendingSearchAttributes = null;
    return replaced ? held.filter((a) => a.key !== replaced) : held;
  }

  /** The first claim's search attributes, if still held, go now on their own. */
  private flushSearchAttributes(): void {
    const held = this.takeHeld();
    if (held.length > 0) upsertSearchAttributes(held);
  }

  private async releaseSlot(reads: number): Promise<void> {
    if (this.slotReleased) return;
    this.slotReleased = true;
    try {
      await this.species.signal(readsVerifiedSignal, this.run.run, reads);
    } catch (err) {
      if (!targetClosed(err, this.input.speciesWorkflowId)) throw err;
    }
  }

  /** `told`: the quant step has signalled the species sampleFinished already */
  private async finish(outcome: SampleOutcome, told = false): Promise<SampleOutcome> {
    const { status } = this;
    const last = status.history[status.history.length - 1];
    if (last && !last.endedAt) last.endedAt = new Date().toISOString();
    // What the Web UI shows without opening the history: outcome, verified files with md5, every stage and attempt.
    await upsertMemo({
      outcome,
      restarts: status.restarts,
      ...(this.ownRetries ? { lostAttempts: this.lostAttempts } : {}),
      files: this.files.map((f) => ({ name: f.path.slice(f.path.lastIndexOf('/') + 1), bytes: f.bytes, md5: f.md5, ...(f.inflatedFrom ? { inflatedFrom: f.inflatedFrom } : {}) })),
      stages: status.history.map((h) => ({ stage: h.stage, host: h.host, attempt: h.attempt, startedAt: h.startedAt, endedAt: h.endedAt, error: h.error })),
    });
    // Signalled by workflow id, so it reaches the species even after it continued-as-new. Awaited, never sent
    // in the workflow task that completes the sample: the server would drop it (docs/architecture.md §4).
    if (told) return outcome;
    try {
      await CancellationScope.nonCancellable(() => this.species.signal(sampleFinishedSignal, outcome));
    } catch (err) {
      if (!targetClosed(err, this.input.speciesWorkflowId)) throw err;
    }
    return outcome;
  }
}
