// A declared size no disk of the host can hold fails admission at once, naming sizes and the disk, instead of
// waiting for room that can never come while the sample holds its species' download slot.
import { afterAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { capacityBytesOf, createDiskActivities, DiskLedger, freeBytesOf } from '../../src/activities/disk.js';
import { act, cleanTempDirs, failureOf, quiet, tempDir } from './util.js';

afterAll(cleanTempDirs);

const GB = 1e9;

describe('admission of a size no disk can hold', () => {
  it('fails at once, not retried, saying what was declared and what the disk holds', async () => {
    const ledger = new DiskLedger();
    const acts = createDiskActivities({ ledger, hostId: 'h1', freeBytes: async () => 40 * GB, capacityBytes: async () => 100 * GB });
    const f = await failureOf(act(quiet(), acts.reserveDisk, { run: 'SRR1000009', dir: '/data/reads', bytes: 95 * GB, minFreeGb: 10 }));
    expect([f.type, f.nonRetryable]).toEqual(['InsufficientDisk', true]);
    expect(f.message).toBe('run SRR1000009 needs 95.0 GB on disk (sizes the archive declares) plus the 10 GB floor (--min-free-gb), but the disk under /data/reads on host h1 holds 100.0 GB in all: it can never be admitted');
    expect(ledger.inFlight()).toEqual([]);
    // What fits the disk but not its free space now still waits (granted: false), as before.
    expect((await act(quiet(), acts.reserveDisk, { run: 'SRR1000010', dir: '/data/reads', bytes: 50 * GB, minFreeGb: 10 })).granted).toBe(false);
  });

  it('measures the real disk: capacity is at least what is free', async () => {
    const dir = join(tempDir(), 'not', 'yet');
    const cap = await capacityBytesOf(dir);
    expect(cap).toBeGreaterThanOrEqual(await freeBytesOf(dir));
    const acts = createDiskActivities({ ledger: new DiskLedger(), hostId: 'h1' });
    const f = await failureOf(act(quiet(), acts.reserveDisk, { run: 'SRR1000011', dir, bytes: cap + 1, minFreeGb: 0 }));
    expect(f.type).toBe('InsufficientDisk');
  });
});
