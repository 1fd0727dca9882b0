/**
 * Issue 13 item 3: the disk floor (--min-free-gb) holds while a download writes, not only at admission.
 * On a real small filesystem (a 32 MiB tmpfs; skipped with the reason when mounting is not permitted): a
 * body with no declared size stops at the floor; another process filling the disk stops it too; a disk
 * that fills between two checks (ENOSPC) is said as such, not as "connection lost". Each time the message
 * names the dir and its free bytes, the good bytes stay in the .part, and the next attempt resumes from them.
 * And a Temporal server that cannot start on a full disk: exit 3 naming the disk.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { createDownloadActivities } from '../../src/activities/download.js';
import { DISK_FLOOR } from '../../src/failures.js';
import { HttpClient } from '../../src/tools/http.js';
import type { DownloadResult, SourcePlan } from '../../src/types.js';
import { failureOf, quietEnv } from './fixture.js';
import { CLI } from '../helpers/e2e.js';
import { eventually } from '../tools/util.js';

const MiB = 1 << 20;
/**
 * A real .fastq.gz of about `bytes` (stored deflate blocks, level 0, so its size is the FASTQ's): the
 * download gzip-tests and counts what it writes, so the body must be gzip all through. Deterministic, so a
 * prefix can be compared.
 */
function body(bytes: number): Buffer {
  let x = 12345;
  const recs: string[] = [];
  let n = 0;
  for (let r = 0; n < bytes - 4096; r++) {
    let seq = '';
    for (let i = 0; i < 100; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      seq += 'ACGT'[x >>> 29]!;
    }
    const rec = `@r${r}\n${seq}\n+\n${'I'.repeat(100)}\n`;
    recs.push(rec);
    n += rec.length;
  }
  return gzipSync(recs.join(''), { level: 0 });
}

function tryMount(dir: string, size: string): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `cannot mount a tmpfs here (${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()})`;
  }
}

describe('the disk floor holds during a download (real small filesystem)', () => {
  const root = mkdtempSync(join(tmpdir(), 'fq-floor-'));
  const disk = join(root, 'disk');
  mkdirSync(disk);
  let skip: string | null = null;
  let server: Server;
  let base = '';
  const data = body(24 * MiB);
  /** bytes per 10 ms tick; 0 = as fast as possible */
  let pace = 0;

  beforeAll(async () => {
    skip = tryMount(disk, '32m');
    if (skip) return;
    server = createServer((req, res) => {
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const from = m ? Number(m[1]) : 0;
      const sized = req.url?.startsWith('/sized');
      const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
      if (sized) headers['content-length'] = data.length - from;
      if (m) headers['content-range'] = `bytes ${from}-${data.length - 1}/${data.length}`;
      res.writeHead(m ? 206 : 200, headers);
      let at = from;
      const send = () => {
        if (at >= data.length || res.destroyed) return void res.end();
        const n = pace || 256 * 1024;
        const ok = res.write(data.subarray(at, Math.min(data.length, at + n)));
        at += n;
        if (pace) setTimeout(send, 10);
        else if (ok) setImmediate(send);
        else res.once('drain', send);
      };
      send();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    if (!skip) execFileSync('umount', ['-l', disk]);
    rmSync(root, { recursive: true, force: true });
  });

  const plan = (run: string, sized: boolean): SourcePlan => ({
    source: 'ena',
    run,
    layout: 'single',
    files: [{ url: `${base}/${sized ? 'sized' : 'chunked'}/${run}.fastq.gz`, name: `${run}.fastq.gz`, bytes: sized ? data.length : null, md5: createHash('md5').update(data).digest('hex'), mate: 0 }],
    expectedReads: null,
    reserveBytes: sized ? data.length : 0,
  });
  /** staleFree: a free-space reader that never sees the disk fill (the disk fills between two checks) */
  const dl = (p: SourcePlan, runDir: string, minFreeGb?: number, staleFree = false): Promise<DownloadResult> =>
    quietEnv().run(createDownloadActivities({ http: new HttpClient({ retries: 0 }), heartbeatEveryMs: 20, ...(staleFree ? { freeBytes: async () => 1e15 } : {}) }).download, {
      plan: p,
      runDir,
      stallTimeoutSec: 30,
      minFreeGb,
    });
  const free = (dir: string) => {
    const out = execFileSync('df', ['-B1', '--output=avail', dir], { encoding: 'utf8' }).trim().split('\n').pop()!;
    return Number(out);
  };
  const expectGoodPrefix = (file: string) => {
    const got = readFileSync(file);
    expect(got.length).toBeGreaterThan(0);
    expect(got.equals(data.subarray(0, got.length))).toBe(true);
    return got.length;
  };

  it('a body with no declared size stops at the floor, saying where and how much is free; it resumes from the bytes kept', async () => {
    if (skip) return console.warn(`skipped: ${skip}`);
    const runDir = join(disk, 'getfastq', 'SRR1300101');
    mkdirSync(runDir, { recursive: true });
    const floorGb = (16 * MiB) / 1e9;
    const f = await failureOf(dl(plan('SRR1300101', false), runDir, floorGb));
    expect(f.type).toBe(DISK_FLOOR);
    expect(f.message).toMatch(new RegExp(`stopped at the disk floor: ${runDir} has \\d+ bytes free, --min-free-gb ${floorGb} keeps ${16 * MiB}; \\d+ bytes kept to resume`));
    expect(f.message).not.toMatch(/connection lost|ENOSPC/);
    const kept = expectGoodPrefix(join(runDir, 'SRR1300101.fastq.gz.part'));
    // the floor held: never below it by more than the last chunk
    expect(free(disk)).toBeGreaterThan(16 * MiB - 1 * MiB);
    // room again (a lower floor): the next attempt asks only for the rest
    const r = await dl(plan('SRR1300101', false), runDir, 0);
    expect([r.resumedFromBytes, r.bytesFetched]).toEqual([kept, data.length - kept]);
    expect(readFileSync(join(runDir, 'SRR1300101.fastq.gz')).equals(data)).toBe(true);
    rmSync(runDir, { recursive: true });
  }, 60_000);

  it('another process filling the disk stops the transfer at the floor, good bytes kept, and it resumes once space returns', async () => {
    if (skip) return console.warn(`skipped: ${skip}`);
    const runDir = join(disk, 'getfastq', 'SRR1300102');
    mkdirSync(runDir, { recursive: true });
    pace = 64 * 1024; // ~6 MiB/s: the filler wins the race
    const filler = join(disk, 'filler.bin');
    try {
      const p = dl(plan('SRR1300102', true), runDir, (2 * MiB) / 1e9);
      // The disk fills once the transfer has written something (a fixed 300 ms was not always enough on a
      // loaded machine: the filler won before the first write and nothing was kept).
      const part = join(runDir, 'SRR1300102.fastq.gz.part');
      const written = () => (existsSync(part) ? statSync(part).size : 0);
      expect(await eventually(() => written() > 0)).toBe(true);
      try {
        writeFileSync(filler, Buffer.alloc(30 * MiB)); // ENOSPC once the disk is full: the filler keeps what it wrote
      } catch {
        // full
      }
      const f = await failureOf(p);
      expect(f.type).toBe(DISK_FLOOR);
      expect(f.message).toMatch(new RegExp(`(stopped at the disk floor|the disk is full): ${runDir} has \\d+ bytes free`));
      const kept = expectGoodPrefix(join(runDir, 'SRR1300102.fastq.gz.part'));
      expect(kept).toBeLessThan(data.length);
      // still below the floor: the next attempt does not even ask
      const again = await failureOf(dl(plan('SRR1300102', true), runDir, (2 * MiB) / 1e9));
      expect(again.message).toMatch(/waiting for the disk floor/);
      rmSync(filler);
      const r = await dl(plan('SRR1300102', true), runDir, (2 * MiB) / 1e9);
      expect([r.resumedFromBytes, r.bytesFetched]).toEqual([kept, data.length - kept]);
    } finally {
      pace = 0;
      rmSync(filler, { force: true });
      rmSync(runDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a disk that fills between two checks (ENOSPC) is reported as a full disk, not a lost connection', async () => {
    if (skip) return console.warn(`skipped: ${skip}`);
    const runDir = join(disk, 'getfastq', 'SRR1300103');
    mkdirSync(runDir, { recursive: true });
    const filler = join(disk, 'filler.bin');
    // leave ~8 MiB; the floor checks see a disk with room, so only ENOSPC can stop the 24 MiB body
    writeFileSync(filler, Buffer.alloc(free(disk) - 8 * MiB));
    try {
      const f = await failureOf(dl(plan('SRR1300103', true), runDir, 0, true));
      expect(f.type).toBe(DISK_FLOOR);
      expect(f.message).toMatch(new RegExp(`the disk is full: ${runDir} has \\d+ bytes free`));
      expect(f.message).not.toMatch(/connection lost/);
      expectGoodPrefix(join(runDir, 'SRR1300103.fastq.gz.part'));
    } finally {
      rmSync(filler, { force: true });
      rmSync(runDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a Temporal server that cannot start because the disk is full: exit 3 naming the disk', async () => {
    if (skip) return console.warn(`skipped: ${skip}`);
    const out = join(disk, 'out');
    mkdirSync(join(out, '.temporal'), { recursive: true });
    const filler = join(disk, 'filler.bin');
    try {
      writeFileSync(filler, Buffer.alloc(free(disk)));
    } catch {
      // full now
    }
    try {
      const r = await execa('node', [CLI, 'server', '--output-dir', out], { env: { TEMPORAL_ADDRESS: '' }, reject: false, timeout: 120_000 });
      expect([r.exitCode, r.stderr]).toEqual([3, expect.stringContaining(`the disk holding ${join(out, '.temporal')} is full`)]);
      expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
    } finally {
      rmSync(filler, { force: true });
    }
  }, 150_000);
});
