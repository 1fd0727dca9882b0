// Every answer shape of the emulated ENA Portal API and SRA Data Locator, over real HTTP.
import { describe, it, expect, beforeAll } from '@jest/globals';
import type { SyntheticRun } from '../../src/mirror/fixtures.js';
import { searchRunsByTaxon } from '../../src/tools/ena.js';
import { HttpClient } from '../../src/tools/http.js';
import { useMirrorWorld } from '../helpers/world.js';
import { FILEREPORT_FIELDS, filereportUrl, get, md5, tsvRows } from './helpers.js';

const world = useMirrorWorld('mirror-api', {
  seed: 9,
  species: [
    { name: 'Pairus primus', runs: 2, pairedFraction: 1, readsPerRun: 300, taxonId: 111 },
    { name: 'Singulus secundus', runs: 3, pairedFraction: 0, sraOnlyFraction: 0.34, singleCellFraction: 0.34, readsPerRun: 300, taxonId: 222 },
  ],
});
let host: string;
let threeFile: SyntheticRun;
let single: SyntheticRun;
let sraOnly: SyntheticRun;

beforeAll(() => {
  const [paired, singles] = world.dataset.species;
  host = world.mirror.baseUrl.replace('http://', '');
  threeFile = paired!.runs[0]!;
  single = singles!.runs.find((r) => !r.sraOnly)!;
  sraOnly = singles!.runs.find((r) => r.sraOnly)!;
});

describe('ENA filereport', () => {
  it('answers a paired run with three index-aligned, scheme-less files, orphan reads first', async () => {
    const res = await get(filereportUrl(world.mirror.enaPortalUrl, threeFile.run));
    expect(res.status).toBe(200);
    const [header, row, ...rest] = tsvRows(res.body.toString());
    expect(header).toEqual(FILEREPORT_FIELDS.split(','));
    expect(rest).toEqual([]);
    const v = Object.fromEntries(header!.map((h, i) => [h, row![i]]));
    const files = [threeFile.orphan!, ...threeFile.fastq];
    const dir = `${host}/vol1/fastq/${threeFile.run.slice(0, 6)}/${threeFile.run}`;
    expect(v).toEqual({
      run_accession: threeFile.run,
      fastq_ftp: files.map((f) => `${dir}/${f.name}`).join(';'),
      fastq_md5: files.map((f) => f.md5).join(';'),
      fastq_bytes: files.map((f) => String(f.bytes)).join(';'),
      library_layout: 'PAIRED',
      // spots: the 6 unpaired reads count too (ENA's read_count)
      read_count: String(300 + threeFile.orphanReads!),
      base_count: String(300 * 100 * 2 + threeFile.orphanReads! * 100),
      scientific_name: 'Pairus primus',
      tax_id: '111',
      nominal_length: '250',
      sra_ftp: `${host}/vol1/srr/${threeFile.run.slice(0, 6)}/${threeFile.run}`,
      sra_md5: threeFile.sra.md5,
      sra_bytes: String(threeFile.sra.bytes),
    });
    expect(v.fastq_ftp!.split(';').map((p) => p.slice(p.lastIndexOf('/') + 1))).toEqual([
      `${threeFile.run}.fastq.gz`, `${threeFile.run}_1.fastq.gz`, `${threeFile.run}_2.fastq.gz`,
    ]);
  });

  it('keeps the requested field order, and JSON gives objects of strings', async () => {
    const res = await get(filereportUrl(world.mirror.enaPortalUrl, single.run, 'read_count,run_accession,library_layout', 'json'));
    expect(res.headers['content-type']).toMatch(/json/);
    const body = JSON.parse(res.body.toString());
    expect(body).toEqual([{ read_count: '300', run_accession: single.run, library_layout: 'SINGLE' }]);
    expect(Object.keys(body[0])).toEqual(['read_count', 'run_accession', 'library_layout']);
    const tsv = await get(filereportUrl(world.mirror.enaPortalUrl, single.run, 'library_layout,run_accession'));
    expect(tsvRows(tsv.body.toString())).toEqual([['library_layout', 'run_accession'], ['SINGLE', single.run]]);
  });

  it('uses the default fields when none are asked for', async () => {
    const res = await get(`${world.mirror.enaPortalUrl}/filereport?accession=${single.run}&result=read_run`);
    expect(tsvRows(res.body.toString())[0]).toEqual(['run_accession', 'fastq_ftp', 'fastq_md5', 'fastq_bytes']);
  });

  it('fails the whole request with 400 on one unknown field, a bad result type or a bad accession', async () => {
    const bad = await get(filereportUrl(world.mirror.enaPortalUrl, single.run, 'run_accession,fastq_ftpp'));
    expect(bad.status).toBe(400);
    // ENA's own words, as text/plain (test/fixtures/archives/ena/filereport-400-invalid-field.txt)
    expect(bad.body.toString()).toBe('Invalid fieldName(s) supplied: fastq_ftpp');
    expect(bad.headers['content-type']).toMatch(/^text\/plain/);
    expect((await get(`${world.mirror.enaPortalUrl}/filereport?accession=${single.run}&result=sample`)).status).toBe(400);
    expect((await get(`${world.mirror.enaPortalUrl}/filereport?accession=foo&result=read_run`)).status).toBe(400);
    expect((await get(`${world.mirror.enaPortalUrl}/filereport?result=read_run`)).status).toBe(400);
  });

  it('answers an unknown run with 204 (even number) or a header-only body (odd number)', async () => {
    const even = await get(filereportUrl(world.mirror.enaPortalUrl, 'SRR1000000'));
    expect({ status: even.status, body: even.body.length }).toEqual({ status: 204, body: 0 });
    const odd = await get(filereportUrl(world.mirror.enaPortalUrl, 'SRR1000001'));
    expect(odd.status).toBe(200);
    expect(tsvRows(odd.body.toString())).toEqual([FILEREPORT_FIELDS.split(',')]);
    const oddJson = await get(filereportUrl(world.mirror.enaPortalUrl, 'ERR1000001', 'run_accession', 'json'));
    expect(JSON.parse(oddJson.body.toString())).toEqual([]);
  });

  it('lists a single-end run\'s file as RUN_1.fastq.gz on demand, and serves it under that name', async () => {
    try {
      world.mirror.setFaults({ [single.run]: [{ kind: 'single-as-mate1' }] });
      const res = await get(filereportUrl(world.mirror.enaPortalUrl, single.run, 'fastq_ftp'));
      const path = tsvRows(res.body.toString())[1]![0]!;
      expect(path).toMatch(new RegExp(`/${single.run}_1\\.fastq\\.gz$`));
      const file = await get(`http://${path}`);
      expect({ status: file.status, md5: md5(file.body) }).toEqual({ status: 200, md5: single.fastq[0]!.md5 });
    } finally {
      world.mirror.setFaults({});
    }
  });

  it('knows an sra-only run but lists no files for it', async () => {
    const res = await get(filereportUrl(world.mirror.enaPortalUrl, sraOnly.run, 'run_accession,fastq_ftp,fastq_md5,fastq_bytes,sra_ftp,read_count'));
    expect(tsvRows(res.body.toString().replace(/\t/g, '\t '))[1]!.map((s) => s.trim())).toEqual([sraOnly.run, '', '', '', '', '300']);
  });

  it('lists every run of a study accession', async () => {
    const res = await get(filereportUrl(world.mirror.enaPortalUrl, world.dataset.species[1]!.study, 'run_accession,library_layout'));
    expect(tsvRows(res.body.toString()).slice(1)).toEqual(world.dataset.species[1]!.runs.map((r) => [r.run, 'SINGLE']));
  });
});

describe('ENA search', () => {
  const search = (query: string, extra: Record<string, string> = {}) =>
    get(`${world.mirror.enaPortalUrl}/search?${new URLSearchParams({ result: 'read_run', query, fields: 'run_accession,library_layout,tax_id,fastq_ftp', format: 'tsv', ...extra })}`);

  it('returns the runs of a taxon, sra-only ones included (without files)', async () => {
    const res = await search('tax_eq(222) AND library_strategy="RNA-Seq"');
    const rows = tsvRows(res.body.toString().replace(/\t$/gm, '\t-'));
    expect(rows[0]).toEqual(['run_accession', 'library_layout', 'tax_id', 'fastq_ftp']);
    expect(rows.slice(1).map((r) => r[0])).toEqual(world.dataset.species[1]!.runs.map((r) => r.run));
    expect(rows.find((r) => r[0] === sraOnly.run)![3]).toBe('-');
    expect((await search('tax_eq(111)')).body.toString().trim().split('\n')).toHaveLength(3);
  });

  it('tells bulk from single-cell runs by library_source, and the client asks for bulk only', async () => {
    const sc = world.dataset.species[1]!.runs.filter((r) => r.singleCell).map((r) => r.run);
    expect(sc).toHaveLength(1);
    const all = tsvRows((await search('tax_eq(222) AND library_strategy="RNA-Seq"', { fields: 'run_accession,library_source' })).body.toString()).slice(1);
    expect(all.filter((r) => r[1] === 'TRANSCRIPTOMIC SINGLE CELL').map((r) => r[0])).toEqual(sc);
    const bulk = await searchRunsByTaxon({ portalUrl: world.mirror.enaPortalUrl, taxonId: 222, http: new HttpClient({ requestsPerSec: 1000 }) });
    expect(bulk.map((r) => r.run)).toEqual(world.dataset.species[1]!.runs.filter((r) => !r.singleCell).map((r) => r.run));
  });

  it('answers JSON, honours limit/offset, returns only a header for no match and 400 for a bad query', async () => {
    const json = await search('tax_eq(111) AND library_strategy="RNA-Seq"', { format: 'json', limit: '1', offset: '1' });
    expect(JSON.parse(json.body.toString())).toEqual([{ run_accession: world.dataset.species[0]!.runs[1]!.run, library_layout: 'PAIRED', tax_id: '111', fastq_ftp: expect.stringContaining('_1.fastq.gz') }]);
    expect(tsvRows((await search('tax_eq(999)')).body.toString())).toHaveLength(1);
    expect(tsvRows((await search('tax_eq(111) AND library_strategy="WGS"')).body.toString())).toHaveLength(1);
    const bad = await search('tax_eq(111) OR country="x"');
    expect(bad.status).toBe(400);
    expect(bad.body.toString()).toMatch(/Invalid query/);
  });
});

describe('SRA Data Locator', () => {
  it('answers version 2 JSON whose link serves the .sra with the stated size and md5', async () => {
    const res = await get(`${world.mirror.sraLocateUrl}?acc=${sraOnly.run}&filetype=run`);
    const body = JSON.parse(res.body.toString());
    expect(body.version).toBe('2');
    expect(body.result).toHaveLength(1);
    const r = body.result[0];
    expect({ bundle: r.bundle, status: r.status }).toEqual({ bundle: sraOnly.run, status: 200 });
    // As the real locator: a .pileup companion (type sra) before the run, its vdbcache after it.
    expect(r.files.map((f: { name: string; type: string }) => [f.name, f.type])).toEqual([
      [`${sraOnly.run}.pileup`, 'sra'], [sraOnly.run, 'sra'], [`${sraOnly.run}.vdbcache`, 'vdbcache'],
    ]);
    expect((await get(r.files[0].locations[0].link)).status).toBe(404);
    expect(r.files[1]).toMatchObject({ type: 'sra', name: sraOnly.run, size: sraOnly.sra.bytes, md5: sraOnly.sra.md5 });
    // NCBI's own server listed first, then the AWS Open Data bucket, then Google's requester-pays copy
    const locations = r.files[1].locations as { service: string; link: string; ceRequired?: boolean }[];
    expect(locations.map((l) => [l.service, l.link, l.ceRequired ?? false])).toEqual([
      ['ncbi', `${world.mirror.baseUrl}/sos/sra-pub-run-2/${sraOnly.run}/${sraOnly.run}.2`, false],
      ['s3', `${world.mirror.baseUrl}/sra/${sraOnly.run}/${sraOnly.run}`, false],
      ['gs', `${world.mirror.baseUrl}/sra-pub-run-1/${sraOnly.run}/${sraOnly.run}.2`, true],
    ]);
    for (const { link } of locations.slice(0, 2)) {
      const file = await get(link);
      expect({ status: file.status, bytes: file.body.length, md5: md5(file.body) }).toEqual({ status: 200, bytes: sraOnly.sra.bytes, md5: sraOnly.sra.md5 });
    }
    // without credentials the Google copy is refused, as Cloud Storage refuses a requester-pays bucket
    const gs = await get(locations[2]!.link);
    expect([gs.status, gs.body.toString()]).toEqual([400, expect.stringContaining('UserProjectMissing')]);
    world.mirror.setFaults({ [sraOnly.run]: [{ kind: 'sra-gs-free' }] });
    try {
      expect(md5((await get(locations[2]!.link)).body)).toBe(sraOnly.sra.md5);
    } finally {
      world.mirror.setFaults({});
    }
  });

  it('reports an unknown run as a per-run 404 and a malformed one as 400, several accessions at once', async () => {
    const res = await get(`${world.mirror.sraLocateUrl}?acc=SRR1000000,${single.run},bogus&filetype=run`);
    expect(res.status).toBe(200);
    const result = JSON.parse(res.body.toString()).result as { bundle: string; status: number; files?: unknown[] }[];
    expect(result.map((r) => [r.bundle, r.status, r.files === undefined])).toEqual([
      ['SRR1000000', 404, true], [single.run, 200, false], ['bogus', 400, true],
    ]);
    expect((await get(world.mirror.sraLocateUrl)).status).toBe(400);
  });

  it('serves SRA Lite, payRequired, ceRequired and a top-level error without result on demand', async () => {
    const ask = async () => JSON.parse((await get(`${world.mirror.sraLocateUrl}?acc=${sraOnly.run}&filetype=run`)).body.toString());
    try {
      world.mirror.setFaults({ [sraOnly.run]: [{ kind: 'sra-lite' }] });
      expect((await ask()).result[0].files[1]).toMatchObject({ name: `${sraOnly.run}.lite`, noqual: true });
      world.mirror.setFaults({ [sraOnly.run]: [{ kind: 'sra-pay-required' }] });
      expect((await ask()).result[0].files[1].locations).toEqual([expect.objectContaining({ payRequired: true })]);
      world.mirror.setFaults({ [sraOnly.run]: [{ kind: 'sra-ce-required' }] });
      expect((await ask()).result[0].files[1].locations).toEqual([expect.objectContaining({ ceRequired: true })]);
      world.mirror.setFaults({ [sraOnly.run]: [{ kind: 'locator-error' }] });
      expect(await ask()).toEqual({ version: '2.1', status: 500, message: 'Internal Server Error' });
    } finally {
      world.mirror.setFaults({});
    }
  });
});

describe('routing', () => {
  it('answers 404 for unknown paths and 405 for other methods', async () => {
    expect((await get(`${world.mirror.baseUrl}/vol1/fastq/SRR900/SRR9000001/../../etc/passwd`)).status).toBe(404);
    expect((await get(`${world.mirror.baseUrl}/nothing`)).status).toBe(404);
    expect((await get(`${world.mirror.baseUrl}/vol1/fastq/SRR900/SRR9000001/SRR9000001_1.fastq.gz`, {}, 'DELETE')).status).toBe(405);
  });
});
