/**
 * A batch whose runs meet the archives' real answer shapes (test/fixtures/archives/README.md), run by a real
 * worker (HTTP to the mirror, kallisto, fasterq-dump, real files) on the suite's Temporal server: a 3-file
 * paired run whose read_count counts its unpaired reads, a single-end run listed as RUN_1.fastq.gz, SRA-only
 * runs (empty fastq_* at ENA) behind a locator that lists a .pileup before the run, an SRA Lite copy, copies
 * that need payment or cloud credentials, a locator that fails as a whole, an unknown run, ENA rejecting a
 * field with 400, and an ENA copy that stays bad (fetched from SRA instead). Every recoverable run must end
 * done; every other one failed with a reason that names the archive's answer.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset, SyntheticRun } from '../../src/mirror/fixtures.js';
import type { FaultPlan } from '../../src/mirror/server.js';
import type { Provenance } from '../../src/types.js';
import type { BatchResult } from '../../src/workflows/batch.js';
import { startMirrorBatch, useE2eWorld, walk } from '../helpers/e2e.js';

interface Cast {
  threeFile: SyntheticRun;
  mate1Only: SyntheticRun;
  unknown: SyntheticRun;
  badEnaCopy: SyntheticRun;
  enaRejects: SyntheticRun;
  /** ENA declares 1 PB per file: no disk can hold it, admission must say so at once */
  hugeSize: SyntheticRun;
  sraPlain: SyntheticRun;
  sraLite: SyntheticRun;
  payRequired: SyntheticRun;
  ceRequired: SyntheticRun;
  locatorError: SyntheticRun;
}

function cast(d: Dataset): Cast {
  const runs = d.species[0]!.runs;
  const ena = runs.filter((r) => !r.sraOnly);
  const sra = runs.filter((r) => r.sraOnly);
  const threeFile = ena.find((r) => r.orphan)!;
  const mate1Only = ena.find((r) => r.layout === 'single')!;
  // The second 3-file run's ENA copy stays bad: SRA's .sra holds its unpaired spots too (fasterq-dump's RUN.fastq).
  const badEnaCopy = ena.find((r) => r.orphan && r !== threeFile)!;
  const rest = ena.filter((r) => r !== threeFile && r !== mate1Only && r !== badEnaCopy);
  if (!threeFile || !mate1Only || !badEnaCopy || rest.length < 3 || sra.length < 5) throw new Error('archive-shapes: the seeded dataset lacks the runs this test needs');
  return {
    threeFile, mate1Only, unknown: rest[0]!, badEnaCopy, enaRejects: rest[1]!, hugeSize: rest[2]!,
    sraPlain: sra[0]!, sraLite: sra[1]!, payRequired: sra[2]!, ceRequired: sra[3]!, locatorError: sra[4]!,
  };
}

function faultPlan(k: Cast): FaultPlan {
  return {
    [k.mate1Only.run]: [{ kind: 'single-as-mate1' }],
    [k.unknown.run]: [{ kind: 'unknown' }],
    [k.badEnaCopy.run]: [{ kind: 'wrong-bytes', target: 'fastq' }],
    [k.enaRejects.run]: [{ kind: 'ena-reject-field', field: 'read_count' }],
    [k.hugeSize.run]: [{ kind: 'declared-bytes', bytes: 1e15 }],
    [k.sraLite.run]: [{ kind: 'sra-lite' }],
    [k.payRequired.run]: [{ kind: 'sra-pay-required' }],
    [k.ceRequired.run]: [{ kind: 'sra-ce-required' }],
    [k.locatorError.run]: [{ kind: 'locator-error' }],
  };
}

describe('a batch meeting the archives\' real answer shapes (real worker, real tools, real HTTP)', () => {
  let k: Cast;
  const world = useE2eWorld({
    label: 'e2e-archive-shapes',
    prefix: 'shapes',
    data: { seed: 5, species: [{ name: 'Archivus realis', runs: 12, pairedFraction: 0.5, sraOnlyFraction: 0.5, readsPerRun: 400 }] },
    mirror: (d) => ({ faults: faultPlan((k = cast(d))) }),
    worker: { hostId: 'shapes-host' },
    timeoutMs: 60_000,
  });

  it('finishes every recoverable run done and fails the rest naming the archive\'s answer', async () => {
    // a run no source can serve now parks (docs/park.md): short waits, so the locator's lasting error ends the batch
    const handle = await startMirrorBatch(world.t.client, 'shapes', world.dataset, world.mirror, { totalThreads: 6, maxRetries: 1, parkWaitSec: 0.5, parkDeadlineSec: 1.5 });
    const result = (await handle.result()) as BatchResult;
    const sp = world.dataset.species[0]!;
    const reason = (r: SyntheticRun) => result.failures.find((f) => f.run === r.run);

    // ---- the unrecoverable ones, each failed with what the archive said ----
    expect(result.failures.map((f) => f.run).sort()).toEqual([k.unknown, k.enaRejects, k.hugeSize, k.payRequired, k.ceRequired, k.locatorError].map((r) => r.run).sort());
    // a size no disk can hold: failed at admission, at once, saying so (it never waited for disk)
    expect(reason(k.hugeSize)).toMatchObject({ failureType: 'InsufficientDisk' });
    expect(reason(k.hugeSize)!.reason).toMatch(new RegExp(`run ${k.hugeSize.run} needs (1|2)000000\\.0 GB on disk \\(sizes the archive declares\\).* it can never be admitted`));
    expect(reason(k.unknown)).toMatchObject({ failureType: 'RunNotFound' });
    expect(reason(k.unknown)!.reason).toMatch(/ena: (HTTP 204 \(no content\)|no row for \w+ \(header-only answer\)) from http.*; sra: status 404 \(No data at given location/);
    // ENA's 400 is loud and final: ENA's own words, and SRA is never asked for that run
    expect(reason(k.enaRejects)).toMatchObject({ failureType: 'InvalidInput' });
    expect(reason(k.enaRejects)!.reason).toContain('ENA rejected the request with HTTP 400: "Invalid fieldName(s) supplied: read_count"');
    expect(reason(k.enaRejects)!.reason).not.toMatch(/sra:/);
    expect(reason(k.payRequired)).toMatchObject({ failureType: 'RunNotFound' });
    expect(reason(k.payRequired)!.reason).toMatch(/ena: no usable FASTQ listed \(fastq_ftp=""\); sra: status 200 but no copy is free to download: \w+ at s3 us-east-1 needs payment \(payRequired\)/);
    expect(reason(k.ceRequired)!.reason).toMatch(/sra: status 200 but no copy is free to download: \w+ at gs us-east1 needs cloud credentials \(ceRequired\)/);
    // a locator that failed as a whole is retried as a server error, never "not found", then parked; still
    // failing at the park deadline, it fails naming the locator's answer
    expect(reason(k.locatorError)).toMatchObject({ failureType: 'ParkedPastDeadline' });
    expect(reason(k.locatorError)!.reason).toMatch(/sra: SRA locator: locator error status 500 \(Internal Server Error\) without a result/);
    const stats = world.mirror.stats();
    for (const r of [k.enaRejects, k.hugeSize, k.payRequired, k.ceRequired, k.locatorError]) expect([r.run, stats.byPath[`/sra/${r.run}/${r.run}`]]).toEqual([r.run, undefined]);

    // ---- everything else done, from the archive's bytes ----
    expect(result.totals).toEqual({ total: 12, done: 6, skipped: 0, failed: 6 });
    const failed = new Set(result.failures.map((f) => f.run));
    const prov = (r: SyntheticRun) => JSON.parse(readFileSync(join(world.dataset.outputDir, sp.speciesId, 'quant', r.run, `${r.run}_fetchquant.json`), 'utf8')) as Provenance;
    for (const r of sp.runs.filter((x) => !failed.has(x.run))) {
      const info = JSON.parse(readFileSync(join(world.dataset.outputDir, sp.speciesId, 'quant', r.run, `${r.run}_run_info.json`), 'utf8'));
      expect([r.run, info.n_processed]).toEqual([r.run, r.reads]);
      const viaSra = r.sraOnly || r === k.badEnaCopy;
      expect([r.run, prov(r).source.source, prov(r).files.map((f) => f.md5)]).toEqual([r.run, viaSra ? 'sra' : 'ena', viaSra ? [r.sra.md5] : r.fastq.map((f) => f.md5)]);
    }
    // the 3-file run: ENA's read_count counted the unpaired reads; the mates were verified against it, not equal to it
    const three = prov(k.threeFile);
    expect(three).toMatchObject({ reads: k.threeFile.reads, unpairedReads: k.threeFile.orphanReads, source: { layout: 'paired', expectedReads: k.threeFile.reads + k.threeFile.orphanReads!, unpaired: { name: `${k.threeFile.run}.fastq.gz` } } });
    expect(three.source.notes?.[0]).toMatch(/unpaired reads, \d+ bytes\): not downloaded, not quantified/);
    // the single run listed as RUN_1.fastq.gz: fetched from that URL, quantified single-end
    expect(prov(k.mate1Only).source).toMatchObject({ layout: 'single', files: [{ name: `${k.mate1Only.run}.fastq.gz`, url: expect.stringMatching(/_1\.fastq\.gz$/) }] });
    // the .pileup listed before the run was never fetched
    for (const r of [k.sraPlain, k.sraLite]) expect([r.run, stats.byPath[`/sra/${r.run}/${r.run}.pileup`]]).toEqual([r.run, undefined]);
    expect(prov(k.sraLite).source.notes?.[0]).toMatch(new RegExp(`SRA Lite copy \\(${k.sraLite.run}\\.lite, noqual\\)`));
    expect(prov(k.sraPlain).source.notes).toBeUndefined();
    // the ENA copy that stayed bad: fetched from SRA, and the provenance says why
    expect(prov(k.badEnaCopy).source.notes?.[0]).toMatch(/bad copy before this one: ena: .*md5 [0-9a-f]{32}, expected/);
    // ...and fasterq-dump's unpaired spots were counted against the run table's spots (pairs + unpaired)
    expect(prov(k.badEnaCopy)).toMatchObject({ reads: k.badEnaCopy.reads, unpairedReads: k.badEnaCopy.orphanReads, source: { expectedReads: k.badEnaCopy.reads + k.badEnaCopy.orphanReads! } });

    // ---- nothing left behind ----
    const leftovers = walk(world.dataset.outputDir).filter((p) => /\.part$|\.fastq(\.gz)?$|\.sra$|\/\.[SED]RR\d+\.tmp\/$/.test(p));
    expect(leftovers).toEqual([]);
  }, 150_000);
});
