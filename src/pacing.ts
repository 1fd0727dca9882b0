/**
 * The worker's side of the source pacer (src/workflows/pacer.ts, docs/pacing.md): a download permit per
 * download, token batches for API requests, and the source order for "spill to the next source when the
 * first is saturated". Round trips: one update per download (plus a signal to give it back and one per
 * lease renewal), one update per batch of API requests; never one per HTTP request.
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { PACER_WORKFLOW_ID, TASK_QUEUE } from './ids.js';
import { abortable, httpObservers, systemClock, type HttpEvent, type RequestGate } from './tools/http.js';
import { pacerMessages, type PaceLimits, type PaceSource, type PermitOutcome, type SourcePace } from './workflows/messages.js';
import { UNKNOWN_SPECIES_TASK_TIMEOUT_MS } from './workflows/options.js';

/**
 * Ceilings per source. Concurrency: ENA and NCBI document no cap on parallel downloads; 32 (above the default
 * --total-threads 24) leaves the batch's budget in charge until an archive pushes back
 * (FETCHQUANT_ENA_MAX_DOWNLOADS / FETCHQUANT_SRA_MAX_DOWNLOADS). Request rate: what each
 * archive documents for its API, as in rateDefaults (src/tools/http.ts): ENA 50/s, NCBI 3/s (10 with a key).
 */
export function paceDefaults(env: Record<string, string | undefined> = process.env, rates: { ena: number; sra: number }): Record<PaceSource, PaceLimits> {
  const pick = (name: string, fallback: number) => {
    const v = Number(env[name]);
    return env[name] !== undefined && env[name] !== '' && Number.isInteger(v) && v > 0 ? v : fallback;
  };
  return {
    ena: { maxConcurrency: pick('FETCHQUANT_ENA_MAX_DOWNLOADS', 32), maxRatePerSec: rates.ena },
    sra: { maxConcurrency: pick('FETCHQUANT_SRA_MAX_DOWNLOADS', 32), maxRatePerSec: rates.sra },
  };
}

/** What a download met, collected from the HTTP client's events in the download's async context. */
export class OutcomeRecorder {
  readonly outcome: PermitOutcome = { throttled: 0, serverErrors: 0, stalled: false };
  on(ev: HttpEvent): void {
    if (ev.status === 429) {
      this.outcome.throttled++;
      if (ev.retryAfterMs != null) this.outcome.retryAfterMs = Math.max(this.outcome.retryAfterMs ?? 0, ev.retryAfterMs);
    } else if ((ev.status !== undefined && ev.status >= 500) || ev.network) this.outcome.serverErrors++;
  }
}

export interface PacerClientOptions {
  client: Client;
  holder: string;
  limits: Record<PaceSource, PaceLimits>;
  /** permit lease; renewed every third of it while the download runs */
  leaseSec?: number;
  /** most API tokens asked for per round trip */
  tokenBatch?: number;
  /**
   * How long an update keeps being retried while the server answers that it failed (default
   * UPDATE_RETRY_MS). Time, not a count: what it waits out is a pacer task stuck on a killed worker.
   */
  updateRetryMs?: number;
  /** longest pause between two tries of an update (default 2 s) */
  updateBackoffMaxMs?: number;
  /**
   * Aborted when this process's worker begins to shut down. The pacer runs on this task queue, and a draining
   * worker processes no new workflow task, so an update asked then is never answered: a local activity
   * waiting on one held Ctrl-C up to its timeout (2 minutes measured). From then on no update waits.
   */
  stopping?: AbortSignal;
}

/**
 * Default of PacerClientOptions.updateRetryMs. A worker killed while it held the pacer's workflow task leaves
 * the pacer unanswered until that task times out (UNKNOWN_SPECIES_TASK_TIMEOUT_MS, 30 s) and a worker
 * replays it; meanwhile every update fails ("Workflow Update failed"). 21 tries with backoff lasted ~35 s,
 * and the crash test's kills made it give up under load: the download, then its sample, failed for it.
 * Six task timeouts' worth; the activity heartbeats meanwhile and its cancellation still stops the wait.
 */
export const UPDATE_RETRY_MS = 6 * UNKNOWN_SPECIES_TASK_TIMEOUT_MS;

/** How long order() waits for the pacer's answer before it keeps the configured order. */
export const ORDER_QUERY_MS = 3000;

/** A granted API token must be spent this soon (see token()). */
export const TOKEN_TTL_MS = 100;

export class PacerClient {
  private readonly leaseSec: number;
  private readonly batch: number;
  private readonly updateRetryMs: number;
  private readonly updateBackoffMaxMs: number;
  /** API tokens held per source, each usable until its expiry (ms): stale tokens would allow a burst */
  private readonly tokens: Record<PaceSource, number[]> = { ena: [], sra: [] };
  private readonly fetching: Partial<Record<PaceSource, Promise<void>>> = {};
  /** requests of this worker waiting for a token, per source: the size of the next batch */
  private readonly waiting: Record<PaceSource, number> = { ena: 0, sra: 0 };

  constructor(private readonly o: PacerClientOptions) {
    this.leaseSec = o.leaseSec ?? 120;
    this.batch = o.tokenBatch ?? 8;
    this.updateRetryMs = o.updateRetryMs ?? UPDATE_RETRY_MS;
    this.updateBackoffMaxMs = o.updateBackoffMaxMs ?? 2000;
  }

  private handle() {
    return this.o.client.workflow.getHandle(PACER_WORKFLOW_ID);
  }

  /** The pacer runs once per namespace; whoever needs it first starts it. */
  async ensureStarted(): Promise<void> {
    await this.o.client.workflow
      .start('sourcePacerWorkflow', {
        taskQueue: TASK_QUEUE,
        workflowId: PACER_WORKFLOW_ID,
        args: [{}],
        workflowIdConflictPolicy: 'USE_EXISTING',
        // replayed beside the batches' species after a restart (workflows/options.ts)
        workflowTaskTimeout: UNKNOWN_SPECIES_TASK_TIMEOUT_MS,
      })
      .catch((err: unknown) => {
        if (!/already/i.test((err as Error)?.message ?? '')) throw err;
      });
  }

  /** `signal`, or also the worker's shutdown (PacerClientOptions.stopping) when there is one. */
  private orStopping(signal?: AbortSignal): AbortSignal | undefined {
    if (!this.o.stopping) return signal;
    return signal ? AbortSignal.any([signal, this.o.stopping]) : this.o.stopping;
  }

  /** An update to the pacer, starting it if it is not there and retrying while it continues-as-new. */
  private async update<R>(call: () => Promise<R>, asked?: AbortSignal): Promise<R> {
    const since = Date.now();
    const signal = this.orStopping(asked);
    for (let i = 0; ; i++) {
      if (signal?.aborted) throw signal.reason;
      try {
        // The pacer runs on this task queue: while the worker shuts down nobody processes the update, so an
        // unanswered update must give way to the activity's cancellation (else shutdown waits for ever).
        return await abortable(call(), signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        const msg = (err as Error)?.message ?? '';
        if (err instanceof WorkflowNotFoundError || /not found/i.test(msg)) await this.ensureStarted();
        else if (!/completed|continued|closed|Update/i.test(msg) || Date.now() - since > this.updateRetryMs) throw err;
        await new Promise((r) => setTimeout(r, Math.min(this.updateBackoffMaxMs, 100 * 2 ** Math.min(i, 4))));
      }
    }
  }

  /**
   * Runs fn holding a download permit of `source`: waits for one (calling `waiting` so the activity can
   * heartbeat), renews its lease while fn runs, and gives it back with what fn met.
   */
  async withPermit<T>(source: PaceSource, fn: () => Promise<T>, opts: { signal?: AbortSignal; waiting?: (why: string) => void; label?: string } = {}): Promise<T> {
    let leaseId: string;
    for (;;) {
      const a = await this.update(
        () => this.handle().executeUpdate(pacerMessages.acquirePermit, { args: [{ source, holder: `${this.o.holder}${opts.label ? ` ${opts.label}` : ''}`, leaseSec: this.leaseSec, waitMs: 15_000, limits: this.o.limits[source] }] }),
        opts.signal,
      );
      if (a.granted) {
        leaseId = a.leaseId;
        break;
      }
      opts.waiting?.(a.reason);
      await systemClock.sleep(Math.min(a.retryInMs, 15_000), opts.signal);
    }
    const recorder = new OutcomeRecorder();
    const renew = setInterval(() => {
      void this.handle().signal(pacerMessages.renewPermits, { leaseIds: [leaseId], leaseSec: this.leaseSec }).catch(() => undefined);
    }, (this.leaseSec * 1000) / 3);
    try {
      return await httpObservers.run((ev) => recorder.on(ev), fn);
    } catch (err) {
      if (/no byte for|no response head/.test((err as Error)?.message ?? '')) recorder.outcome.stalled = true;
      throw err;
    } finally {
      clearInterval(renew);
      // Best effort: a lost release costs one lease period, never a leaked permit.
      await this.handle().signal(pacerMessages.releasePermit, { leaseId, source, outcome: recorder.outcome }).catch(() => undefined);
    }
  }

  /**
   * One API request's token from the source's shared window. Tokens are asked for in batches as large as
   * this worker's waiting requests, and each must be spent within TOKEN_TTL_MS of its grant (the pacer
   * counts grants over a window TOKEN_TTL_MS + a margin longer than a second), so the sum over every host
   * stays within the archive's per-second limit even though the requests leave from many places.
   */
  async token(source: PaceSource, signal?: AbortSignal): Promise<void> {
    this.waiting[source]++;
    try {
      for (;;) {
        if (signal?.aborted) throw signal.reason;
        const held = this.tokens[source];
        const now = Date.now();
        while (held.length > 0 && held[0]! <= now) held.shift();
        if (held.length > 0) {
          held.shift();
          return;
        }
        this.fetching[source] ??= (async () => {
          try {
            const want = Math.max(1, Math.min(this.batch, this.waiting[source]));
            const r = await this.update(
              () => this.handle().executeUpdate(pacerMessages.takeTokens, { args: [{ source, want, waitMs: 15_000, limits: this.o.limits[source] }] }),
              signal,
            );
            const t = Date.now();
            for (let i = 0; i < r.granted; i++) this.tokens[source].push(t + TOKEN_TTL_MS);
            if (r.granted === 0) await systemClock.sleep(r.retryInMs ?? 200, signal);
          } finally {
            delete this.fetching[source];
          }
        })();
        await this.fetching[source];
      }
    } finally {
      this.waiting[source]--;
    }
  }

  private lastReport: Record<PaceSource, number> = { ena: 0, sra: 0 };
  /** The gate of a source's API requests for the HTTP client: shared tokens, and 429s told to the pacer. */
  gate(source: PaceSource): RequestGate {
    return {
      acquire: (signal) => this.token(source, signal),
      report: (ev) => {
        if (ev.status !== 429) return;
        // one report per second per source and worker is enough: the pacer halves once per event anyway
        const now = Date.now();
        if (now - this.lastReport[source] < 1000) return;
        this.lastReport[source] = now;
        void this.handle().signal(pacerMessages.throttled, { source, retryAfterMs: ev.retryAfterMs ?? null }).catch(() => undefined);
      },
    };
  }

  /** Sources reordered so a saturated one comes after one that has a permit free (spill). */
  async order(sources: PaceSource[]): Promise<PaceSource[]> {
    if (sources.length < 2) return sources;
    let pace: SourcePace[];
    try {
      // A hint, not worth a wait: a query is answered by a workflow task of the pacer, which nobody runs while
      // this worker drains (it held Ctrl-C ~30 s) or while a killed worker holds the pacer's task.
      pace = await abortable(this.handle().query(pacerMessages.pace), this.orStopping(AbortSignal.timeout(ORDER_QUERY_MS)));
    } catch {
      return sources;
    }
    const now = Date.now();
    const saturated = (s: PaceSource) => {
      const p = pace.find((x) => x.source === s);
        // saturated = the archive pushed back: paused after a 429, or backed off below its ceiling and full.
      // Our own ceiling alone is no reason to fetch from a costlier source (SRA needs a conversion).
      return Boolean(p && ((p.pausedUntil && Date.parse(p.pausedUntil) > now) || (p.limit < p.maxLimit && p.inFlight + p.waiting >= p.limit)));
    };
    return [...sources.filter((s) => !saturated(s)), ...sources.filter(saturated)];
  }

  async pace(): Promise<SourcePace[]> {
    return this.handle().query(pacerMessages.pace);
  }
}

