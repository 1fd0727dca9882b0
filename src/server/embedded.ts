/**
 * The embedded Temporal default: `temporal server start-dev` with a SQLite file under <outputDir>/.temporal/,
 * the search attributes registered, the Web UI on and retention raised. Its state file survives crashes:
 * starting again on the same file continues every running workflow. A server left running by an earlier
 * `fetchquant run` (recorded in server.json) is attached to rather than started twice.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { SEARCH_ATTRIBUTE_NAMES } from '../search-attributes.js';
import { findTemporalCli, TEMPORAL_INSTALL_HINT } from './temporal-cli.js';

export interface EmbeddedServerOptions {
  stateDir: string;
  /** gRPC port; 0 = the default 7233 if free, else any free port */
  port?: number;
  uiPort?: number;
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
}

/**
 * Write-ahead log, synced at checkpoints rather than at every commit. A killed worker, a killed server or
 * Ctrl-C lose nothing (the WAL is in the OS's page cache and replayed on open); only a power cut or kernel
 * crash can lose the last commits, which Temporal then re-runs as retried tasks (our steps are idempotent).
 * The default (rollback journal, fsync per commit) spent half the server's time in I/O wait.
 */
export const DEFAULT_SQLITE_PRAGMAS: Readonly<Record<string, string>> = { journal_mode: 'wal', synchronous: 'normal' };

export interface EmbeddedServer {
  address: string;
  uiUrl: string | null;
  namespace: string;
  pid: number;
  /** true if this call started the process; false when it attached to a running one */
  started: boolean;
  dbFile: string;
  owner: 'run' | 'server';
  stop(): Promise<void>;
}

interface ServerRecord {
  pid: number;
  address: string;
  uiUrl: string | null;
  namespace: string;
  owner?: 'run' | 'server';
}

export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
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
      config: { workflowExecutionRetentionTtl: msToTs(`${days} days`) },
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
      return { ...prev, owner: prev.owner ?? 'run', started: false, dbFile, stop: stopper(prev.pid) };
    } catch {
      // A stale pid that now belongs to something else: start our own.
    }
  }

  const temporal = opts.temporalPath ?? findTemporalCli();
  if (!temporal) throw new EnvironmentError(`no Temporal CLI found: ${TEMPORAL_INSTALL_HINT}`);

  const port = opts.port || ((await portFree(7233)) ? 7233 : await freePort());
  const uiPort = opts.headless ? 0 : opts.uiPort || ((await portFree(port + 1000)) ? port + 1000 : await freePort());
  const args = [
    'server', 'start-dev',
    '--db-filename', dbFile,
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--http-port', String(await freePort()),
    '--metrics-port', String(await freePort()),
    '--namespace', namespace,
    '--log-level', 'error',
  ];
  if (opts.headless) args.push('--headless');
  else args.push('--ui-port', String(uiPort));
  for (const name of SEARCH_ATTRIBUTE_NAMES) args.push('--search-attribute', `${name}=Keyword`);
  for (const [k, v] of Object.entries(opts.sqlitePragmas ?? DEFAULT_SQLITE_PRAGMAS)) args.push('--sqlite-pragma', `${k}=${v}`);
  for (const [k, v] of Object.entries(opts.dynamicConfig ?? {})) args.push('--dynamic-config-value', `${k}=${JSON.stringify(v)}`);

  const log = openSync(join(opts.stateDir, 'server.log'), 'a');
  // Detached: Ctrl-C in the terminal must reach us first so we can stop the worker before the server.
  const child = spawn(temporal, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new EnvironmentError(`could not start ${temporal}`);
  const address = `127.0.0.1:${port}`;
  try {
    await waitForServer(address, namespace, 60_000, pid);
    await raiseRetention(address, namespace, opts.retentionDays ?? 30);
  } catch (err) {
    await stopper(pid)();
    const tail = existsSync(join(opts.stateDir, 'server.log')) ? readFileSync(join(opts.stateDir, 'server.log'), 'utf8').slice(-2000) : '';
    throw new EnvironmentError(`${(err as Error).message}\n--- ${join(opts.stateDir, 'server.log')} ---\n${tail}`);
  }
  const uiUrl = opts.headless ? null : `http://127.0.0.1:${uiPort}`;
  const record: ServerRecord = { pid, address, uiUrl, namespace, owner: opts.owner ?? 'run' };
  const tmp = join(opts.stateDir, 'server.json.tmp');
  writeFileSync(tmp, JSON.stringify(record, null, 2));
  renameSync(tmp, join(opts.stateDir, 'server.json'));
  return { ...record, owner: record.owner ?? 'run', started: true, dbFile, stop: stopper(pid) };
}
