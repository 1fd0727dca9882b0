/**
 * Runs external tools (kallisto, fasterq-dump, vdb-validate) the one safe way:
 * - argument arrays, never a shell;
 * - the child leads its own process group, so a timeout or a cancellation kills the whole tree
 *   (SIGTERM to -pgid, SIGKILL after a grace): the seed left children running when it killed a tool;
 * - every run has a timeout (kallisto spins forever on a corrupted .gz);
 * - only the tail of stdout/stderr is kept, so a chatty tool cannot fill the worker's memory.
 */
import { readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { FailureType } from '../failures.js';
import { deadWorkerRecords, stateRoot, writeWorkerRecord } from '../state-dir.js';

/** Debian packages that provide each tool, for "install it" messages (docs/architecture.md §6 exit 3). */
export const INSTALL_HINT: Record<string, string> = {
  kallisto: 'apt-get install -y kallisto',
  'fasterq-dump': 'apt-get install -y sra-toolkit',
  'vdb-validate': 'apt-get install -y sra-toolkit',
  'latf-load': 'apt-get install -y sra-toolkit',
  kar: 'apt-get install -y sra-toolkit',
};

/** The tool is not installed (or not on PATH) on this host. */
export class ToolMissingError extends Error {
  constructor(
    public readonly cmd: string,
    public readonly install: string,
  ) {
    super(`${cmd} is not installed or not on PATH; install it with: ${install}`);
    this.name = 'ToolMissingError';
  }
}

/** The tool exited non-zero (and the caller did not accept that code), or ran past its timeout. */
export class ToolFailedError extends Error {
  constructor(
    public readonly commandLine: string,
    public readonly exitCode: number | null,
    public readonly timedOut: boolean,
    public readonly stderrTail: string,
    detail: string,
  ) {
    super(`${commandLine}: ${detail}${stderrTail.trim() ? `; stderr: ${stderrTail.trim()}` : ''}`);
    this.name = 'ToolFailedError';
  }
}

export interface RunToolOptions {
  timeoutSec: number;
  cwd?: string;
  /** Aborting kills the process tree; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  env?: Record<string, string>;
  /** Called about every heartbeatMs while the tool runs (activities heartbeat from here). */
  onHeartbeat?: () => void;
  heartbeatMs?: number;
  /** Exit codes that are results, not failures (vdb-validate's 3, kallisto's 1 with outputs). Default [0]. */
  okExitCodes?: number[];
  /** Between SIGTERM and SIGKILL. Default 5 s: enough for a tool to remove its temp files. */
  killGraceMs?: number;
  /** Characters of each stream kept (the tail). Default 16 KiB. */
  tailChars?: number;
}

export interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** `kallisto quant -i /a b.idx` -> shell-readable, for messages and provenance only (never executed). */
export function formatCommand(cmd: string, args: string[]): string {
  return [cmd, ...args].map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

// Process groups still running, killed if the worker itself exits (Ctrl-C does not reach a detached group).
const liveGroups = new Set<number>();

/**
 * A worker killed with -9 runs no exit hook, and its detached tools run on, into the very directories the
 * retried step clears and fills again. So each running group is also recorded on disk, and the next worker
 * started on this machine kills the groups of dead workers (reapOrphanTools).
 */
export function toolGroupsDir(env = process.env): string {
  return join(stateRoot(env), 'tool-groups');
}

interface GroupRecord {
  workerPid: number;
  pgid: number;
  cmd: string;
}

function recordGroup(pgid: number, cmd: string): string | null {
  // An unwritable state dir costs only the reaping after a crash.
  return writeWorkerRecord(toolGroupsDir(), String(pgid), { workerPid: process.pid, pgid, cmd } satisfies GroupRecord);
}

/** argv[0] of a live process, from /proc (null where there is no /proc, or no such process). */
function commandOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? null;
  } catch {
    return null;
  }
}

/**
 * Kills the tool groups recorded by workers of this machine that are no longer alive, and forgets them.
 * A group is killed only if its leader still runs the recorded tool (a reused pid is left alone).
 */
export function reapOrphanTools(env = process.env): { pgid: number; cmd: string; workerPid: number }[] {
  const reaped: { pgid: number; cmd: string; workerPid: number }[] = [];
  for (const { file, workerPid, record: r } of deadWorkerRecords<GroupRecord>(toolGroupsDir(env), /^\d+-\d+\.json$/)) {
    // An unreadable record: nothing to verify, nothing killed.
    const running = r ? commandOf(r.pgid) : null;
    if (r && running !== null && basename(running) === basename(r.cmd)) {
      signalGroup(r.pgid, 'SIGKILL');
      reaped.push({ pgid: r.pgid, cmd: r.cmd, workerPid });
    }
    rmSync(file, { force: true });
  }
  return reaped;
}
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  });
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // ESRCH: the group is already gone.
  }
}

class Tail {
  private text = '';
  constructor(private readonly max: number) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > 2 * this.max) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text.length > this.max ? this.text.slice(-this.max) : this.text;
  }
}

export async function runTool(cmd: string, args: string[], opts: RunToolOptions): Promise<ToolResult> {
  if (!(opts.timeoutSec > 0)) throw new Error(`runTool ${cmd}: timeoutSec must be > 0 (got ${opts.timeoutSec})`);
  if (opts.signal?.aborted) throw opts.signal.reason ?? new Error(`runTool ${cmd}: cancelled before start`);
  const commandLine = formatCommand(cmd, args);
  const okCodes = opts.okExitCodes ?? [0];
  const tailChars = opts.tailChars ?? 16_384;
  const started = Date.now();
  const child = execa(cmd, args, {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    reject: false,
    buffer: false,
    stdin: 'ignore',
  });
  const out = new Tail(tailChars);
  const err = new Tail(tailChars);
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => err.push(d));

  const pgid = child.pid;
  let killedFor: 'timeout' | 'cancel' | null = null;
  let graceTimer: NodeJS.Timeout | undefined;
  const kill = (why: 'timeout' | 'cancel') => {
    if (killedFor || pgid === undefined) return;
    killedFor = why;
    signalGroup(pgid, 'SIGTERM');
    graceTimer = setTimeout(() => signalGroup(pgid, 'SIGKILL'), opts.killGraceMs ?? 5000);
  };
  const record = pgid !== undefined ? recordGroup(pgid, cmd) : null;
  if (pgid !== undefined) {
    installExitHook();
    liveGroups.add(pgid);
  }
  const timer = setTimeout(() => kill('timeout'), opts.timeoutSec * 1000);
  const onAbort = () => kill('cancel');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const beat = opts.onHeartbeat ? setInterval(opts.onHeartbeat, opts.heartbeatMs ?? 1000) : undefined;

  let result;
  try {
    result = await child;
  } finally {
    clearTimeout(timer);
    if (beat) clearInterval(beat);
    opts.signal?.removeEventListener('abort', onAbort);
    if (pgid !== undefined) {
      // Grandchildren the tool left behind die with it: nothing outlives the step that started it.
      signalGroup(pgid, 'SIGKILL');
      liveGroups.delete(pgid);
    }
    if (record) rmSync(record, { force: true });
    if (graceTimer) clearTimeout(graceTimer);
  }
  const durationMs = Date.now() - started;
  const stderr = err.toString();
  if ((result as { code?: string }).code === 'ENOENT') {
    throw new ToolMissingError(cmd, INSTALL_HINT[cmd] ?? `install ${cmd} and put it on PATH`);
  }
  if (killedFor === 'cancel') throw opts.signal?.reason ?? new ToolFailedError(commandLine, null, false, stderr, 'cancelled');
  if (killedFor === 'timeout') {
    throw new ToolFailedError(commandLine, null, true, stderr, `timed out after ${opts.timeoutSec} s; its process group was killed`);
  }
  const exitCode = result.exitCode;
  if (exitCode === undefined) {
    const why = result.signal ? `killed by ${result.signal}` : (result as { originalMessage?: string }).originalMessage ?? 'failed to run';
    throw new ToolFailedError(commandLine, null, false, stderr, why);
  }
  if (!okCodes.includes(exitCode)) throw new ToolFailedError(commandLine, exitCode, false, stderr, `exited with code ${exitCode}`);
  return { exitCode, stdout: out.toString(), stderr, durationMs };
}

const versions = new Map<string, Promise<string>>();

/** `0.48.0` for kallisto, `3.0.3` for sra-toolkit tools; cached per process (a host's tools do not change mid-run). */
export function toolVersion(cmd: string): Promise<string> {
  let v = versions.get(cmd);
  if (!v) {
    const args = cmd === 'kallisto' ? ['version'] : ['--version'];
    v = runTool(cmd, args, { timeoutSec: 30 }).then((r) => parseVersion(`${r.stdout}\n${r.stderr}`) ?? 'unknown');
    // A failure (tool missing) must not stick: the next call asks again after the user installs it.
    v.catch(() => versions.delete(cmd));
    versions.set(cmd, v);
  }
  return v;
}

/** First dotted version number in a tool's version banner. */
export function parseVersion(text: string): string | null {
  return /(\d+\.\d+(?:\.\d+)*)/.exec(text)?.[1] ?? null;
}

/**
 * Tool errors in the failure taxonomy: a missing tool is not retried (installing it is the fix), a failed
 * or timed-out tool is. Anything else (a cancellation, an ApplicationFailure already typed) passes through.
 */
export function toToolFailure(err: unknown, context: string): unknown {
  if (err instanceof ToolMissingError) {
    return ApplicationFailure.create({ type: FailureType.ToolMissing, message: `${context}: ${err.message}`, nonRetryable: true });
  }
  if (err instanceof ToolFailedError) {
    return ApplicationFailure.create({ type: FailureType.ToolFailed, message: `${context}: ${err.message}`, nonRetryable: false });
  }
  return err;
}
