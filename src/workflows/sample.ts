/**
 * One run: claim a host -> skip if done -> resolve source -> index -> reserve disk -> download (+convert)
 * -> verify reads (frees the species' download slot) -> quant -> finalize -> delete reads.
 * Every file step runs on the claimed host's queue; if that host disappears the sample starts over elsewhere.
 *
 * Since patch FOLD_HOST_STEPS the host is claimed by a local activity and the short steps travel in two
 * round trips (prepareSample, publish) instead of six; histories started before it replay the old path.
 *
 * Since patch FAIL_LOUD a failed sample tells its species (sampleFinished, which also frees its slot)
 * and then ends Failed, so the Web UI's ExecutionStatus filter finds it; it no longer sends readsVerified
 * for reads it never verified.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
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
import type { ActivityOptions, RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities/contract.js';
import { DISK_FLOOR, FailureType, isRetryable, WORKER_LOST } from '../failures.js';
import { amalgkitFragment, hostQueue, runReadsDir, TASK_QUEUE } from '../ids.js';
import { SA } from '../search-attributes.js';
import type { DiskGrant, DownloadResult, LocalFile, Provenance, ReadSet, SampleInput, SampleOutcome, SampleStage, SourcePlan, StageRecord } from '../types.js';
import { HUMAN_LINE, failedLine, retryLine } from '../human.js';
import { attemptFailedSignal, readsVerifiedSignal, sampleFinishedSignal, stageQuery, type SampleStatus } from './messages.js';
import { hostActivityOptions, readCheckRetry, sharedActivityOptions } from './options.js';
import { targetClosed } from './signal.js';

/** Fewer round trips per sample: local claimHost, prepareSample and publish (see the header). */
export const FOLD_HOST_STEPS = 'fold-host-steps';
/** A failed sample ends its workflow Failed (after telling its species), and sends no readsVerified. */
export const FAIL_LOUD = 'failed-sample-fails';
/** The species' amalgkit settings (max_bp, keep reads, sources, amalgkit's -l/-s) reach the sample's steps. */
export const AMALGKIT_RUN_SETTINGS = 'amalgkit-run-settings';
/** A copy that stays bad at one source is fetched from the next configured source before the sample fails. */
export const FALLBACK_ON_BAD_COPY = 'fallback-on-bad-copy';

/** Failures that mean "this source's bytes are bad", as opposed to the run, the host or a tool. */
function isBadCopy(type: string | undefined): boolean {
  return type === FailureType.ChecksumMismatch || type === FailureType.TruncatedReads;
}

/** What the provenance says about steps.getfastq.max_bp (docs/amalgkit.md). */
function downsamplingRecord(maxBp: number, d: DownloadResult['downsampled'], plan: SourcePlan, bytesFetched: number): NonNullable<Provenance['downsampling']> {
  if (d) {
    return {
      maxBp,
      downsampled: true,
      reads: d.reads,
      bases: d.bases,
      bytesFetched,
      integrity:
        "the archive's md5 covers whole files and cannot be checked on a prefix; checked instead: every record whole (4 lines, @/+, sequence and quality of equal length), mates in step, the received bytes decompress as gzip, the written files pass the gzip test and read count, kallisto processed every read",
    };
  }
  return {
    maxBp,
    downsampled: false,
    bytesFetched,
    integrity: plan.source === 'sra' ? 'not applied: an SRA file is fetched whole; all its reads were quantified' : 'the run holds fewer bases than max_bp: fetched whole, md5 checked',
  };
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
  let e = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e;
}

function describe(err: unknown): { reason: string; type?: string } {
  const e = activityCause(err);
  if (e instanceof ApplicationFailure) return { reason: e.message, type: e.type ?? undefined };
  if (e instanceof TimeoutFailure) return { reason: `timed out (${String(e.timeoutType ?? 'timeout')})`, type: FailureType.ToolFailed };
  return { reason: (e as Error)?.message ?? String(e) };
}

export async function sampleWorkflow(input: SampleInput): Promise<SampleOutcome> {
  const { run } = input;
  let { options } = input;
  const shared = proxyActivities<Activities>({ taskQueue: TASK_QUEUE, ...sharedActivityOptions(options) });
  const status: SampleStatus = { run: run.run, stage: 'queued', host: null, restarts: 0, history: [], attempts: [] };
  setHandler(stageQuery, () => status);
  // Each failed activity attempt, as its worker reported it (the signal itself is the durable record).
  setHandler(attemptFailedSignal, (r) => void status.attempts!.push(r));
  const species = getExternalWorkflowHandle(input.speciesWorkflowId);

  const enter = (stage: SampleStage, extra: Partial<StageRecord> = {}, upsert = true) => {
    const now = new Date().toISOString();
    const last = status.history[status.history.length - 1];
    if (last && !last.endedAt) last.endedAt = now;
    status.stage = stage;
    status.history.push({ stage, host: status.host, startedAt: now, ...extra });
    if (upsert) upsertSearchAttributes([{ key: SA.SampleStage, value: stage }]);
  };
  const identity = [
    { key: SA.BatchId, value: input.batchId },
    { key: SA.Species, value: input.speciesId },
    { key: SA.RunAccession, value: run.run },
  ];
  const folded = patched(FOLD_HOST_STEPS);
  const ownRetries = patched(COUNT_WORK_FAILURES);
  let lostAttempts = 0;
  /**
   * One host step under its retry policy. Patched: one attempt per activity, retried here; attempts lost to
   * the worker are retried without counting, everything else as the policy says. Unpatched: the server retries.
   */
  const step = async <R>(opts: ActivityOptions, call: (o: ActivityOptions) => Promise<R>): Promise<R> => {
    if (!ownRetries) return call(opts);
    const policy = opts.retry ?? {};
    const once: ActivityOptions = { ...opts, retry: { maximumAttempts: 1 } };
    for (let failures = 0; ; ) {
      try {
        return await call(once);
      } catch (err) {
        const stepName = err instanceof ActivityFailure && err.activityType ? err.activityType : status.stage;
        if (isWorkerLost(err)) {
          lostAttempts++;
          const reason = describe(err).reason;
          log.warn('attempt lost with its worker; retrying without using a retry', {
            run: run.run,
            error: reason,
            [HUMAN_LINE]: retryLine(run.run, `${stepName} (worker lost, not counted)`, lostAttempts, null, status.host ?? '?', reason),
          });
          continue;
        }
        if (isCancellation(err) || isHostLost(err)) throw err;
        const inner = activityCause(err);
        if (inner instanceof ApplicationFailure && inner.type === DISK_FLOOR) {
          // Stopped at the disk floor with its bytes kept: wait for room as at admission, then resume.
          const was = status.stage;
          enter('waiting-for-disk', { error: inner.message });
          await sleep(Math.round(options.diskWaitSec * 1000));
          enter(was);
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
  };
  // Folded: the first claim comes first and all five search attributes go in one upsert (see the loop).
  if (!folded) upsertSearchAttributes(identity);
  enter('queued', {}, !folded);
  // The host is whichever worker runs this workflow task: it is alive now, which is all a claim needs.
  const local = proxyLocalActivities<Activities>({ startToCloseTimeout: '30 seconds' });
  let firstClaim = true;

  let slotReleased = false;
  /** the verified files of the current host attempt (memo + provenance) */
  let files: LocalFile[] = [];
  const releaseSlot = async (reads: number) => {
    if (slotReleased) return;
    slotReleased = true;
    try {
      await species.signal(readsVerifiedSignal, run.run, reads);
    } catch (err) {
      if (!targetClosed(err, input.speciesWorkflowId)) throw err;
    }
  };
  const finish = async (outcome: SampleOutcome): Promise<SampleOutcome> => {
    const last = status.history[status.history.length - 1];
    if (last && !last.endedAt) last.endedAt = new Date().toISOString();
    // What the Web UI shows without opening the history: outcome, verified files with md5, every stage and attempt.
    await upsertMemo({
      outcome,
      restarts: status.restarts,
      ...(ownRetries ? { lostAttempts } : {}),
      files: files.map((f) => ({ name: f.path.slice(f.path.lastIndexOf('/') + 1), bytes: f.bytes, md5: f.md5 })),
      stages: status.history.map((h) => ({ stage: h.stage, host: h.host, attempt: h.attempt, startedAt: h.startedAt, endedAt: h.endedAt, error: h.error })),
    });
    // Signalled by workflow id, so it reaches the species even after it continued-as-new.
    try {
      await CancellationScope.nonCancellable(() => species.signal(sampleFinishedSignal, outcome));
    } catch (err) {
      if (!targetClosed(err, input.speciesWorkflowId)) throw err;
    }
    return outcome;
  };

  // What the species' amalgkit config asks of this run (docs/amalgkit.md); samples of older plans have none.
  const ak = input.amalgkit && patched(AMALGKIT_RUN_SETTINGS) ? input.amalgkit : undefined;
  if (ak) options = { ...options, sources: ak.sources, sraServices: ak.sraServices };

  for (;;) {
    const { hostId } = folded ? await local.claimHost() : await shared.claimHost();
    status.host = hostId;
    if (folded && firstClaim) upsertSearchAttributes([...identity, { key: SA.SampleStage, value: 'queued' }, { key: SA.WorkerHost, value: hostId }]);
    else upsertSearchAttributes([{ key: SA.WorkerHost, value: hostId }]);
    firstClaim = false;
    const host = proxyActivities<Activities>(hostActivityOptions(hostQueue(hostId), options));
    const runDir = runReadsDir(input.readsDir, run.run);
    let plan: SourcePlan | undefined;
    files = [];
    let bytesFetched = 0;
    let downsampled: DownloadResult['downsampled'];
    /** the grant prepareSample already asked for (folded path), used by the first admission check */
    let firstGrant: DiskGrant | undefined;
    try {
      if (folded) {
        const prep = await step(
          { ...hostActivityOptions(hostQueue(hostId), options), summary: `done? resolve ${run.run} at ${options.sources.join(', ')}, index, reserve disk` },
          (o) => host.prepareSample.executeWithOptions(o, [{ run, options, quantDir: input.quantDir, readsDir: input.readsDir, indexPath: input.indexPath, fastaPaths: input.fastaPaths }]),
        );
        if (prep.done) {
          enter('skipped');
          return await finish({ run: run.run, speciesId: input.speciesId, state: 'skipped', host: hostId });
        }
        plan = prep.plan;
        firstGrant = prep.grant;
      } else {
        if (await host.checkDone({ quantDir: input.quantDir, run: run.run })) {
          enter('skipped');
          return await finish({ run: run.run, speciesId: input.speciesId, state: 'skipped', host: hostId });
        }
        plan = await shared.resolveSource.executeWithOptions(
          { ...sharedActivityOptions(options), taskQueue: TASK_QUEUE, summary: `resolve ${run.run} at ${options.sources.join(', ')}` },
          [{ run, options }],
        );
        await host.ensureIndex({ indexPath: input.indexPath, fastaPaths: input.fastaPaths, timeoutSec: options.processTimeoutSec });
      }
      let sourcePlan: SourcePlan = plan;
      /** what each source's copy did, when one turned out bad and the next source was asked */
      const badCopies: string[] = [];

      let reads: ReadSet | undefined;
      for (;;) {
        try {
          // A verification failure after a checksum-clean download, or a .sra that vdb-validate rejects,
          // means the local copy is bad: delete it and fetch again (complete, verified files are kept).
          for (let attempt = 1; !reads; attempt++) {
            // Admission: wait (never fail) until the host has room for this sample above the floor.
            for (let waited = 0; ; waited++) {
              const reserve = { run: run.run, dir: input.readsDir, bytes: sourcePlan.reserveBytes, minFreeGb: options.minFreeGb };
              const grant = firstGrant ?? (await step(hostActivityOptions(hostQueue(hostId), options), (o) => host.reserveDisk.executeWithOptions(o, [reserve])));
              firstGrant = undefined;
              if (grant.granted) break;
              if (waited === 0) enter('waiting-for-disk');
              await sleep(Math.round(options.diskWaitSec * 1000));
            }
            enter('downloading', { attempt });
            const planNow = sourcePlan;
            const dl = await step(
              { ...hostActivityOptions(hostQueue(hostId), options), summary: `${sourcePlan.source} ${sourcePlan.files.map((f) => f.name).join(' + ')}` },
              (o) =>
                host.download.executeWithOptions(o, [
                  { plan: planNow, runDir, stallTimeoutSec: options.stallTimeoutSec, ...(ak?.maxBp ? { maxBp: ak.maxBp } : {}), ...(ownRetries ? { minFreeGb: options.minFreeGb } : {}) },
                ]),
            );
            files = dl.files;
            bytesFetched += dl.bytesFetched;
            downsampled = dl.downsampled;
            try {
              let fastq = dl.files.map((f) => f.path);
              let layout = sourcePlan.layout;
              // Unpaired reads of a paired run: listed by ENA but not fetched (null), or counted by the conversion.
              // Data only (no new command), so recorded histories replay unchanged.
              let unpairedReads: number | null | undefined = sourcePlan.unpaired ? null : undefined;
              if (sourcePlan.source === 'sra') {
                enter('converting', { attempt });
                const conv = await step(
                  { ...hostActivityOptions(hostQueue(hostId), options), retry: folded ? readCheckRetry(options) : { maximumAttempts: 1 }, summary: `vdb-validate + fasterq-dump ${run.run}` },
                  (o) => host.convertSra.executeWithOptions(o, [{ run: run.run, sraPath: dl.files[0]!.path, runDir, threads: options.kallistoThreads, timeoutSec: options.processTimeoutSec }]),
                );
                fastq = conv.files;
                layout = conv.layout;
                unpairedReads = conv.unpairedReads;
              }
              // a download cut at max_bp holds exactly the reads it counted, whatever the archive's total
              const verifyInput = dl.downsampled
                ? { run: run.run, files: fastq, layout, expectedReads: dl.downsampled.reads }
                : { run: run.run, files: fastq, layout, expectedReads: sourcePlan.expectedReads, ...(unpairedReads !== undefined ? { unpairedReads } : {}) };
              reads = await step(
                { ...hostActivityOptions(hostQueue(hostId), options), retry: folded ? readCheckRetry(options) : { maximumAttempts: 1 }, summary: `gzip test + read counts ${run.run}` },
                (o) => host.verifyReads.executeWithOptions(o, [verifyInput]),
              );
            } catch (err) {
              if (isHostLost(err) || attempt > options.maxRetries || !isRetryable(describe(err).type)) throw err;
              const { reason } = describe(err);
              log.warn('local reads are bad; downloading again', { run: run.run, attempt, error: reason, [HUMAN_LINE]: retryLine(run.run, `${status.stage} (reads bad, downloading again)`, attempt, options.maxRetries + 1, hostId, reason) });
              await host.deleteReads({ run: run.run, runDir });
              await sleep(Math.round(options.retryInitialSec * 1000 * 2 ** (attempt - 1)));
            }
          }
          break;
        } catch (err) {
          // A copy that keeps failing integrity (md5 after the download's retries, gzip/count/vdb-validate after
          // maxRetries downloads) is this source's problem: the next source may hold a good one.
          const bad = describe(err);
          const rest = options.sources.slice(options.sources.indexOf(sourcePlan.source) + 1);
          if (isHostLost(err) || isCancellation(err) || !isBadCopy(bad.type)) throw err;
          // Asked only here, so a clean sample's history gets no marker; older histories replay the old failure.
          if (!patched(FALLBACK_ON_BAD_COPY)) throw err;
          badCopies.push(`${sourcePlan.source}: ${bad.reason}`);
          if (rest.length === 0) {
            if (badCopies.length === 1) throw err;
            throw ApplicationFailure.create({ type: bad.type, nonRetryable: true, message: `run ${run.run}: no source has a good copy: ${badCopies.join('; ')}` });
          }
          log.warn('the copy at this source stays bad; asking the next source', {
            run: run.run,
            source: sourcePlan.source,
            error: bad.reason,
            [HUMAN_LINE]: retryLine(run.run, `${status.stage} (bad copy at ${sourcePlan.source}, asking ${rest.join(', ')})`, badCopies.length, null, hostId, bad.reason),
          });
          await host.deleteReads({ run: run.run, runDir });
          files = [];
          try {
            const next = await shared.resolveSource.executeWithOptions(
              { ...sharedActivityOptions(options), taskQueue: TASK_QUEUE, summary: `resolve ${run.run} at ${rest.join(', ')} (bad copy at ${sourcePlan.source})` },
              [{ run, options: { ...options, sources: rest } }],
            );
            // The provenance says why these reads come from the second choice.
            sourcePlan = { ...next, notes: [...(next.notes ?? []), `bad copy before this one: ${badCopies.join('; ')}`] };
          } catch (e) {
            if (isCancellation(e)) throw e;
            throw ApplicationFailure.create({ type: bad.type, nonRetryable: true, message: `run ${run.run}: ${badCopies.join('; ')}; then ${describe(e).reason}` });
          }
          plan = sourcePlan;
        }
      }
      // Folded: the slot signal and the quant go out in the same workflow task, so quant does not wait a
      // round trip for the species to acknowledge the freed slot.
      const slotSignal = folded ? releaseSlot(reads.reads) : undefined;
      if (!folded) await releaseSlot(reads.reads);

      enter('quantifying');
      const verified = reads;
      const quanting = step({ ...hostActivityOptions(hostQueue(hostId), options), summary: `kallisto quant ${run.run} (${reads.layout}, ${reads.reads} reads)` }, (o) =>
        host.quant.executeWithOptions(o, [
          {
            run: run.run,
            indexPath: input.indexPath,
            reads: verified,
            quantDir: input.quantDir,
            // amalgkit quant's -l/-s unless the config gives fetchquant.fragment_length
            ...(ak && !ak.fragmentFromConfig
              ? { fragmentLength: amalgkitFragment(run.nominalLength).length, fragmentSd: amalgkitFragment(run.nominalLength).sd }
              : {
                  fragmentLength: run.nominalLength && verified.layout === 'single' && !ak ? run.nominalLength : input.fragmentLength,
                  fragmentSd: input.fragmentSd,
                }),
            kallistoThreads: options.kallistoThreads,
            quantThreads: options.quantThreads,
            timeoutSec: options.processTimeoutSec,
          },
        ]),
      );
      const [, quant] = await Promise.all([slotSignal, quanting]);
      const { tmpDir, ...quantRecord } = quant;
      const info = workflowInfo();
      enter('deleting');
      const provenance: Provenance = {
        run: run.run,
        species: input.speciesName,
        source: sourcePlan,
        files,
        reads: reads.reads,
        ...(reads.unpairedReads !== undefined ? { unpairedReads: reads.unpairedReads } : {}),
        quant: quantRecord,
        host: hostId,
        stages: status.history,
        restarts: status.restarts,
        workflowId: info.workflowId,
        runId: info.runId,
        tools: { kallisto: quant.kallistoVersion },
        finishedAt: new Date().toISOString(),
        ...(ak?.maxBp ? { downsampling: downsamplingRecord(ak.maxBp, downsampled, sourcePlan, bytesFetched) } : {}),
      };
      if (folded) {
        await step({ ...hostActivityOptions(hostQueue(hostId), options), summary: `publish ${run.run} (provenance + rename), delete its reads` }, (o) =>
          host.publish.executeWithOptions(o, [{ run: run.run, quantDir: input.quantDir, tmpDir, provenance, runDir, ...(ak?.keepReads ? { keepReads: true } : {}) }]),
        );
      } else {
        await host.finalize({ run: run.run, quantDir: input.quantDir, tmpDir, provenance });
        await host.deleteReads({ run: run.run, runDir, ...(ak?.keepReads ? { keep: true } : {}) });
      }
      enter('done');
      return await finish({
        run: run.run,
        speciesId: input.speciesId,
        state: 'done',
        host: hostId,
        source: sourcePlan.source,
        bytes: bytesFetched,
      });
    } catch (err) {
      if (isCancellation(err)) {
        // Cancelled batch: leave no partial files behind, then let the cancellation through.
        await CancellationScope.nonCancellable(async () => {
          await host.deleteReads({ run: run.run, runDir, quantDir: input.quantDir }).catch(() => undefined);
        });
        throw err;
      }
      if (isHostLost(err)) {
        status.restarts++;
        log.warn('host lost; restarting the sample on another host', { run: run.run, host: hostId, [HUMAN_LINE]: retryLine(run.run, `${status.stage} (host lost, restarting elsewhere)`, status.restarts, null, hostId, `no worker of ${hostId} took the task`) });
        enter('queued', { error: `host ${hostId} lost` });
        continue;
      }
      const { reason, type } = describe(err);
      // the step: the activity that failed, else the stage the sample was in
      const step = err instanceof ActivityFailure && err.activityType ? err.activityType : status.stage;
      enter('failed', { error: reason });
      log.warn('sample failed', { run: run.run, step, error: reason, [HUMAN_LINE]: failedLine(run.run, step, reason, type) });
      // Reads of a failed sample are useless and occupy the disk floor: remove them (best effort).
      await host.deleteReads({ run: run.run, runDir, quantDir: input.quantDir }).catch(() => undefined);
      const loud = patched(FAIL_LOUD);
      // The species frees the slot on sampleFinished as well; readsVerified would claim reads that never were.
      if (!loud) await releaseSlot(0);
      const outcome: SampleOutcome = {
        run: run.run,
        speciesId: input.speciesId,
        state: 'failed',
        reason,
        failureType: type,
        host: hostId,
        source: plan?.source,
        bytes: bytesFetched,
      };
      await finish(outcome);
      if (!loud) return outcome;
      // Told the species first (finish), then fail: the outcome rides in the failure's details.
      throw ApplicationFailure.create({ type: type ?? 'SampleFailed', message: `${run.run} failed while ${step}: ${reason}`, nonRetryable: true, details: [outcome] });
    }
  }
}
