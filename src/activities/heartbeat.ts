/**
 * Heartbeat and cancellation plumbing shared by the long file activities (convert, verify, index, quant).
 * Host activities run with a heartbeat timeout (workflows/options.ts), so anything that can take longer
 * than a few seconds — a tool, a gzip pass, waiting for a lock or a quant slot — must heartbeat, and
 * cancellation must reach the tool so a cancelled batch leaves no process behind.
 */
import { Context } from '@temporalio/activity';

export interface ActivityHooks {
  signal: AbortSignal;
  heartbeat: (details?: unknown) => void;
  /**
   * How often an activity that only waits (for a quant slot) heartbeats: half its heartbeat timeout. Each
   * heartbeat that reaches the server is a write there (~3 ms of a dev server's CPU in B5), and waiting
   * activities were most of them; a cancellation reaches a waiter this much later, which costs nothing.
   */
  idleBeatMs: number;
}

/** The current activity's hooks; outside an activity (plain unit use) a never-aborted signal and a no-op. */
export function activityHooks(): ActivityHooks {
  try {
    const ctx = Context.current();
    // A local activity has no heartbeat (the server never hears of it): nothing to send.
    if (ctx.info.isLocal) return { signal: ctx.cancellationSignal, heartbeat: () => undefined, idleBeatMs: 1000 };
    const timeout = ctx.info.heartbeatTimeoutMs;
    return { signal: ctx.cancellationSignal, heartbeat: (d?: unknown) => ctx.heartbeat(d), idleBeatMs: timeout ? Math.max(1000, timeout / 2) : 1000 };
  } catch {
    return { signal: new AbortController().signal, heartbeat: () => undefined, idleBeatMs: 1000 };
  }
}

/**
 * Runs fn while heartbeating every `ms` (the SDK throttles what actually reaches the server). `now`: beat once
 * at the start too. An activity's first heartbeat goes to the server at once (a write there), so a short call
 * that only needs cover should it hang passes `now: false`.
 */
export async function withHeartbeat<T>(hooks: ActivityHooks, fn: () => Promise<T>, ms = 1000, now = true): Promise<T> {
  if (now) hooks.heartbeat();
  const t = setInterval(() => hooks.heartbeat(), ms);
  try {
    return await fn();
  } finally {
    clearInterval(t);
  }
}

/** Info to the activity's log (the worker's log file); nothing outside an activity (unit use). */
export function logInfo(message: string): void {
  try {
    Context.current().log.info(message);
  } catch {
    /* not in an activity */
  }
}

/**
 * Joins `line` as a waiter made of `fields` and resolves when someone calls its `grant()`; meanwhile heartbeats
 * (`onWait` at once, then every `everyMs`). On the signal's abort it leaves the line and rejects with the reason.
 * The waiter is in the line when this returns (a promise's executor runs at once), so the caller may act on the
 * longer line before awaiting. The queues of quant slots (./quant.ts) and of the start gate (./start-gate.ts).
 */
export function waitInLine<W extends { grant: () => void }>(line: W[], fields: Omit<W, 'grant'>, signal: AbortSignal, onWait: () => void, everyMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const beat = setInterval(onWait, everyMs);
    const me = {
      ...fields,
      grant: () => {
        clearInterval(beat);
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
    } as W;
    const onAbort = () => {
      clearInterval(beat);
      const i = line.indexOf(me);
      if (i >= 0) line.splice(i, 1);
      reject(signal.reason);
    };
    onWait();
    signal.addEventListener('abort', onAbort, { once: true });
    line.push(me);
  });
}
