/**
 * Where the words go. The terminal is for people: progress, one line per retry or failure, the summary.
 * Everything the Temporal SDK says (worker state, "Activity failed" with its stack, core's gRPC retries,
 * workflow log lines) goes to a log file under the output dir, named at the end of a run.
 * `FETCHQUANT_LOG_LEVEL` (TRACE, DEBUG, INFO, WARN, ERROR) sets what the file keeps (default INFO) and,
 * when set, also echoes SDK entries of that level and above to stderr, as before this file existed.
 *
 * A human line is a log entry whose metadata carries `HUMAN_LINE` (a string): workflow code (through
 * `log` of @temporalio/workflow, which is silent during replay) and activity interceptors mark the few
 * entries a person should see; the logger prints those to the terminal and keeps them in the file too.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { inspect } from 'node:util';
import type { Logger, LogLevel, LogMetadata } from '@temporalio/common';
import { HUMAN_LINE } from './human.js';

export { HUMAN_LINE };

const RANK: Record<LogLevel, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 };

export function parseLogLevel(v: string | undefined): LogLevel | null {
  const u = (v ?? '').trim().toUpperCase();
  return u in RANK ? (u as LogLevel) : null;
}

/** Keeps the entries it gets before the file is known (the output dir is known only once options resolve). */
export class FileLogger implements Logger {
  private fd: number | null = null;
  private buffered: string[] = [];
  path: string | null = null;
  /** prints a human line (the run command swaps this for its progress display) */
  terminal: (line: string) => void = (l) => process.stdout.write(`${l}\n`);

  constructor(
    readonly fileLevel: LogLevel = 'INFO',
    /** SDK entries at this level and above also go to stderr (null: none) */
    readonly echoLevel: LogLevel | null = null,
  ) {}

  /** Start writing to `path` (appending), flushing what was said before. */
  open(path: string): void {
    if (this.fd !== null) return;
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a');
    this.path = path;
    for (const l of this.buffered) writeSync(this.fd, l);
    this.buffered = [];
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const human = meta?.[HUMAN_LINE];
    if (typeof human === 'string') this.terminal(human);
    const rank = RANK[level] ?? RANK.INFO;
    const echo = this.echoLevel !== null && rank >= RANK[this.echoLevel] && typeof human !== 'string';
    if (rank < RANK[this.fileLevel] && !echo && typeof human !== 'string') return;
    const rest = meta ? Object.fromEntries(Object.entries(meta).filter(([k]) => k !== HUMAN_LINE)) : {};
    const said = typeof human === 'string' ? `${message}: ${human}` : message;
    const line = `${new Date().toISOString()} [${level}] ${said}${Object.keys(rest).length ? ` ${inspect(rest, { depth: 5, breakLength: Infinity })}` : ''}\n`;
    if (echo) process.stderr.write(line);
    if (rank < RANK[this.fileLevel] && typeof human !== 'string') return;
    if (this.fd !== null) writeSync(this.fd, line);
    else if (this.buffered.length < 10_000) this.buffered.push(line);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

let installed: FileLogger | null = null;

/** The logger the CLI installed in this process (null in tests that install their own). */
export function cliLogger(): FileLogger | null {
  return installed;
}

/**
 * Installs the SDK runtime with a FileLogger (core's own logs forwarded to it). Call once, before any
 * worker or native connection exists.
 */
export async function installCliLogging(env: NodeJS.ProcessEnv = process.env): Promise<FileLogger> {
  if (installed) return installed;
  const { Runtime, makeTelemetryFilterString } = await import('@temporalio/worker');
  const level = parseLogLevel(env.FETCHQUANT_LOG_LEVEL);
  const logger = new FileLogger(level ?? 'INFO', level);
  // Core logs its gRPC retries at WARN, dozens a second while a server restarts: the file keeps them only
  // when asked for (FETCHQUANT_LOG_LEVEL=WARN or lower keeps them; the default INFO file takes its errors).
  const core = level && RANK[level] <= RANK.WARN ? level : 'ERROR';
  try {
    Runtime.install({ logger, telemetryOptions: { logging: { forward: {}, filter: makeTelemetryFilterString({ core, other: 'ERROR' }) } } });
  } catch {
    // installed already in this process (main() called twice): keep that one
  }
  installed = logger;
  return logger;
}

/** `<dir>/fetchquant-<UTC time>-<pid>.log`: one file per process, sorted by time. */
export function logFileName(dir: string, what: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${dir}/${what}-${stamp}-${process.pid}.log`;
}
