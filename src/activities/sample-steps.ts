/**
 * The sample's folded host steps (fewer round trips, fewer history events): `prepareSample` = checkDone ->
 * resolveSource -> ensureIndex -> one reserveDisk; `publish` = finalize -> deleteReads; and `quant` with a
 * `publish` part = quant -> finalize -> deleteReads, so a clean sample's last host step is its quant. Each
 * part is safe to repeat, so a retry of the whole step is too. Built from the single-step activities, for the
 * real and the fast set.
 *
 * Told by the step: a download (or conversion) that verified its reads, and a quant step that published, signal
 * the sample's species themselves (readsVerified, sampleFinished) when the sample asks (`tell`), and say so in
 * their result (`told`). The sample then sends neither signal: each one it sends costs its history two events
 * and a workflow task of its own when the server reports the signal delivered (src/workflows/sample.ts).
 * Both signals are safe to repeat (a retried step sends again): the species counts a run once.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Activities } from './contract.js';
import { activityHooks, logInfo, withHeartbeat } from './heartbeat.js';
import { WORKER_LOST } from '../failures.js';
import { runQuantTmpDir } from '../ids.js';
import { completeProvenance, downsamplingRecord } from '../provenance.js';
import type { ChainedQuant, DownloadResult, LocalFile, ProvenanceDraft, QuantAfter, QuantResult, ReadSet, SampleOutcome, StageRecord, Tell } from '../types.js';
import { readsVerifiedSignal, sampleFinishedSignal } from '../workflows/messages.js';

/**
 * Signals the species from a step. True: sent. False (the species has closed, or the server did not answer):
 * not sent, and the sample sends it itself as before, with its own handling of a closed species.
 */
export type TellSpecies = { readsVerified(to: Tell, run: string, reads: number): Promise<boolean>; sampleFinished(to: Tell, outcome: SampleOutcome): Promise<boolean> };

/** Through `client`, else the worker's own (the activity context's). */
export function tellSpecies(client?: Client): TellSpecies {
  const send = async (to: Tell, what: string, signal: (c: Client) => Promise<void>): Promise<boolean> => {
    try {
      // Heartbeating should the call hang (the client retries while the server is away), so the step does not
      // time out meanwhile; not at once: a signal takes milliseconds, and a first heartbeat is a server write.
      await withHeartbeat(activityHooks(), () => signal(client ?? Context.current().client), 1000, false);
      return true;
    } catch (err) {
      logInfo(`${what} to ${to.speciesWorkflowId}: not sent from the step, the sample sends it (${(err as Error)?.message ?? String(err)})`);
      return false;
    }
  };
  return {
    readsVerified: (to, run, reads) => send(to, `readsVerified ${run}`, (c) => c.workflow.getHandle(to.speciesWorkflowId).signal(readsVerifiedSignal, run, reads)),
    sampleFinished: (to, o) => send(to, `sampleFinished ${o.run}`, (c) => c.workflow.getHandle(to.speciesWorkflowId).signal(sampleFinishedSignal, o)),
  };
}

/** A download or conversion whose reads passed the check where they were written: tell the species (readsVerified). */
export async function tellVerified<R extends { verified?: ReadSet; told?: true }>(tell: TellSpecies, input: { tell?: Tell }, run: string, r: R): Promise<R> {
  if (!input.tell || !r.verified) return r;
  return (await tell.readsVerified(input.tell, run, r.verified.reads)) ? { ...r, told: true } : r;
}

/** The activity's cancellation signal, when there is an activity context (tests call steps without one). */
function cancelled(): boolean {
  try {
    return Context.current().cancellationSignal.aborted;
  } catch {
    return false;
  }
}

/** The draft's stages with the open one ended at `at`, and quantifying begun then (as the sample would record them). */
function quantifyingFrom(stages: StageRecord[], host: string, at: string): StageRecord[] {
  const closed = stages.map((s, i) => (i === stages.length - 1 && !s.endedAt ? { ...s, endedAt: at } : { ...s }));
  return [...closed, { stage: 'quantifying', host, startedAt: at }];
}

/**
 * The quant step run by the download or conversion that verified the reads and told the species, when the sample
 * asked (`quantAfter`: samples of `paths: 4`, src/workflows/sample.ts CHAIN_QUANT_PATHS): no activity task and no
 * workflow task of the sample between the reads and kallisto. The step fills in the draft what only it knows (the
 * reads, the files it wrote, the stage times, the downsampling record). Only after `told`: a species not told
 * would hold the download slot until quant ended. A quant failure does not fail the step: the reads are verified
 * and on disk, so the result says why (`chained.error`) and the sample quantifies them in a step of its own,
 * under its retry policy. A cancellation, or an attempt lost with its worker, is let through: the step stops.
 */
export async function quantAfter<R extends { verified?: ReadSet; told?: true }>(
  quant: Activities['quant'],
  input: { quantAfter?: QuantAfter },
  r: R,
  facts: { files?: LocalFile[]; downsampled?: DownloadResult['downsampled']; bytesFetched?: number } = {},
): Promise<R & { chained?: ChainedQuant }> {
  const after = input.quantAfter;
  if (!after || !r.verified || !r.told) return r;
  const verifiedAt = new Date().toISOString();
  const reads = r.verified;
  const draft = after.quant.publish.provenance;
  const bytes = (after.bytesFetchedBefore ?? 0) + (facts.bytesFetched ?? 0);
  const provenance: ProvenanceDraft = {
    ...draft,
    reads: reads.reads,
    ...(reads.unpairedReads !== undefined ? { unpairedReads: reads.unpairedReads } : {}),
    ...(facts.files ? { files: facts.files } : {}),
    stages: quantifyingFrom(draft.stages, draft.host, verifiedAt),
    ...(after.maxBp ? { downsampling: downsamplingRecord(after.maxBp, facts.downsampled, draft.source, bytes) } : {}),
  };
  const fragment = after.fragment[reads.layout];
  const told = after.quant.publish.tell;
  // the outcome the species is told: with the bytes this step fetched, which the sample learns only from its result
  const publish = { ...after.quant.publish, provenance, ...(told ? { tell: { ...told, outcome: { ...told.outcome, bytes } } } : {}) };
  try {
    const q = await quant({ ...after.quant, reads, fragmentLength: fragment.length, fragmentSd: fragment.sd, publish });
    return { ...r, chained: { verifiedAt, quant: q } };
  } catch (err) {
    if (err instanceof CancelledFailure || cancelled() || (err instanceof ApplicationFailure && err.type === WORKER_LOST)) throw err;
    const app = err instanceof ApplicationFailure ? err : null;
    logInfo(`quant ${after.quant.run} after its reads were verified failed; the sample quantifies them in a step of its own: ${(err as Error)?.message ?? String(err)}`);
    return { ...r, chained: { verifiedAt, error: { message: (err as Error)?.message ?? String(err), ...(app?.type ? { type: app.type } : {}), ...(app?.nonRetryable ? { nonRetryable: true } : {}) } } };
  }
}

type Parts = Pick<Activities, 'checkDone' | 'resolveSource' | 'ensureIndex' | 'reserveDisk' | 'quant' | 'finalize' | 'deleteReads'> & {
  /** the quant figures of a run published already (its provenance on disk), else null */
  publishedQuant(input: { quantDir: string; run: string }): Promise<Omit<QuantResult, 'tmpDir'> | null>;
};

export function createSampleSteps(parts: Parts, tell: TellSpecies = tellSpecies()): Pick<Activities, 'prepareSample' | 'publish' | 'quant'> {
  const publish: Activities['publish'] = async ({ run, quantDir, tmpDir, provenance, runDir, keepReads }) => {
    const { dir } = await parts.finalize({ run, quantDir, tmpDir, provenance });
    const { removedBytes } = await parts.deleteReads({ run, runDir, ...(keepReads ? { keep: true } : {}) });
    return { dir, removedBytes };
  };
  return {
    async prepareSample({ run, options, quantDir, readsDir, indexPath, fastaPaths, quick }) {
      // Archive answers and a first-time index build can take a while: keep the heartbeat going.
      return withHeartbeat(activityHooks(), async () => {
        if (await parts.checkDone({ quantDir, run: run.run })) return { done: true as const };
        // Quick (a local activity): no index build here, and no archive asked before the index is known to be there.
        if (quick && (await parts.ensureIndex({ indexPath, fastaPaths, timeoutSec: options.processTimeoutSec, onlyIfBuilt: true })).missing) return { done: false as const, deferred: 'index' as const };
        const plan = await parts.resolveSource({ run, options });
        if (!quick) await parts.ensureIndex({ indexPath, fastaPaths, timeoutSec: options.processTimeoutSec });
        const grant = await parts.reserveDisk({ run: run.run, dir: readsDir, bytes: plan.reserveBytes, minFreeGb: options.minFreeGb });
        return { done: false as const, plan, grant };
      });
    },
    publish,
    async quant(input) {
      const { publish: pub, ...quantInput } = input;
      if (!pub) return parts.quant(quantInput);
      const { run, quantDir } = input;
      // A sample reaches quant only when prepareSample found the run not done: done now means an earlier
      // attempt of this step published it (its worker died before reporting). Its reads may be gone: no
      // kallisto then, the figures come from its provenance, and publishing again changes nothing but the reads.
      const earlier = (await parts.checkDone({ quantDir, run })) ? await parts.publishedQuant({ quantDir, run }) : null;
      const q = earlier ? { ...earlier, tmpDir: runQuantTmpDir(quantDir, run) } : await parts.quant(quantInput);
      const { tmpDir, ...figures } = q;
      const provenance = completeProvenance(pub.provenance, figures, new Date().toISOString());
      const { dir, removedBytes } = await publish({ run, quantDir, tmpDir, provenance, runDir: pub.runDir, keepReads: pub.keepReads });
      const told = pub.tell ? await tell.sampleFinished(pub.tell, pub.tell.outcome) : false;
      return { ...q, published: { dir, removedBytes, ...(earlier ? { earlier: true as const } : {}), ...(told ? { told: true as const } : {}) } };
    },
  };
}
