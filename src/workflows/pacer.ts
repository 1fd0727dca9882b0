/**
 * The source pacer: one long-lived workflow per namespace (`fetchquant-pacer`) that every worker of every
 * host obeys, so what the archives see from us is paced in one place, not per process
 * (docs/pacing.md). Per source (ena, sra) it holds:
 * - a concurrency: how many downloads may run at that source at once. A download takes a *permit* (update
 *   `acquirePermit`, which waits in the pacer until one is free) and gives it back (signal `releasePermit`)
 *   with what it met: 429s (with Retry-After), 5xx, stalls. Permits are leases: a worker that dies stops
 *   renewing them (signal `renewPermits`) and they expire, so a crashed host leaks nothing for longer than
 *   one lease.
 * - a request rate (requests/s to the source's API): handed out as *token batches* (update `takeTokens`)
 *   that a worker spends locally, so the sum over all hosts stays under the rate at one round trip per
 *   batch, not per request.
 * Both adapt AIMD-style: halved on 429 (and the source paused for Retry-After, else a back-off step), on
 * 5xx and on stalls; raised by one permit after `limit` clean downloads in a row, and the rate by a
 * twentieth of its ceiling per clean release: slow to recover, quick to back off, like TCP.
 * The pacer continues-as-new (carrying leases and pace) before its history grows long.
 */
import { allHandlersFinished, condition, continueAsNew, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { Ticker } from './tick.js';
import { LONG_LIVED_MAX_EVENTS } from './options.js';
import { pacerMessages, type PaceSource, type PermitAnswer, type SourcePace } from './messages.js';

export interface PacerLease {
  id: string;
  source: PaceSource;
  holder: string;
  /** ms since the epoch (workflow time) */
  expiresAt: number;
}

interface PaceState {
  limit: number;
  maxLimit: number;
  /** requests per second granted to the API of this source */
  rate: number;
  maxRate: number;
  /** grant times (workflow ms) of API tokens within the last window */
  recent: number[];
  tokensGranted: number;
  pausedUntil: number;
  /** clean releases since the last change of limit */
  clean: number;
  throttled: number;
  serverErrors: number;
  stalls: number;
  granted: number;
  lastChange: string | null;
  /** when the pace last went down (workflow ms): reports of one event from many holders halve it once */
  lastDownAt: number;
  /** when downloads released with 5xx, network errors or stalls (workflow ms), within TROUBLE_WINDOW_MS */
  troubleAt?: number[];
}

export interface PacerState {
  sources: Partial<Record<PaceSource, PaceState>>;
  leases: PacerLease[];
  nextLease: number;
}

export interface PacerInput {
  /** continue-as-new past this many history events (tests lower it) */
  maxHistoryEvents?: number;
  state?: PacerState;
}

/** Longest an acquire waits inside the pacer before answering "not yet" (the caller asks again). */
export const MAX_WAIT_MS = 20_000;
/** Pause after a 429 that named no Retry-After. */
export const DEFAULT_PAUSE_MS = 5_000;
/** Reports within this long of a back-off are the same trouble: the pace is halved once. */
export const BACKOFF_EVERY_MS = 2_000;
/** 5xx/stalls of two downloads within this long back a source off; one download's alone does not. */
export const TROUBLE_WINDOW_MS = 30_000;
/** The API rate grows again only after this long without trouble. */
export const RECOVER_AFTER_MS = 5_000;
/** The rate never falls below this fraction of its ceiling. */
const MIN_RATE_FRACTION = 0.05;

/**
 * API tokens are counted over this window: a second, plus the time a worker may hold a token before
 * spending it (TOKEN_TTL_MS in src/pacing.ts, 100 ms) and 100 ms for the request to travel.
 */
export const TOKEN_WINDOW_MS = 1200;

function fresh(limits: { maxConcurrency: number; maxRatePerSec: number }): PaceState {
  return {
    limit: limits.maxConcurrency,
    maxLimit: limits.maxConcurrency,
    rate: limits.maxRatePerSec,
    maxRate: limits.maxRatePerSec,
    recent: [],
    tokensGranted: 0,
    pausedUntil: 0,
    clean: 0,
    throttled: 0,
    serverErrors: 0,
    stalls: 0,
    granted: 0,
    lastChange: null,
    lastDownAt: 0,
  };
}

/** Patch: the pacer continues-as-new past LONG_LIVED_MAX_EVENTS events (it was 5,000). */
export const PACER_SHORT_HISTORY = 'pacer-short-history';

export async function sourcePacerWorkflow(input: PacerInput = {}): Promise<void> {
  const state: PacerState = input.state ?? { sources: {}, leases: [], nextLease: 1 };
  // A shorter history is a cheaper whole replay (options.ts); a pacer started by an older release keeps
  // its threshold until it continues as new.
  const maxEvents = input.maxHistoryEvents ?? (patched(PACER_SHORT_HISTORY) ? LONG_LIVED_MAX_EVENTS : 5000);
  let draining = false;
  /** bumped on every change, so waiting acquires re-check */
  let version = 0;
  const queue: { ticket: number; source: PaceSource }[] = [];
  let nextTicket = 1;

  const now = () => Date.now();
  const expire = () => {
    const t = now();
    const before = state.leases.length;
    state.leases = state.leases.filter((l) => l.expiresAt > t);
    if (state.leases.length !== before) version++;
  };
  const inFlight = (s: PaceSource) => state.leases.filter((l) => l.source === s).length;
  const paceOf = (source: PaceSource, limits?: { maxConcurrency: number; maxRatePerSec: number }): PaceState => {
    let p = state.sources[source];
    if (!p) {
      p = fresh(limits ?? { maxConcurrency: 8, maxRatePerSec: source === 'sra' ? 3 : 50 });
      state.sources[source] = p;
    }
    if (limits && (limits.maxConcurrency !== p.maxLimit || limits.maxRatePerSec !== p.maxRate)) {
      // a worker with other ceilings (env) joined: the lower one wins, nobody is allowed more than it asks
      p.maxLimit = Math.min(p.maxLimit, limits.maxConcurrency);
      p.maxRate = Math.min(p.maxRate, limits.maxRatePerSec);
      p.limit = Math.min(p.limit, p.maxLimit);
      p.rate = Math.min(p.rate, p.maxRate);
    }
    return p;
  };
  const backOff = (p: PaceState, why: string) => {
    if (now() - p.lastDownAt < BACKOFF_EVERY_MS) return;
    p.lastDownAt = now();
    p.limit = Math.max(1, Math.floor(p.limit / 2));
    p.rate = Math.max(p.maxRate * MIN_RATE_FRACTION, p.rate / 2);
    p.clean = 0;
    p.lastChange = `${new Date(now()).toISOString()} down: ${why}`;
  };
  // a query must not change state: leases past their expiry are left out, not removed
  const view = (): SourcePace[] => {
    const t = now();
    const live = (s: PaceSource) => state.leases.filter((l) => l.source === s && l.expiresAt > t).length;
    return (Object.keys(state.sources) as PaceSource[]).map((source) => {
      const p = state.sources[source]!;
      return {
        source,
        limit: p.limit,
        maxLimit: p.maxLimit,
        inFlight: live(source),
        waiting: queue.filter((q) => q.source === source).length,
        ratePerSec: Math.round(p.rate * 100) / 100,
        maxRatePerSec: p.maxRate,
        pausedUntil: p.pausedUntil > t ? new Date(p.pausedUntil).toISOString() : null,
        throttled: p.throttled,
        serverErrors: p.serverErrors,
        stalls: p.stalls,
        granted: p.granted,
        tokensGranted: p.tokensGranted,
        lastChange: p.lastChange,
      };
    });
  };

  setHandler(pacerMessages.pace, view);

  setHandler(
    pacerMessages.acquirePermit,
    async (req): Promise<PermitAnswer> => {
      const p = paceOf(req.source, req.limits);
      const ticket = nextTicket++;
      queue.push({ ticket, source: req.source });
      const first = () => queue.find((q) => q.source === req.source)?.ticket === ticket;
      const free = () => {
        expire();
        return now() >= p.pausedUntil && inFlight(req.source) < p.limit;
      };
      const waitMs = Math.min(MAX_WAIT_MS, Math.max(0, req.waitMs ?? MAX_WAIT_MS));
      try {
        // FIFO per source; woken by releases, expiries (the timer) and the end of a pause.
        const deadline = now() + waitMs;
        for (;;) {
          if (draining) break;
          if (first() && free()) {
            const lease: PacerLease = { id: `${req.source}-${state.nextLease++}`, source: req.source, holder: req.holder, expiresAt: now() + req.leaseSec * 1000 };
            state.leases.push(lease);
            p.granted++;
            version++;
            return { granted: true, leaseId: lease.id, limit: p.limit, ratePerSec: p.rate, inFlight: inFlight(req.source) };
          }
          const left = deadline - now();
          if (left <= 0) break;
          const seen = version;
          // wake at the earliest of: a change, the pause's end, the next lease expiry, the deadline
          const nextExpiry = Math.min(...state.leases.filter((l) => l.source === req.source).map((l) => l.expiresAt), Infinity);
          const wake = Math.max(1, Math.min(left, p.pausedUntil > now() ? p.pausedUntil - now() : left, nextExpiry - now()));
          await condition(() => version !== seen || draining, wake);
        }
      } finally {
        const i = queue.findIndex((q) => q.ticket === ticket);
        if (i >= 0) queue.splice(i, 1);
        version++;
      }
      const paused = p.pausedUntil > now();
      return {
        granted: false,
        retryInMs: draining ? 500 : paused ? p.pausedUntil - now() : 1000,
        reason: draining ? 'pacer continuing as new' : paused ? `${req.source} paused after 429 until ${new Date(p.pausedUntil).toISOString()}` : `${req.source} saturated: ${inFlight(req.source)} of ${p.limit} permits in use`,
        limit: p.limit,
        inFlight: inFlight(req.source),
      };
    },
    {
      validator: (req) => {
        if (req?.source !== 'ena' && req?.source !== 'sra') throw new Error(`unknown source ${JSON.stringify(req?.source)}`);
        if (!(req.leaseSec > 0)) throw new Error(`leaseSec must be > 0, got ${JSON.stringify(req.leaseSec)}`);
      },
    },
  );

  setHandler(
    pacerMessages.takeTokens,
    async (req) => {
      const p = paceOf(req.source, req.limits);
      const deadline = now() + Math.min(MAX_WAIT_MS, Math.max(0, req.waitMs ?? MAX_WAIT_MS));
      for (;;) {
        const t = now();
        // a sliding window, as the archives count: at most floor(rate) grants in any TOKEN_WINDOW_MS
        p.recent = p.recent.filter((g) => g > t - TOKEN_WINDOW_MS);
        const room = Math.max(1, Math.floor(p.rate)) - p.recent.length;
        if (t >= p.pausedUntil && room > 0) {
          const n = Math.min(req.want, room);
          for (let i = 0; i < n; i++) p.recent.push(t);
          p.tokensGranted += n;
          // slow recovery of the rate while nothing went wrong for a while
          if (t - p.lastDownAt > RECOVER_AFTER_MS) p.rate = Math.min(p.maxRate, p.rate + (p.maxRate / 50) * n);
          return { granted: n, ratePerSec: p.rate };
        }
        const wait = p.pausedUntil > t ? p.pausedUntil - t : p.recent[0]! + TOKEN_WINDOW_MS - t + 1;
        if (draining || t >= deadline) return { granted: 0, ratePerSec: p.rate, retryInMs: Math.max(20, wait) };
        await condition(() => draining, Math.max(1, Math.min(deadline - t, Math.ceil(wait))));
      }
    },
    {
      validator: (req) => {
        if (req?.source !== 'ena' && req?.source !== 'sra') throw new Error(`unknown source ${JSON.stringify(req?.source)}`);
        if (!Number.isInteger(req.want) || req.want < 1) throw new Error(`want must be a whole number >= 1, got ${JSON.stringify(req.want)}`);
      },
    },
  );

  setHandler(pacerMessages.releasePermit, (r) => {
    const lease = state.leases.find((l) => l.id === r.leaseId);
    state.leases = state.leases.filter((l) => l.id !== r.leaseId);
    const source = lease?.source ?? r.source;
    if (!source) return;
    const p = paceOf(source);
    const o = r.outcome;
    p.throttled += o.throttled;
    p.serverErrors += o.serverErrors;
    if (o.stalled) p.stalls++;
    if (o.throttled > 0) {
      p.pausedUntil = Math.max(p.pausedUntil, now() + (o.retryAfterMs ?? DEFAULT_PAUSE_MS));
      backOff(p, `${o.throttled} x 429${o.retryAfterMs !== undefined ? ` (Retry-After ${Math.round(o.retryAfterMs / 1000)} s)` : ''}`);
    } else if (o.serverErrors > 0 || o.stalled) {
      // one download's trouble is often that run's (a bad file, a reset): the source backs off when a second
      // download reports trouble within TROUBLE_WINDOW_MS
      const t = now();
      p.troubleAt = [...(p.troubleAt ?? []).filter((x) => x > t - TROUBLE_WINDOW_MS), t];
      if (p.troubleAt.length >= 2) backOff(p, o.stalled ? 'stalls' : `5xx/network errors from ${p.troubleAt.length} downloads`);
    } else if (lease) {
      // additive increase: one more permit after `limit` clean downloads; the rate by 1/20 of its ceiling
      p.rate = Math.min(p.maxRate, p.rate + p.maxRate / 20);
      if (++p.clean >= p.limit && p.limit < p.maxLimit) {
        p.limit++;
        p.clean = 0;
        p.lastChange = `${new Date(now()).toISOString()} up: ${p.limit} permits after clean downloads`;
      }
    }
    version++;
  });

  setHandler(pacerMessages.throttled, (r) => {
    const p = paceOf(r.source);
    p.throttled++;
    p.pausedUntil = Math.max(p.pausedUntil, now() + (r.retryAfterMs ?? DEFAULT_PAUSE_MS));
    backOff(p, `429 from the API${r.retryAfterMs != null ? ` (Retry-After ${Math.round(r.retryAfterMs / 1000)} s)` : ''}`);
    version++;
  });

  setHandler(pacerMessages.renewPermits, (r) => {
    const t = now();
    for (const l of state.leases) if (r.leaseIds.includes(l.id)) l.expiresAt = Math.max(l.expiresAt, t + r.leaseSec * 1000);
  });

  // Idle between events; wake now and then so expired leases free their permits even with nobody asking.
  const ticker = new Ticker(60_000);
  for (;;) {
    const info = workflowInfo();
    if (info.historyLength > maxEvents || info.continueAsNewSuggested) break;
    const seen = version;
    await ticker.wait(() => version !== seen);
    expire();
  }
  draining = true;
  version++;
  await condition(allHandlersFinished);
  await continueAsNew<typeof sourcePacerWorkflow>({ ...input, state });
}
