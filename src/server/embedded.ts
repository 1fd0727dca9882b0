/**
 * The embedded Temporal default: `temporal server start-dev` with a SQLite file under <outputDir>/.temporal/,
 * the search attributes registered, the Web UI on and retention raised. Its state file survives crashes:
 * starting again on the same file continues every running workflow. A server left running by an earlier
 * `fetchquant run` (recorded in server.json) is attached to rather than started twice.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { daysDuration } from './duration.js';
import { EnvironmentError } from '../failures.js';
import { SEARCH_ATTRIBUTE_NAMES } from '../search-attributes.js';
import { findTemporalCli, TEMPORAL_INSTALL_HINT } from './temporal-cli.js';
import { processStartTime } from '../run-lease.js';

export interface EmbeddedServerOptions {
  stateDir: string;
  /** gRPC port; 0 = the default 7233 if free, else any free port */
  port?: number;
  /** Web UI port; 0 = the gRPC port + 1000 if free, else any free port */
  uiPort?: number;
  /** HTTP API and metrics ports; 0 = any free port */
  httpPort?: number;
  metricsPort?: number;
  namespace?: string;
  retentionDays?: number;
  /** extra `--dynamic-config-value` pairs, e.g. { 'limit.historyCount.suggestContinueAsNew': 500 } */
  dynamicConfig?: Record<string, unknown>;
  headless?: boolean;
  temporalPath?: string;
  /** who started it: `run` stops its own server when done, even after a crash; `server` keeps it */
  owner?: 'run' | 'server';
  /** SQLite pragmas for the state file; default {@link DEFAULT_SQLITE_PRAGMAS} */
  sqlitePragmas?: Record<string, string>;
  /** how a port not given is picked; default {@link freePort} (tests hand out a busy one) */
  pickPort?: () => Promise<number>;
}

/**
 * Write-ahead log, synced at checkpoints rather than at every commit. A killed worker, a killed server or
 * Ctrl-C lose nothing (the WAL is in the OS's page cache and replayed on open); only a power cut or kernel
 * crash can lose the last commits, which Temporal then re-runs as retried tasks (our steps are idempotent).
 * The default (rollback journal, fsync per commit) spent half the server's time in I/O wait.
 */
export const DEFAULT_SQLITE_PRAGMAS: Readonly<Record<string, string>> = { journal_mode: 'wal', synchronous: 'normal' };

/**
 * Task queues of one partition. The server's default is 4 (go.temporal.io/server common/dynamicconfig
 * shared_constants.go, GlobalDefaultNumTaskQueuePartitions), for spreading a queue over matching hosts; the
 * dev server is one process, where partitions only forward polls and tasks to the root partition.
 * B3 (2,000 in-memory samples; bench/results/experiments/README.md, session 15): server CPU per sample 5-8 %
 * lower, samples/s 3-5 % higher.
 *
 * Lowering the read partitions of a queue with tasks in partitions 1-3 strands them (nothing polls there,
 * and a workflow task has no schedule-to-start timeout). So a state file created before this setting, which
 * may hold such tasks, gets one write partition and keeps reading four until it is started afresh; a file
 * this code creates is marked (ONE_PARTITION_MARK) and reads one.
 */
export const ONE_PARTITION_MARK = 'one-partition';
export function partitionConfig(stateDir: string, dbExisted: boolean): Record<string, number> {
  const mark = join(stateDir, ONE_PARTITION_MARK);
  if (!dbExisted) {
    try {
      writeFileSync(mark, 'this state file was created with one partition per task queue (src/server/embedded.ts)\n');
    } catch {
      // A full disk: the server's own start says so. Unmarked, the next start reads four partitions, which is safe.
    }
  }
  const one = !dbExisted || existsSync(mark);
  return { 'matching.numTaskqueueWritePartitions': 1, 'matching.numTaskqueueReadPartitions': one ? 1 : 4 };
}

export interface EmbeddedServer {
  address: string;
  uiUrl: string | null;
  namespace: string;
  pid: number;
  /** true if this call started the process; false when it attached to a running one */
  started: boolean;
  dbFile: string;
  owner: 'run' | 'server';
  /**
   * true if this process answers for the server: it started it, or adopted one whose owning fetchquant
   * process is gone (killed with -9); such a server is stopped by its owner and never left behind. false:
   * a live `fetchquant run` or `fetchquant server` (ownerPid) owns it.
   */
  owned: boolean;
  /** the owning fetchquant process (this one when owned) */
  ownerPid: number | null;
  /** set when this process adopted a server whose owner (this pid) was gone */
  adoptedFrom?: number;
  /** what a restart on the same state file needs: the same ports, so connected clients and workers recover */
  restartOptions: EmbeddedServerOptions;
  stop(): Promise<void>;
}

interface ServerRecord {
  pid: number;
  address: string;
  uiUrl: string | null;
  namespace: string;
  owner?: 'run' | 'server';
  /** the fetchquant process that answers for the server, and its start time (src/run-lease.ts) */
  ownerPid?: number;
  ownerStart?: number | null;
  /** absent in records written before these ports could be chosen */
  httpPort?: number;
  metricsPort?: number;
}

function writeRecord(stateDir: string, record: ServerRecord): void {
  const tmp = join(stateDir, 'server.json.tmp');
  writeFileSync(tmp, JSON.stringify(record, null, 2));
  renameSync(tmp, join(stateDir, 'server.json'));
}

/** The owning fetchquant process still runs (same pid, same start time). Records without an owner pid: assumed alive. */
function ownerAlive(r: ServerRecord): boolean {
  if (!r.ownerPid) return true;
  if (r.ownerPid === process.pid) return true;
  if (!alive(r.ownerPid)) return false;
  const start = processStartTime(r.ownerPid);
  return r.ownerStart === undefined || r.ownerStart === null || start === null || start === r.ownerStart;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Wait until the frontend answers a real RPC, not just the TCP port. */
export async function waitForServer(address: string, namespace: string, timeoutMs: number, pid?: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (pid !== undefined && !alive(pid)) throw new EnvironmentError(`the Temporal dev server (pid ${pid}) exited during start-up`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 2000 });
      try {
        await conn.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await conn.close();
      }
    } catch (err) {
      lastErr = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new EnvironmentError(`the Temporal server at ${address} did not answer within ${timeoutMs} ms: ${(lastErr as Error)?.message}`);
}

async function raiseRetention(address: string, namespace: string, days: number): Promise<void> {
  const conn = await Connection.connect({ address });
  try {
    await conn.workflowService.updateNamespace({
      namespace,
      config: { workflowExecutionRetentionTtl: daysDuration(days) },
    });
  } finally {
    await conn.close();
  }
}

function readRecord(stateDir: string): ServerRecord | null {
  const file = join(stateDir, 'server.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ServerRecord;
  } catch {
    return null;
  }
}

function stopper(pid: number): () => Promise<void> {
  return async () => {
    if (!alive(pid)) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    // The dev server flushes SQLite on SIGTERM; give it time before insisting.
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  };
}

export async function startEmbeddedServer(opts: EmbeddedServerOptions): Promise<EmbeddedServer> {
  const namespace = opts.namespace ?? 'default';
  mkdirSync(opts.stateDir, { recursive: true });
  const dbFile = join(opts.stateDir, 'temporal.db');

  const prev = readRecord(opts.stateDir);
  if (prev && alive(prev.pid)) {
    try {
      await waitForServer(prev.address, prev.namespace, 5000);
      // A server whose owner was killed with -9 would be an orphan no command stops: adopt it. A `run`
      // server of a run that is gone is adopted by any later command that starts servers (as before).
      const adopt = !ownerAlive(prev) || ((prev.owner ?? 'run') === 'run' && !prev.ownerPid);
      const owner = adopt ? (opts.owner ?? 'run') : (prev.owner ?? 'run');
      const restartOptions = {
        ...opts,
        port: portOf(prev.address),
        uiPort: prev.uiUrl ? portOf(prev.uiUrl) : 0,
        httpPort: prev.httpPort ?? 0,
        metricsPort: prev.metricsPort ?? 0,
        headless: prev.uiUrl === null,
        namespace: prev.namespace,
        owner,
      };
      if (adopt) writeRecord(opts.stateDir, { ...prev, owner, ownerPid: process.pid, ownerStart: processStartTime(process.pid) });
      return {
        pid: prev.pid,
        address: prev.address,
        uiUrl: prev.uiUrl,
        namespace: prev.namespace,
        owner,
        owned: adopt,
        ownerPid: adopt ? process.pid : (prev.ownerPid ?? null),
        ...(adopt && prev.ownerPid && prev.ownerPid !== process.pid ? { adoptedFrom: prev.ownerPid } : {}),
        started: false,
        dbFile,
        restartOptions,
        stop: stopper(prev.pid),
      };
    } catch {
      // A stale pid that now belongs to something else: start our own.
    }
  }

  const temporal = opts.temporalPath ?? findTemporalCli();
  if (!temporal) throw new EnvironmentError(`no Temporal CLI found: ${TEMPORAL_INSTALL_HINT}`);

  // Ports are checked free, then bound by the server a moment later: another process may take one in
  // between (parallel runs, tests). A start that fails on a port we picked is tried again on fresh ones; one
  // that fails on a port the caller gave (`--port`, or a restart after a crash keeping its addresses) fails
  // with the server's log. The log names the port: "listen tcp 127.0.0.1:35013: bind: address already in use".
  const partitions = partitionConfig(opts.stateDir, existsSync(dbFile));
  const pinned = new Set([opts.port, opts.uiPort, opts.httpPort, opts.metricsPort].filter((p): p is number => Boolean(p)));
  const pick = opts.pickPort ?? freePort;
  let port = 0;
  let uiPort = 0;
  let httpPort = 0;
  let metricsPort = 0;
  let pid = 0;
  let address = '';
  for (let attempt = 1; ; attempt++) {
    port = opts.port || (attempt === 1 && (await portFree(7233)) ? 7233 : await pick());
    uiPort = opts.headless ? 0 : opts.uiPort || (attempt === 1 && (await portFree(port + 1000)) ? port + 1000 : await pick());
    httpPort = opts.httpPort || (await pick());
    metricsPort = opts.metricsPort || (await pick());
    const args = [
      'server', 'start-dev',
      '--db-filename', dbFile,
      '--ip', '127.0.0.1',
      '--port', String(port),
      '--http-port', String(httpPort),
      '--metrics-port', String(metricsPort),
      '--namespace', namespace,
      '--log-level', 'error',
    ];
    if (opts.headless) args.push('--headless');
    else args.push('--ui-port', String(uiPort));
    for (const name of SEARCH_ATTRIBUTE_NAMES) args.push('--search-attribute', `${name}=Keyword`);
    for (const [k, v] of Object.entries(opts.sqlitePragmas ?? DEFAULT_SQLITE_PRAGMAS)) args.push('--sqlite-pragma', `${k}=${v}`);
    for (const [k, v] of Object.entries({ ...partitions, ...opts.dynamicConfig })) args.push('--dynamic-config-value', `${k}=${JSON.stringify(v)}`);

    const logFile = join(opts.stateDir, 'server.log');
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
    const log = openSync(logFile, 'a');
    // Detached: Ctrl-C in the terminal must reach us first so we can stop the worker before the server.
    const child = spawn(temporal, args, { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    if (child.pid === undefined) throw new EnvironmentError(`could not start ${temporal}`);
    pid = child.pid;
    address = `127.0.0.1:${port}`;
    try {
      await waitForServer(address, namespace, 60_000, pid);
      await raiseRetention(address, namespace, opts.retentionDays ?? 30);
      break;
    } catch (err) {
      await stopper(pid)();
      const fresh = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(logStart) : '';
      const busy = /address already in use/i.test(fresh) ? [...fresh.matchAll(/listen tcp [^\s]*:(\d+): bind: address already in use/gi)].map((m) => Number(m[1])) : null;
      // busy: the ports the log names (none named: only a start with no port given is tried again)
      if (busy && attempt < 3 && (busy.length ? busy.every((p) => !pinned.has(p)) : pinned.size === 0)) continue;
      const known = await explainStartFailure(fresh, dbFile, opts.stateDir);
      if (known) throw new EnvironmentError(`${known}\n(server log: ${logFile})`);
      throw new EnvironmentError(`${(err as Error).message}\n--- ${logFile} ---\n${fresh.slice(-2000)}`);
    }
  }
  const uiUrl = opts.headless ? null : `http://127.0.0.1:${uiPort}`;
  const record: ServerRecord = { pid, address, uiUrl, namespace, owner: opts.owner ?? 'run', httpPort, metricsPort, ownerPid: process.pid, ownerStart: processStartTime(process.pid) };
  writeRecord(opts.stateDir, record);
  const restartOptions = { ...opts, port, uiPort, httpPort, metricsPort, namespace, owner: record.owner ?? 'run' };
  return { pid, address, uiUrl, namespace, owner: record.owner ?? 'run', owned: true, ownerPid: process.pid, started: true, dbFile, restartOptions, stop: stopper(pid) };
}

/**
 * What the user can do about a start-up failure the server's log explains (SQLite's own messages, as the
 * Temporal CLI prints them: "file is not a database (26)", "database disk image is malformed (11)", "unable
 * to open database file (14)", "database or disk is full (13)"); null for anything else.
 */
/** Below this much free space a dev server's start-up failure is put down to the disk (SQLite needs room for its WAL). */
const NEEDS_FREE_TO_START = 16 * 1024 * 1024;

export async function explainStartFailure(log: string, dbFile: string, stateDir: string): Promise<string | null> {
  const full = /database or disk is full|no space left on device|SQLITE_FULL/i.exec(log);
  const free = await statfs(stateDir).then((f) => f.bavail * f.bsize, () => null);
  // On a full disk the server's log itself may stay empty: then the free space tells.
  if (full || (free !== null && free < NEEDS_FREE_TO_START)) {
    return (
      `the Temporal dev server cannot start: the disk holding ${stateDir} is full (${free === null ? 'free space unknown' : `${free} bytes free`}${full ? `; SQLite: "${full[0]}"` : ''}). ` +
      'Free space on that disk, then run the same command again: the batch is kept in its state file.'
    );
  }
  const damaged = /file is not a database|database disk image is malformed|unable to open database file|malformed database schema|disk I\/O error/i.exec(log);
  if (damaged) {
    return (
      `the Temporal dev server cannot read its state file ${dbFile}: it is damaged or unreadable (SQLite: "${damaged[0]}"). ` +
      `Move it aside (mv ${dbFile} ${dbFile}.damaged, and its -wal and -shm files if present) and run the same command again: ` +
      'a new batch starts, samples already published (abundance + provenance) are kept and skipped, and samples that were in flight start over.'
    );
  }
  return null;
}

function portOf(addressOrUrl: string): number {
  return Number(/:(\d+)\/?$/.exec(addressOrUrl)?.[1] ?? 0);
}

export interface ServerSupervisor {
  /** the server running now (a new process after each restart) */
  current(): EmbeddedServer;
  /** rejects with an EnvironmentError once a dead server could not be restarted */
  failed: Promise<never>;
  /** stop watching; the server itself keeps running */
  stop(): void;
}

export interface SuperviseHooks {
  /** the process is gone; a restart follows */
  onExit?: (pid: number) => void;
  onRestarted?: (server: EmbeddedServer) => void;
  everyMs?: number;
  /** restart attempts before giving up */
  attempts?: number;
}

/**
 * Keeps an embedded server alive: if its process dies (killed, OOM), start it again on the same SQLite file
 * and the same ports. Same address, so the worker's polls and the client's calls, which retry on
 * UNAVAILABLE, simply reconnect; the state file holds every workflow, timer and task, so the batch goes on.
 */
export function superviseEmbeddedServer(server: EmbeddedServer, hooks: SuperviseHooks = {}): ServerSupervisor {
  let current = server;
  let stopped = false;
  let giveUp!: (err: Error) => void;
  const failed = new Promise<never>((_, reject) => (giveUp = reject));
  failed.catch(() => undefined); // observed by whoever awaits it; never an unhandled rejection
  let timer: NodeJS.Timeout | null = null;
  // unref: watching must never keep a finished command alive
  const schedule = () => (timer = setTimeout(() => void tick(), hooks.everyMs ?? 500)).unref();
  const tick = async () => {
    if (stopped) return;
    if (alive(current.pid)) return void schedule();
    const dead = current.pid;
    hooks.onExit?.(dead);
    let lastErr: unknown;
    for (let attempt = 1; attempt <= (hooks.attempts ?? 3) && !stopped; attempt++) {
      try {
        const next = await startEmbeddedServer(current.restartOptions);
        if (stopped) {
          await next.stop();
          return;
        }
        current = next;
        hooks.onRestarted?.(next);
        schedule();
        return;
      } catch (err) {
        lastErr = err;
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    }
    if (!stopped) {
      giveUp(new EnvironmentError(`the Temporal dev server (pid ${dead}) exited and could not be restarted on ${current.dbFile}: ${(lastErr as Error)?.message ?? 'stopped'}`));
    }
  };
  schedule();
  return {
    current: () => current,
    failed,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
