/**
 * Leases on run dirs: the host's own truth about which `<reads dir>/getfastq/<RUN>` is live work.
 *
 * A worker about to touch a run dir (download, convert, verify, quant, publish) writes `<runDir>/.lease`
 * naming itself: pid, the process's start time (from /proc) and the boot it started in. While that process
 * lives, the dir is in flight for every janitor on the machine, whatever Temporal server or batch the
 * janitor belongs to; once the process is gone (or the pid was reused by another process, or the machine
 * rebooted) the owner is provably dead and the dir is an orphan. The lease goes with the dir when the
 * sample deletes its reads.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from './state-dir.js';

export const LEASE_FILE = '.lease';

export interface Lease {
  pid: number;
  /** /proc/<pid>/stat field 22 (clock ticks since boot); null where /proc is not available */
  startTime: number | null;
  bootId: string | null;
  hostId: string;
  takenAt: string;
}

/** Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22), null if unknown. */
export function processStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

let cachedBootId: string | null | undefined;
export function bootId(): string | null {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId;
}

let self: Omit<Lease, 'hostId' | 'takenAt'> | undefined;
function selfIdentity(): Omit<Lease, 'hostId' | 'takenAt'> {
  self ??= { pid: process.pid, startTime: processStartTime(process.pid), bootId: bootId() };
  return self;
}

/** Writes (or takes over) the lease of an existing run dir for this process. Best effort: false if it cannot be written. */
export function takeLease(runDir: string, hostId: string): boolean {
  const lease: Lease = { ...selfIdentity(), hostId, takenAt: new Date().toISOString() };
  const tmp = join(runDir, `${LEASE_FILE}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, JSON.stringify(lease));
    renameSync(tmp, join(runDir, LEASE_FILE));
    return true;
  } catch {
    return false;
  }
}

export function readLease(runDir: string): Lease | null {
  try {
    const l = JSON.parse(readFileSync(join(runDir, LEASE_FILE), 'utf8')) as Lease;
    return typeof l.pid === 'number' ? l : null;
  } catch {
    return null;
  }
}

/** True while the process that took the lease runs: same pid, same start time, same boot. */
export function leaseOwnerAlive(l: Lease): boolean {
  if (l.bootId && bootId() && l.bootId !== bootId()) return false;
  if (l.pid === process.pid) return l.startTime === null || l.startTime === selfIdentity().startTime;
  if (!pidAlive(l.pid)) return false;
  if (l.startTime === null) return true;
  const now = processStartTime(l.pid);
  // No /proc entry although the pid answers: another user's process (EPERM) or no procfs: not provably dead.
  return now === null || now === l.startTime;
}

export type LeaseState = 'live' | 'dead' | 'none';

export function leaseState(runDir: string): LeaseState {
  const l = readLease(runDir);
  if (!l) return 'none';
  return leaseOwnerAlive(l) ? 'live' : 'dead';
}
