// Every archive answer in test/fixtures/archives (sources in its README.md) through the parsers, as the
// client meets it: status + body -> found / not found / retryable / configuration error.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { ApplicationFailure } from '@temporalio/common';
import { chooseFastqFiles, interpretFilereport, parseJson, parseSearch, parseTsv } from '../../src/tools/ena.js';
import { parseLocate } from '../../src/tools/sra.js';

// Compiled to dist/test/unit: the fixtures stay in the source tree.
const DIR = fileURLToPath(new URL('../../../test/fixtures/archives/', import.meta.url));
interface Entry { file: string; status: number; contentType: string; run?: string; format?: 'tsv' | 'json'; source: string }
const index = JSON.parse(readFileSync(`${DIR}index.json`, 'utf8')) as { ena: Entry[]; sdl: Entry[]; eutils: Entry[] };
const entry = (file: string): Entry & { body: string } => {
  const e = [...index.ena, ...index.sdl].find((x) => x.file === file);
  if (!e) throw new Error(`fixture ${file} is not in index.json`);
  return { ...e, body: readFileSync(`${DIR}${file}`, 'utf8') };
};
const URL_ = 'https://www.ebi.ac.uk/ena/portal/api/filereport?…';
const ena = (file: string) => {
  const e = entry(file);
  return interpretFilereport(e.status, e.body, e.run!, URL_, e.format ?? 'tsv');
};
const sdl = (file: string) => {
  const e = entry(file);
  return parseLocate(e.body, e.run!);
};

describe('fixture index', () => {
  it('names a source for every fixture, and every file in ena/ and sdl/ is indexed', () => {
    for (const e of [...index.ena, ...index.sdl, ...index.eutils]) {
      expect(e.source.length).toBeGreaterThan(20);
      expect(() => readFileSync(`${DIR}${e.file}`)).not.toThrow();
    }
    expect([index.ena.length, index.sdl.length, index.eutils.length]).toEqual([11, 8, 4]);
  });
});

describe('ENA filereport answers', () => {
  it('paired TSV and JSON: the same row, mates _1 and _2 by suffix, read_count = spots', () => {
    const tsv = ena('ena/filereport-paired.tsv');
    const json = ena('ena/filereport-paired.json');
    expect(tsv.found && json.found).toBe(true);
    if (!tsv.found || !json.found) return;
    expect(json.row).toEqual(tsv.row);
    const c = chooseFastqFiles(tsv.row, 'SRR7299460', 'https')!;
    expect(c.layout).toBe('paired');
    expect(c.files.map((f) => [f.name, f.mate, f.bytes])).toEqual([
      ['SRR7299460_1.fastq.gz', 1, 1071419052],
      ['SRR7299460_2.fastq.gz', 2, 1103524418],
    ]);
    expect(c.files[0]!.url).toBe('https://ftp.sra.ebi.ac.uk/vol1/fastq/SRR729/000/SRR7299460/SRR7299460_1.fastq.gz');
    expect(c.unpaired).toBeUndefined();
    expect(parseJson(entry('ena/filereport-paired.json').body)).toEqual(parseTsv(entry('ena/filereport-paired.tsv').body));
  });

  it('a single-end run listed only as RUN_1.fastq.gz is single-end, stored as RUN.fastq.gz', () => {
    const a = ena('ena/filereport-single-mate1-only.tsv');
    if (!a.found) throw new Error('expected a row');
    const c = chooseFastqFiles(a.row, 'ERR000017', 'https')!;
    expect(c).toMatchObject({ layout: 'single', files: [{ name: 'ERR000017.fastq.gz', mate: 0, bytes: 5104812 }] });
    expect(c.files[0]!.url).toMatch(/ERR000017_1\.fastq\.gz$/);
  });

  it('a 3-file paired run: the mates by suffix, the unpaired RUN.fastq.gz kept aside (listed first)', () => {
    const a = ena('ena/filereport-three-files.tsv');
    if (!a.found) throw new Error('expected a row');
    const c = chooseFastqFiles(a.row, 'SRR13055520', 'https')!;
    expect(c.layout).toBe('paired');
    expect(c.files.map((f) => f.name)).toEqual(['SRR13055520_1.fastq.gz', 'SRR13055520_2.fastq.gz']);
    expect(c.unpaired).toMatchObject({ name: 'SRR13055520.fastq.gz', bytes: 1893220, mate: 0 });
    expect(a.row.read_count).toBe('9315622');
  });

  it('empty fastq_* (only submitted files): the row exists but there is nothing to fetch from ENA', () => {
    const a = ena('ena/filereport-no-fastq.tsv');
    if (!a.found) throw new Error('expected a row');
    expect(chooseFastqFiles(a.row, 'ERR4027864', 'https')).toBeNull();
  });

  it('header-only and 204 answers are "not found here", naming the answer', () => {
    expect(ena('ena/filereport-header-only.tsv')).toEqual({ found: false, answer: `no row for SRR7299461 (header-only answer) from ${URL_}` });
    expect(ena('ena/filereport-204.txt')).toEqual({ found: false, answer: `HTTP 204 (no content) from ${URL_}` });
  });

  it('400 text/plain "Invalid fieldName(s) supplied" is a non-retryable configuration error quoting ENA', () => {
    let err: unknown;
    try {
      ena('ena/filereport-400-invalid-field.txt');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    expect(f.nonRetryable).toBe(true);
    expect(f.type).toBe('InvalidInput');
    expect(f.message).toContain('HTTP 400: "Invalid fieldName(s) supplied: parent_study"');
  });

  it('search answers: bulk transcriptome runs only, single-cell dropped', () => {
    expect(parseSearch(entry('ena/search-taxon.tsv').body)).toEqual([
      { run: 'SRR7299460', layout: 'paired', nominalLength: 300, spots: 14846473 },
      { run: 'ERR000017', layout: 'single', spots: 209734 },
      { run: 'SRR13055520', layout: 'paired', nominalLength: 250, spots: 9315622 },
    ]);
    expect(parseSearch(entry('ena/search-taxon-mixed-sources.tsv').body).map((r) => r.run)).toEqual(['SRR7299460']);
  });
});

describe('SRA Data Locator answers', () => {
  it("several files with a .pileup (type sra) listed before the run: takes the run itself, at the first free location in amalgkit's order", () => {
    const a = sdl('sdl/pileup-before-run.json');
    expect(a).toMatchObject({
      found: true, noqual: false, remoteName: 'SRR850901', service: 's3',
      file: { name: 'SRR850901.sra', bytes: 323741972, md5: '5e213b2319bd1af17c47120ee8b16dbc', url: 'https://sra-pub-run-odp.s3.amazonaws.com/sra/SRR850901/SRR850901' },
    });
    // NCBI's own copy when the config allows only NCBI (steps.getfastq.aws: no, gcp: no)
    expect(parseLocate(entry('sdl/pileup-before-run.json').body, 'SRR850901', ['ncbi'])).toMatchObject({
      found: true, service: 'ncbi', file: { url: 'https://sra-downloadb.be-md.ncbi.nlm.nih.gov/sos/sra-pub-run-2/SRR850901/SRR850901.2' },
    });
  });

  it('SRA Lite only: taken, and flagged as having no quality scores', () => {
    expect(sdl('sdl/lite-noqual.json')).toMatchObject({ found: true, noqual: true, remoteName: 'SRR8117283.lite', file: { name: 'SRR8117283.sra', bytes: 10626650910 } });
  });

  it('a full-quality copy is preferred over a Lite one, whatever the order', () => {
    const lite = JSON.parse(entry('sdl/lite-noqual.json').body);
    const full = JSON.parse(entry('sdl/multiple-locations.json').body).result[0].files[0];
    lite.result[0].bundle = 'SRR850901';
    lite.result[0].files[0].name = 'SRR850901.lite';
    lite.result[0].files.push(full);
    expect(parseLocate(JSON.stringify(lite), 'SRR850901')).toMatchObject({ found: true, noqual: false, remoteName: 'SRR850901' });
  });

  it("two locations: amalgkit's order (AWS first) unless the config's services give another", () => {
    // the answer lists ncbi first; amalgkit getfastq tries AWS, GCP, NCBI in that order
    expect(sdl('sdl/multiple-locations.json')).toMatchObject({ found: true, service: 's3', file: { url: 'https://sra-pub-run-odp.s3.amazonaws.com/sra/SRR850901/SRR850901' } });
    const body = entry('sdl/multiple-locations.json').body;
    expect(parseLocate(body, 'SRR850901', ['ncbi', 's3'])).toMatchObject({ found: true, service: 'ncbi' });
    expect(parseLocate(body, 'SRR850901', ['gs', 'ncbi'])).toMatchObject({ found: true, service: 'ncbi' });
    expect(parseLocate(body, 'SRR850901', ['gs'])).toMatchObject({ found: false, answer: expect.stringMatching(/not among the allowed services \(gs/) });
  });

  it('payRequired only: not available here, saying why', () => {
    expect(sdl('sdl/pay-required.json')).toEqual({ found: false, answer: 'status 200 but no copy is free to download: SRR850901 at s3 us-east-1 needs payment (payRequired)' });
  });

  it('ceRequired first, a free location second: the free one', () => {
    expect(sdl('sdl/ce-required.json')).toMatchObject({ found: true, service: 'ncbi', file: { url: expect.stringContaining('be-md.ncbi.nlm.nih.gov') } });
    const onlyCe = JSON.parse(entry('sdl/ce-required.json').body);
    onlyCe.result[0].files[0].locations.pop();
    expect(parseLocate(JSON.stringify(onlyCe), 'SRR850901')).toEqual({ found: false, answer: 'status 200 but no copy is free to download: SRR850901 at gs us-east1 needs cloud credentials (ceRequired)' });
  });

  it('encrypted for a dbGaP project: skipped, naming the project', () => {
    expect(sdl('sdl/encrypted.json')).toEqual({ found: false, answer: 'status 200 but no copy is free to download: SRR1219902 at sra-ncbi public is encrypted for dbGaP project phs-1234' });
  });

  it('per-run 404: not found, with the locator message', () => {
    expect(sdl('sdl/per-run-404.json')).toEqual({ found: false, answer: 'status 404 (No data at given location.region)' });
  });

  it('top-level error status without result: a retryable locator error, never "not found"', () => {
    expect(sdl('sdl/top-level-500.json')).toEqual({ found: false, retryable: true, answer: 'locator error status 500 (Internal Server Error) without a result' });
  });

  it('a companion alone (no file of the run) is not the run', () => {
    const only = JSON.parse(entry('sdl/pileup-before-run.json').body);
    only.result[0].files = only.result[0].files.filter((f: { name: string }) => f.name !== 'SRR850901');
    const a = parseLocate(JSON.stringify(only), 'SRR850901');
    expect(a.found).toBe(false);
    expect(a.found === false && a.answer).toMatch(/no file of the run itself \(listed: SRR850901\.contigs\.fasta \(reference_fasta\), SRR850901\.pileup \(sra\), SRR850901\.vdbcache \(vdbcache\)\)/);
  });
});
