// Writeback while a file grows (src/tools/background-sync.ts): a sync every `every` bytes, one at a time per
// file, at most two at once in a process (they wait in libuv's shared thread pool), and no error forgotten.
import { describe, expect, it } from '@jest/globals';
import { closeSync, fdatasync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackgroundSync } from '../../src/tools/background-sync.js';

/** A sync that ends when the test says. */
function heldSync() {
  const calls: Array<{ end: (err?: Error) => void }> = [];
  const sync = () =>
    new Promise<void>((res, rej) => {
      calls.push({ end: (err) => (err ? rej(err) : res()) });
    });
  return { calls, sync };
}
const settleMicrotasks = () => new Promise((r) => setImmediate(r));

describe('BackgroundSync', () => {
  it('syncs once `every` more bytes were written since the last sync began, never two at once for one file', async () => {
    const { calls, sync } = heldSync();
    const bg = new BackgroundSync(sync, new SharedArrayBuffer(4), 100);
    bg.wrote(99);
    expect(calls).toHaveLength(0);
    bg.wrote(100);
    expect(calls).toHaveLength(1);
    expect(bg.running).toBe(true);
    bg.wrote(500); // one under way: no second
    expect(calls).toHaveLength(1);
    calls[0]!.end();
    await settleMicrotasks();
    expect(bg.running).toBe(false);
    bg.wrote(150); // only 50 since the last began (at 100)
    expect(calls).toHaveLength(1);
    bg.wrote(200);
    expect(calls).toHaveLength(2);
    calls[1]!.end();
    expect(await bg.settle()).toBeNull();
  });

  it('at most two syncs at once across the files of a process (shared counter), the next when one ends', async () => {
    const shared = new SharedArrayBuffer(4);
    const { calls, sync } = heldSync();
    const files = [0, 1, 2].map(() => new BackgroundSync(sync, shared, 10));
    for (const f of files) f.wrote(10);
    expect(calls).toHaveLength(2);
    expect(files.map((f) => f.running)).toEqual([true, true, false]);
    calls[0]!.end();
    await settleMicrotasks();
    files[2]!.wrote(11); // tries again at its next write
    expect(calls).toHaveLength(3);
    expect(new Int32Array(shared)[0]).toBe(2);
    calls[1]!.end();
    calls[2]!.end();
    await Promise.all(files.map((f) => f.settle()));
    expect(new Int32Array(shared)[0]).toBe(0);
  });

  it('keeps the first error for settle(), even after later syncs succeed, and starts no more', async () => {
    const { calls, sync } = heldSync();
    const bg = new BackgroundSync(sync, new SharedArrayBuffer(4), 10);
    bg.wrote(10);
    calls[0]!.end(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await settleMicrotasks();
    bg.wrote(100);
    expect(calls).toHaveLength(1);
    expect((await bg.settle())?.message).toMatch(/EIO/);
  });

  it('syncs a real file as it grows; its bytes are all there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fq-bgsync-'));
    try {
      const path = join(dir, 'f');
      const fd = openSync(path, 'w');
      let syncs = 0;
      const bg = new BackgroundSync(
        () => new Promise<void>((res, rej) => fdatasync(fd, (e) => (syncs++, e ? rej(e) : res()))),
        new SharedArrayBuffer(4),
        1 << 16,
      );
      const chunk = Buffer.alloc(1 << 15, 'A');
      let size = 0;
      for (let i = 0; i < 64; i++) {
        size += writeSync(fd, chunk);
        bg.wrote(size);
        await settleMicrotasks();
      }
      expect(await bg.settle()).toBeNull();
      closeSync(fd);
      expect(syncs).toBeGreaterThan(0);
      expect(readFileSync(path).length).toBe(64 << 15);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
