/**
 * The data plane under fire, end to end: a batch in which a third of the runs meet archive faults, run by
 * a real worker (real activities: HTTP to the local mirror, kallisto, fasterq-dump, vdb-validate, real
 * files) on the suite's Temporal server. Every recoverable run must end done with correct outputs, every
 * unrecoverable one failed with a reason that names its fault, and nothing may be left on disk.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset, SyntheticRun, SyntheticSpecies } from '../../src/mirror/fixtures.js';
import type { FaultPlan } from '../../src/mirror/server.js';
import type { BatchResult } from '../../src/workflows/batch.js';
import { startMirrorBatch, useE2eWorld, walk } from '../helpers/e2e.js';

const MAX_RETRIES = 2;

/** Which run carries which fault; filled from the generated dataset (layouts and SRA-only runs are seeded). */
interface Cast {
  /** 503 twice on the files, 429 + Retry-After 1 on the ENA portal: absorbed by the HTTP client's back-off */
  httpErrors: SyntheticRun;
  /** connection reset half-way through the first file: the next attempt resumes with Range */
  reset: SyntheticRun;
  /** flipped bytes in the .sra once: md5 mismatch, deleted, fetched again */
  sraCorruptOnce: SyntheticRun;
  /** a short body once, then the server ignores the resume's Range once: starts over from byte 0 */
  truncateIgnoreRange: SyntheticRun;
  /** the body stalls half-way longer than stallTimeoutSec: the next attempt resumes with Range */
  stall: SyntheticRun;
  /** flipped bytes once in an ENA file */
  wrongBytesOnce: SyntheticRun;
  /** unknown at ENA and at SRA -> RunNotFound, not retried */
  unknown: SyntheticRun;
  /** flipped bytes on every request at ENA, and a damaged .sra at SRA: no source has a good copy */
  wrongBytesAlways: SyntheticRun;
  /** the SRA serves a damaged .sra on every request -> fails naming the .sra's corruption */
  sraCorruptAlways: SyntheticRun;
}

function cast(d: Dataset): Cast {
  const [a, b, c] = d.species as [SyntheticSpecies, SyntheticSpecies, SyntheticSpecies];
  const ena = (s: SyntheticSpecies, i: number) => s.runs.filter((r) => !r.sraOnly)[i]!;
  const sra = (s: SyntheticSpecies, i: number) => s.runs.filter((r) => r.sraOnly)[i]!;
  // Three faulty runs per species of nine: a third of the batch. Species c loses two runs, b one, a none.
  return {
    httpErrors: ena(a, 0), reset: ena(a, 1), sraCorruptOnce: sra(a, 0),
    truncateIgnoreRange: ena(b, 0), stall: ena(b, 1), unknown: ena(b, 2),
    wrongBytesOnce: ena(c, 0), wrongBytesAlways: ena(c, 1), sraCorruptAlways: sra(c, 0),
  };
}

function faultPlan(k: Cast): FaultPlan {
  const first = (r: SyntheticRun) => r.fastq[0]!.bytes; // mate 1 (or the single file) is fetched first
  return {
    [k.httpErrors.run]: [{ kind: 'status', status: 503, times: 2 }, { kind: 'retry-after', seconds: 1, target: 'ena-api', times: 1 }],
    // at 60 %: a restart would put >= 1.6x the file on the wire, a resume about 1x
    [k.reset.run]: [{ kind: 'reset', afterBytes: Math.floor(first(k.reset) * 0.6), times: 1 }],
    [k.sraCorruptOnce.run]: [{ kind: 'wrong-bytes', target: 'sra', times: 1 }],
    [k.truncateIgnoreRange.run]: [{ kind: 'truncate', bytes: Math.floor(first(k.truncateIgnoreRange) / 2), times: 1 }, { kind: 'ignore-range', times: 1 }],
    [k.stall.run]: [{ kind: 'stall', afterBytes: Math.floor(first(k.stall) * 0.6), ms: 8000, times: 1 }],
    [k.wrongBytesOnce.run]: [{ kind: 'wrong-bytes', times: 1 }],
    [k.unknown.run]: [{ kind: 'unknown' }],
    // ENA's copy stays bad, so the sample asks SRA next (fallback on a bad copy), whose .sra is damaged too.
    [k.wrongBytesAlways.run]: [{ kind: 'wrong-bytes', target: 'fastq' }, { kind: 'corrupt-sra' }],
    [k.sraCorruptAlways.run]: [{ kind: 'corrupt-sra' }],
  };
}

/** URL path the mirror serves a file of a run under (its stats are keyed by it). */
function enaPath(run: string, name: string): string {
  return `/vol1/fastq/${run.slice(0, 6)}/${run}/${name}`;
}


describe('a batch with faults on a third of its runs (real worker, real tools, real HTTP)', () => {
  let k: Cast;
  // 4000 reads make ~110 KB files, so the mid-body faults (at 50-60 %) land well inside a body.
  // A bandwidth cap, like any real archive's uplink: bodies arrive in tick-sized pieces (30 KB per 20 ms),
  // not as one write followed at once by the reset. (Bytes still queued in fetch's body stream when a connection dies are
  // dropped by the stream; with whole-file writes the reset would discard everything received.)
  const world = useE2eWorld({
    label: 'e2e-faults',
    prefix: 'faults',
    data: { seed: 5, species: ['Faultus alpha', 'Faultus beta', 'Faultus gamma'].map((name) => ({ name, runs: 9, pairedFraction: 0.5, sraOnlyFraction: 0.25, readsPerRun: 4000 })) },
    mirror: (d) => ({ faults: faultPlan((k = cast(d))), bandwidthBytesPerSec: 1_500_000 }),
    worker: { hostId: 'faults-host' },
    timeoutMs: 120_000,
  });

  it('ends every recoverable run done, every unrecoverable one failed naming its fault, and leaves no reads', async () => {
    const handle = await startMirrorBatch(world.t.client, 'faults', world.dataset, world.mirror, {
      totalThreads: 9,
      maxRetries: MAX_RETRIES,
      stallTimeoutSec: 2,
    });
    const result = (await handle.result()) as BatchResult;
    const stats = world.mirror.stats();

    // ---- counts ----
    const bySpecies = Object.fromEntries(result.species.map((s) => [s.speciesId, s]));
    const [a, b, c] = world.dataset.species as [SyntheticSpecies, SyntheticSpecies, SyntheticSpecies];
    expect(bySpecies[a.speciesId]).toMatchObject({ total: 9, done: 9, failed: 0, skipped: 0, status: 'done' });
    expect(bySpecies[b.speciesId]).toMatchObject({ total: 9, done: 8, failed: 1, skipped: 0, status: 'done' });
    expect(bySpecies[c.speciesId]).toMatchObject({ total: 9, done: 7, failed: 2, skipped: 0, status: 'done' });
    expect(result.totals).toEqual({ total: 27, done: 24, skipped: 0, failed: 3 });

    // ---- unrecoverable: failed, with a reason naming the fault; nothing of theirs on disk ----
    const failure = (r: SyntheticRun) => result.failures.find((f) => f.run === r.run);
    expect(result.failures.map((f) => f.run).sort()).toEqual([k.unknown.run, k.wrongBytesAlways.run, k.sraCorruptAlways.run].sort());
    expect(failure(k.unknown)).toMatchObject({ species: b.speciesId, failureType: 'RunNotFound' });
    // The source pacer may ask SRA first while ENA is paused after the 429 below (a spill): either order.
    expect(failure(k.unknown)!.reason).toMatch(new RegExp(`not found at any source, run ${k.unknown.run}: (ena: .*; sra: |sra: .*; ena: )`));
    const wb = k.wrongBytesAlways.fastq[0]!;
    expect(failure(k.wrongBytesAlways)).toMatchObject({ species: c.speciesId, failureType: 'ChecksumMismatch' });
    const wbReason = failure(k.wrongBytesAlways)!.reason;
    expect(wbReason).toMatch(/no source has a good copy: /);
    expect(wbReason).toMatch(new RegExp(`ena: .*${wb.name} from http://\\S+: md5 [0-9a-f]{32}, expected ${wb.md5}`));
    expect(wbReason).toMatch(new RegExp(`sra: .*${k.wrongBytesAlways.run}\\.sra`));
    const sc = k.sraCorruptAlways;
    expect(failure(sc)).toMatchObject({ species: c.speciesId, failureType: 'ChecksumMismatch' });
    expect(failure(sc)!.reason).toMatch(new RegExp(`${sc.run}\\.sra from http://\\S+/sra/${sc.run}/${sc.run}: md5 [0-9a-f]{32}, expected ${sc.sra.md5}`));
    // retried, not given up at once: maxRetries + 1 download attempts each, the unknown run never retried
    expect(stats.faultsFired[k.wrongBytesAlways.run]).toEqual({ 'wrong-bytes': MAX_RETRIES + 1 });
    expect(stats.byPath[`/sra/${sc.run}/${sc.run}`]?.requests).toBe(MAX_RETRIES + 1);
    expect(stats.byPath[enaPath(k.unknown.run, k.unknown.fastq[0]!.name)]).toBeUndefined();
    for (const [sp, r] of [[b, k.unknown], [c, k.wrongBytesAlways], [c, sc]] as const) {
      expect(existsSync(join(world.dataset.outputDir, sp.speciesId, 'quant', r.run))).toBe(false);
      expect(existsSync(join(world.dataset.outputDir, sp.speciesId, 'fastq', 'getfastq', r.run))).toBe(false);
    }

    // ---- recoverable (and fault-free): done, with verified outputs from the right bytes ----
    const failed = new Set(result.failures.map((f) => f.run));
    const sourceOf: Record<string, string> = {};
    for (const sp of world.dataset.species) {
      for (const r of sp.runs.filter((x) => !failed.has(x.run))) {
        const dir = join(world.dataset.outputDir, sp.speciesId, 'quant', r.run);
        expect(readFileSync(join(dir, `${r.run}_abundance.tsv`), 'utf8')).toMatch(/^target_id\tlength\teff_length\test_counts\ttpm\n/);
        const info = JSON.parse(readFileSync(join(dir, `${r.run}_run_info.json`), 'utf8'));
        expect([r.run, info.n_processed]).toEqual([r.run, r.reads]);
        expect(info.n_pseudoaligned).toBeGreaterThan(0);
        const prov = JSON.parse(readFileSync(join(dir, `${r.run}_fetchquant.json`), 'utf8'));
        // an ENA run may have spilled to SRA while ENA was paused after the 429 (source pacer); an SRA-only run never comes from ENA
        expect(prov).toMatchObject({ run: r.run, reads: r.reads });
        expect([r.run, prov.source.source]).toEqual([r.run, r.sraOnly ? 'sra' : expect.stringMatching(/^(ena|sra)$/)]);
        sourceOf[r.run] = prov.source.source;
        // the bytes that were quantified are the archive's, whatever the transfer went through
        const want = prov.source.source === 'sra' ? [r.sra.md5] : r.fastq.map((f) => f.md5);
        expect([r.run, prov.files.map((f: { md5: string }) => f.md5)]).toEqual([r.run, want]);
      }
    }
    // every planned fault really happened
    expect(stats.faultsFired[k.httpErrors.run]).toEqual({ status: 2, 'retry-after': 1 });
    expect(stats.faultsFired[k.reset.run]).toEqual({ reset: 1 });
    expect(stats.faultsFired[k.sraCorruptOnce.run]).toEqual({ 'wrong-bytes': 1 });
    expect(stats.faultsFired[k.truncateIgnoreRange.run]).toEqual({ truncate: 1, 'ignore-range': 1 });
    expect(stats.faultsFired[k.stall.run]).toEqual({ stall: 1 });
    expect(stats.faultsFired[k.wrongBytesOnce.run]).toEqual({ 'wrong-bytes': 1 });

    // ---- resumed, not restarted: the interrupted file crossed the wire about once, not twice ----
    const served: Record<string, number> = {};
    // the file the fault hit: the first FASTQ at ENA, or the .sra when the run spilled to SRA
    const faulted = (r: SyntheticRun) =>
      sourceOf[r.run] === 'sra' ? { path: `/sra/${r.run}/${r.run}`, bytes: r.sra.bytes } : { path: enaPath(r.run, r.fastq[0]!.name), bytes: r.fastq[0]!.bytes };
    for (const r of [k.reset, k.stall]) {
      const f = faulted(r);
      const s = stats.byPath[f.path]!;
      served[r.run] = Number((s.bytes / f.bytes).toFixed(3));
      expect([r.run, s.requests]).toEqual([r.run, 2]);
      // >= 0.9: the mirror counts only writes the socket accepted, so the cut-off piece may be missing
      expect(s.bytes).toBeGreaterThan(f.bytes * 0.9);
      expect(s.bytes).toBeLessThan(f.bytes * 1.4);
    }
    // ...whereas a server that ignores Range makes the client start over: the short body, then the whole file
    // again (a resume would total the file at most). The cut is half of mate 1 wherever it lands (on a run
    // spilled to SRA, a smaller part of the .sra), and the mirror counts only the writes the socket accepted, so the short
    // body counts for less than the cut: beside three other test files it counted 1.29 of the file once, against
    // the 1.4 this used to ask.
    const ti = faulted(k.truncateIgnoreRange);
    const cut = Math.min(ti.bytes, Math.floor(k.truncateIgnoreRange.fastq[0]!.bytes / 2));
    process.stdout.write(`bytes served / file size for resumed runs: ${JSON.stringify(served)}; restarted (ignore-range): ${(stats.byPath[ti.path]!.bytes / ti.bytes).toFixed(2)} (cut at ${(cut / ti.bytes).toFixed(2)}); sources: ${JSON.stringify(sourceOf)}\n`);
    expect(stats.byPath[ti.path]!).toMatchObject({ requests: 2, ranges: 1 });
    expect(stats.byPath[ti.path]!.bytes).toBeGreaterThan(ti.bytes + cut / 10);

    // ---- nothing left behind: no reads, no .part, no quant temp dirs ----
    for (const sp of world.dataset.species) {
      const getfastq = join(world.dataset.outputDir, sp.speciesId, 'fastq', 'getfastq');
      expect([sp.speciesId, existsSync(getfastq) ? readdirSync(getfastq) : []]).toEqual([sp.speciesId, []]);
    }
    const leftovers = walk(world.dataset.outputDir).filter((p) => /\.part$|\.fastq(\.gz)?$|\.sra$|\/\.[SED]RR\d+\.tmp\/$/.test(p));
    expect(leftovers).toEqual([]);
  }, 150_000);
});
