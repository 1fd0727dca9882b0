/** resolveSource end to end against the local mirror: ENA first, SRA fallback, RunNotFound. */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createSourceActivities } from '../../src/activities/source.js';
import { searchRunsByTaxon } from '../../src/tools/ena.js';
import { failureOf, fastHttp, meta, quietEnv, resolve, startWorld, type World } from './fixture.js';

let w: World;
beforeAll(async () => {
  w = await startWorld();
}, 180_000);
afterAll(async () => w?.stop());

describe('resolveSource', () => {
  it('plans ENA FASTQ for a single-end run: one file, its size, md5 and read count', async () => {
    w.mirror.setFaults({});
    const plan = await resolve(fastHttp(), meta(w.single), w.options);
    const f = w.single.fastq[0]!;
    expect(plan).toEqual({
      source: 'ena',
      run: w.single.run,
      layout: 'single',
      files: [{ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/.*\.fastq\.gz$/), name: `${w.single.run}.fastq.gz`, bytes: f.bytes, md5: f.md5, mate: 0 }],
      expectedReads: w.single.reads,
      reserveBytes: f.bytes,
    });
  });

  it('picks _1 and _2 of a paired run listed with three files, by suffix', async () => {
    w.mirror.setFaults({});
    const plan = await resolve(fastHttp(), meta(w.paired), w.options);
    const [m1, m2] = [w.paired.fastq.find((x) => x.mate === 1)!, w.paired.fastq.find((x) => x.mate === 2)!];
    expect(plan.layout).toBe('paired');
    expect(plan.files.map((x) => [x.name, x.mate, x.bytes, x.md5])).toEqual([
      [`${w.paired.run}_1.fastq.gz`, 1, m1.bytes, m1.md5],
      [`${w.paired.run}_2.fastq.gz`, 2, m2.bytes, m2.md5],
    ]);
    expect(plan.files[0]!.url).toMatch(new RegExp(`${w.paired.run}_1\\.fastq\\.gz$`));
    expect(plan.reserveBytes).toBe(m1.bytes + m2.bytes);
  });

  it('falls back to SRA for an SRA-only run: one .sra, reserve 3x, reads from the run table', async () => {
    w.mirror.setFaults({});
    const plan = await resolve(fastHttp(), meta(w.sraOnly), w.options);
    expect(plan).toMatchObject({
      source: 'sra',
      run: w.sraOnly.run,
      files: [{ name: `${w.sraOnly.run}.sra`, bytes: w.sraOnly.sra.bytes, md5: w.sraOnly.sra.md5, mate: 0 }],
      expectedReads: w.sraOnly.reads,
      reserveBytes: 3 * w.sraOnly.sra.bytes,
    });
    const unknownSpots = await resolve(fastHttp(), meta(w.sraOnly, false), w.options);
    expect(unknownSpots.expectedReads).toBeNull();
  });

  it('asks SRA first when sources say so', async () => {
    w.mirror.setFaults({});
    const plan = await resolve(fastHttp(), meta(w.single), { ...w.options, sources: ['sra', 'ena'] });
    expect(plan.source).toBe('sra');
  });

  it('throws non-retryable RunNotFound naming each source and its answer (204 and header-only alike)', async () => {
    const runs = [w.single, w.sraOnly];
    w.mirror.setFaults(Object.fromEntries(runs.map((r) => [r.run, [{ kind: 'unknown' as const }]])));
    // The mirror answers 204 for even run numbers and a header-only 200 for odd ones: one of each here.
    expect(new Set(runs.map((r) => Number(r.run.slice(-1)) % 2)).size).toBe(2);
    for (const r of runs) {
      const err = await failureOf(resolve(fastHttp(), meta(r), w.options));
      expect(err.type).toBe('RunNotFound');
      expect(err.nonRetryable).toBe(true);
      expect(err.message).toContain(`run ${r.run}: ena: `);
      expect(err.message).toMatch(Number(r.run.slice(-1)) % 2 === 0 ? /ena: HTTP 204 \(no content\) from http:\/\/\S+\/filereport\?/ : /ena: no row for \w+ \(header-only answer\) from http/);
      expect(err.message).toMatch(/; sra: status 404 \(No data at given location[^)]*\) from http:\/\/\S+\/sdl\/2\/retrieve\?acc=/);
    }
  });

  it('rides out 5xx and 429 at the API within its own retries', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'status', status: 503, times: 2, target: 'api' }] });
    w.mirror.resetStats();
    const plan = await resolve(fastHttp(), meta(w.single), w.options);
    expect(plan.source).toBe('ena');
    expect(w.mirror.stats().requests).toBe(3);
  });

  it('does not call a run unknown when a source was down: retryable ServerError instead', async () => {
    w.mirror.setFaults({ [w.sraOnly.run]: [{ kind: 'status', status: 500, times: 100, target: 'api' }] });
    const err = await failureOf(resolve(fastHttp({ retries: 1 }), meta(w.sraOnly), w.options));
    expect(err.type).toBe('ServerError');
    expect(err.nonRetryable).toBe(false);
    expect(err.message).toMatch(/HTTP 500/);
  });

  it('asks SRA when ENA cannot answer, and the plan says why (the provenance shows it)', async () => {
    w.mirror.setFaults({ [w.single.run]: [{ kind: 'status', status: 500, times: 100, target: 'ena-api' }] });
    const plan = await resolve(fastHttp({ retries: 1 }), meta(w.single), w.options);
    expect(plan).toMatchObject({ source: 'sra', run: w.single.run, files: [{ name: `${w.single.run}.sra`, md5: w.single.sra.md5 }] });
    expect(plan.notes).toEqual([expect.stringMatching(new RegExp(`^asked sra because .*HTTP 500`))]);
    // a run ENA does not hold gets no such note: "not found" is an answer
    w.mirror.setFaults({});
    expect((await resolve(fastHttp(), meta(w.sraOnly), w.options)).notes).toBeUndefined();
  });

  it('rejects an invalid accession before any request', async () => {
    w.mirror.setFaults({});
    w.mirror.resetStats();
    const { resolveSource } = createSourceActivities({ http: fastHttp() });
    const err = await failureOf(quietEnv().run(resolveSource, { run: { run: 'SRR1/../x' }, options: w.options }));
    expect(err.type).toBe('InvalidInput');
    expect(err.nonRetryable).toBe(true);
    expect(w.mirror.stats().requests).toBe(0);
  });
});

describe('searchRunsByTaxon', () => {
  it('lists every run of a taxon with layout, nominal length and spots', async () => {
    w.mirror.setFaults({});
    const species = w.dataset.species[1]!;
    const runs = await searchRunsByTaxon({ portalUrl: w.mirror.enaPortalUrl, taxonId: species.taxonId, http: fastHttp() });
    expect(runs.map((r) => r.run).sort()).toEqual(species.runs.map((r) => r.run).sort());
    const single = runs.find((r) => r.run === w.single.run);
    // ENA leaves nominal_length empty for single-end runs: no made-up value.
    expect(single).toEqual({ run: w.single.run, layout: 'single', spots: w.single.reads });
    const paired = (await searchRunsByTaxon({ portalUrl: w.mirror.enaPortalUrl, taxonId: w.dataset.species[0]!.taxonId, http: fastHttp() }))[0];
    // ENA's read_count counts spots: the paired run's unpaired reads too.
    expect(paired).toEqual({ run: w.paired.run, layout: 'paired', nominalLength: w.paired.nominalLength, spots: w.paired.reads + w.paired.orphanReads! });
  });
});
