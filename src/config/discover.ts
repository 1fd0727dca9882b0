/**
 * Discovery: find species configs, read them and their run tables, and snapshot each species' run list.
 * Every problem in every config is collected and thrown once as InvalidInputError (SPEC §2.1), so a user
 * fixes all of them in one round instead of one per run of the command.
 */
import { access, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { abundancePath, joinPath, provenancePath, runQuantDir, runReadsDir, speciesIdOf } from '../ids.js';
import type { BatchPlan, Layout, RunMeta, SpeciesPlan } from '../types.js';
import { BATCH_ID, InvalidInputError, RUN_ACCESSION, type BatchOptions, type Problem } from './schema.js';
import { isSkippedStem, matchFastaFiles, parseRunTable, readSpeciesConfig, type SpeciesConfig } from './species.js';

export type SearchRunsByTaxon = (o: { portalUrl: string; taxonId: number }) => Promise<RunMeta[]>;

export interface DiscoverDeps {
  /** ENA search for species with only a taxon_id; absent -> such species are a problem. */
  searchRunsByTaxon?: SearchRunsByTaxon;
  /**
   * Validate and plan without writing snapshots: the CLI's check before it starts a batch. Rewriting the
   * snapshot of a batch that is already running could shift the rows its species workflows are paging.
   */
  dryRun?: boolean;
}

const NO_RUNS = 'no runs: give a run table, fetchquant.runs or taxon_id';

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
async function readTable(path: string, where: string, field: string, problems: Problem[]): Promise<RunMeta[] | null> {
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
  return parsed.problems.length ? null : parsed.runs;
}

/** SPEC §2.1 precedence: fetchquant.runs > explicit metadata > <work_dir>/metadata/metadata.tsv > ENA by taxon. */
async function resolveRuns(c: SpeciesConfig, options: BatchOptions, deps: DiscoverDeps, problems: Problem[]): Promise<RunMeta[] | null> {
  if (c.runs) return c.runs;
  if (c.runSourceBroken) return null;
  if (c.metadataPath) return readTable(c.metadataPath, c.file, 'steps.getfastq.metadata', problems);
  if (c.workDirTable && (await exists(c.workDirTable))) return readTable(c.workDirTable, c.file, 'work_dir', problems);
  if (c.taxonId !== null) {
    if (!deps.searchRunsByTaxon) {
      problems.push({ where: c.file, field: 'taxon_id', value: c.taxonId, message: `${NO_RUNS} (ENA search is not available here)` });
      return null;
    }
    const found = await deps.searchRunsByTaxon({ portalUrl: options.enaPortalUrl, taxonId: c.taxonId });
    const runs = found.filter((r) => RUN_ACCESSION.test(r.run));
    if (runs.length === 0) {
      problems.push({ where: c.file, field: 'taxon_id', value: c.taxonId, message: `ENA (${options.enaPortalUrl}) lists no RNA-Seq runs for this taxon` });
      return null;
    }
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
    [c.quantDir, c.dirFields.quantDir, 'quant dir'],
    [dirname(c.indexPath), c.dirFields.indexDir, 'index dir'],
  ];
  for (const [dir, field, what] of dirs) {
    // defaults live under the output dir: its own problem already says it all
    if (field === null && outputDirBad) continue;
    const why = await notADirectory(dir);
    if (why) problems.push({ where: c.file, field: field ?? `(default ${what} under --output-dir)`, value: dir, message: why });
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
    const dir = kind === 'reads' ? c.readsDir : c.quantDir;
    const shown = runs.slice(0, 3).join(', ') + (runs.length > 3 ? ', …' : '');
    const place = kind === 'reads' ? runReadsDir(dir, runs[0] as string) : runQuantDir(dir, runs[0] as string);
    problems.push({
      where: c.file,
      field: c.dirFields[kind === 'reads' ? 'readsDir' : 'quantDir'] ?? `(default ${kind} dir under --output-dir)`,
      value: dir,
      message: `species ${other} uses the same ${kind} dir and lists ${runs.length} of the same runs (${shown}): both would write ${place}`,
    });
  }
}

/** Runs whose abundance and provenance files are both on disk (SPEC §3: the definition of done). */
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
  speciesId: string;
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
    const read = readSpeciesConfig(raw === undefined ? null : raw, { file, stem, ...ctx });
    // A config that did not parse has no fields to check; its name comes from the file stem for filtering.
    out.push({ file, name: read.name, speciesId: read.speciesId, config: raw === undefined ? null : read.config, problems: [...own, ...(raw === undefined ? [] : read.problems)] });
  }
  return out;
}

/** --species (names or ids) then --max-species; filters that match nothing are a problem (a typo is not "no work"). */
function select(cands: Candidate[], options: BatchOptions, notes: string[], problems: Problem[]): Candidate[] {
  let kept = cands;
  if (options.species) {
    const wanted = options.species.map((s) => ({ given: s, id: speciesIdOf(s.replace(/_/g, ' ')) }));
    kept = cands.filter((c) => wanted.some((w) => w.id === c.speciesId));
    for (const c of cands) if (!kept.includes(c)) notes.push(`skipped ${c.file}: ${c.speciesId} not in --species`);
    for (const w of wanted) {
      if (!cands.some((c) => c.speciesId === w.id)) {
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
  const selected = select(cands, options, notes, problems);
  const firstOf = new Map<string, string>();
  const resolved: { c: SpeciesConfig; runs: RunMeta[]; fastaPaths: string[] }[] = [];
  for (const cand of selected) {
    problems.push(...cand.problems);
    const other = firstOf.get(cand.speciesId);
    if (other !== undefined) {
      problems.push({ where: cand.file, field: 'species_list', value: cand.name, message: `species ${cand.speciesId} is also configured in ${other}` });
      continue;
    }
    firstOf.set(cand.speciesId, cand.file);
    const c = cand.config;
    if (!c) continue;
    const runs = await resolveRuns(c, options, deps, problems);
    const fastaPaths = await findFasta(c, problems);
    await checkDirs(c, problems, outputDirBad !== null);
    if (runs) resolved.push({ c, runs, fastaPaths });
  }
  checkSharedRuns(resolved, problems);
  if (problems.length) throw new InvalidInputError(problems);

  const species: SpeciesPlan[] = [];
  for (const { c, runs, fastaPaths } of resolved) {
    const runListPath = snapshotPath(outputDir, batchId, c.speciesId);
    if (!deps.dryRun) await writeSnapshot(runListPath, runs);
    if (runs.length === 0) notes.push(`${c.speciesId}: every row of its run table is excluded; nothing to do`);
    if (fastaPaths.length === 0 && !(await exists(c.indexPath))) {
      notes.push(`${c.speciesId}: no index at ${c.indexPath} and no transcriptome FASTA configured; the species will fail its index check`);
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
    });
  }
  return { batchId, outputDir: resolve(cwd, options.outputDir), species, notes };
}
