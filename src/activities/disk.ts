/**
 * Disk: preflight floor, download admission against in-flight reservations, the janitor, and "done?".
 * The ledger is per worker process: it holds the bytes promised to samples whose downloads this worker
 * admitted, so two samples never both count the same free gigabytes (docs/architecture.md §5.5).
 */
import { lstat, readdir, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { InsufficientDisk } from '../failures.js';
import { abundancePath, provenancePath } from '../ids.js';
import type { DiskGrant, JanitorReport } from '../types.js';
import type { Activities } from './contract.js';
import { leaseState } from '../run-lease.js';
import { existsSync } from 'node:fs';

/** Marks reads a config asked to keep after quant (keep_fastq / clean_fastq: no): never an orphan. */
export const KEPT_READS_MARK = '.fetchquant-kept';
const keptReads = (dir: string) => existsSync(join(dir, KEPT_READS_MARK));

const GB = 1e9;
const gb = (bytes: number) => (bytes / GB).toFixed(1);

export interface Reservation {
  dir: string;
  bytes: number;
  /** the floor the run was admitted against */
  minFreeGb: number;
}

export class DiskLedger {
  private readonly byRun = new Map<string, Reservation>();
  /** what grow() added to each run's reservation, by key: a retried step adds its share once */
  private readonly grownBy = new Map<string, Set<string>>();

  /**
   * Grants iff free - reservedExcept(run) - bytes >= minFreeGb. A run already holding a reservation is
   * granted again (a retried activity must not wait for its own bytes). freeBytes is measured now: bytes
   * already written by in-flight runs are in it, so it is conservative, never optimistic.
   */
  reserve(run: string, dir: string, bytes: number, minFreeGb: number, freeBytes: number): DiskGrant {
    const reservedBytes = this.reservedExcept(run);
    const neededBytes = Math.max(0, bytes);
    if (this.byRun.has(run)) {
      // The latest plan's size is the truth (a retry may have switched source, e.g. ENA -> SRA's 3x).
      this.byRun.set(run, { dir, bytes: neededBytes, minFreeGb });
      this.grownBy.delete(run);
      return { granted: true, freeBytes, reservedBytes, neededBytes };
    }
    const granted = freeBytes - reservedBytes - neededBytes >= minFreeGb * GB;
    if (granted) this.byRun.set(run, { dir, bytes: neededBytes, minFreeGb });
    return { granted, freeBytes, reservedBytes, neededBytes };
  }

  /**
   * Adds `bytes` to the run's reservation for `key` (e.g. a file kept plain), once per key until the run is
   * reserved or released again: an attempt retried on this worker does not add its share twice.
   */
  grow(run: string, key: string, bytes: number): void {
    const r = this.byRun.get(run);
    if (!r) return;
    const keys = this.grownBy.get(run) ?? new Set<string>();
    if (keys.has(key)) return;
    keys.add(key);
    this.grownBy.set(run, keys);
    r.bytes += Math.max(0, bytes);
  }

  /** What the run holds now, if this worker admitted it. */
  reservation(run: string): Reservation | undefined {
    return this.byRun.get(run);
  }

  release(run: string): void {
    this.byRun.delete(run);
    this.grownBy.delete(run);
  }

  reservedExcept(run: string): number {
    let sum = 0;
    for (const [r, v] of this.byRun) if (r !== run) sum += v.bytes;
    return sum;
  }

  /** Runs holding a reservation: their files are in flight and the janitor leaves them alone. */
  inFlight(): string[] {
    return [...this.byRun.keys()];
  }
}

/**
 * Free bytes of the filesystem holding dir, measured on its nearest existing ancestor (dir may not exist
 * yet). statfs's bavail (what `df` shows as Avail, i.e. without root's reserve) rather than a df-based package:
 * the same number without spawning `df` on every admission.
 */
export async function freeBytesOf(dir: string): Promise<number> {
  // statfs of dir itself first: a transfer asks once per MiB written, and its dir exists (one call, not two).
  const fs = await statfs(dir).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') throw err;
    return statfs(await nearestDir(dir));
  });
  return fs.bavail * fs.bsize;
}

/** dir itself when it is a directory, else its nearest existing ancestor. */
export async function nearestDir(dir: string): Promise<string> {
  let d = dir;
  while (!(await stat(d).then((s) => s.isDirectory(), () => false))) {
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  return d;
}

/**
 * Bytes the filesystem holding dir can ever give a non-root user: its size less root's reserve. A run that
 * needs more than this (above the floor) can never be admitted, however long it waits.
 */
export async function capacityBytesOf(dir: string): Promise<number> {
  const fs = await statfs(await nearestDir(dir));
  return (fs.blocks - fs.bfree + fs.bavail) * fs.bsize;
}

/** Bytes under a path, not following symlinks (a link out of the run dir is not ours to count). */
export async function bytesUnder(path: string): Promise<number> {
  const st = await lstat(path).catch(() => null);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  const entries = await readdir(path).catch(() => [] as string[]);
  let sum = 0;
  for (const e of entries) sum += await bytesUnder(join(path, e));
  return sum;
}

export interface Orphan {
  run: string;
  path: string;
  bytes: number;
}

/**
 * Every `<readsDir>/getfastq/<RUN>` directory. Only names that are run accessions count: anything else
 * under getfastq is not ours to judge, and symlinks are never followed.
 */
export async function listRunDirs(readsDirs: string[]): Promise<Orphan[]> {
  const out: Orphan[] = [];
  for (const readsDir of readsDirs) {
    const base = join(readsDir, 'getfastq');
    const names = await readdir(base).catch(() => [] as string[]);
    for (const run of names.sort()) {
      if (!RUN_ACCESSION.test(run)) continue;
      const path = join(base, run);
      const st = await lstat(path).catch(() => null);
      if (!st?.isDirectory()) continue;
      out.push({ run, path, bytes: await bytesUnder(path) });
    }
  }
  return out;
}

/**
 * Run dirs nobody will finish: not leased by a live process of this machine (src/run-lease.ts: any batch,
 * any server) and not in flight by `inFlight` (what one server knows of the host's samples).
 */
export async function findOrphans(readsDirs: string[], inFlight: Iterable<string>): Promise<Orphan[]> {
  const busy = new Set(inFlight);
  return (await listRunDirs(readsDirs)).filter((d) => !busy.has(d.run) && leaseState(d.path) !== 'live' && !keptReads(d.path));
}

/** Removes the given orphans; returns bytes freed. */
export async function removeOrphans(orphans: Orphan[]): Promise<number> {
  let freed = 0;
  for (const o of orphans) {
    await rm(o.path, { recursive: true, force: true });
    freed += o.bytes;
  }
  return freed;
}

export interface DiskDeps {
  ledger: DiskLedger;
  hostId: string;
  freeBytes?: (dir: string) => Promise<number>;
  capacityBytes?: (dir: string) => Promise<number>;
}

export function createDiskActivities(
  deps: DiskDeps,
): Pick<Activities, 'preflightDisk' | 'reserveDisk' | 'janitorSweep' | 'checkDone'> {
  const free = deps.freeBytes ?? freeBytesOf;
  return {
    async preflightDisk({ dir, minFreeGb }) {
      const freeBytes = await free(dir);
      if (freeBytes < minFreeGb * GB) {
        throw ApplicationFailure.create({
          type: InsufficientDisk,
          nonRetryable: true,
          message: `only ${gb(freeBytes)} GB free under ${dir} on host ${deps.hostId}; --min-free-gb needs ${minFreeGb} GB`,
        });
      }
      return { host: deps.hostId, freeBytes };
    },

    async reserveDisk({ run, dir, bytes, minFreeGb }) {
      // A declared size no disk here can hold would wait for admission forever: say so at once instead.
      const capacity = await (deps.capacityBytes ?? capacityBytesOf)(dir);
      if (bytes + minFreeGb * GB > capacity) {
        throw ApplicationFailure.create({
          type: InsufficientDisk,
          nonRetryable: true,
          message: `run ${run} needs ${gb(bytes)} GB on disk (sizes the archive declares) plus the ${minFreeGb} GB floor (--min-free-gb), but the disk under ${dir} on host ${deps.hostId} holds ${gb(capacity)} GB in all: it can never be admitted`,
        });
      }
      return deps.ledger.reserve(run, dir, bytes, minFreeGb, await free(dir));
    },

    async janitorSweep({ readsDirs, autoCleanupThresholdGb, inFlight, execute }): Promise<JanitorReport> {
      // The lowest free space across the dirs decides: one full disk is enough to need cleaning.
      let freeBytes = Number.POSITIVE_INFINITY;
      let lowDir = readsDirs[0] ?? '';
      for (const d of readsDirs) {
        const f = await free(d);
        if (f < freeBytes) [freeBytes, lowDir] = [f, d];
      }
      if (!Number.isFinite(freeBytes)) freeBytes = 0;
      const busy = new Set(inFlight);
      const report: JanitorReport = { host: deps.hostId, dir: lowDir, freeBytes, removed: [], freedBytes: 0, kept: [] };
      const below = readsDirs.length > 0 && freeBytes < autoCleanupThresholdGb * GB;
      for (const o of await listRunDirs(readsDirs)) {
        // The ledger and the lease are read at each removal, not once: a sample may have started since the
        // listing. A live lease is work of a live worker on this machine, maybe of another batch and server
        // that this janitor's server knows nothing of.
        const orphan = !busy.has(o.run) && !deps.ledger.inFlight().includes(o.run) && leaseState(o.path) !== 'live' && !keptReads(o.path);
        if (orphan && below && execute) {
          report.freedBytes += await removeOrphans([o]);
          report.removed.push(o.path);
        } else {
          report.kept.push(o.path);
        }
      }
      return report;
    },

    async checkDone({ quantDir, run }) {
      if (!RUN_ACCESSION.test(run)) return false;
      const isFile = (p: string) => stat(p).then((s) => s.isFile(), () => false);
      return (await isFile(abundancePath(quantDir, run))) && (await isFile(provenancePath(quantDir, run)));
    },
  };
}
