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
}

/** The current activity's hooks; outside an activity (plain unit use) a never-aborted signal and a no-op. */
export function activityHooks(): ActivityHooks {
  try {
    const ctx = Context.current();
    return { signal: ctx.cancellationSignal, heartbeat: (d?: unknown) => ctx.heartbeat(d) };
  } catch {
    return { signal: new AbortController().signal, heartbeat: () => undefined };
  }
}

/** Runs fn while heartbeating every `ms` (the SDK throttles what actually reaches the server). */
export async function withHeartbeat<T>(hooks: ActivityHooks, fn: () => Promise<T>, ms = 1000): Promise<T> {
  hooks.heartbeat();
  const t = setInterval(() => hooks.heartbeat(), ms);
  try {
    return await fn();
  } finally {
    clearInterval(t);
  }
}
