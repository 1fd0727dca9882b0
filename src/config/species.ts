/**
 * Species configs (amalgkit / metainformant YAML) and run tables (amalgkit metadata TSV), validated.
 * Pure: takes parsed YAML and TSV text, returns values plus every Problem found, so discovery can report
 * all of them at once (docs/architecture.md §2.1). File I/O lives in ./discover.ts; defaults and rules in ./schema.ts.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { genusSpeciesOf, indexPathOf, joinPath, speciesIdOf } from '../ids.js';
import type { Layout, RunMeta } from '../types.js';
import { PROJECT_ACCESSION, projectAccessionProblem, RUN_ACCESSION, runAccessionProblem, SPECIES_DEFAULTS, SPECIES_ID, type Problem } from './schema.js';

/** One species config with every path absolute; where its runs come from is decided by discovery. */
export interface SpeciesConfig {
  file: string;
  name: string;
  speciesId: string;
  readsDir: string;
  quantDir: string;
  indexPath: string;
  /** steps.quant.fasta_dir: holds `<Genus_species>*.fa|.fasta[.gz]` */
  fastaDir: string | null;
  /** genome.dest_dir + genome.files.transcriptome_fasta */
  genomeFasta: string | null;
  fragmentLength: number;
  fragmentSd: number;
  /** fetchquant.runs, validated */
  runs: RunMeta[] | null;
  /** fetchquant.projects: BioProjects, studies and GEO series whose runs are added (expanded at discovery) */
  projects: string[] | null;
  /** steps.getfastq.metadata: must exist */
  metadataPath: string | null;
  /** <work_dir>/metadata/metadata.tsv: used only if it exists */
  workDirTable: string | null;
  taxonId: number | null;
  /** a run-source field is malformed (already a problem): "no runs" would only repeat it */
  runSourceBroken: boolean;
  /** the config field each directory came from; null = the default under the output dir */
  dirFields: { readsDir: string | null; quantDir: string | null; indexDir: string | null };
  /** steps.quant.out_dir as written (amalgkit's --out_dir); results go to <quantOutDir>/quant/<RUN> */
  quantOutDir: string;
  /** the index directory; the index file in it is found at discovery the way amalgkit finds it */
  indexDir: string;
  /** steps.quant.build_index (amalgkit's default: yes) */
  buildIndex: boolean;
  /** steps.getfastq.max_bp: stop each run's download at this many bases (null = whole run) */
  maxBp: number | null;
  /** steps.quant.keep_fastq: yes or steps.quant.clean_fastq: no; the field that asked, or null */
  keepReadsField: string | null;
  /** steps.getfastq.aws / gcp / ncbi / ena (amalgkit getfastq's sources; all default yes) */
  getfastqSources: { aws: boolean; gcp: boolean; ncbi: boolean; ena: boolean };
  /** steps.metadata.search_string (an NCBI Entrez query), for discovery by taxon */
  searchString: string | null;
  /** steps.select.max_sample (or steps.metadata.max_sample) */
  maxSample: number | null;
  /** fetchquant.fragment_length was given: it overrides amalgkit's rule for single-end -l/-s */
  fragmentFromConfig: boolean;
  /** fields read and deliberately not used, with their values, for one note line per config */
  unused: string[];
}

/** Why a config file is not a species config at all (skipped with a line saying why), or null. */
export function notASpeciesConfig(raw: unknown): string | null {
  if (!isMap(raw)) return null;
  if (['species_list', 'taxon_id', 'steps', 'fetchquant'].some((k) => k in raw)) return null;
  return 'it has no species_list, taxon_id, steps or fetchquant section: not a per-species amalgkit config';
}

/** Config file stems the seed never ran (docs/architecture.md §2.1): `amalgkit_template.yaml`, `amalgkit_test_x.yaml`. */
export function isSkippedStem(stem: string): boolean {
  return /template|test/i.test(stem);
}

/** `Pogonomyrmex_barbatus` / ` Pogonomyrmex  barbatus ` -> `Pogonomyrmex barbatus` (amalgkit lists use `_`). */
export function normalizeSpeciesName(name: string): string {
  return name.replace(/_/g, ' ').trim().replace(/\s+/g, ' ');
}

/** `amalgkit_camponotus_floridanus` -> `Camponotus floridanus` (the fallback of docs/architecture.md §2.1 when species_list is absent). */
export function speciesNameFromStem(stem: string): string {
  return normalizeSpeciesName(genusSpeciesOf(stem.replace(/^amalgkit_/, '')));
}

// amalgkit's own placeholder for "derive it from out_dir": not a path, so it means "not set" here.
const INFERRED = 'inferred';

type Json = unknown;
function isMap(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function typeName(v: Json): string {
  if (typeof v === 'string' && v.trim() === '') return 'an empty string';
  if (Array.isArray(v)) return v.length ? 'a list' : 'an empty list';
  return v === null ? 'null' : isMap(v) ? 'a mapping' : typeof v;
}

/** Typed reads of dotted fields; a wrong type anywhere on the way is one problem, reported once. */
class FieldReader {
  private readonly reported = new Set<string>();
  constructor(
    private readonly root: Json,
    private readonly file: string,
    private readonly cwd: string,
    readonly problems: Problem[],
  ) {}

  problem(field: string, value: Json, message: string): void {
    if (this.reported.has(field)) return;
    this.reported.add(field);
    this.problems.push({ where: this.file, field, value, message });
  }

  /** The raw value at `a.b.c`, or undefined when it (or a parent) is absent or null. */
  get(path: string): Json {
    let cur: Json = this.root;
    const parts = path.split('.');
    for (let i = 0; i < parts.length; i++) {
      if (cur === undefined || cur === null) return undefined;
      if (!isMap(cur)) {
        this.problem(parts.slice(0, i).join('.') || '(root)', cur, `must be a mapping, found ${typeName(cur)}`);
        return undefined;
      }
      cur = cur[parts[i] as string];
    }
    return cur === null ? undefined : cur;
  }

  string(path: string): string | undefined {
    const v = this.get(path);
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '') {
      this.problem(path, v, `must be a non-empty string, found ${typeName(v)}`);
      return undefined;
    }
    return v.trim();
  }

  /** A path made absolute against cwd; NUL bytes are rejected before the value can reach the file system. */
  path(path: string, opts: { inferred?: boolean } = {}): string | undefined {
    const v = this.string(path);
    if (v === undefined || (opts.inferred && v === INFERRED)) return undefined;
    if (v.includes('\0')) {
      this.problem(path, v, 'must not contain a NUL byte');
      return undefined;
    }
    // YAML keeps `~/data` as written and nothing here is a shell: it would become <cwd>/~/data.
    if (v.startsWith('~')) {
      this.problem(path, v, 'a leading ~ is not expanded here: give the full path or one relative to the directory the command runs in');
      return undefined;
    }
    return resolve(this.cwd, v);
  }

  /** amalgkit configs write YAML 1.1 booleans (yes/no/on/off); the YAML 1.2 parser leaves them strings. */
  bool(path: string): boolean | undefined {
    const v = this.get(path);
    if (v === undefined) return undefined;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string') {
      const t = v.trim().toLowerCase();
      if (['yes', 'y', 'true', 'on'].includes(t)) return true;
      if (['no', 'n', 'false', 'off'].includes(t)) return false;
    }
    this.problem(path, v, 'must be yes or no');
    return undefined;
  }

  number(path: string, opts: { int?: boolean; min: number; exclusiveMin?: boolean }): number | undefined {
    const v = this.get(path);
    if (v === undefined) return undefined;
    // amalgkit's own --max_bp default is written with commas (999,999,999,999,999)
    const n = typeof v === 'string' && /^\s*\d[\d,]*(\.\d+)?\s*$/.test(v) ? Number(v.replace(/,/g, '')) : v;
    const tooSmall = typeof n === 'number' && (opts.exclusiveMin ? n <= opts.min : n < opts.min);
    if (typeof n !== 'number' || !Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || tooSmall) {
      const what = opts.int ? 'whole number' : 'number';
      this.problem(path, v, `must be a ${what} ${opts.exclusiveMin ? 'greater than' : 'of at least'} ${opts.min}`);
      return undefined;
    }
    return n;
  }
}

/** fetchquant.runs: a non-empty list of distinct run accessions. */
function readRunList(r: FieldReader, field: string): RunMeta[] | null {
  const v = r.get(field);
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length === 0) {
    r.problem(field, v, `must be a non-empty list of run accessions, found ${typeName(v)}`);
    return null;
  }
  const seen = new Map<string, number>();
  const runs: RunMeta[] = [];
  v.forEach((item, i) => {
    const f = `${field}[${i}]`;
    if (typeof item !== 'string' || !RUN_ACCESSION.test(item.trim())) {
      r.problem(f, item, runAccessionProblem(item));
      return;
    }
    const run = item.trim();
    const first = seen.get(run);
    if (first !== undefined) r.problem(f, run, `duplicate run (also ${field}[${first}])`);
    else {
      seen.set(run, i);
      runs.push({ run });
    }
  });
  return runs;
}

/** fetchquant.projects: a non-empty list of distinct project, study or GEO series accessions (checked before any URL). */
function readProjectList(r: FieldReader, field: string): string[] | null {
  const v = r.get(field);
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length === 0) {
    r.problem(field, v, `must be a non-empty list of project accessions (PRJNA…, PRJEB…, PRJDB…, SRP…, ERP…, DRP…, GSE…), found ${typeName(v)}`);
    return null;
  }
  const seen = new Map<string, number>();
  const out: string[] = [];
  v.forEach((item, i) => {
    const f = `${field}[${i}]`;
    const acc = typeof item === 'string' ? item.trim() : '';
    if (!PROJECT_ACCESSION.test(acc)) {
      r.problem(f, item, projectAccessionProblem(item));
      return;
    }
    const first = seen.get(acc);
    if (first !== undefined) r.problem(f, acc, `duplicate project (also ${field}[${first}])`);
    else {
      seen.set(acc, i);
      out.push(acc);
    }
  });
  return out;
}

/** fetchquant's own extensions: amalgkit never reads them, so a typo there would otherwise be silently ignored. */
const FETCHQUANT_FIELDS = ['runs', 'projects', 'fragment_length', 'fragment_sd'];

/** Reports unknown fields under `fetchquant:`; false when `fetchquant` is there but not a mapping. */
function checkFetchquantFields(r: FieldReader): boolean {
  const ext = r.get('fetchquant');
  if (!isMap(ext)) {
    if (ext === undefined) return true;
    r.problem('fetchquant', ext, `must be a mapping, found ${typeName(ext)}`);
    return false;
  }
  for (const [k, v] of Object.entries(ext)) {
    if (!FETCHQUANT_FIELDS.includes(k)) r.problem(`fetchquant.${k}`, v, `unknown field (known: ${FETCHQUANT_FIELDS.join(', ')})`);
  }
  return true;
}

/** The species name the config gives (first of species_list), else the stem fallback; `fromList` says which. */
function readName(r: FieldReader, stem: string): { name: string; field: string; raw: Json } {
  const list = r.get('species_list');
  if (list !== undefined) {
    const first: Json = Array.isArray(list) ? list[0] : undefined;
    if (!Array.isArray(list) || typeof first !== 'string' || normalizeSpeciesName(first) === '') {
      const found = Array.isArray(list) ? (list.length ? `a first entry that is ${typeName(first)}` : 'an empty list') : typeName(list);
      // (typeName says "an empty string" for a blank first entry)
      r.problem('species_list', list, `must be a list whose first entry is a species name, found ${found}`);
    } else {
      return { name: normalizeSpeciesName(first), field: 'species_list[0]', raw: first };
    }
  }
  return { name: speciesNameFromStem(stem), field: '(file name)', raw: stem };
}

/**
 * Read one parsed config. `raw` is the YAML document (null for an empty file). Returns `config: null` when the
 * species id is unusable: an id that fails SPECIES_ID never becomes a path. Other problems still return a config
 * so filtering by species can use its name.
 */
export function readSpeciesConfig(
  raw: Json,
  ctx: { file: string; stem: string; cwd: string; outputDir: string },
): { config: SpeciesConfig | null; name: string; speciesId: string; problems: Problem[] } {
  const problems: Problem[] = [];
  const r = new FieldReader(raw, ctx.file, ctx.cwd, problems);
  if (raw !== null && raw !== undefined && !isMap(raw)) r.problem('(root)', raw, `must be a mapping, found ${typeName(raw)}`);
  const { name, field, raw: nameRaw } = readName(r, ctx.stem);
  const speciesId = speciesIdOf(name);
  if (!SPECIES_ID.test(speciesId)) {
    r.problem(field, nameRaw, `species id ${JSON.stringify(speciesId)} must match ${SPECIES_ID.source} (it names directories and workflows)`);
  }
  // a `fetchquant` that is not a mapping may have meant to hold runs: "no runs" would only repeat it
  const extOk = checkFetchquantFields(r);
  const before = problems.length;
  const workDir = r.path('work_dir');
  const metadataPath = r.path('steps.getfastq.metadata', { inferred: true }) ?? null;
  const taxonId = r.number('taxon_id', { int: true, min: 1 }) ?? null;
  const runs = readRunList(r, 'fetchquant.runs');
  const projects = readProjectList(r, 'fetchquant.projects');
  const runSourceBroken = !extOk || problems.length > before || (raw !== null && raw !== undefined && !isMap(raw));
  const readsDir = r.path('steps.getfastq.out_dir');
  const quantOut = r.path('steps.quant.out_dir');
  const indexDirCfg = r.path('steps.quant.index_dir', { inferred: true });
  const fastaDirCfg = r.path('steps.quant.fasta_dir', { inferred: true }) ?? null;
  const genomeDir = r.path('genome.dest_dir');
  const transcriptome = r.string('genome.files.transcriptome_fasta');
  if (transcriptome?.includes('\0')) r.problem('genome.files.transcriptome_fasta', transcriptome, 'must not contain a NUL byte');
  if (transcriptome?.startsWith('~')) r.problem('genome.files.transcriptome_fasta', transcriptome, 'a leading ~ is not expanded here: give the full path');
  let genomeFasta: string | null = null;
  if (transcriptome !== undefined && !transcriptome.includes('\0') && !transcriptome.startsWith('~')) {
    if (isAbsolute(transcriptome)) genomeFasta = transcriptome;
    else if (genomeDir === undefined) r.problem('genome.files.transcriptome_fasta', transcriptome, 'a relative file name needs genome.dest_dir');
    else if (relative(genomeDir, resolve(genomeDir, transcriptome)).startsWith('..')) {
      // A file name below genome.dest_dir, as metainformant writes it; a FASTA elsewhere is given by absolute path.
      r.problem('genome.files.transcriptome_fasta', transcriptome, `must name a file inside genome.dest_dir (${genomeDir}); give a FASTA elsewhere by its absolute path`);
    } else genomeFasta = resolve(genomeDir, transcriptome);
  }
  const fragmentLength = r.number('fetchquant.fragment_length', { min: 0, exclusiveMin: true });
  const fragmentSd = r.number('fetchquant.fragment_sd', { min: 0, exclusiveMin: true });
  // amalgkit's own fields that change what a run produces (docs/amalgkit.md lists every field read)
  const maxBp = r.number('steps.getfastq.max_bp', { int: true, min: 1 }) ?? null;
  const buildIndex = r.bool('steps.quant.build_index') ?? true;
  const keepFastq = r.bool('steps.quant.keep_fastq');
  const cleanFastq = r.bool('steps.quant.clean_fastq');
  if (keepFastq === true && cleanFastq === true) {
    r.problem('steps.quant.keep_fastq', 'yes', 'contradicts steps.quant.clean_fastq: yes (one keeps the reads after quant, the other deletes them)');
  }
  const keepReadsField = keepFastq === true ? 'steps.quant.keep_fastq: yes' : cleanFastq === false ? 'steps.quant.clean_fastq: no' : null;
  const getfastqSources = {
    aws: r.bool('steps.getfastq.aws') ?? true,
    gcp: r.bool('steps.getfastq.gcp') ?? true,
    ncbi: r.bool('steps.getfastq.ncbi') ?? true,
    ena: r.bool('steps.getfastq.ena') ?? true,
  };
  const searchString = r.string('steps.metadata.search_string') ?? null;
  const maxSample = r.number('steps.select.max_sample', { int: true, min: 1 }) ?? r.number('steps.metadata.max_sample', { int: true, min: 1 }) ?? null;
  // Read so a wrong type is reported, then named in one "not used" line: fetchquant's budgets are batch-wide.
  const unused: string[] = [];
  for (const f of ['threads', 'steps.getfastq.threads', 'steps.getfastq.jobs', 'steps.quant.threads', 'steps.quant.jobs']) {
    const v = r.number(f, { int: true, min: 1 });
    if (v !== undefined) unused.push(`${f} ${v}`);
  }
  const logDir = r.string('log_dir');
  if (logDir !== undefined) unused.push(`log_dir ${logDir}`);
  if (!SPECIES_ID.test(speciesId)) return { config: null, name, speciesId, problems };
  const base = joinPath(ctx.outputDir, speciesId);
  // amalgkit quant --out_dir X writes X/quant/<RUN>/ and looks for its index in X/index by default.
  const quantOutDir = quantOut ?? base;
  const indexDir = indexDirCfg ?? joinPath(quantOutDir, 'index');
  return {
    name,
    speciesId,
    problems,
    config: {
      file: ctx.file,
      name,
      speciesId,
      readsDir: readsDir ?? joinPath(base, 'fastq'),
      quantDir: joinPath(quantOutDir, 'quant'),
      indexPath: indexPathOf(indexDir, name),
      fastaDir: fastaDirCfg,
      genomeFasta,
      fragmentLength: fragmentLength ?? SPECIES_DEFAULTS.fragmentLength,
      fragmentSd: fragmentSd ?? (fragmentLength !== undefined ? fragmentLength / 10 : SPECIES_DEFAULTS.fragmentSd),
      runs,
      projects,
      metadataPath,
      workDirTable: workDir === undefined ? null : joinPath(workDir, 'metadata', 'metadata.tsv'),
      taxonId,
      runSourceBroken,
      dirFields: {
        readsDir: readsDir === undefined ? null : 'steps.getfastq.out_dir',
        quantDir: quantOut === undefined ? null : 'steps.quant.out_dir',
        indexDir: indexDirCfg === undefined ? null : 'steps.quant.index_dir',
      },
      quantOutDir,
      indexDir,
      buildIndex,
      maxBp,
      keepReadsField,
      getfastqSources,
      searchString,
      maxSample,
      fragmentFromConfig: fragmentLength !== undefined,
      unused,
    },
  };
}

/** amalgkit FASTA naming: `<Genus_species>*.fa|.fasta[.gz]`. Sorted so a plan is reproducible. */
export function matchFastaFiles(fileNames: string[], speciesName: string): string[] {
  const prefix = genusSpeciesOf(speciesName);
  return fileNames.filter((f) => f.startsWith(prefix) && /\.(fa|fasta)(\.gz)?$/.test(f)).sort();
}

// pandas writes missing values as empty, NA or nan; all mean "unknown", not an error.
const MISSING = new Set(['', 'na', 'nan', 'none', 'null']);

/**
 * Parse a run table (amalgkit metadata TSV). Rows are named by their line number in the file (header = 1),
 * as an editor shows them. Excluded rows (exclusion not `no`, is_sampled `no`) are skipped before any check:
 * amalgkit keeps rejected samples in the table, and their cells are not ours to judge.
 */
export function parseRunTable(
  text: string,
  file: string,
): { runs: RunMeta[]; excluded: number; problems: Problem[]; names: Map<string, { row: number; name: string }> } {
  const problems: Problem[] = [];
  const runs: RunMeta[] = [];
  /** scientific_name of each kept row, when the table has that column (amalgkit's tables do) */
  const names = new Map<string, { row: number; name: string }>();
  let excluded = 0;
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const headerAt = lines.findIndex((l) => l.trim() !== '');
  if (headerAt < 0) {
    problems.push({ where: file, field: 'header', value: '', message: 'run table is empty (expected a header with a "run" column)' });
    return { runs, excluded, problems, names };
  }
  const headerLine = lines[headerAt] as string;
  const header = headerLine.split('\t').map((h) => h.trim().toLowerCase());
  const col = (name: string) => header.indexOf(name);
  if (col('run') < 0) {
    // amalgkit writes tabs; a CSV export (or spaces from a copy-paste) shows up as one long column name.
    const hint = !headerLine.includes('\t') && /[,;]|\s/.test(headerLine.trim()) ? ' (the header has no tab: run tables are tab-separated)' : '';
    problems.push({ where: file, field: 'column run', value: header.join('\t'), message: `missing required column "run"${hint}` });
    return { runs, excluded, problems, names };
  }
  // A column twice is ambiguous: which of the two is the run, or the layout?
  const used = ['run', 'lib_layout', 'nominal_length', 'total_spots', 'total_bases', 'exclusion', 'is_sampled'];
  const twice = used.filter((c) => header.indexOf(c) !== header.lastIndexOf(c));
  for (const c of twice) problems.push({ where: file, field: `column ${c}`, value: headerLine, message: `column "${c}" appears more than once in the header` });
  if (twice.length) return { runs, excluded, problems, names };
  const seen = new Map<string, number>();
  for (let i = headerAt + 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    const row = i + 1;
    const cells = line.split('\t');
    const cell = (name: string): string => {
      const c = col(name);
      return c < 0 ? '' : (cells[c] ?? '').trim();
    };
    const bad = (column: string, message: string) =>
      problems.push({ where: file, field: `row ${row} column ${column}`, value: cell(column), message });
    if (cells.length > header.length) {
      problems.push({ where: file, field: `row ${row}`, value: line, message: `has ${cells.length} cells but the header has ${header.length} columns` });
      continue;
    }
    const exclusion = cell('exclusion').toLowerCase();
    if ((exclusion !== '' && exclusion !== 'no') || cell('is_sampled').toLowerCase() === 'no') {
      excluded++;
      continue;
    }
    const run = cell('run');
    const before = problems.length;
    if (!RUN_ACCESSION.test(run)) bad('run', runAccessionProblem(run));
    else if (seen.has(run)) bad('run', `duplicate run (also row ${seen.get(run)})`);
    else seen.set(run, row);
    const meta: RunMeta = { run };
    const layout = cell('lib_layout').toLowerCase();
    if (layout === 'single' || layout === 'paired') meta.layout = layout as Layout;
    else if (!MISSING.has(layout)) bad('lib_layout', 'must be single or paired');
    const nominal = readNumber(cell('nominal_length'), false);
    if (nominal === 'bad') bad('nominal_length', 'must be a non-negative number');
    else if (nominal !== null) meta.nominalLength = nominal;
    const spots = readNumber(cell('total_spots'), true);
    if (spots === 'bad') bad('total_spots', 'must be a non-negative whole number');
    else if (spots !== null) meta.spots = spots;
    // amalgkit metadata's total_bases (SRA's run statistics; pandas may write it as 1.2e+09): only orders starts
    const bases = readNumber(cell('total_bases'), false);
    if (bases === 'bad') bad('total_bases', 'must be a non-negative number');
    else if (bases !== null) meta.bases = bases;
    if (problems.length === before) {
      runs.push(meta);
      const sci = cell('scientific_name');
      if (!MISSING.has(sci.toLowerCase())) names.set(run, { row, name: sci });
    }
  }
  if (problems.length === 0 && runs.length === 0 && excluded === 0) {
    problems.push({ where: file, field: 'header', value: headerLine, message: 'run table has a header but no rows' });
  }
  return { runs, excluded, problems, names };
}

function readNumber(v: string, int: boolean): number | null | 'bad' {
  if (MISSING.has(v.toLowerCase())) return null;
  // Number('') and Number('0x10') would pass; accept only decimal notation (pandas may write 1234.0 or 1e6).
  if (!/^\d+(\.\d+)?([eE][+]?\d+)?$/.test(v)) return 'bad';
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) return 'bad';
  return n;
}
