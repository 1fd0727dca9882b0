// Disk ledger arithmetic, preflight, admission, the janitor (never an in-flight run), checkDone.
import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { bootId, LEASE_FILE, leaseState, processStartTime, takeLease, type Lease } from '../../src/run-lease.js';
import { createDiskActivities, DiskLedger, findOrphans, freeBytesOf, removeOrphans } from '../../src/activities/disk.js';
import { act, cleanTempDirs, failureOf, quiet, tempDir } from './util.js';

afterAll(cleanTempDirs);
const GB = 1e9;

describe('DiskLedger', () => {
  it('grow adds a share once per key, and a new reservation or a release forgets the shares', () => {
    const l = new DiskLedger();
    l.grow('SRR1', 'plain a', 50); // no reservation: nothing to grow
    expect(l.reservation('SRR1')).toBeUndefined();
    l.reserve('SRR1', '/d', 100, 1, 1e12);
    l.grow('SRR1', 'plain a', 50);
    l.grow('SRR1', 'plain a', 50);
    l.grow('SRR1', 'plain b', 30);
    expect(l.reservation('SRR1')!.bytes).toBe(180);
    l.reserve('SRR1', '/d', 100, 1, 1e12); // a retried admission: the plan's size again
    l.grow('SRR1', 'plain a', 50);
    expect(l.reservation('SRR1')!.bytes).toBe(150);
    l.release('SRR1');
    l.reserve('SRR1', '/d', 100, 1, 1e12);
    l.grow('SRR1', 'plain a', 50);
    expect(l.reservation('SRR1')!.bytes).toBe(150);
  });

  it('grants iff free - reserved(others) - bytes >= minFreeGb, idempotently per run', () => {
    const l = new DiskLedger();
    expect(l.reserve('SRR1000001', '/d', 50 * GB, 10, 100 * GB)).toEqual({ granted: true, freeBytes: 100 * GB, reservedBytes: 0, neededBytes: 50 * GB });
    // 100 - 50 - 41 = 9 < 10
    expect(l.reserve('SRR1000002', '/d', 41 * GB, 10, 100 * GB)).toEqual({ granted: false, freeBytes: 100 * GB, reservedBytes: 50 * GB, neededBytes: 41 * GB });
    // 100 - 50 - 40 = 10 >= 10: exactly at the floor is allowed
    expect(l.reserve('SRR1000002', '/d', 40 * GB, 10, 100 * GB).granted).toBe(true);
    // A retried reservation of a run that holds one is granted again, without counting itself.
    expect(l.reserve('SRR1000001', '/d', 50 * GB, 10, 60 * GB)).toEqual({ granted: true, freeBytes: 60 * GB, reservedBytes: 40 * GB, neededBytes: 50 * GB });
    expect(l.inFlight().sort()).toEqual(['SRR1000001', 'SRR1000002']);
    expect(l.reservedExcept('SRR1000009')).toBe(90 * GB);
    // Re-reserving with another size (the plan changed) replaces the run's reservation.
    l.reserve('SRR1000001', '/d', 20 * GB, 10, 60 * GB);
    expect(l.reservedExcept('SRR1000009')).toBe(60 * GB);
    l.release('SRR1000001');
    l.release('SRR1000001');
    expect(l.inFlight()).toEqual(['SRR1000002']);
    expect(l.reserve('SRR1000003', '/d', 49 * GB, 10, 100 * GB).granted).toBe(true);
  });
});

describe('disk activities', () => {
  const withFree = (free: number, ledger = new DiskLedger()) => createDiskActivities({ ledger, hostId: 'h1', freeBytes: async () => free });

  it('preflight: InsufficientDisk, not retried, saying free vs needed and where', async () => {
    const f = await failureOf(act(quiet(), withFree(3.25 * GB).preflightDisk, { dir: '/data/out', minFreeGb: 10 }));
    expect([f.type, f.nonRetryable]).toEqual(['InsufficientDisk', true]);
    expect(f.message).toBe('only 3.3 GB free under /data/out on host h1; --min-free-gb needs 10 GB');
    expect(await act(quiet(), withFree(20 * GB).preflightDisk, { dir: '/data/out', minFreeGb: 10 })).toEqual({ host: 'h1', freeBytes: 20 * GB });
  });

  it('preflight on the real disk measures the nearest existing ancestor of a dir not created yet', async () => {
    const acts = createDiskActivities({ ledger: new DiskLedger(), hostId: 'h1' });
    const dir = join(tempDir(), 'not', 'yet', 'there');
    const r = await act(quiet(), acts.preflightDisk, { dir, minFreeGb: 0 });
    expect(r.freeBytes).toBeGreaterThan(0);
    // Other processes write to the same disk meanwhile: the two readings agree, not to the byte.
    expect(Math.abs(r.freeBytes - (await freeBytesOf(dir)))).toBeLessThan(1 * GB);
    const f = await failureOf(act(quiet(), acts.preflightDisk, { dir, minFreeGb: 1e9 }));
    expect(f.type).toBe('InsufficientDisk');
  });

  it('reserveDisk admits against the ledger; a released reservation frees the room', async () => {
    const ledger = new DiskLedger();
    const acts = withFree(30 * GB, ledger);
    expect((await act(quiet(), acts.reserveDisk, { run: 'SRR1000001', dir: '/d', bytes: 15 * GB, minFreeGb: 10 })).granted).toBe(true);
    const waiting = await act(quiet(), acts.reserveDisk, { run: 'SRR1000002', dir: '/d', bytes: 15 * GB, minFreeGb: 10 });
    expect(waiting).toEqual({ granted: false, freeBytes: 30 * GB, reservedBytes: 15 * GB, neededBytes: 15 * GB });
    // the quant step releases a sample's reservation once its reads are no longer needed
    ledger.release('SRR1000001');
    expect((await act(quiet(), acts.reserveDisk, { run: 'SRR1000002', dir: '/d', bytes: 15 * GB, minFreeGb: 10 })).granted).toBe(true);
  });

  function readsDirWithRuns(): string {
    const readsDir = join(tempDir(), 'fastq');
    for (const [run, bytes] of [['SRR1000001', 100], ['SRR1000002', 200], ['SRR1000003', 300], ['SRR1000004', 400]] as const) {
      mkdirSync(join(readsDir, 'getfastq', run, 'tmp'), { recursive: true });
      writeFileSync(join(readsDir, 'getfastq', run, `${run}_1.fastq.gz.part`), Buffer.alloc(bytes));
      writeFileSync(join(readsDir, 'getfastq', run, 'tmp', 'x'), Buffer.alloc(1));
    }
    mkdirSync(join(readsDir, 'getfastq', 'notes'));
    writeFileSync(join(readsDir, 'getfastq', 'SRR1000005'), 'a file, not a run dir');
    writeFileSync(join(readsDir, 'keep.txt'), 'not under getfastq');
    return readsDir;
  }

  it('janitor below the threshold removes orphans only: never in-flight runs, ledger runs or foreign files', async () => {
    const readsDir = readsDirWithRuns();
    const ledger = new DiskLedger();
    ledger.reserve('SRR1000002', readsDir, 1, 0, 1e15);
    const acts = withFree(1 * GB, ledger);
    const g = (run: string) => join(readsDir, 'getfastq', run);
    const report = await act(quiet(), acts.janitorSweep, { readsDirs: [readsDir], autoCleanupThresholdGb: 5, inFlight: ['SRR1000001'], execute: true });
    expect(report).toEqual({
      host: 'h1', dir: readsDir, freeBytes: 1 * GB,
      removed: [g('SRR1000003'), g('SRR1000004')], freedBytes: 301 + 401,
      kept: [g('SRR1000001'), g('SRR1000002')],
    });
    expect(readdirSync(join(readsDir, 'getfastq')).sort()).toEqual(['SRR1000001', 'SRR1000002', 'SRR1000005', 'notes']);
    expect(existsSync(join(readsDir, 'keep.txt'))).toBe(true);
  });

  it('janitor above the threshold, or without execute, removes nothing but reports what it saw', async () => {
    const readsDir = readsDirWithRuns();
    const above = await act(quiet(), withFree(50 * GB).janitorSweep, { readsDirs: [readsDir], autoCleanupThresholdGb: 5, inFlight: [], execute: true });
    expect([above.removed, above.freedBytes, above.kept.length]).toEqual([[], 0, 4]);
    const dry = await act(quiet(), withFree(1 * GB).janitorSweep, { readsDirs: [readsDir], autoCleanupThresholdGb: 5, inFlight: [], execute: false });
    expect([dry.removed, dry.kept.length]).toEqual([[], 4]);
    expect(readdirSync(join(readsDir, 'getfastq')).filter((n) => n.startsWith('SRR100000') && n !== 'SRR1000005')).toHaveLength(4);
  });

  it('findOrphans / removeOrphans (fetchquant cleanup) skip in-flight runs', async () => {
    const readsDir = readsDirWithRuns();
    const orphans = await findOrphans([readsDir, join(readsDir, 'absent')], ['SRR1000001', 'SRR1000004']);
    expect(orphans.map((o) => [o.run, o.bytes])).toEqual([['SRR1000002', 201], ['SRR1000003', 301]]);
    expect(await removeOrphans(orphans)).toBe(502);
    expect(readdirSync(join(readsDir, 'getfastq')).sort()).toEqual(['SRR1000001', 'SRR1000004', 'SRR1000005', 'notes']);
  });

  it("janitor and cleanup never remove a run dir leased by a live process of this machine, whatever server it answers to", async () => {
    // Another worker of this machine (another batch, another server): this janitor's server and ledger know
    // nothing of its runs; only the lease it wrote into the run dir tells.
    const readsDir = readsDirWithRuns();
    const g = (run: string) => join(readsDir, 'getfastq', run);
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    const gone = spawn('true', [], { stdio: 'ignore' });
    await new Promise((r) => gone.once('exit', r));
    try {
      const start = processStartTime(other.pid!);
      expect(start).not.toBeNull();
      const lease = (run: string, l: Partial<Lease>) =>
        writeFileSync(join(g(run), LEASE_FILE), JSON.stringify({ pid: other.pid, startTime: start, bootId: bootId(), hostId: 'h1', takenAt: '', ...l }));
      lease('SRR1000001', {}); // live owner
      lease('SRR1000002', { pid: gone.pid }); // owner exited
      lease('SRR1000003', { startTime: start! - 1 }); // pid reused by another process: not the owner
      expect(leaseState(g('SRR1000001'))).toBe('live');
      expect(await findOrphans([readsDir], []).then((o) => o.map((x) => x.run))).toEqual(['SRR1000002', 'SRR1000003', 'SRR1000004']);
      const report = await act(quiet(), withFree(1 * GB).janitorSweep, { readsDirs: [readsDir], autoCleanupThresholdGb: 5, inFlight: [], execute: true });
      expect([report.removed, report.kept]).toEqual([[g('SRR1000002'), g('SRR1000003'), g('SRR1000004')], [g('SRR1000001')]]);
      expect(existsSync(join(g('SRR1000001'), 'SRR1000001_1.fastq.gz.part'))).toBe(true);
      // This process's own lease is live too; once its owner is gone the dir is an orphan like any other.
      expect(takeLease(g('SRR1000001'), 'h1')).toBe(true);
      expect(leaseState(g('SRR1000001'))).toBe('live');
      lease('SRR1000001', {});
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
      expect(leaseState(g('SRR1000001'))).toBe('dead');
      const after = await act(quiet(), withFree(1 * GB).janitorSweep, { readsDirs: [readsDir], autoCleanupThresholdGb: 5, inFlight: [], execute: true });
      expect(after.removed).toEqual([g('SRR1000001')]);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('checkDone needs both the abundance and the provenance file', async () => {
    const quantDir = tempDir();
    const acts = withFree(1);
    const run = 'SRR1000007';
    mkdirSync(join(quantDir, run));
    writeFileSync(join(quantDir, run, `${run}_abundance.tsv`), 'x');
    expect(await act(quiet(), acts.checkDone, { quantDir, run })).toBe(false);
    writeFileSync(join(quantDir, run, `${run}_fetchquant.json`), '{}');
    expect(await act(quiet(), acts.checkDone, { quantDir, run })).toBe(true);
    expect(await act(quiet(), acts.checkDone, { quantDir, run: '../x' })).toBe(false);
  });
});
