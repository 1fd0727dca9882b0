/**
 * The download activity end to end against the local mirror, one archive fault per test: what ends on
 * disk, what the activity reports, and what the mirror saw.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { copyFile, link, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { createReadActivities } from '../../src/activities/reads.js';
import { DiskLedger } from '../../src/activities/disk.js';
import { PLAIN_GUESS } from '../../src/activities/download.js';
import { readCheckRecord } from '../../src/tools/fastq.js';
import { HttpClient, RateLimiter, type Clock } from '../../src/tools/http.js';
import type { SourcePlan } from '../../src/types.js';
import { download, failureOf, fastHttp, meta, quietEnv, resolve, sameBytes, startWorld, type World } from './fixture.js';

let w: World;
let n = 0;
let runDir: string;
let singlePlan: SourcePlan;
beforeAll(async () => {
  w = await startWorld();
  singlePlan = await resolve(fastHttp(), meta(w.single), w.options);
}, 180_000);
afterAll(async () => w?.stop());
beforeEach(async () => {
  runDir = join(w.root, 'reads', `t${++n}`, 'getfastq', w.single.run);
  w.mirror.setFaults({});
  w.mirror.resetStats();
});

const part = () => join(runDir, `${w.single.run}.fastq.gz.part`);
const final = () => join(runDir, `${w.single.run}.fastq.gz`);
const size = () => w.single.fastq[0]!.bytes;
const sizeOnDisk = (p: string) => stat(p).then((s) => s.size, () => null);

/** The file, and its check record with the reads counted as it arrived (verifyReads reads no byte of it again). */
async function expectComplete(): Promise<void> {
  expect(await sameBytes(final(), w.single.fastq[0]!.path)).toBe(true);
  expect((await readdir(runDir)).sort()).toEqual([`.${w.single.run}.fastq.gz.checked`, `${w.single.run}.fastq.gz`]);
  expect(await readCheckRecord(final())).toMatchObject({ records: w.single.reads, md5: w.single.fastq[0]!.md5, by: 'download' });
}

describe('download', () => {
  it('fetches, verifies and names the file; a second call skips it without a request', async () => {
    const r = await download(fastHttp(), singlePlan, runDir);
    expect(r).toEqual({ files: [{ path: final(), bytes: size(), md5: w.single.fastq[0]!.md5 }], bytesFetched: size(), resumedFromBytes: 0 });
    await expectComplete();
    w.mirror.resetStats();
    const again = await download(fastHttp(), singlePlan, runDir);
    expect(again).toMatchObject({ bytesFetched: 0, resumedFromBytes: size() });
    expect(w.mirror.stats().requests).toBe(0);
  });

  it('asked to verify, returns the reads checked as verifyReads would; a count the source disagrees with returns none', async () => {
    const r = await download(fastHttp(), singlePlan, runDir, { verify: true });
    expect(r.verified).toEqual({ layout: 'single', files: [final()], reads: singlePlan.expectedReads });
    await rm(runDir, { recursive: true, force: true });
    const off = await download(fastHttp(), { ...singlePlan, expectedReads: singlePlan.expectedReads! + 1 }, runDir, { verify: true });
    expect(off.files).toHaveLength(1);
    expect(off.verified).toBeUndefined();
  });

  it('retries 5xx within the attempt', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'status', status: 503, times: 2 }] });
    const r = await download(fastHttp(), singlePlan, runDir);
    expect(r.bytesFetched).toBe(size());
    expect(w.mirror.stats().requests).toBe(3);
    await expectComplete();
  });

  it('waits the Retry-After of a 429 before asking again', async () => {
    const slept: number[] = [];
    const clock: Clock = { now: () => Date.now(), sleep: async (ms) => void slept.push(ms) };
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'retry-after', seconds: 7, times: 1 }] });
    await download(new HttpClient({ clock, backoffMaxMs: 60_000, requestsPerSec: 1000 }), singlePlan, runDir);
    expect(slept).toEqual([7000]);
    await expectComplete();
  });

  it('after a reset mid-body, the next attempt fetches only the rest (Range)', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'reset', afterBytes: Math.floor(size() / 2), times: 1 }] });
    const err = await failureOf(download(fastHttp(), singlePlan, runDir));
    expect(err.type).toBe('NetworkError');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toContain(`${w.single.run}.fastq.gz`);
    const kept = (await sizeOnDisk(part()))!;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(Math.floor(size() / 2));

    w.mirror.resetStats();
    const r = await download(fastHttp(), singlePlan, runDir);
    expect(r).toMatchObject({ resumedFromBytes: kept, bytesFetched: size() - kept });
    expect(w.mirror.stats().rangeRequests).toBe(1);
    expect(w.mirror.stats().bytesServed).toBe(size() - kept);
    await expectComplete();
  });

  it('a truncated body keeps its bytes and the next attempt completes the file', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'truncate', bytes: 5000, times: 1 }] });
    const err = await failureOf(download(fastHttp(), singlePlan, runDir));
    expect(err.type).toBe('NetworkError');
    expect(await sizeOnDisk(part())).toBe(5000);
    const r = await download(fastHttp(), singlePlan, runDir);
    expect(r).toMatchObject({ resumedFromBytes: 5000, bytesFetched: size() - 5000 });
    await expectComplete();
  });

  it('wrong bytes: md5 mismatch deletes the .part and throws a retryable ChecksumMismatch', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'wrong-bytes', times: 1 }] });
    const err = await failureOf(download(fastHttp(), singlePlan, runDir));
    expect(err.type).toBe('ChecksumMismatch');
    expect(err.nonRetryable).toBe(false);
    // these flipped bytes still inflate; the gzip trailer's CRC sees them with the last bytes, and the md5 says it plainest
    // (zlib says "incorrect data check", igzip cannot tell a bad CRC from bad data: src/tools/inflate.ts)
    expect(err.message).toMatch(new RegExp(`md5 [0-9a-f]{32}, expected ${w.single.fastq[0]!.md5} \\(\\d+ bytes; gzip test failed after \\d+ compressed bytes: (incorrect data check|invalid compressed data or CRC \\(igzip[^)]*\\))\\)`));
    expect(await readdir(runDir)).toEqual([]);
    await download(fastHttp(), singlePlan, runDir);
    await expectComplete();
  });

  it('a 200 answer to a Range request restarts the file from byte 0', async () => {
    await mkdir(runDir, { recursive: true });
    await copyFile(w.single.fastq[0]!.path, part());
    await truncate(part(), 4096);
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'ignore-range', times: 1 }] });
    const r = await download(fastHttp(), singlePlan, runDir);
    expect(r).toMatchObject({ resumedFromBytes: 0, bytesFetched: size() });
    expect(w.mirror.stats().rangeRequests).toBe(1);
    await expectComplete();
  });

  it('a stalled stream fails the attempt after stallTimeoutSec and keeps the bytes', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'stall', afterBytes: 3000, ms: 30_000, times: 1 }] });
    const err = await failureOf(download(fastHttp(), singlePlan, runDir, { stallTimeoutSec: 0.5 }));
    expect(err.type).toBe('NetworkError');
    expect(err.message).toMatch(/no byte for 0\.5 s at byte 3000/);
    expect(await sizeOnDisk(part())).toBe(3000);
    const r = await download(fastHttp(), singlePlan, runDir);
    expect(r.resumedFromBytes).toBe(3000);
    await expectComplete();
  });

  it('a server that accepts the connection but never sends headers is a stall too (--stall-timeout covers the head)', async () => {
    // Three silent answers: the client's own retries (fastHttp: 4) outlast them within one attempt.
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'no-head', ms: 60_000, times: 3 }] });
    const started = Date.now();
    const r = await download(fastHttp(), singlePlan, runDir, { stallTimeoutSec: 0.5 });
    expect(Date.now() - started).toBeLessThan(20_000); // 3 x 0.5 s plus back-off, never the 60 s default head wait
    expect(w.mirror.stats().faultsFired[w.single.run]).toEqual({ 'no-head': 3 });
    expect(r.bytesFetched).toBe(size());
    await expectComplete();
    // Silent every time: the attempt fails as a retryable stall, naming it.
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'no-head', ms: 60_000 }] });
    await rm(join(runDir, singlePlan.files[0]!.name), { force: true });
    const err = await failureOf(download(fastHttp({ retries: 1 }), singlePlan, runDir, { stallTimeoutSec: 0.5 }));
    expect(err.type).toBe('NetworkError');
    expect(err.message).toMatch(/failed after 2 tries: no response head within 0\.5 s \(connection accepted, nothing sent\)/);
  });

  it('an HTML page instead of the file is a ChecksumMismatch and leaves nothing', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'html', times: 1 }] });
    const err = await failureOf(download(fastHttp(), singlePlan, runDir));
    expect(err.type).toBe('ChecksumMismatch');
    expect(err.message).toMatch(/HTML/);
    expect(await readdir(runDir)).toEqual([]);
  });

  /** The whole file left as .part by a killed attempt, then `plan` downloaded over it: not a byte fetched. */
  async function downloadOverCompletePart(plan: SourcePlan): Promise<void> {
    await mkdir(runDir, { recursive: true });
    await copyFile(w.single.fastq[0]!.path, part());
    const r = await download(fastHttp(), plan, runDir);
    expect(r).toMatchObject({ bytesFetched: 0, resumedFromBytes: size() });
  }

  it('a complete .part left by a killed attempt is verified and renamed without a request', async () => {
    await downloadOverCompletePart(singlePlan);
    expect(w.mirror.stats().requests).toBe(0);
    await expectComplete();
  });

  it('416 for a whole .part of unknown size: verified by md5 and renamed', async () => {
    await downloadOverCompletePart({ ...singlePlan, files: [{ ...singlePlan.files[0]!, bytes: null }] });
    expect(w.mirror.stats().rangeRequests).toBe(1);
    await expectComplete();
  });

  it('a wrong file under the final name is fetched again', async () => {
    await mkdir(runDir, { recursive: true });
    await writeFile(final(), 'not the reads');
    const r = await download(fastHttp(), singlePlan, runDir);
    expect(r.bytesFetched).toBe(size());
    await expectComplete();
  });

  it('heartbeats its offset and, when cancelled, aborts the request but keeps the .part', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'stall', afterBytes: 2000, ms: 30_000, times: 1 }] });
    const env = quietEnv();
    const beats: { file: string; offset: number }[] = [];
    env.on('heartbeat', (d: { file: string; offset: number }) => {
      beats.push(d);
      if (d.offset === 2000) env.cancel();
    });
    const err = await download(fastHttp(), singlePlan, runDir, { stallTimeoutSec: 60, env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledFailure);
    expect(beats.some((b) => b.file === `${w.single.run}.fastq.gz` && b.offset === 2000)).toBe(true);
    expect(await sizeOnDisk(part())).toBe(2000);
  });

  it('rejects file names that could leave the run dir', async () => {
    const bad = { ...singlePlan, files: [{ ...singlePlan.files[0]!, name: '../../etc/passwd' }] };
    const err = await failureOf(download(fastHttp(), bad, runDir));
    expect(err.type).toBe('InvalidInput');
    expect(err.nonRetryable).toBe(true);
    const rel = await failureOf(download(fastHttp(), singlePlan, 'reads/../x'));
    expect(rel.type).toBe('InvalidInput');
    expect(w.mirror.stats().requests).toBe(0);
  });
});

describe('kept plain (plainReads: the check thread writes what it inflates; kallisto inflates nothing)', () => {
  const plainFinal = () => join(runDir, `${w.single.run}.fastq`);
  const source = () => w.single.fastq[0]!;
  /** this worker admitted the run, as reserveDisk leaves it; a disk with `free` bytes */
  function admitted(free = 1e12, minFreeGb = 1): { ledger: DiskLedger; plain: { ledger: DiskLedger; freeBytes: () => Promise<number>; minFreeGb: number } } {
    const ledger = new DiskLedger();
    expect(ledger.reserve(w.single.run, runDir, size(), minFreeGb, free).granted).toBe(true);
    return { ledger, plain: { ledger, freeBytes: async () => free, minFreeGb } };
  }
  async function expectPlain(): Promise<void> {
    expect((await readFile(plainFinal())).equals(gunzipSync(await readFile(source().path)))).toBe(true);
    expect((await readdir(runDir)).sort()).toEqual([`.${w.single.run}.fastq.checked`, `${w.single.run}.fastq`]);
    expect(await readCheckRecord(plainFinal())).toMatchObject({ records: w.single.reads, md5: null, by: 'download', inflatedFrom: { name: `${w.single.run}.fastq.gz`, bytes: size(), md5: source().md5 } });
  }

  it('keeps the inflated bytes, counted and with the .gz md5 checked; the reservation grows; a second call takes them without a request; verifyReads reads nothing again', async () => {
    const { ledger, plain } = admitted();
    const r = await download(fastHttp(), singlePlan, runDir, { plain, verify: true });
    const plainBytes = (await stat(plainFinal())).size;
    expect(r).toMatchObject({
      files: [{ path: plainFinal(), bytes: plainBytes, md5: source().md5, inflatedFrom: { name: `${w.single.run}.fastq.gz`, bytes: size() } }],
      bytesFetched: size(),
      verified: { layout: 'single', files: [plainFinal()], reads: w.single.reads },
    });
    await expectPlain();
    expect(ledger.reservation(w.single.run)!.bytes).toBe(size() * (1 + PLAIN_GUESS));
    w.mirror.resetStats();
    const again = await download(fastHttp(), singlePlan, runDir, { plain });
    expect(ledger.reservation(w.single.run)!.bytes).toBe(size() * (1 + PLAIN_GUESS));
    expect(again).toEqual({ files: r.files, bytesFetched: 0, resumedFromBytes: size() });
    expect(w.mirror.stats().requests).toBe(0);
    await expectPlain();
  });

  it('without a reservation on this worker, or without room above the floor, the .gz is kept as fetched', async () => {
    const noLedger = await download(fastHttp(), singlePlan, runDir, { plain: { ledger: new DiskLedger() } });
    expect(noLedger.files[0]!.path).toBe(final());
    await expectComplete();
    await rm(runDir, { recursive: true, force: true });
    // room for the .gz above a 1 GB floor, not for ~PLAIN_GUESS x more
    const { plain } = admitted(1e9 + size() * 2, 1);
    const tight = await download(fastHttp(), singlePlan, runDir, { plain });
    expect(tight.files[0]).toEqual({ path: final(), bytes: size(), md5: source().md5 });
    await expectComplete();
  });

  it('after a reset mid-body the resume re-inflates the kept prefix into a fresh plain copy and fetches only the rest', async () => {
    const { ledger, plain } = admitted();
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'reset', afterBytes: Math.floor(size() / 2), times: 1 }] });
    expect((await failureOf(download(fastHttp(), singlePlan, runDir, { plain }))).type).toBe('NetworkError');
    const kept = (await sizeOnDisk(part()))!;
    expect(kept).toBeGreaterThan(0);
    // the failed attempt's plain copy is gone: only the .gz bytes are kept to resume
    expect((await readdir(runDir)).filter((n) => n.startsWith(`${w.single.run}.fastq.`) && !n.startsWith(`${w.single.run}.fastq.gz`))).toEqual([]);
    w.mirror.resetStats();
    const r = await download(fastHttp(), singlePlan, runDir, { plain });
    expect(r).toMatchObject({ resumedFromBytes: kept, bytesFetched: size() - kept });
    expect(w.mirror.stats().bytesServed).toBe(size() - kept);
    await expectPlain();
    // both attempts asked for room; the plain copy's share was added once
    expect(ledger.reservation(w.single.run)!.bytes).toBe(size() * (1 + PLAIN_GUESS));
  });

  it('near the floor mid-transfer the plain copy is dropped and the .gz kept, without failing the transfer', async () => {
    const ledger = new DiskLedger();
    ledger.reserve(w.single.run, runDir, size(), 1, 1e12);
    let calls = 0;
    // room at the decision, then just above the floor for the .gz alone
    const freeBytes = async () => (++calls === 1 ? 1e12 : 1e9 + 2 * size());
    const r = await download(fastHttp(), singlePlan, runDir, { plain: { ledger, freeBytes, minFreeGb: 1 } });
    expect(r.files[0]).toEqual({ path: final(), bytes: size(), md5: source().md5 });
    await expectComplete();
  });

  it('a plain copy published by an attempt killed before it deleted the .gz bytes is taken, and those bytes go', async () => {
    const { plain } = admitted();
    await download(fastHttp(), singlePlan, runDir, { plain });
    await copyFile(source().path, part());
    w.mirror.resetStats();
    const r = await download(fastHttp(), singlePlan, runDir, { plain });
    expect(r.files[0]!.path).toBe(plainFinal());
    expect(w.mirror.stats().requests).toBe(0);
    await expectPlain();
  });

  it('wrong bytes (md5 mismatch) leave neither the .gz nor a plain copy', async () => {
    const { plain } = admitted();
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'wrong-bytes', times: 1 }] });
    const err = await failureOf(download(fastHttp(), singlePlan, runDir, { plain }));
    expect(err.type).toBe('ChecksumMismatch');
    expect(await readdir(runDir)).toEqual([]);
  });
});

describe('download of other plans', () => {
  it('a paired run listed with three files downloads exactly _1 and _2', async () => {
    const plan = await resolve(fastHttp(), meta(w.paired), w.options);
    const dir = join(w.root, 'reads', 'paired', 'getfastq', w.paired.run);
    const r = await download(fastHttp(), plan, dir);
    expect(r.files.map((f) => f.path)).toEqual([join(dir, `${w.paired.run}_1.fastq.gz`), join(dir, `${w.paired.run}_2.fastq.gz`)]);
    expect((await readdir(dir)).sort()).toEqual([`.${w.paired.run}_1.fastq.gz.checked`, `.${w.paired.run}_2.fastq.gz.checked`, `${w.paired.run}_1.fastq.gz`, `${w.paired.run}_2.fastq.gz`]);
    for (const mate of [1, 2] as const) {
      expect(await sameBytes(join(dir, `${w.paired.run}_${mate}.fastq.gz`), w.paired.fastq.find((f) => f.mate === mate)!.path)).toBe(true);
    }
  });

  it('an SRA-only run downloads one verified <RUN>.sra', async () => {
    const plan = await resolve(fastHttp(), meta(w.sraOnly), w.options);
    const dir = join(w.root, 'reads', 'sra', 'getfastq', w.sraOnly.run);
    const r = await download(fastHttp(), plan, dir);
    expect(r.files).toEqual([{ path: join(dir, `${w.sraOnly.run}.sra`), bytes: w.sraOnly.sra.bytes, md5: w.sraOnly.sra.md5 }]);
    expect(await sameBytes(join(dir, `${w.sraOnly.run}.sra`), w.sraOnly.sra.path)).toBe(true);
  });

  it('a corrupted .sra fails its md5 and is deleted', async () => {
    w.mirror.setFaults({ [w.sraOnly.run]: [{ kind: 'corrupt-sra' }] });
    const plan = await resolve(fastHttp(), meta(w.sraOnly), w.options);
    const dir = join(w.root, 'reads', 'sra-corrupt', 'getfastq', w.sraOnly.run);
    const err = await failureOf(download(fastHttp(), plan, dir));
    expect(err.type).toBe('ChecksumMismatch');
    expect(err.message).toContain(`${w.sraOnly.run}.sra`);
    expect(await readdir(dir)).toEqual([]);
  });

  it('every request of the process passes one rate limiter (counted, not timed)', async () => {
    // A frozen clock that only advances when the limiter sleeps: each wait is counted exactly.
    let t = 0;
    const slept: number[] = [];
    const clock: Clock = { now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)) };
    const http = new HttpClient({ limiter: new RateLimiter(5, 1, clock), backoffBaseMs: 1 });
    w.mirror.resetStats();
    const plans = await Promise.all([w.single, w.paired].map((r) => resolve(http, meta(r), w.options)));
    await Promise.all(plans.map((p, i) => download(http, p, join(w.root, 'reads', 'rate', String(i), 'getfastq', p.run))));
    const requests = w.mirror.stats().requests;
    expect(requests).toBe(2 + 3); // two filereports, three files
    expect(http.limiter.stats).toEqual({ granted: requests, delayed: requests - 1 });
    expect(slept.reduce((a, b) => a + b, 0)).toBeCloseTo((requests - 1) * 200, 6);
  });
});

/**
 * Issue 15: the checks ride on the bytes as they arrive. Bodies here come from a tiny local server so a
 * test can serve an archive's own bad file (the md5 it lists matches, or it lists none): only the gzip test
 * and the record count made during the transfer stand between such a file and kallisto.
 */
describe('single-pass checks during the transfer', () => {
  let server: Server;
  let base = '';
  const bodies = new Map<string, Buffer>();
  let served = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const b = bodies.get(req.url ?? '');
      if (!b) return void res.writeHead(404).end();
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const from = m ? Number(m[1]) : 0;
      res.writeHead(m ? 206 : 200, { 'content-length': b.length - from, ...(m ? { 'content-range': `bytes ${from}-${b.length - 1}/${b.length}` } : {}) });
      served += b.length - from;
      res.end(b.subarray(from));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => new Promise((r) => server.close(r)));

  const RUN = 'SRR1500001';
  const planFor = (path: string, body: Buffer, md5: string | null): SourcePlan => {
    bodies.set(path, body);
    return { source: 'ena', run: RUN, layout: 'single', files: [{ url: `${base}${path}`, name: `${RUN}.fastq.gz`, bytes: body.length, md5, mate: 0 }], expectedReads: null, reserveBytes: body.length };
  };
  const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
  const dirFor = (name: string) => join(w.root, 'reads', 'single-pass', name, 'getfastq', RUN);

  it('a corrupt gzip tail (CRC) is caught by the transfer itself, with no md5 listed: nothing is kept', async () => {
    const good = await readFile(w.single.fastq[0]!.path);
    const bad = Buffer.from(good);
    bad[bad.length - 6]! ^= 0xff; // inside the gzip trailer's CRC32
    const dir = dirFor('crc');
    const err = await failureOf(download(fastHttp(), planFor('/crc', bad, null), dir));
    expect([err.type, err.nonRetryable]).toEqual(['ChecksumMismatch', false]);
    expect(err.message).toMatch(new RegExp(`${RUN}.fastq.gz from .*: gzip test failed after \\d+ compressed bytes: (incorrect data check|invalid compressed data or CRC \\(igzip)`));
    expect(await readdir(dir)).toEqual([]);
  });

  it("an archive's own file that is cut inside a record (its md5 matches) is TruncatedReads and never renamed", async () => {
    const text = gunzipSync(await readFile(w.single.fastq[0]!.path)).toString('latin1').split('\n');
    const cut = gzipSync(`${text.slice(0, 4 * 10 + 2).join('\n')}\n`);
    const dir = dirFor('cut');
    const err = await failureOf(download(fastHttp(), planFor('/cut', cut, md5(cut)), dir));
    expect(err.type).toBe('TruncatedReads');
    expect(err.message).toMatch(/42 lines is not a whole number of FASTQ records/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a resume feeds the kept bytes through the checks: a .part that is not gzip at all is found before any request and fetched again from byte 0', async () => {
    const good = await readFile(w.single.fastq[0]!.path);
    const plan = planFor('/resume', good, null);
    const dir = dirFor('resume');
    await mkdir(dir, { recursive: true });
    // e.g. an error page some other downloader saved under the name
    await writeFile(join(dir, `${RUN}.fastq.gz.part`), `<html><body>${'x'.repeat(5000)}</body></html>`);
    served = 0;
    const r = await download(fastHttp(), plan, dir);
    expect(r).toMatchObject({ resumedFromBytes: 0, bytesFetched: good.length });
    expect(served).toBe(good.length);
    expect((await readFile(join(dir, `${RUN}.fastq.gz`))).equals(good)).toBe(true);
    expect(await readCheckRecord(join(dir, `${RUN}.fastq.gz`))).toMatchObject({ records: w.single.reads, md5: md5(good) });
  });

  it('a resume whose kept bytes hold one flipped byte (still valid deflate: only the CRC shows it) fails at the end, no md5 listed, and is never renamed', async () => {
    const good = await readFile(w.single.fastq[0]!.path);
    const plan = planFor('/resume-flip', good, null);
    const dir = dirFor('resume-flip');
    await mkdir(dir, { recursive: true });
    const kept = Buffer.from(good.subarray(0, Math.floor(good.length / 2)));
    kept[kept.length >> 1]! ^= 0x01;
    await writeFile(join(dir, `${RUN}.fastq.gz.part`), kept);
    const err = await failureOf(download(fastHttp(), plan, dir));
    expect(err.type).toBe('ChecksumMismatch');
    expect(err.message).toMatch(/gzip test failed after \d+ compressed bytes: (incorrect data check|invalid)/);
    expect(await readdir(dir)).toEqual([]);
  });

  it("another process's kept bytes: taken over by name when that process is gone from this machine, copied while it lives", async () => {
    const good = await readFile(w.single.fastq[0]!.path);
    const half = Math.floor(good.length / 2);
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').replace(/-/g, '').slice(0, 8);
    const exited = spawn('true');
    await new Promise((r) => exited.on('exit', r));
    const alive = spawn('sleep', ['60']);
    try {
      for (const [label, pid, copied] of [['gone', exited.pid!, false], ['alive', alive.pid!, true]] as const) {
        const plan = planFor(`/adopt-${label}`, good, md5(good));
        const dir = dirFor(`adopt-${label}`);
        await mkdir(dir, { recursive: true });
        // what an attempt of that process left: its own file, and the shared name linked to it
        const theirs = join(dir, `${RUN}.fastq.gz.${pid}-${boot}abcdef-1.part`);
        await writeFile(theirs, good.subarray(0, half));
        await link(theirs, join(dir, `${RUN}.fastq.gz.part`));
        const ino = (await stat(theirs)).ino;
        served = 0;
        const r = await download(fastHttp(), plan, dir);
        expect([label, r.resumedFromBytes, served]).toEqual([label, half, good.length - half]);
        expect([label, (await stat(join(dir, `${RUN}.fastq.gz`))).ino !== ino]).toEqual([label, copied]);
        expect([label, (await readdir(dir)).sort()]).toEqual([label, [`.${RUN}.fastq.gz.checked`, `${RUN}.fastq.gz`]]);
        expect(await sameBytes(join(dir, `${RUN}.fastq.gz`), w.single.fastq[0]!.path)).toBe(true);
      }
    } finally {
      alive.kill();
    }
  });

  it('a good .part is resumed with Range and the count covers the whole file (prefix from disk, rest from the network)', async () => {
    const good = await readFile(w.single.fastq[0]!.path);
    const plan = planFor('/resume-good', good, md5(good));
    const dir = dirFor('resume-good');
    await mkdir(dir, { recursive: true });
    const half = Math.floor(good.length / 2);
    await writeFile(join(dir, `${RUN}.fastq.gz.part`), good.subarray(0, half));
    served = 0;
    const r = await download(fastHttp(), plan, dir);
    expect(r).toMatchObject({ resumedFromBytes: half, bytesFetched: good.length - half });
    expect(served).toBe(good.length - half);
    expect(await readCheckRecord(join(dir, `${RUN}.fastq.gz`))).toMatchObject({ records: w.single.reads, by: 'download' });
    // verifyReads takes that count: the gate passes without reading the file again
    const reads = await quietEnv().run(createReadActivities().verifyReads, { run: RUN, files: [join(dir, `${RUN}.fastq.gz`)], layout: 'single' as const, expectedReads: w.single.reads });
    expect(reads).toEqual({ layout: 'single', files: [join(dir, `${RUN}.fastq.gz`)], reads: w.single.reads });
  });
});

describe('two attempts of one download at once (an attempt the server gave up on runs on)', () => {
  it("the older attempt's late bytes never reach the file the newer one verified and named", async () => {
    // A heartbeat timeout (a host cut off from the server, a server restarted) starts the retry while the
    // first attempt still writes. Before each attempt wrote a file of its own, the first one's bytes landed in
    // the .part the retry was appending to, and the retry renamed a file its md5 had never seen.
    const data = await readFile(w.single.fastq[0]!.path);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    let letOlderOn!: () => void;
    const olderOn = new Promise<void>((r) => (letOlderOn = r));
    let letOlderEnd!: () => void;
    const olderEnd = new Promise<void>((r) => (letOlderEnd = r));
    let requests = 0;
    const server: Server = createServer((req, res) => {
      void (async () => {
        const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        const start = m ? Number(m[1]) : 0;
        const body = data.subarray(start);
        res.writeHead(m ? 206 : 200, {
          'content-type': 'application/octet-stream',
          'content-length': body.length,
          ...(m ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
        });
        if (++requests === 1) {
          // the older attempt: 4000 bytes on disk, then it waits (as if cut off)...
          res.write(body.subarray(0, 3000));
          await sleep(250);
          res.write(body.subarray(3000, 4000));
          await olderOn;
          // ...and writes on while the newer attempt transfers (a flush per chunk: 200 ms apart)
          for (let at = 4000; at < 10_000; at += 2000) {
            res.write(body.subarray(at, at + 2000));
            await sleep(250);
          }
          await olderEnd;
          res.end(body.subarray(10_000));
        } else {
          letOlderOn();
          await sleep(900);
          res.end(body);
        }
      })();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const plan = { ...singlePlan, files: [{ ...singlePlan.files[0]!, url: `http://127.0.0.1:${port}/f.fastq.gz` }] };
      const older = download(fastHttp(), plan, runDir, { stallTimeoutSec: 60 }).then(
        (r) => r,
        (e: unknown) => e,
      );
      while (((await sizeOnDisk(part())) ?? 0) < 4000) await sleep(10);
      const newer = await download(fastHttp(), plan, runDir, { stallTimeoutSec: 60 });
      expect(newer.resumedFromBytes).toBe(4000);
      expect(await sameBytes(final(), w.single.fastq[0]!.path)).toBe(true);
      // the older attempt ends (whole file, md5 right) but has nothing left to rename: the named file stands
      letOlderEnd();
      const lost = (await older) as { type?: string; message?: string };
      expect([lost.type, lost.message]).toEqual(['WorkerLost', expect.stringMatching(/a newer attempt of this download took over its partial file; this attempt stops$/)]);
      await expectComplete();
    } finally {
      letOlderOn();
      letOlderEnd();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
