// The shared bandwidth cap, seen in byte counts: whatever the machine's speed, the mirror never has
// sent more than rate x elapsed + one burst, across all connections together. And the standalone entry.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDataset, loadDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { main, parseMainArgs } from '../../src/mirror/main.js';
import { startMirror } from '../../src/mirror/server.js';
import { TokenBucket } from '../../src/mirror/throttle.js';
import { filereportUrl, get, md5, tsvRows } from './helpers.js';

let root: string;
let ds: Dataset;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'fq-mirror-bw-'));
  ds = await generateDataset({ root, seed: 4, species: [{ name: 'Slowus linkus', runs: 2, pairedFraction: 1, readsPerRun: 3000 }] });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('bandwidth cap', () => {
  it('keeps the bytes served by parallel downloads under rate x elapsed + burst, and delivers them intact', async () => {
    const rate = 200_000;
    const mirror = await startMirror({ dataset: ds, bandwidthBytesPerSec: rate });
    try {
      const files = ds.species[0]!.runs.flatMap((r) => r.fastq.map((f) => ({ r, f })));
      const total = files.reduce((n, x) => n + x.f.bytes, 0);
      expect(total).toBeGreaterThan(rate / 2); // long enough for the cap to matter
      const burst = new TokenBucket(rate).burst;
      const t0 = Date.now();
      const samples: { elapsedMs: number; bytes: number }[] = [];
      let done = false;
      const all = Promise.all(files.map(({ r, f }) => get(`${mirror.baseUrl}/vol1/fastq/${r.run.slice(0, 6)}/${r.run}/${f.name}`))).finally(() => (done = true));
      while (!done) {
        await new Promise((res) => setTimeout(res, 25));
        const bytes = mirror.stats().bytesServed; // read before the clock: elapsed may only be over-estimated
        samples.push({ bytes, elapsedMs: Date.now() - t0 });
      }
      const responses = await all;
      const bytes = mirror.stats().bytesServed;
      samples.push({ bytes, elapsedMs: Date.now() - t0 });
      expect(responses.map((x) => md5(x.body))).toEqual(files.map((x) => x.f.md5));
      expect(mirror.stats().bytesServed).toBe(total);
      // Bytes are read before the clock and t0 is taken before the first request, so elapsed is an
      // over-estimate: the bound can only fail if the cap leaks, never because the machine is slow.
      const over = samples.filter((s) => s.bytes > (rate * s.elapsedMs) / 1000 + burst);
      expect(over).toEqual([]);
      expect(samples.length).toBeGreaterThan(3);
    } finally {
      await mirror.stop();
    }
  });

  it('grants tokens in arrival order, never more than asked', async () => {
    const bucket = new TokenBucket(50_000, 20);
    const got = await Promise.all([bucket.take(10), bucket.take(5000), bucket.take(3)]);
    expect(got[0]).toBe(10);
    expect(got[1]).toBeLessThanOrEqual(5000);
    expect(got[2]).toBeLessThanOrEqual(3);
    expect(bucket.granted).toBe(got.reduce((a, b) => a + b, 0));
    bucket.stop();
    expect(() => new TokenBucket(0)).toThrow(/bandwidth must be > 0/);
  });
});

describe('standalone entry', () => {
  it('generates a dataset when the root has none, serves it and prints its URLs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fq-mirror-main-'));
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stdout.write;
    let mirror;
    try {
      mirror = await main(['--root', dir, '--generate', 'species=2,runs=1,reads=100', '--bandwidth', '10000000']);
    } finally {
      process.stdout.write = write;
    }
    try {
      expect(existsSync(join(dir, 'dataset.json'))).toBe(true);
      const d = await loadDataset(dir);
      expect(d.species.map((s) => s.runs.length)).toEqual([1, 1]);
      const info = JSON.parse(lines.join('').trim());
      expect(info).toMatchObject({ baseUrl: mirror.baseUrl, enaPortalUrl: mirror.enaPortalUrl, sraLocateUrl: mirror.sraLocateUrl, enaFileScheme: 'http', runs: 2 });
      const run = d.species[0]!.runs[0]!;
      const rows = tsvRows((await get(filereportUrl(info.enaPortalUrl, run.run, 'run_accession,read_count'))).body.toString());
      // spots: pairs plus the unpaired reads of a 3-file run
      expect(rows[1]).toEqual([run.run, String(run.reads + (run.orphanReads ?? 0))]);
    } finally {
      await mirror.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad arguments with the usage', () => {
    expect(() => parseMainArgs([])).toThrow(/--root is required/);
    expect(() => parseMainArgs(['--root', '/x', '--port', 'abc'])).toThrow(/--port: "abc" is not a whole number/);
    expect(() => parseMainArgs(['--root', '/x', '--generate', 'genes=3'])).toThrow(/unknown key "genes"/);
    expect(() => parseMainArgs(['--root', '/x', '--frobnicate'])).toThrow(/unknown argument "--frobnicate"\nusage:/);
    expect(parseMainArgs(['--root', '/x', '--generate', 'species=5', '--port', '0']).generate).toEqual({ species: 5, runs: 4, reads: 2000, seed: 1 });
  });
});
