/**
 * The ENA Portal API's read_run answers (filereport and search), built from the dataset. Pure: the
 * server decides which runs ENA "knows"; this module renders rows exactly as ENA does — requested
 * fields in order, `;`-joined index-aligned file lists without a scheme, every value a string.
 */
import type { SyntheticFile, SyntheticRun, SyntheticSpecies } from './types.js';
import { enaRunDir } from './paths.js';

export interface EnaRun {
  species: SyntheticSpecies;
  run: SyntheticRun;
  /** false: ENA has the metadata but no files (fastq_* and sra_* empty) */
  hasFiles: boolean;
  /** a single-end run's one file is listed as RUN_1.fastq.gz */
  singleAsMate1?: boolean;
  /** fastq_bytes declared for every file (a hostile or broken answer) */
  declaredBytes?: number;
}

/** Unpaired reads of a 3-file run (older datasets did not record them: the generator's own formula). */
export function unpairedReadsOf(run: SyntheticRun): number {
  if (!run.orphan) return 0;
  return run.orphanReads ?? Math.max(3, Math.round(run.reads / 50));
}

/** ENA's path name of a file: a single run's file may be listed as RUN_1.fastq.gz. */
export function enaFileName(r: EnaRun, f: SyntheticFile): string {
  return r.singleAsMate1 && r.run.layout === 'single' && f.mate === 0 && f !== r.run.orphan ? `${r.run.run}_1.fastq.gz` : f.name;
}

type Getter = (r: EnaRun, host: string) => string;

function fastqFiles(r: EnaRun) {
  if (!r.hasFiles) return [];
  // ENA lists unmated reads first for some paired runs: clients must choose mates by suffix.
  return r.run.orphan ? [r.run.orphan, ...r.run.fastq] : r.run.fastq;
}
const num = (n: number) => String(n);
/** The SRA study accession of a synthetic study (PRJEB900001 -> SRP900001). */
export function secondaryStudyOf(study: string): string {
  return `SRP${study.replace(/\D/g, '')}`;
}
const suffix = (run: string) => run.slice(3);

const FIELDS: Record<string, Getter> = {
  run_accession: (r) => r.run.run,
  study_accession: (r) => r.species.study,
  secondary_study_accession: (r) => secondaryStudyOf(r.species.study),
  sample_accession: (r) => `SAMN${suffix(r.run.run)}`,
  secondary_sample_accession: (r) => `SRS${suffix(r.run.run)}`,
  experiment_accession: (r) => `SRX${suffix(r.run.run)}`,
  tax_id: (r) => num(r.species.taxonId),
  scientific_name: (r) => r.species.name,
  library_layout: (r) => (r.run.layout === 'paired' ? 'PAIRED' : 'SINGLE'),
  library_strategy: () => 'RNA-Seq',
  library_source: (r) => (r.run.singleCell ? 'TRANSCRIPTOMIC SINGLE CELL' : 'TRANSCRIPTOMIC'),
  library_selection: () => 'cDNA',
  instrument_platform: () => 'ILLUMINA',
  instrument_model: () => 'Illumina NovaSeq 6000',
  // Spots: a 3-file run's unpaired reads count too (read_docs faq/archive-generated-files.rst).
  read_count: (r) => num(r.run.reads + unpairedReadsOf(r.run)),
  base_count: (r) => num(r.run.reads * r.run.readLength * (r.run.layout === 'paired' ? 2 : 1) + unpairedReadsOf(r.run) * r.run.readLength),
  nominal_length: (r) => (r.run.layout === 'paired' ? num(r.run.nominalLength) : ''),
  first_public: () => '2024-01-01',
  fastq_ftp: (r, host) => fastqFiles(r).map((f) => `${host}/${enaRunDir(r.run.run)}/${enaFileName(r, f)}`).join(';'),
  fastq_md5: (r) => fastqFiles(r).map((f) => f.md5).join(';'),
  fastq_bytes: (r) => fastqFiles(r).map((f) => num(r.declaredBytes ?? f.bytes)).join(';'),
  fastq_aspera: () => '',
  submitted_ftp: () => '',
  sra_ftp: (r, host) => (r.hasFiles ? `${host}/vol1/srr/${r.run.run.slice(0, 6)}/${r.run.run}` : ''),
  sra_md5: (r) => (r.hasFiles ? r.run.sra.md5 : ''),
  sra_bytes: (r) => (r.hasFiles ? num(r.run.sra.bytes) : ''),
};

export const ENA_FIELDS = Object.keys(FIELDS);
export const DEFAULT_FILEREPORT_FIELDS = ['run_accession', 'fastq_ftp', 'fastq_md5', 'fastq_bytes'];
export const DEFAULT_SEARCH_FIELDS = ['run_accession'];

export interface ApiAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** ENA's Portal API answers a bad request with 400 and a bare text/plain message (test/fixtures/archives). */
export function apiError(status: number, message: string): ApiAnswer {
  return { status, contentType: 'text/plain', body: message };
}

/** Parses `fields=`; an unknown name fails the whole request with 400, as ENA does. */
export function parseFields(raw: string | null, defaults: string[]): string[] | ApiAnswer {
  if (raw === null || raw.trim() === '') return defaults;
  const fields = raw.split(',').map((f) => f.trim()).filter(Boolean);
  const bad = fields.filter((f) => !(f in FIELDS));
  if (bad.length > 0) return apiError(400, `Invalid fieldName(s) supplied: ${bad.join(',')}`);
  return fields;
}

export function parseFormat(raw: string | null): 'tsv' | 'json' | ApiAnswer {
  const f = (raw ?? 'tsv').toLowerCase();
  return f === 'tsv' || f === 'json' ? f : apiError(400, `Invalid format: ${raw} (use tsv or json)`);
}

export function render(fields: string[], rows: EnaRun[], format: 'tsv' | 'json', host: string): ApiAnswer {
  if (format === 'json') {
    const objs = rows.map((r) => Object.fromEntries(fields.map((f) => [f, FIELDS[f]!(r, host)])));
    return { status: 200, contentType: 'application/json', body: JSON.stringify(objs) };
  }
  const lines = [fields.join('\t'), ...rows.map((r) => fields.map((f) => FIELDS[f]!(r, host)).join('\t'))];
  return { status: 200, contentType: 'text/plain', body: lines.join('\n') + '\n' };
}

/** "Not found here": 204 for even run numbers, a header-only 200 for odd ones, so clients meet both. */
export function notFound(accession: string, fields: string[], format: 'tsv' | 'json'): ApiAnswer {
  const digits = accession.replace(/\D/g, '');
  const even = Number(digits.slice(-1) || '0') % 2 === 0;
  if (even) return { status: 204, contentType: 'text/plain', body: '' };
  return format === 'json'
    ? { status: 200, contentType: 'application/json', body: '[]' }
    : { status: 200, contentType: 'text/plain', body: fields.join('\t') + '\n' };
}

export interface SearchQuery {
  taxa: number[];
  strategy: string | null;
  /** library_source="…" (exact, case-insensitive), e.g. TRANSCRIPTOMIC vs TRANSCRIPTOMIC SINGLE CELL */
  source: string | null;
  /** instrument_platform="ILLUMINA" (ENA's values are upper case) */
  platform: string | null;
}

/** The subset of ENA's query language clients use here: tax_eq/tax_tree, library_strategy, library_source and instrument_platform, ANDed. */
export function parseSearchQuery(raw: string | null): SearchQuery | ApiAnswer {
  if (!raw || raw.trim() === '') return apiError(400, 'query is required for result=read_run search');
  const q: SearchQuery = { taxa: [], strategy: null, source: null, platform: null };
  for (const term of raw.split(/\s+AND\s+/i)) {
    const t = term.trim().replace(/^\((.*)\)$/, '$1');
    const tax = /^tax_(?:eq|tree)\((\d+)\)$/.exec(t);
    const strat = /^library_strategy\s*=\s*"([^"]*)"$/.exec(t);
    const source = /^library_source\s*=\s*"([^"]*)"$/.exec(t);
    const platform = /^instrument_platform\s*=\s*"([^"]*)"$/.exec(t);
    if (tax) q.taxa.push(Number(tax[1]));
    else if (strat) q.strategy = strat[1] ?? '';
    else if (source) q.source = source[1] ?? '';
    else if (platform) q.platform = platform[1] ?? '';
    else return apiError(400, `Invalid query: cannot parse ${JSON.stringify(t)}`);
  }
  return q;
}
