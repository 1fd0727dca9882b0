/**
 * ENA Portal API client: pure URL building and parsing (unit-tested offline) plus thin fetches.
 * See docs/archives-and-tools.md "ENA Portal API" for the facts this relies on.
 */
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { FailureType } from '../failures.js';
import type { Layout, RemoteFile, RunMeta } from '../types.js';
import { excerpt, HttpClient } from './http.js';

/**
 * Only the fields fetchquant reads. ENA rejects a whole request with 400 when one field name is unknown
 * (test/fixtures/archives/README.md: fetchngs #372, fastq-dl #15), so every extra field is a liability.
 */
export const FILEREPORT_FIELDS = ['run_accession', 'fastq_ftp', 'fastq_md5', 'fastq_bytes', 'library_layout', 'read_count'] as const;

export const SEARCH_FIELDS = ['run_accession', 'library_layout', 'nominal_length', 'read_count', 'library_source'] as const;

/**
 * Bulk transcriptomes only: ENA's library_source vocabulary has TRANSCRIPTOMIC and, separately,
 * TRANSCRIPTOMIC SINGLE CELL (and METATRANSCRIPTOMIC); see test/fixtures/archives/README.md.
 */
export const BULK_LIBRARY_SOURCE = 'TRANSCRIPTOMIC';

export type EnaRow = Record<string, string>;

function base(portalUrl: string): string {
  return portalUrl.replace(/\/+$/, '');
}

export function filereportUrl(portalUrl: string, accession: string, format: 'tsv' | 'json' = 'tsv'): string {
  const q = new URLSearchParams({ accession, result: 'read_run', fields: FILEREPORT_FIELDS.join(','), format });
  return `${base(portalUrl)}/filereport?${q.toString()}`;
}

/** Bulk RNA-Seq runs of exactly this taxon; limit=0 asks the portal for every row, not its default page. */
export function searchUrl(portalUrl: string, taxonId: number, query?: string): string {
  if (!Number.isInteger(taxonId) || taxonId <= 0) throw new Error(`taxon id must be a positive integer, got ${taxonId}`);
  const q = new URLSearchParams({
    result: 'read_run',
    // query: a config's steps.metadata.search_string translated to ENA's language (config/search.ts)
    query: query ?? `tax_eq(${taxonId}) AND library_strategy="RNA-Seq" AND library_source="${BULK_LIBRARY_SOURCE}"`,
    fields: SEARCH_FIELDS.join(','),
    format: 'tsv',
    limit: '0',
  });
  return `${base(portalUrl)}/search?${q.toString()}`;
}

/** Portal TSV: a header line, then one row per run. A header-only or empty body yields no rows. */
export function parseTsv(text: string): EnaRow[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  const header = lines.shift()?.split('\t').map((h) => h.trim());
  if (!header) return [];
  return lines.map((line) => {
    const cells = line.split('\t');
    const row: EnaRow = {};
    header.forEach((h, i) => (row[h] = (cells[i] ?? '').trim()));
    return row;
  });
}

/** Portal JSON: an array of flat objects (values may be strings or numbers). Empty body = no rows. */
export function parseJson(text: string): EnaRow[] {
  if (text.trim() === '') return [];
  const data: unknown = JSON.parse(text);
  if (!Array.isArray(data)) throw new Error('ENA JSON answer is not an array');
  return data.map((o) => {
    const row: EnaRow = {};
    for (const [k, v] of Object.entries((o ?? {}) as Record<string, unknown>)) row[k] = v == null ? '' : String(v).trim();
    return row;
  });
}

function splitField(v: string | undefined): string[] {
  return (v ?? '').split(';').map((s) => s.trim());
}

function intOrNull(v: string | undefined): number | null {
  if (v === undefined || !/^\d+$/.test(v.trim())) return null;
  return Number(v);
}

export function layoutOf(v: string | undefined): Layout | undefined {
  const s = (v ?? '').trim().toUpperCase();
  return s === 'PAIRED' ? 'paired' : s === 'SINGLE' ? 'single' : undefined;
}

/** `ftp.sra.ebi.ac.uk/vol1/...` -> `https://ftp.sra.ebi.ac.uk/vol1/...`; a value that has a scheme keeps it. */
export function withScheme(path: string, scheme: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(path) ? path : `${scheme}://${path.replace(/^\/+/, '')}`;
}

/** Which mate a remote file holds, from its name's suffix: `_1`/`_2` before `.fastq.gz`/`.fq.gz`, else 0. */
export function mateOf(fileName: string, run: string): 0 | 1 | 2 | null {
  const m = /^(.*?)(?:_([12]))?\.f(?:ast)?q(?:\.gz)?$/.exec(fileName);
  if (!m || m[1] !== run) return null;
  return m[2] === '1' ? 1 : m[2] === '2' ? 2 : 0;
}

export interface FastqChoice {
  layout: Layout;
  files: RemoteFile[];
  /** a paired run's unpaired reads (`RUN.fastq.gz` beside `_1`/`_2`): listed, counted in read_count, not fetched */
  unpaired?: RemoteFile;
  /** files ENA lists that are neither mate nor unpaired reads (`RUN_3.fastq.gz`, index or barcode reads): never fetched */
  ignored?: string[];
}

/**
 * The reads to fetch for one filereport row, or null when ENA has no usable FASTQ for the run ("not found
 * here": the caller falls back to SRA). Mates are picked by suffix, never by position: a paired run may
 * list `RUN.fastq.gz;RUN_1.fastq.gz;RUN_2.fastq.gz` where the first holds the unmated reads.
 * Local names are canonical (`RUN_1.fastq.gz`), never taken from the remote path.
 */
export function chooseFastqFiles(row: EnaRow, run: string, scheme: string): FastqChoice | null {
  const paths = splitField(row.fastq_ftp);
  const md5s = splitField(row.fastq_md5);
  const sizes = splitField(row.fastq_bytes);
  const byMate = new Map<0 | 1 | 2, RemoteFile>();
  const ignored: string[] = [];
  paths.forEach((p, i) => {
    if (!p) return;
    const fileName = p.slice(p.lastIndexOf('/') + 1);
    const mate = mateOf(fileName, run);
    if (mate === null || byMate.has(mate)) {
      ignored.push(fileName);
      return;
    }
    const md5 = (md5s[i] ?? '').toLowerCase();
    byMate.set(mate, {
      url: withScheme(p, scheme),
      name: mate === 0 ? `${run}.fastq.gz` : `${run}_${mate}.fastq.gz`,
      bytes: intOrNull(sizes[i]),
      md5: /^[0-9a-f]{32}$/.test(md5) ? md5 : null,
      mate,
    });
  });
  const r1 = byMate.get(1);
  const r2 = byMate.get(2);
  const orphan = byMate.get(0);
  const extra = ignored.length ? { ignored } : {};
  if (r1 && r2) return { layout: 'paired', files: [r1, r2], ...(orphan ? { unpaired: orphan } : {}), ...extra };
  // Only one set of reads: a single-end run (ENA sometimes names its only file `_1`).
  const only = byMate.get(0) ?? (byMate.size === 1 ? (r1 ?? r2) : undefined);
  if (!only) return null;
  return { layout: 'single', files: [{ ...only, name: `${run}.fastq.gz`, mate: 0 }], ...extra };
}

export function readCountOf(row: EnaRow): number | null {
  return intOrNull(row.read_count);
}

function assertRun(run: string): void {
  if (!RUN_ACCESSION.test(run)) {
    throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: `invalid run accession ${JSON.stringify(run)} (expected ${RUN_ACCESSION.source})`, nonRetryable: true });
  }
}

export type FilereportAnswer = { found: true; row: EnaRow } | { found: false; answer: string };

/**
 * ENA refused the request itself (400): the fields or parameters we send are not what this Portal API
 * accepts. Asking SRA instead would hide it for every run, so it fails loudly and is never retried.
 */
export function enaRejected(status: number, body: string, url: string, fields: readonly string[] = FILEREPORT_FIELDS): ApplicationFailure {
  const said = excerpt(body, 300) || '(empty body)';
  return ApplicationFailure.create({
    type: FailureType.InvalidInput,
    nonRetryable: true,
    message: `ENA rejected the request with HTTP ${status}: "${said}" (GET ${url}). fetchquant asks only for the fields ${fields.join(',')}; check --ena-portal-url, or update fetchquant if ENA renamed a field`,
  });
}

/** What one filereport answer says about one run (pure: the fixtures in test/fixtures/archives go through it). */
export function interpretFilereport(status: number, body: string, run: string, url: string, format: 'tsv' | 'json' = 'tsv'): FilereportAnswer {
  if (status === 204) return { found: false, answer: `HTTP 204 (no content) from ${url}` };
  if (status === 400) throw enaRejected(status, body, url);
  if (status !== 200) return { found: false, answer: `HTTP ${status} from ${url}: ${excerpt(body)}` };
  let rows: EnaRow[];
  try {
    rows = format === 'json' ? parseJson(body) : parseTsv(body);
  } catch (err) {
    throw ApplicationFailure.create({ type: FailureType.ServerError, nonRetryable: false, message: `ENA answer from ${url} is not ${format}: ${(err as Error).message}` });
  }
  const row = rows.find((r) => r.run_accession === run);
  return row ? { found: true, row } : { found: false, answer: `no row for ${run} (${rows.length === 0 ? 'header-only answer' : 'other runs only'}) from ${url}` };
}

/** The filereport row of one run, or why ENA does not have it (204, header-only, other runs only); throws on 400. */
export async function fetchFilereport(opts: { portalUrl: string; run: string; http: HttpClient; signal?: AbortSignal }): Promise<FilereportAnswer> {
  assertRun(opts.run);
  const url = filereportUrl(opts.portalUrl, opts.run, 'tsv');
  const { status, body } = await opts.http.getText(url, { signal: opts.signal, rateClass: 'ena' });
  return interpretFilereport(status, body, opts.run, url);
}

/**
 * Runs of a search answer: valid run accessions once each, bulk transcriptomes only. The query already
 * asks for library_source="TRANSCRIPTOMIC"; rows that still carry another source (a portal that ignored
 * the term, a mirror) are dropped here too, so single-cell runs never reach kallisto's bulk model.
 */
export function parseSearch(body: string): RunMeta[] {
  const runs: RunMeta[] = [];
  const seen = new Set<string>();
  for (const row of parseTsv(body)) {
    const run = row.run_accession ?? '';
    // Rows that are not run accessions never reach a path or URL.
    if (!RUN_ACCESSION.test(run) || seen.has(run)) continue;
    const source = (row.library_source ?? '').trim().toUpperCase();
    if (source !== '' && source !== BULK_LIBRARY_SOURCE) continue;
    seen.add(run);
    const meta: RunMeta = { run };
    const layout = layoutOf(row.library_layout);
    if (layout) meta.layout = layout;
    const nominal = intOrNull(row.nominal_length);
    if (nominal !== null && nominal > 0) meta.nominalLength = nominal;
    const spots = intOrNull(row.read_count);
    if (spots !== null) meta.spots = spots;
    runs.push(meta);
  }
  return runs;
}

/** Every bulk RNA-Seq run ENA knows for a taxon (config discovery when a species has no run table). */
export async function searchRunsByTaxon(opts: { portalUrl: string; taxonId: number; query?: string; http?: HttpClient }): Promise<RunMeta[]> {
  const http = opts.http ?? new HttpClient();
  const url = searchUrl(opts.portalUrl, opts.taxonId, opts.query);
  const { status, body } = await http.getText(url, { rateClass: 'ena' });
  if (status === 204) return [];
  if (status === 400) throw enaRejected(status, body, url, SEARCH_FIELDS);
  if (status !== 200) {
    throw ApplicationFailure.create({ type: FailureType.ServerError, message: `ENA search for taxon ${opts.taxonId}: HTTP ${status} from ${url}: ${excerpt(body)}`, nonRetryable: false });
  }
  return parseSearch(body);
}
