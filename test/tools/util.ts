// Shared bits of the tools/activities tests: temp dirs, a quiet activity environment, failure capture.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';

const made: string[] = [];
export function tempDir(prefix = 'fq-tools-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
export async function cleanTempDirs(): Promise<void> {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

// The environment logs every failed activity at WARN; those failures are what the tests provoke.
export const quiet = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });

/** env.run with the activity's own types (its signature loses them). */
export function act<I, O>(env: MockActivityEnvironment, fn: (i: I) => Promise<O>, input: I): Promise<O> {
  return env.run(fn, input) as Promise<O>;
}

export async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected an ApplicationFailure, but the call succeeded');
}

export async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, but the call succeeded');
}

/** A pid is gone when /proc has no entry or only a zombie (PID 1 in a container may not reap it). */
export function pidGone(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return true;
  try {
    const state = readFileSync(stat, 'utf8').replace(/^.*\) /s, '').charAt(0);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

/** Polls until cond holds or `tries` x 100 ms pass; returns the final value (no timing is asserted). */
export async function eventually(cond: () => boolean, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

/** pids of live processes whose argv (from /proc) satisfies `match`: the tools a test started. */
export function livePids(match: (argv: string[]) => boolean): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (match(readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')) && !pidGone(Number(p))) pids.push(Number(p));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}
