/**
 * This machine's fetchquant state: `$FETCHQUANT_STATE_DIR`, else `~/.fetchquant`; and the records workers
 * keep there of work in progress (`<dir>/<worker pid>-<...>.json`), so the next worker on the machine can
 * deal with what a worker killed with -9 left behind.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function stateRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.FETCHQUANT_STATE_DIR ?? join(homedir(), '.fetchquant');
}

/** True while a process with this pid exists (EPERM: it exists, but belongs to another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes `<dir>/<this pid>-<suffix>.json`; null when the state dir cannot be written (the record helps, it is not required). */
export function writeWorkerRecord(dir: string, suffix: string, record: object): string | null {
  try {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${process.pid}-${suffix}.json`);
    writeFileSync(file, JSON.stringify(record));
    return file;
  } catch {
    return null;
  }
}

/** Records in `dir` (names matching `pattern`) written by workers of this machine that are gone; `record` is null if unreadable. */
export function deadWorkerRecords<T>(dir: string, pattern: RegExp): { file: string; workerPid: number; record: T | null }[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => pattern.test(n));
  } catch {
    return [];
  }
  const out: { file: string; workerPid: number; record: T | null }[] = [];
  for (const name of names) {
    const workerPid = Number(name.split('-')[0]);
    if (workerPid === process.pid || pidAlive(workerPid)) continue;
    const file = join(dir, name);
    let record: T | null = null;
    try {
      record = JSON.parse(readFileSync(file, 'utf8')) as T;
    } catch {
      record = null;
    }
    out.push({ file, workerPid, record });
  }
  return out;
}
