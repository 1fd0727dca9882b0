// File hosting and every fault kind, observed from a real HTTP client.
import { describe, it, expect, beforeAll, afterAll, beforeEach } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateDataset, type Dataset, type SyntheticFile, type SyntheticRun } from '../../src/mirror/fixtures.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { filereportUrl, get, md5, tsvRows } from './helpers.js';

let root: string;
let ds: Dataset;
let mirror: Mirror;
let paired: SyntheticRun;
let single: SyntheticRun;
let mate1: SyntheticFile;
let mate2: SyntheticFile;
let data1: Buffer;

const fileUrl = (r: SyntheticRun, f: SyntheticFile) => `${mirror.baseUrl}/vol1/fastq/${r.run.slice(0, 6)}/${r.run}/${f.name}`;
const sraUrl = (r: SyntheticRun) => `${mirror.baseUrl}/sra/${r.run}/${r.run}`;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'fq-mirror-files-'));
  ds = await generateDataset({
    root,
    seed: 21,
    species: [{ name: 'Faultus maximus', runs: 2, pairedFraction: 0.5, readsPerRun: 4000 }],
  });
  mirror = await startMirror({ dataset: ds });
  paired = ds.species[0]!.runs.find((r) => r.layout === 'paired')!;
  single = ds.species[0]!.runs.find((r) => r.layout === 'single')!;
  [mate1, mate2] = paired.fastq as [SyntheticFile, SyntheticFile];
  data1 = await readFile(mate1.path);
});
afterAll(async () => {
  await mirror.stop();
  await rm(root, { recursive: true, force: true });
});
beforeEach(() => {
  mirror.setFaults({});
  mirror.resetStats();
});

describe('file hosting', () => {
  it('serves the whole file with Content-Length and Accept-Ranges', async () => {
    const res = await get(fileUrl(paired, mate1));
    expect({ status: res.status, len: res.headers['content-length'], ranges: res.headers['accept-ranges'], md5: md5(res.body) })
      .toEqual({ status: 200, len: String(mate1.bytes), ranges: 'bytes', md5: mate1.md5 });
  });

  it('answers Range bytes=N- with 206, Content-Range and exactly the slice', async () => {
    const n = 12345;
    const res = await get(fileUrl(paired, mate1), { Range: `bytes=${n}-` });
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes ${n}-${mate1.bytes - 1}/${mate1.bytes}`);
    expect(res.headers['content-length']).toBe(String(mate1.bytes - n));
    expect(res.body.equals(data1.subarray(n))).toBe(true);
    const mid = await get(fileUrl(paired, mate1), { Range: 'bytes=10-19' });
    expect(mid.body.equals(data1.subarray(10, 20))).toBe(true);
    expect(mirror.stats().rangeRequests).toBe(2);
  });

  it('answers 416 when the start is at or past the end', async () => {
    for (const start of [mate1.bytes, mate1.bytes + 10]) {
      const res = await get(fileUrl(paired, mate1), { Range: `bytes=${start}-` });
      expect({ status: res.status, cr: res.headers['content-range'], body: res.body.length }).toEqual({ status: 416, cr: `bytes */${mate1.bytes}`, body: 0 });
    }
  });

  it('answers HEAD with the size and no body', async () => {
    const res = await get(sraUrl(single), {}, 'HEAD');
    expect({ status: res.status, len: res.headers['content-length'], body: res.body.length }).toEqual({ status: 200, len: String(single.sra.bytes), body: 0 });
  });

  it('serves the .sra at ENA sra_ftp too', async () => {
    const row = tsvRows((await get(filereportUrl(mirror.enaPortalUrl, single.run, 'sra_ftp'))).body.toString())[1]!;
    const res = await get(`http://${row[0]}`);
    expect(md5(res.body)).toBe(single.sra.md5);
  });

  it('counts requests, bytes and Range requests per path', async () => {
    await get(fileUrl(paired, mate1));
    await get(fileUrl(paired, mate1), { Range: 'bytes=100-' });
    const s = mirror.stats();
    const path = new URL(fileUrl(paired, mate1)).pathname;
    expect(s.byPath[path]).toEqual({ requests: 2, bytes: mate1.bytes * 2 - 100, ranges: 1 });
    expect({ requests: s.requests, bytes: s.bytesServed }).toEqual({ requests: 2, bytes: mate1.bytes * 2 - 100 });
  });
});

describe('faults', () => {
  it('status: answers the status `times` times, then serves the file', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'status', status: 503, times: 2 }] });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await get(fileUrl(paired, mate1))).status);
    expect(statuses).toEqual([503, 503, 200]);
    expect(mirror.stats().faultsFired[paired.run]).toEqual({ status: 2 });
  });

  it('retry-after: 429 with a Retry-After header', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'retry-after', seconds: 7, times: 1 }] });
    const res = await get(fileUrl(paired, mate2));
    expect({ status: res.status, ra: res.headers['retry-after'] }).toEqual({ status: 429, ra: '7' });
    expect((await get(fileUrl(paired, mate2))).status).toBe(200);
  });

  it('reset: the socket is dropped after N bytes of a body that promised more', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'reset', afterBytes: 5000, times: 1 }] });
    const res = await get(fileUrl(paired, mate1));
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(mate1.bytes));
    expect(res.complete).toBe(false);
    expect(res.body.length).toBe(5000);
    expect(res.body.equals(data1.subarray(0, 5000))).toBe(true);
    // the fault was used once: the next request gets the whole file
    await expect(fetch(fileUrl(paired, mate1)).then((r) => r.arrayBuffer()).then((b) => b.byteLength)).resolves.toBe(mate1.bytes);
  });

  it('reset: fetch() rejects while reading the body', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'reset', afterBytes: 3000 }] });
    await expect(fetch(fileUrl(paired, mate1)).then((r) => r.arrayBuffer())).rejects.toThrow();
  });

  it('truncate: a clean-looking end after N bytes, no Content-Length (a size check is needed)', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'truncate', bytes: 7000, times: 1 }] });
    const res = await get(fileUrl(paired, mate1), { Range: 'bytes=1000-' });
    expect({ status: res.status, complete: res.complete, len: res.headers['content-length'], te: res.headers['transfer-encoding'] })
      .toEqual({ status: 206, complete: true, len: undefined, te: 'chunked' });
    expect(res.body.equals(data1.subarray(1000, 8000))).toBe(true);
    const viaFetch = await fetch(fileUrl(paired, mate1)); // the fault is used up
    expect((await viaFetch.arrayBuffer()).byteLength).toBe(mate1.bytes);
  });

  it('wrong-bytes: same size, different md5, only a few bytes differ', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'wrong-bytes', times: 1 }] });
    const res = await get(fileUrl(paired, mate1));
    expect(res.body.length).toBe(mate1.bytes);
    expect(md5(res.body)).not.toBe(mate1.md5);
    let diff = 0;
    for (let i = 0; i < data1.length; i++) if (data1[i] !== res.body[i]) diff++;
    expect(diff).toBe(4);
  });

  it('ignore-range: 200 and the full body to a Range request', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'ignore-range' }] });
    const res = await get(fileUrl(paired, mate1), { Range: 'bytes=500-' });
    expect({ status: res.status, cr: res.headers['content-range'], md5: md5(res.body) }).toEqual({ status: 200, cr: undefined, md5: mate1.md5 });
  });

  it('stall: sends N bytes, keeps the socket open and silent, then finishes', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'stall', afterBytes: 2000, ms: 1500, times: 1 }] });
    const path = new URL(fileUrl(paired, mate1)).pathname;
    let seenAtStall = -1;
    const pending = get(fileUrl(paired, mate1));
    // While the server sleeps, exactly the bytes before the stall have been sent.
    for (let i = 0; i < 100 && seenAtStall < 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      const b = mirror.stats().byPath[path]?.bytes ?? 0;
      if (b > 0) seenAtStall = b;
    }
    await new Promise((r) => setTimeout(r, 100));
    const stillAt = mirror.stats().byPath[path]?.bytes;
    const res = await pending;
    expect([seenAtStall, stillAt]).toEqual([2000, 2000]);
    expect({ complete: res.complete, md5: md5(res.body) }).toEqual({ complete: true, md5: mate1.md5 });
  });

  it('html: 200 with a small HTML page instead of the file', async () => {
    mirror.setFaults({ [single.run]: [{ kind: 'html', times: 1 }] });
    const res = await get(fileUrl(single, single.fastq[0]!));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body.toString()).toMatch(/^<!DOCTYPE html>/);
    expect(res.body.length).toBeLessThan(single.fastq[0]!.bytes);
  });

  it('mate and target: a fault on mate 2 leaves mate 1 alone; an api fault leaves files alone', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'status', status: 500, mate: 2 }, { kind: 'status', status: 502, target: 'api', times: 1 }] });
    expect((await get(fileUrl(paired, mate1))).status).toBe(200);
    expect((await get(fileUrl(paired, mate2))).status).toBe(500);
    expect((await get(filereportUrl(mirror.enaPortalUrl, paired.run))).status).toBe(502);
    expect((await get(filereportUrl(mirror.enaPortalUrl, paired.run))).status).toBe(200);
    mirror.setFaults({ [paired.run]: [{ kind: 'status', status: 503, target: 'sra' }] });
    expect((await get(sraUrl(paired))).status).toBe(503);
    expect((await get(fileUrl(paired, mate1))).status).toBe(200);
  });

  it("'*' applies to every request, search included", async () => {
    mirror.setFaults({ '*': [{ kind: 'retry-after', seconds: 1, target: 'api', times: 1 }] });
    const q = new URLSearchParams({ result: 'read_run', query: `tax_eq(${ds.species[0]!.taxonId})` });
    expect((await get(`${mirror.enaPortalUrl}/search?${q}`)).status).toBe(429);
    expect((await get(`${mirror.enaPortalUrl}/search?${q}`)).status).toBe(200);
    expect(() => mirror.setFaults({ bogus: [] })).toThrow(/not a run accession/);
  });

  it('unknown: ENA filereport finds nothing, SRA says 404, files are gone', async () => {
    mirror.setFaults({ [paired.run]: [{ kind: 'unknown' }] });
    const fr = await get(filereportUrl(mirror.enaPortalUrl, paired.run));
    expect(fr.status === 204 || tsvRows(fr.body.toString()).length === 1).toBe(true);
    const loc = JSON.parse((await get(`${mirror.sraLocateUrl}?acc=${paired.run}&filetype=run`)).body.toString());
    expect(loc.result[0].status).toBe(404);
    expect((await get(fileUrl(paired, mate1))).status).toBe(404);
    expect((await get(sraUrl(paired))).status).toBe(404);
  });

  it('sra-only: ENA lists no files and does not serve them; SRA does', async () => {
    mirror.setFaults({ [single.run]: [{ kind: 'sra-only' }] });
    const row = tsvRows((await get(filereportUrl(mirror.enaPortalUrl, single.run, 'run_accession,fastq_ftp,read_count'))).body.toString())[1];
    expect(row).toEqual([single.run, '', String(single.reads)]);
    expect((await get(fileUrl(single, single.fastq[0]!))).status).toBe(404);
    expect(md5((await get(sraUrl(single))).body)).toBe(single.sra.md5);
  });

  it('corrupt-sra: the locator states the original md5/size, the bytes differ and vdb-validate rejects them', async () => {
    mirror.setFaults({ [single.run]: [{ kind: 'corrupt-sra' }] });
    const loc = JSON.parse((await get(`${mirror.sraLocateUrl}?acc=${single.run}`)).body.toString());
    const own = loc.result[0].files.find((f: { name: string }) => f.name === single.run);
    expect(own).toMatchObject({ md5: single.sra.md5, size: single.sra.bytes });
    const res = await get(own.locations[0].link);
    expect(res.body.length).toBe(single.sra.bytes);
    expect(md5(res.body)).not.toBe(single.sra.md5);
    // a resumed download gets the same corrupt bytes
    const tail = await get(sraUrl(single), { Range: 'bytes=1000-' });
    expect(tail.body.equals(res.body.subarray(1000))).toBe(true);
    const dir = await mkdtemp(join(tmpdir(), 'fq-mirror-corrupt-'));
    try {
      const f = join(dir, `${single.run}.sra`);
      await writeFile(f, res.body);
      const v = await execa('vdb-validate', [f], { reject: false, timeout: 60_000 });
      expect(v.exitCode).not.toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
