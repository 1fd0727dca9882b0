/**
 * Discovery: find species configs, read them and their run tables, and snapshot each species' run list.
 * Every problem in every config is collected and thrown once as InvalidInputError (docs/architecture.md §2.1), so a user
 * fixes all of them in one round instead of one per run of the command.
 */
import { access, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { abundancePath, joinPath, provenancePath, runQuantDir, runReadsDir, speciesIdOf } from '../ids.js';
import type { BatchPlan, Layout, RunMeta, SpeciesPlan } from '../types.js';
import { archivesOf, BATCH_ID, InvalidInputError, RUN_ACCESSION, SERVICE_OF, type BatchOptions, type Problem, type Source } from './schema.js';
import { entrezToEna } from './search.js';
import { isSkippedStem, matchFastaFiles, normalizeSpeciesName, notASpeciesConfig, parseRunTable, readSpeciesConfig, type SpeciesConfig } from './species.js';
import { SPECIES_ID } from './schema.js';
import { findIndexFile, speciesToken } from './index-file.js';
import { moveOldLayout, writeMetadataTable } from './amalgkit-layout.js';
import { formatRecord, parseRecord, rowExclusion, rowToRun, type Expansion } from '../tools/projects.js';

export type SearchRunsByTaxon = (o: { portalUrl: string; taxonId: number; query?: string }) => Promise<RunMeta[]>;
export type ExpandProject = (o: { accession: string; portalUrl: string; eutilsUrl: string }) => Promise<Expansion>;

export interface DiscoverDeps {
  /** ENA search for species with only a taxon_id; absent -> such species are a problem. */
  searchRunsByTaxon?: SearchRunsByTaxon;
  /** Runs of a project, study or GEO series (fetchquant.projects); absent -> such configs are a problem. */
  expandProject?: ExpandProject;
  /**
   * Validate and plan without writing snapshots: the CLI's check before it starts a batch. Rewriting the
   * snapshot of a batch that is already running could shift the rows its species workflows are paging.
   */
  dryRun?: boolean;
  /**
   * Write each species' amalgkit sample table (<steps.quant.out_dir>/metadata/metadata.tsv) unless one that
   * fetchquant did not write is there. The discover activity asks for it; unit tests of discovery do not.
   */
  amalgkitTables?: boolean;
  /** Called with each species' resolved runs (`fetchquant plan` resolves them at the archives). */
  onRuns?: (speciesId: string, runs: RunMeta[]) => void;
}

const NO_RUNS = 'no runs: give a run table, fetchquant.runs, fetchquant.projects or taxon_id';

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

// Not `instanceof Error`: errors from another realm (fs inside a vm context) fail that test.
function errText(err: unknown): string {
  const e = err as { code?: string; message?: string } | null;
  if (e?.code === 'ENOENT') return 'does not exist';
  if (e?.code === 'EISDIR') return 'is a directory, not a file';
  if (e?.code === 'ENOTDIR') return 'is not a directory (or a parent of it is a file)';
  if (e?.code === 'EACCES') return 'permission denied';
  return e?.message ?? String(err);
}

/** YAML syntax errors as problems naming file and line; the document only when it parsed cleanly. */
function parseYaml(text: string, file: string, problems: Problem[]): unknown {
  const doc = parseDocument(text);
  if (doc.errors.length === 0) {
    try {
      return doc.toJS();
    } catch (err) {
      problems.push({ where: file, field: '(yaml)', value: null, message: `YAML cannot be read: ${errText(err)}` });
      return undefined;
    }
  }
  const lines = text.split(/\r?\n/);
  for (const e of doc.errors) {
    const line = e.linePos?.[0]?.line;
    // the offending line as the value, so the message shows what to fix without opening the file
    const source = line ? (lines[line - 1] ?? '').slice(0, 200) : null;
    const message = (e.message.split('\n')[0] ?? '').replace(/:\s*$/, '');
    problems.push({ where: file, field: line ? `line ${line}` : '(yaml)', value: source, message: `YAML syntax error: ${message}` });
  }
  return undefined;
}

/** Read and parse a run table; a path that does not exist is a problem naming the field it came from. */
async function readTable(path: string, where: string, field: string, problems: Problem[], c: SpeciesConfig, notes: string[]): Promise<RunMeta[] | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = code === 'ENOENT' ? 'run table does not exist' : `run table cannot be read: ${errText(err)}`;
    problems.push({ where, field, value: path, message });
    return null;
  }
  const parsed = parseRunTable(text, path);
  problems.push(...parsed.problems);
  if (parsed.problems.length) return null;
  // A row of another species would be quantified against this species' index: report it. A subspecies
  // ("Apis mellifera ligustica") is quantified against its species' index, as MetaInformAnt's configs alias them.
  const subspecies: string[] = [];
  for (const [run, { row, name }] of parsed.names) {
    const n = normalizeSpeciesName(name);
    if (n.toLowerCase() === c.name.toLowerCase()) continue;
    if (n.toLowerCase().startsWith(`${c.name.toLowerCase()} `)) subspecies.push(`${run} (${n})`);
    else problems.push({ where: path, field: `row ${row} column scientific_name`, value: name, message: `run ${run} is of another species than ${c.name} (${c.file}); its reads would be quantified against the ${c.name} index` });
  }
  if (subspecies.length) {
    notes.push(`${c.speciesId}: ${subspecies.length} run(s) of a subspecies of ${c.name} are quantified against the ${c.name} index: ${subspecies.slice(0, 3).join(', ')}${subspecies.length > 3 ? ', …' : ''}`);
  }
  return parsed.runs;
}

export function projectRecordPath(outputDir: string, accession: string): string {
  return joinPath(outputDir, '.fetchquant', 'projects', `${accession}.tsv`);
}

/**
 * fetchquant.projects expanded to runs. Each accession's expansion is recorded once under
 * <output dir>/.fetchquant/projects/<ACC>.tsv and read from there afterwards, so a re-run sees the same runs
 * even when the archive has added some since; deleting the file asks again. Written to a temporary name and
 * renamed; never rewritten (also in a dry run: the CLI's check and the batch then agree).
 */
async function projectRuns(c: SpeciesConfig, projects: string[], options: BatchOptions, outputDir: string, deps: DiscoverDeps, problems: Problem[], notes: string[]): Promise<RunMeta[] | null> {
  const runs: RunMeta[] = [];
  let ok = true;
  for (const [i, acc] of projects.entries()) {
    const path = projectRecordPath(outputDir, acc);
    let e: Expansion;
    let recorded = false;
    const text = await readFile(path, 'utf8').catch(() => null);
    if (text !== null) {
      try {
        e = parseRecord(text, path);
        recorded = true;
      } catch (err) {
        problems.push({ where: path, field: '(file)', value: null, message: errText(err) });
        ok = false;
        continue;
      }
    } else if (!deps.expandProject) {
      problems.push({ where: c.file, field: `fetchquant.projects[${i}]`, value: acc, message: 'projects cannot be expanded here (no archive access)' });
      ok = false;
      continue;
    } else {
      try {
        e = await deps.expandProject({ accession: acc, portalUrl: options.enaPortalUrl, eutilsUrl: options.eutilsUrl });
      } catch (err) {
        const retry = (err as { nonRetryable?: boolean }).nonRetryable === false;
        // An archive that is down is not bad input: the activity retries it; the CLI reports it and stops.
        if (retry) throw err;
        problems.push({ where: c.file, field: `fetchquant.projects[${i}]`, value: acc, message: errText(err) });
        ok = false;
        continue;
      }
      const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
      await mkdir(dirname(path), { recursive: true });
      await writeFile(tmp, formatRecord(e, new Date().toISOString()));
      await rename(tmp, path);
    }
    const dropped = new Map<string, number>();
    let kept = 0;
    for (const row of e.rows) {
      const why = rowExclusion(row, c.name);
      if (why) dropped.set(why, (dropped.get(why) ?? 0) + 1);
      else {
        runs.push(rowToRun(row));
        kept++;
      }
    }
    const left = [...dropped].map(([why, n]) => `${n} ${why}`).join(', ');
    notes.push(
      `${c.speciesId}: ${acc}${e.resolvedAs ? ` -> ${e.resolvedAs}` : ''}: ${kept} of ${e.rows.length} run(s) are bulk RNA-Seq of ${c.name}` +
        `${left ? ` (left out: ${left})` : ''}; ${recorded ? 'as recorded in' : 'recorded in'} ${path} (delete it to ask the archives again)`,
    );
    if (kept === 0) {
      problems.push({ where: c.file, field: `fetchquant.projects[${i}]`, value: acc, message: `lists no bulk RNA-Seq run of ${c.name}${left ? ` (${left})` : ''}` });
      ok = false;
    }
  }
  return ok ? runs : null;
}

/** docs/architecture.md §2.1 precedence: fetchquant.runs (+ fetchquant.projects) > explicit metadata > <work_dir>/metadata/metadata.tsv > ENA by taxon. */
async function resolveRuns(c: SpeciesConfig, options: BatchOptions, outputDir: string, deps: DiscoverDeps, problems: Problem[], notes: string[]): Promise<RunMeta[] | null> {
  // a malformed run or project list is already a problem: ask no archive about the rest
  if (c.projects && !c.runSourceBroken) {
    const fromProjects = await projectRuns(c, c.projects, options, outputDir, deps, problems, notes);
    if (fromProjects === null) return null;
    // fetchquant.runs first, then each project's runs once (a run listed twice is fetched once)
    const seen = new Set((c.runs ?? []).map((r) => r.run));
    return [...(c.runs ?? []), ...fromProjects.filter((r) => !seen.has(r.run) && seen.add(r.run))];
  }
  if (c.runs) return c.runs;
  if (c.runSourceBroken) return null;
  if (c.metadataPath) return readTable(c.metadataPath, c.file, 'steps.getfastq.metadata', problems, c, notes);
  if (c.workDirTable && (await exists(c.workDirTable))) return readTable(c.workDirTable, c.file, 'work_dir', problems, c, notes);
  if (c.taxonId !== null) {
    // Never a silently wider search: the config's own search_string, translated, or a problem naming the term.
    let query: string | undefined;
    if (c.searchString !== null) {
      const t = entrezToEna(c.searchString, c.name, c.taxonId);
      if ('error' in t) {
        problems.push({ where: c.file, field: 'steps.metadata.search_string', value: c.searchString, message: `${t.error}; give a run table (steps.getfastq.metadata) or fetchquant.runs instead` });
        return null;
      }
      query = t.query;
    }
    if (!deps.searchRunsByTaxon) {
      problems.push({ where: c.file, field: 'taxon_id', value: c.taxonId, message: `${NO_RUNS} (ENA search is not available here)` });
      return null;
    }
    const found = await deps.searchRunsByTaxon(query === undefined ? { portalUrl: options.enaPortalUrl, taxonId: c.taxonId } : { portalUrl: options.enaPortalUrl, taxonId: c.taxonId, query });
    let runs = found.filter((r) => RUN_ACCESSION.test(r.run));
    if (runs.length === 0) {
      problems.push({ where: c.file, field: 'taxon_id', value: c.taxonId, message: `ENA (${options.enaPortalUrl}) lists no RNA-Seq runs for this taxon${query ? ` (query ${query})` : ''}` });
      return null;
    }
    const total = runs.length;
    if (c.maxSample !== null && runs.length > c.maxSample) runs = [...runs].sort((a, b) => (a.run < b.run ? -1 : a.run > b.run ? 1 : 0)).slice(0, c.maxSample);
    // Shown before anything is downloaded (the CLI prints notes first): how many runs this config asks for.
    notes.push(
      `${c.speciesId}: ENA search ${query ?? `tax_eq(${c.taxonId}) AND library_strategy="RNA-Seq"`} found ${total} run(s)` +
        (runs.length < total ? `; max_sample ${c.maxSample} keeps the first ${runs.length} by accession` : '; all will be downloaded'),
    );
    return runs;
  }
  const hint = c.workDirTable ? ` (${c.workDirTable} does not exist)` : '';
  problems.push({ where: c.file, field: 'steps.getfastq.metadata', value: null, message: NO_RUNS + hint });
  return null;
}

/**
 * Transcriptome FASTA(s) for building a missing index. A configured FASTA location that does not exist is only a
 * problem when the index is missing too: with the index on disk the FASTA is never read.
 */
async function findFasta(c: SpeciesConfig, problems: Problem[]): Promise<string[]> {
  const indexThere = await exists(c.indexPath);
  if (c.fastaDir) {
    try {
      const found = matchFastaFiles(await readdir(c.fastaDir), c.name).map((f) => joinPath(c.fastaDir as string, f));
      if (found.length) return found;
    } catch (err) {
      if (!indexThere) problems.push({ where: c.file, field: 'steps.quant.fasta_dir', value: c.fastaDir, message: `cannot be read (${errText(err)}) and the index ${c.indexPath} does not exist` });
      return [];
    }
  }
  if (c.genomeFasta) {
    if (await exists(c.genomeFasta)) return [c.genomeFasta];
    if (!indexThere) problems.push({ where: c.file, field: 'genome.files.transcriptome_fasta', value: c.genomeFasta, message: `does not exist and the index ${c.indexPath} does not exist` });
  }
  return [];
}

/** Why a directory fetchquant will create or write into cannot be one (a file is in the way), or null. */
async function notADirectory(path: string): Promise<string | null> {
  return stat(path).then(
    (s) => (s.isDirectory() ? null : 'exists and is not a directory'),
    (err: NodeJS.ErrnoException) => (err.code === 'ENOTDIR' ? 'cannot be created: a parent of it is a file' : null),
  );
}

/** Reads, quant and index dirs: every one that exists as something other than a directory is a problem. */
async function checkDirs(c: SpeciesConfig, problems: Problem[], outputDirBad: boolean): Promise<void> {
  const dirs: [string, string | null, string][] = [
    [c.readsDir, c.dirFields.readsDir, 'reads dir'],
    [c.quantOutDir, c.dirFields.quantDir, 'quant dir'],
    [c.quantDir, c.dirFields.quantDir, 'quant dir'],
    [dirname(c.indexPath), c.dirFields.indexDir, 'index dir'],
  ];
  const reported = new Set<string>();
  for (const [dir, field, what] of dirs) {
    // defaults live under the output dir: its own problem already says it all
    if (field === null && outputDirBad) continue;
    const name = field ?? `(default ${what} under --output-dir)`;
    // <out_dir>/quant under an out_dir that is a file: the out_dir's problem says it all
    if (reported.has(name)) continue;
    const why = await notADirectory(dir);
    if (why) {
      reported.add(name);
      problems.push({ where: c.file, field: name, value: dir, message: why });
    }
  }
}

/**
 * Two species writing the same run into the same place would race: one deletes reads the other is quantifying,
 * or the second finds the first's result and calls itself done. Quantifying one run against two species is
 * fine (cross-species mapping) as long as their reads and quant dirs differ.
 */
function checkSharedRuns(resolved: { c: SpeciesConfig; runs: RunMeta[] }[], problems: Problem[]): void {
  const owner = new Map<string, string>();
  // one problem per pair of species and kind of dir, not one per run: a shared table may hold thousands
  const clashes = new Map<string, { c: SpeciesConfig; other: string; kind: 'reads' | 'quant'; runs: string[] }>();
  for (const { c, runs } of resolved) {
    for (const r of runs) {
      for (const [kind, place] of [
        ['reads', runReadsDir(c.readsDir, r.run)],
        ['quant', runQuantDir(c.quantDir, r.run)],
      ] as const) {
        const other = owner.get(place);
        if (other === undefined) owner.set(place, c.speciesId);
        else if (other !== c.speciesId) {
          const key = `${c.speciesId}\0${other}\0${kind}`;
          const seen = clashes.get(key) ?? { c, other, kind, runs: [] };
          seen.runs.push(r.run);
          clashes.set(key, seen);
        }
      }
    }
  }
  for (const { c, other, kind, runs } of clashes.values()) {
    // the value as the user wrote the field (steps.quant.out_dir, not its quant/ subdir)
    const dir = kind === 'reads' ? c.readsDir : c.quantOutDir;
    const shown = runs.slice(0, 3).join(', ') + (runs.length > 3 ? ', …' : '');
    const place = kind === 'reads' ? runReadsDir(c.readsDir, runs[0] as string) : runQuantDir(c.quantDir, runs[0] as string);
    problems.push({
      where: c.file,
      field: c.dirFields[kind === 'reads' ? 'readsDir' : 'quantDir'] ?? `(default ${kind} dir under --output-dir)`,
      value: dir,
      message: `species ${other} uses the same ${kind} dir and lists ${runs.length} of the same runs (${shown}): both would write ${place}`,
    });
  }
}

/** Runs whose abundance and provenance files are both on disk (docs/architecture.md §3: the definition of done). */
export async function isRunDone(quantDir: string, run: string): Promise<boolean> {
  return (await exists(abundancePath(quantDir, run))) && (await exists(provenancePath(quantDir, run)));
}

async function countDone(quantDir: string, runs: RunMeta[]): Promise<number> {
  // One readdir instead of two stats per run: a species may list 20,000 runs, most not yet started.
  const present = new Set(await readdir(quantDir).catch(() => [] as string[]));
  let done = 0;
  for (const r of runs) if (present.has(r.run) && (await isRunDone(quantDir, r.run))) done++;
  return done;
}

/**
 * The start order `--start-order largest` gives a species' runs (its run snapshot's order, which the species
 * workflow starts from the top): largest first, so the longest quants start early and the batch does not end on
 * one big run quantifying alone while the other cores idle (longest processing time first). The size is the run
 * table's total_bases when every run has one, else total_spots x mates (2 for paired); runs without a size keep
 * their order after the others, and equal sizes keep theirs. `moved`: the order differs from the given one.
 */
export function largestFirst(runs: readonly RunMeta[]): { runs: RunMeta[]; by: 'total_bases' | 'total_spots x mates'; moved: boolean } {
  const byBases = runs.length > 0 && runs.every((r) => r.bases !== undefined);
  const size = (r: RunMeta): number | undefined => (byBases ? r.bases : r.spots === undefined ? undefined : r.spots * (r.layout === 'paired' ? 2 : 1));
  const keyed = runs.map((r, i) => ({ r, i, s: size(r) }));
  keyed.sort((a, b) => {
    if (a.s === undefined || b.s === undefined) return a.s === b.s ? a.i - b.i : a.s === undefined ? 1 : -1;
    return b.s - a.s || a.i - b.i;
  });
  return { runs: keyed.map((k) => k.r), by: byBases ? 'total_bases' : 'total_spots x mates', moved: keyed.some((k, i) => k.i !== i) };
}

/** The one line a batch gets for its species whose runs start largest first (the first five named). */
export function startOrderNote(species: readonly string[]): string {
  const which = species.length <= 5 ? species.join(', ') : `${species.slice(0, 5).join(', ')} and ${species.length - 5} more`;
  return `runs start largest first (by total_bases, else total_spots x mates; --start-order table keeps the run tables' order): ${which}`;
}

const SNAPSHOT_HEADER = ['run', 'layout', 'nominal_length', 'spots'];

export function snapshotPath(outputDir: string, batchId: string, speciesId: string): string {
  return joinPath(outputDir, '.fetchquant', batchId, `${speciesId}.runs.tsv`);
}

/** Written to a temporary name and renamed, so a reader never sees half a run list. */
export async function writeSnapshot(path: string, runs: RunMeta[]): Promise<void> {
  const rows = runs.map((r) => [r.run, r.layout ?? '', r.nominalLength ?? '', r.spots ?? ''].join('\t'));
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await mkdir(resolve(path, '..'), { recursive: true });
  await writeFile(tmp, [SNAPSHOT_HEADER.join('\t'), ...rows, ''].join('\n'));
  await rename(tmp, path);
}

/** Read a snapshot back; accessions are checked again because the file sits on disk between the two. */
export async function readSnapshot(path: string): Promise<RunMeta[]> {
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');
  if (lines[0] !== SNAPSHOT_HEADER.join('\t')) throw new Error(`${path}: not a run snapshot (header ${JSON.stringify(lines[0] ?? '')})`);
  return lines.slice(1).map((line, i) => {
    const [run = '', layout = '', nominal = '', spots = ''] = line.split('\t');
    if (!RUN_ACCESSION.test(run)) throw new Error(`${path}: line ${i + 2}: invalid run accession ${JSON.stringify(run)}`);
    const meta: RunMeta = { run };
    if (layout === 'single' || layout === 'paired') meta.layout = layout as Layout;
    if (nominal !== '') meta.nominalLength = Number(nominal);
    if (spots !== '') meta.spots = Number(spots);
    return meta;
  });
}

interface Candidate {
  file: string;
  name: string;
  /** the batch entry's id: the species id, or for one of several configs of a species, its config's stem */
  speciesId: string;
  /** the species id from the name (shared by variants) */
  nameId: string;
  config: SpeciesConfig | null;
  problems: Problem[];
}

/** Read every amalgkit_*.yaml (sorted by file name), skipping template/test stems. */
async function readCandidates(configDir: string, ctx: { cwd: string; outputDir: string }, notes: string[], problems: Problem[]): Promise<Candidate[]> {
  let names: string[];
  try {
    names = (await readdir(configDir)).filter((n) => /^amalgkit_.+\.yaml$/.test(n)).sort();
  } catch (err) {
    problems.push({ where: 'input', field: 'configDir', value: configDir, message: `config directory cannot be read: ${errText(err)}` });
    return [];
  }
  if (names.length === 0) problems.push({ where: 'input', field: 'configDir', value: configDir, message: 'holds no amalgkit_*.yaml species config' });
  const out: Candidate[] = [];
  for (const n of names) {
    const stem = n.slice(0, -'.yaml'.length);
    const file = joinPath(configDir, n);
    if (isSkippedStem(stem)) {
      notes.push(`skipped ${file}: its name contains "template" or "test"`);
      continue;
    }
    const own: Problem[] = [];
    const text = await readFile(file, 'utf8').catch((err: unknown) => {
      own.push({ where: file, field: '(file)', value: null, message: `cannot be read: ${errText(err)}` });
      return null;
    });
    const raw = text === null ? undefined : parseYaml(text, file, own);
    const notSpecies = notASpeciesConfig(raw);
    if (notSpecies !== null) {
      notes.push(`skipped ${file}: ${notSpecies}`);
      continue;
    }
    const read = readSpeciesConfig(raw === undefined ? null : raw, { file, stem, ...ctx });
    // A config that did not parse has no fields to check; its name comes from the file stem for filtering.
    out.push({ file, name: read.name, speciesId: read.speciesId, nameId: read.speciesId, config: raw === undefined ? null : read.config, problems: [...own, ...(raw === undefined ? [] : read.problems)] });
  }
  return out;
}

/** --species (names or ids) then --max-species; filters that match nothing are a problem (a typo is not "no work"). */
function select(cands: Candidate[], options: BatchOptions, notes: string[], problems: Problem[]): Candidate[] {
  let kept = cands;
  if (options.species) {
    const wanted = options.species.map((s) => ({ given: s, id: speciesIdOf(s.replace(/_/g, ' ')) }));
    // an entry's own id picks one variant; the species' name picks all its variants
    kept = cands.filter((c) => wanted.some((w) => w.id === c.speciesId || w.id === c.nameId));
    for (const c of cands) if (!kept.includes(c)) notes.push(`skipped ${c.file}: ${c.speciesId} not in --species`);
    for (const w of wanted) {
      if (!cands.some((c) => c.speciesId === w.id || c.nameId === w.id)) {
        problems.push({ where: 'input', field: 'species', value: w.given, message: `no config for this species (found: ${cands.map((c) => c.speciesId).join(', ') || 'none'})` });
      }
    }
  }
  if (options.maxSpecies !== null && kept.length > options.maxSpecies) {
    for (const c of kept.slice(options.maxSpecies)) notes.push(`skipped ${c.file}: beyond --max-species ${options.maxSpecies}`);
    kept = kept.slice(0, options.maxSpecies);
  }
  return kept;
}

/**
 * The SRA Data Locator services a species may download from, in the order tried: --sources names them (aws,
 * gcp, ncbi) or says `sra` for all in amalgkit's order (AWS, GCP, NCBI: SRA_DOWNLOAD_SOURCE_PRIORITY of
 * amalgkit 0.16 getfastq.py); the config's steps.getfastq.aws/gcp/ncbi switch each off.
 */
export function sraServicesOf(g: SpeciesConfig['getfastqSources'], names: readonly string[]): string[] {
  const allowed: Record<string, boolean> = { s3: g.aws, gs: g.gcp, ncbi: g.ncbi };
  const order: string[] = [];
  for (const n of names) {
    const add = n === 'sra' ? ['s3', 'gs', 'ncbi'] : n in SERVICE_OF ? [SERVICE_OF[n as keyof typeof SERVICE_OF]] : [];
    for (const s of add) if (!order.includes(s)) order.push(s);
  }
  return order.filter((s) => allowed[s]);
}

/** The archives a species asks, in --sources order: ENA unless steps.getfastq.ena is no, SRA while a service is left. */
export function speciesSourcesOf(g: SpeciesConfig['getfastqSources'], names: readonly string[]): Source[] {
  return archivesOf(names).filter((s) => (s === 'ena' ? g.ena : sraServicesOf(g, names).length > 0));
}

/**
 * Several configs of one species (MetaInformAnt has 3 for Apis mellifera, 5 for Pogonomyrmex barbatus) are
 * variants: each is its own entry, named by its config's stem (`amalgkit_pbarbatus_5sample.yaml` ->
 * `pbarbatus_5sample`); the one whose stem is the species id keeps it. Ids must stay unique.
 */
function assignVariantIds(cands: Candidate[], problems: Problem[]): void {
  const byName = new Map<string, Candidate[]>();
  for (const c of cands) byName.set(c.nameId, [...(byName.get(c.nameId) ?? []), c]);
  for (const group of byName.values()) {
    if (group.length < 2) continue;
    for (const cand of group) {
      const stem = cand.file.slice(cand.file.lastIndexOf('/') + 1).replace(/\.yaml$/, '').replace(/^amalgkit_/, '');
      const id = stem.toLowerCase().replace(/[^a-z0-9._-]+/g, '_').replace(/^[^a-z0-9]+/, '');
      if (id === cand.nameId) continue;
      if (!SPECIES_ID.test(id)) {
        problems.push({ where: cand.file, field: '(file name)', value: stem, message: `another config also names ${cand.name}; this one's id would be ${JSON.stringify(id)}, which must match ${SPECIES_ID.source}` });
        continue;
      }
      cand.speciesId = id;
      if (cand.config) cand.config.speciesId = id;
    }
  }
  const seen = new Map<string, string>();
  for (const c of cands) {
    const other = seen.get(c.speciesId);
    if (other !== undefined) problems.push({ where: c.file, field: 'species_list', value: c.name, message: `entry id ${c.speciesId} is also the id of ${other}` });
    else seen.set(c.speciesId, c.file);
  }
}

/** Two configs of one species writing into the same reads or quant dir would take each other's runs. */
function checkVariantDirs(selected: Candidate[], problems: Problem[]): void {
  const owners = new Map<string, Candidate>();
  for (const cand of selected) {
    const c = cand.config;
    if (!c) continue;
    for (const [kind, dir, field] of [
      ['reads', c.readsDir, c.dirFields.readsDir],
      ['quant', c.quantDir, c.dirFields.quantDir],
    ] as const) {
      const key = `${cand.nameId}\0${kind}\0${dir}`;
      const other = owners.get(key);
      if (other === undefined) {
        owners.set(key, cand);
        continue;
      }
      problems.push({
        where: cand.file,
        field: field ?? `(default ${kind} dir under --output-dir)`,
        value: dir,
        message: `species ${cand.name} is also configured in ${other.file} with the same ${kind} dir: give each config its own ${kind === 'reads' ? 'steps.getfastq.out_dir' : 'steps.quant.out_dir'}`,
      });
    }
  }
}

/**
 * The index the way amalgkit finds it (./index-file.ts). Returns the FASTA(s) to build a missing index from;
 * with steps.quant.build_index: no a missing index is a problem, never a second index.
 */
async function resolveIndex(c: SpeciesConfig, problems: Problem[], notes: string[]): Promise<string[]> {
  const field = c.dirFields.indexDir ?? (c.dirFields.quantDir ? 'steps.quant.out_dir' : '(default index dir under --output-dir)');
  const found = await findIndexFile(c.indexDir, c.name);
  if (found && 'ambiguous' in found) {
    problems.push({ where: c.file, field, value: c.indexDir, message: `holds ${found.ambiguous.length} index files for ${c.name}: ${found.ambiguous.join(', ')}; keep one (amalgkit quant refuses this too)` });
    return [];
  }
  if (found) {
    c.indexPath = found.path;
    if (!found.exact) notes.push(`${c.speciesId}: using the index ${found.path} (amalgkit 0.16 quant itself looks only for ${c.indexDir}/${speciesToken(c.name)}.idx)`);
    return [];
  }
  if (!c.buildIndex) {
    problems.push({ where: c.file, field: 'steps.quant.build_index', value: 'no', message: `no index for ${c.name} in ${c.indexDir} (a non-empty ${speciesToken(c.name)}.idx) and building one is switched off` });
    return [];
  }
  return findFasta(c, problems);
}

/**
 * Discover, validate and snapshot a batch. Throws InvalidInputError listing every problem; writes nothing
 * unless there is none. Relative paths resolve against `cwd` and every path in the plan is absolute.
 */
export async function discoverBatch(options: BatchOptions, batchId: string, cwd: string, deps: DiscoverDeps = {}): Promise<BatchPlan> {
  const problems: Problem[] = [];
  const notes: string[] = [];
  if (!BATCH_ID.test(batchId)) problems.push({ where: 'input', field: 'batchId', value: batchId, message: `must match ${BATCH_ID.source}` });
  for (const k of ['configDir', 'outputDir'] as const) {
    if (options[k].includes('\0')) problems.push({ where: 'input', field: k, value: options[k], message: 'must not contain a NUL byte' });
  }
  if (problems.length) throw new InvalidInputError(problems);
  const outputDir = resolve(cwd, options.outputDir);
  const outputDirBad = await notADirectory(outputDir);
  if (outputDirBad) problems.push({ where: 'input', field: 'outputDir', value: outputDir, message: outputDirBad });
  const cands = await readCandidates(resolve(cwd, options.configDir), { cwd, outputDir }, notes, problems);
  assignVariantIds(cands, problems);
  const selected = select(cands, options, notes, problems);
  const resolved: { c: SpeciesConfig; runs: RunMeta[]; fastaPaths: string[] }[] = [];
  for (const cand of selected) {
    problems.push(...cand.problems);
    const c = cand.config;
    if (!c) continue;
    const runs = await resolveRuns(c, options, outputDir, deps, problems, notes);
    const fastaPaths = await resolveIndex(c, problems, notes);
    await checkDirs(c, problems, outputDirBad !== null);
    if (runs) resolved.push({ c, runs, fastaPaths });
  }
  checkVariantDirs(selected, problems);
  checkSharedRuns(resolved, problems);
  if (problems.length) throw new InvalidInputError(problems);

  const species: SpeciesPlan[] = [];
  /** species whose runs start in another order than listed (one line for the batch, not one per species) */
  const reordered: string[] = [];
  for (const { c, runs, fastaPaths } of resolved) {
    const runListPath = snapshotPath(outputDir, batchId, c.speciesId);
    const order = options.startOrder === 'table' ? null : largestFirst(runs);
    if (order?.moved) reordered.push(order.by === 'total_bases' ? c.speciesId : `${c.speciesId} (by total_spots x mates)`);
    // in the order they start: `run`'s plan summary asks them in this order, so the first samples find answers
    deps.onRuns?.(c.speciesId, order?.runs ?? runs);
    if (!deps.dryRun) {
      await writeSnapshot(runListPath, order?.runs ?? runs);
      const moved = await moveOldLayout(c.quantOutDir, c.quantDir, runs);
      if (moved.length) notes.push(`${c.speciesId}: moved ${moved.length} finished result(s) from ${c.quantOutDir}/<RUN> to ${c.quantDir}/<RUN> (amalgkit's layout)`);
      if (runs.length && deps.amalgkitTables) {
        const table = joinPath(c.quantOutDir, 'metadata', 'metadata.tsv');
        const what = await writeMetadataTable(table, runs, c.name);
        if (what === 'kept') notes.push(`${c.speciesId}: kept the existing ${table} (not written by fetchquant); amalgkit merge reads its runs from it`);
      }
    }
    if (runs.length === 0) notes.push(`${c.speciesId}: every row of its run table is excluded; nothing to do`);
    if (fastaPaths.length === 0 && !(await exists(c.indexPath))) {
      notes.push(`${c.speciesId}: no index at ${c.indexPath} and no transcriptome FASTA configured; the species will fail its index check`);
    }
    if (c.unused.length) {
      notes.push(
        `${c.speciesId}: not used by fetchquant: ${c.unused.join(', ')} (downloads share the batch-wide --total-threads; kallisto runs with --kallisto-threads, --quant-threads at once per host; each run's history: fetchquant history <RUN> and its <RUN>_fetchquant.json)`,
      );
    }
    if (c.keepReadsField) notes.push(`${c.speciesId}: keeps every run's reads after quant (${c.keepReadsField}) under ${c.readsDir}/getfastq/<RUN>`);
    if (c.maxBp !== null) notes.push(`${c.speciesId}: downloads stop at ${c.maxBp} bases per run (steps.getfastq.max_bp: the first reads of each run)`);
    const sources = speciesSourcesOf(c.getfastqSources, options.sources);
    const services = sraServicesOf(c.getfastqSources, options.sources);
    if (sources.join(',') !== archivesOf(options.sources).join(',') || (sources.includes('sra') && services.join(',') !== 's3,gs,ncbi')) {
      notes.push(`${c.speciesId}: sources ${sources.map((s) => (s === 'sra' ? `sra (${services.join(', ')})` : s)).join(', ') || 'none'} (--sources, steps.getfastq.aws/gcp/ncbi/ena)`);
    }
    species.push({
      speciesId: c.speciesId,
      name: c.name,
      configPath: c.file,
      readsDir: c.readsDir,
      quantDir: c.quantDir,
      indexPath: c.indexPath,
      fastaPaths,
      runListPath,
      fragmentLength: c.fragmentLength,
      fragmentSd: c.fragmentSd,
      totalRuns: runs.length,
      doneRuns: await countDone(c.quantDir, runs),
      amalgkit: {
        maxBp: c.maxBp,
        keepReads: c.keepReadsField !== null,
        fragmentFromConfig: c.fragmentFromConfig,
        sources,
        sraServices: services,
        sraProbeServices: sraServicesOf(c.getfastqSources, ['sra']),
      },
    });
  }
  if (reordered.length) notes.push(startOrderNote(reordered));
  return { batchId, outputDir: resolve(cwd, options.outputDir), species, notes };
}
