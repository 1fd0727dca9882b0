import { describe, expect, it } from '@jest/globals';
import { chooseFastqFiles, FILEREPORT_FIELDS, filereportUrl, interpretFilereport, mateOf, parseJson, parseTsv, searchUrl, withScheme } from '../../src/tools/ena.js';

const RUN = 'SRR13055520';
const dir = `ftp.sra.ebi.ac.uk/vol1/fastq/SRR130/020/${RUN}`;
const md5 = (c: string) => c.repeat(32);

describe('ENA URLs', () => {
  it('filereport asks for exactly the fields fetchquant reads, for one run, in the asked format', () => {
    const u = new URL(filereportUrl('https://www.ebi.ac.uk/ena/portal/api/', RUN, 'json'));
    expect(u.pathname).toBe('/ena/portal/api/filereport');
    expect(u.searchParams.get('accession')).toBe(RUN);
    expect(u.searchParams.get('result')).toBe('read_run');
    expect(u.searchParams.get('format')).toBe('json');
    expect(u.searchParams.get('fields')).toBe(
      'run_accession,fastq_ftp,fastq_md5,fastq_bytes,library_layout,read_count',
    );
    expect(FILEREPORT_FIELDS).toHaveLength(6);
    expect(new URL(filereportUrl('http://127.0.0.1:1/api', RUN)).searchParams.get('format')).toBe('tsv');
  });

  it('search asks for bulk RNA-Seq runs of the taxon (not single-cell), every row', () => {
    const u = new URL(searchUrl('http://127.0.0.1:1/api', 104421));
    expect(u.pathname).toBe('/api/search');
    expect(u.searchParams.get('query')).toBe('tax_eq(104421) AND library_strategy="RNA-Seq" AND library_source="TRANSCRIPTOMIC"');
    expect(u.searchParams.get('result')).toBe('read_run');
    expect(u.searchParams.get('limit')).toBe('0');
    expect(u.searchParams.get('fields')?.split(',')).toContain('run_accession');
    expect(() => searchUrl('http://x/api', -3)).toThrow(/positive integer/);
  });

  it('puts the scheme before scheme-less paths only', () => {
    expect(withScheme(`${dir}/${RUN}_1.fastq.gz`, 'https')).toBe(`https://${dir}/${RUN}_1.fastq.gz`);
    expect(withScheme(`http://h/x.fastq.gz`, 'https')).toBe('http://h/x.fastq.gz');
  });
});

describe('ENA parsers', () => {
  it('parses TSV rows and treats a header-only or empty body as no rows', () => {
    const rows = parseTsv(`run_accession\tfastq_ftp\tread_count\n${RUN}\t${dir}/${RUN}.fastq.gz\t1000\n`);
    expect(rows).toEqual([{ run_accession: RUN, fastq_ftp: `${dir}/${RUN}.fastq.gz`, read_count: '1000' }]);
    expect(parseTsv('run_accession\tfastq_ftp\n')).toEqual([]);
    expect(parseTsv('')).toEqual([]);
  });

  it('parses JSON rows (numbers become strings) and an empty body as no rows', () => {
    expect(parseJson(`[{"run_accession":"${RUN}","read_count":12,"fastq_ftp":""}]`)).toEqual([{ run_accession: RUN, read_count: '12', fastq_ftp: '' }]);
    expect(parseJson('')).toEqual([]);
    expect(() => parseJson('{"a":1}')).toThrow(/not an array/);
  });
});

describe('chooseFastqFiles', () => {
  it('knows mates by suffix and refuses other runs', () => {
    expect(mateOf(`${RUN}_1.fastq.gz`, RUN)).toBe(1);
    expect(mateOf(`${RUN}_2.fq.gz`, RUN)).toBe(2);
    expect(mateOf(`${RUN}.fastq.gz`, RUN)).toBe(0);
    expect(mateOf(`SRR1305552_1.fastq.gz`, RUN)).toBeNull();
    expect(mateOf(`${RUN}_1.txt`, RUN)).toBeNull();
  });

  it('picks _1 and _2 of a three-file paired run by suffix, never by position', () => {
    const row = {
      fastq_ftp: `${dir}/${RUN}_2.fastq.gz;${dir}/${RUN}.fastq.gz;${dir}/${RUN}_1.fastq.gz`,
      fastq_md5: `${md5('b')};${md5('0')};${md5('a')}`,
      fastq_bytes: '200;50;100',
      library_layout: 'PAIRED',
    };
    const c = chooseFastqFiles(row, RUN, 'https');
    expect(c?.layout).toBe('paired');
    expect(c?.files).toEqual([
      { url: `https://${dir}/${RUN}_1.fastq.gz`, name: `${RUN}_1.fastq.gz`, bytes: 100, md5: md5('a'), mate: 1 },
      { url: `https://${dir}/${RUN}_2.fastq.gz`, name: `${RUN}_2.fastq.gz`, bytes: 200, md5: md5('b'), mate: 2 },
    ]);
  });

  it('makes one file a single-end run, whatever its suffix, with a canonical local name', () => {
    const c = chooseFastqFiles({ fastq_ftp: `${dir}/${RUN}_1.fastq.gz`, fastq_md5: md5('C'), fastq_bytes: '77' }, RUN, 'http');
    expect(c).toEqual({ layout: 'single', files: [{ url: `http://${dir}/${RUN}_1.fastq.gz`, name: `${RUN}.fastq.gz`, bytes: 77, md5: md5('c'), mate: 0 }] });
  });

  it('returns null (not found here) for an empty fastq_ftp or names of another run', () => {
    expect(chooseFastqFiles({ fastq_ftp: '', fastq_md5: '', fastq_bytes: '' }, RUN, 'https')).toBeNull();
    expect(chooseFastqFiles({}, RUN, 'https')).toBeNull();
    expect(chooseFastqFiles({ fastq_ftp: `${dir}/ERR000001_1.fastq.gz;${dir}/ERR000001_2.fastq.gz` }, RUN, 'https')).toBeNull();
  });

  it('leaves bytes and md5 null when the row does not give valid ones', () => {
    const c = chooseFastqFiles({ fastq_ftp: `${dir}/${RUN}.fastq.gz`, fastq_md5: 'nothex', fastq_bytes: '' }, RUN, 'https');
    expect(c?.files[0]).toMatchObject({ bytes: null, md5: null });
  });

  it('quotes an error page in one line of the problem it names (an HTML 404 page printed a dozen lines per run)', () => {
    const page = '<!DOCTYPE HTML>\n<html lang="en">\n    <head>\n        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        <p>Error code: 404</p>\n' + 'x'.repeat(400);
    const a = interpretFilereport(404, page, 'SRR9500001', 'http://127.0.0.1:1/ena/filereport');
    expect(a).toMatchObject({ found: false, answer: expect.stringMatching(/^HTTP 404 from http:\/\/127\.0\.0\.1:1\/ena\/filereport: <!DOCTYPE HTML> <html lang="en"> <head> <title>Error response<\/title>/) });
    expect((a as { answer: string }).answer).not.toContain('\n');
    expect((a as { answer: string }).answer.length).toBeLessThan(300);
  });
});
