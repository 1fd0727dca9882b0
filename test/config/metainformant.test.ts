// The 44 real configs of docxology/MetaInformAnt (test/fixtures/metainformant, sources named in its README),
// copied as they are into a fresh "repository root" and validated by the real discovery.
import { describe, expect, it } from '@jest/globals';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { discoverBatch } from '../../src/config/discover.js';
import { DEFAULTS, formatProblem, InvalidInputError, type BatchOptions, type Problem } from '../../src/config/schema.js';
import { parseSearchQuery } from '../../src/mirror/ena-api.js';
import type { BatchPlan, RunMeta } from '../../src/types.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/metainformant/config/amalgkit', import.meta.url));
const FILES = readdirSync(FIXTURE).filter((f) => f.endsWith('.yaml')).sort();

/** A fresh copy of their repository root: config/amalgkit/ as it is (their relative paths resolve here). */
function repo(): string {
  const root = mkdtempSync(join(tmpdir(), 'fq-metainformant-'));
  cpSync(FIXTURE, join(root, 'config', 'amalgkit'), { recursive: true });
  return root;
}

type Yaml = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const configs = new Map<string, Yaml>(FILES.map((f) => [f, parse(readFileSync(join(FIXTURE, f), 'utf8')) as Yaml]));

function options(root: string): BatchOptions {
  return { ...DEFAULTS, sources: [...DEFAULTS.sources], configDir: 'config/amalgkit', outputDir: join(root, 'out') };
}

// ENA, as far as discovery asks it: 30 runs per taxon; every query is recorded.
function fakeEna() {
  const queries: { taxonId: number; query?: string }[] = [];
  const search = async (o: { taxonId: number; query?: string }): Promise<RunMeta[]> => {
    queries.push(o);
    return Array.from({ length: 30 }, (_, i) => ({ run: `SRR${String(o.taxonId).padStart(7, '0')}${String(i).padStart(2, '0')}`, layout: 'paired' as const }));
  };
  return { queries, search };
}

async function problemsOf(p: Promise<unknown>): Promise<Problem[]> {
  try {
    await p;
  } catch (err) {
    if (err instanceof InvalidInputError) return err.problems;
    throw err;
  }
  return [];
}

const speciesConfigs = FILES.filter((f) => !/template|test|cross_species/.test(f));
const genusSpecies = (c: Yaml) => String(c.species_list[0]).replace(/ /g, '_');

/** What a user running them has on disk: their references, and run tables where work_dir points. */
function addTheirFiles(root: string): void {
  for (const f of speciesConfigs) {
    const c = configs.get(f) as Yaml;
    const at = (p: string) => (isAbsolute(p) ? p : join(root, p));
    const q = c.steps?.quant ?? {};
    const put = (path: string, text: string) => {
      // their absolute /home/q/... paths are never written to by this test
      expect(path.startsWith(root)).toBe(true);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, text);
    };
    if (q.build_index === false || q.build_index === 'no') {
      put(join(at(q.index_dir), `${genusSpecies(c)}.idx`), 'an index built by amalgkit\n');
    } else if (q.fasta_dir) {
      put(join(at(q.fasta_dir), `${genusSpecies(c)}_rna.fasta`), '>t1\nACGT\n');
    } else {
      put(join(at(c.genome.dest_dir), c.genome.files.transcriptome_fasta), '>t1\nACGT\n');
    }
    if (!isAbsolute(c.work_dir)) {
      const name = String(c.species_list[0]).replace(/_/g, ' ');
      const rows = ['run\tscientific_name\tlib_layout\tnominal_length\ttotal_spots\texclusion', `SRR0000001\t${name}\tpaired\t300\t1000\tno`, `SRR0000002\t${name}\tsingle\t\t2000\tno`];
      put(join(at(c.work_dir), 'metadata', 'metadata.tsv'), rows.join('\n') + '\n');
    }
  }
}

describe('the 44 real configs of docxology/MetaInformAnt', () => {
  it('are all there: 41 species configs, a template, a test and the cross-species file', () => {
    expect(FILES).toHaveLength(44);
    expect(speciesConfigs).toHaveLength(41);
  });

  it('as they are: every problem is a reference that is not on this disk, named by file, field and path', async () => {
    const root = repo();
    const ena = fakeEna();
    const problems = await problemsOf(discoverBatch(options(root), 'mi', root, { searchRunsByTaxon: ena.search, dryRun: true }));
    const lines = problems.map(formatProblem);
    // one per species config: its transcriptome FASTA (or FASTA dir) is missing, or build_index: no and no index
    expect(problems).toHaveLength(41);
    expect(new Set(problems.map((p) => p.where)).size).toBe(41);
    for (const p of problems) {
      const ok =
        (p.field === 'genome.files.transcriptome_fasta' && /does not exist and the index .*\.idx does not exist/.test(p.message)) ||
        (p.field === 'steps.quant.fasta_dir' && /cannot be read \(does not exist\) and the index/.test(p.message)) ||
        (p.field === 'steps.quant.build_index' && p.value === 'no' && /building one is switched off/.test(p.message));
      if (!ok) throw new Error(`a problem a user would not expect:\n${formatProblem(p)}\nall:\n${lines.join('\n')}`);
    }
    const noIndex = problems.filter((p) => p.field === 'steps.quant.build_index').map((p) => p.where.replace(/.*\//, ''));
    // the YAML 1.2 parser of this test reads `no` as a string, fetchquant as YAML 1.1 does
    expect(noIndex).toEqual(speciesConfigs.filter((f) => configs.get(f)?.steps?.quant?.build_index === 'no'));
    expect(noIndex).toHaveLength(10);
  });

  it('with their references and run tables on disk: 41 entries, variants told apart, every field they set accounted for', async () => {
    const root = repo();
    addTheirFiles(root);
    const ena = fakeEna();
    let plan: BatchPlan | null = null;
    try {
      plan = await discoverBatch(options(root), 'mi', root, { searchRunsByTaxon: ena.search, dryRun: true });
    } catch (err) {
      if (err instanceof InvalidInputError) throw new Error(err.problems.map(formatProblem).join('\n'));
      throw err;
    }
    const p = plan as BatchPlan;
    const ids = p.species.map((s) => s.speciesId);
    expect(ids).toHaveLength(41);
    expect(new Set(ids).size).toBe(41);
    // 3 Apis mellifera and 5 Pogonomyrmex barbatus configs: each its own entry, named by its config
    expect(p.species.filter((s) => s.name === 'Apis mellifera').map((s) => s.speciesId)).toEqual(['amellifera', 'apis_mellifera', 'apis_mellifera_all']);
    expect(p.species.filter((s) => s.name === 'Pogonomyrmex barbatus').map((s) => s.speciesId)).toEqual([
      'pbarbatus',
      'pbarbatus_25sample',
      'pbarbatus_5sample',
      'pbarbatus_all',
      'pogonomyrmex_barbatus',
    ]);
    expect(p.species.filter((s) => s.name === 'Camponotus floridanus').map((s) => s.speciesId)).toEqual(['camponotus_floridanus', 'cfloridanus']);
    // skipped, each with a line saying why
    const skipped = p.notes.filter((n) => n.startsWith('skipped '));
    expect(skipped).toHaveLength(3);
    expect(skipped.find((n) => n.includes('amalgkit_cross_species.yaml'))).toMatch(/not a per-species amalgkit config/);
    expect(skipped.find((n) => n.includes('amalgkit_template.yaml'))).toMatch(/"template" or "test"/);
    expect(skipped.find((n) => n.includes('amalgkit_test.yaml'))).toMatch(/"template" or "test"/);
    const byId = (id: string) => p.species.find((s) => s.speciesId === id)!;
    // amalgkit's layout: <steps.quant.out_dir>/quant; their absolute paths kept as written
    expect(byId('pbarbatus_5sample').quantDir).toBe(join(root, 'output/amalgkit/pbarbatus_test5/work/quant'));
    expect(byId('cfloridanus').readsDir).toBe('/home/q/Documents/GitHub/MetaInformAnt/output/amalgkit/cfloridanus/fastq');
    // the index amalgkit built, found the way amalgkit finds it; never a second one
    expect(byId('atta_cephalotes').indexPath).toBe(join(root, 'output/amalgkit/shared/genome/Atta_cephalotes/index/Atta_cephalotes.idx'));
    expect(byId('atta_cephalotes').fastaPaths).toEqual([]);
    // max_bp (15 species configs), YAML 1.1 booleans, the sources they allow, reads they keep
    const maxBp = p.species.filter((s) => s.amalgkit?.maxBp !== null).map((s) => `${s.speciesId}=${s.amalgkit?.maxBp}`);
    expect(maxBp).toHaveLength(15);
    expect(maxBp).toContain('megachile_rotundata=10000000000');
    expect(byId('pbarbatus_all').amalgkit?.maxBp).toBe(50000000);
    expect(byId('pbarbatus_5sample').amalgkit?.sraServices).toEqual(['s3']);
    expect(byId('pbarbatus').amalgkit?.sraServices).toEqual(['s3', 'gs', 'ncbi']);
    expect(byId('apis_mellifera').amalgkit?.keepReads).toBe(true); // clean_fastq: no
    expect(byId('amellifera').amalgkit?.keepReads).toBe(false); // keep_fastq: no
    expect(p.notes).toContain(`apis_mellifera: keeps every run's reads after quant (steps.quant.clean_fastq: no) under ${join(root, 'out/apis_mellifera/fastq')}/getfastq/<RUN>`);
    // threads, jobs and log_dir: one line per config saying they are not used and why
    const unused = p.notes.filter((n) => n.includes('not used by fetchquant'));
    expect(unused).toHaveLength(41);
    expect(unused.find((n) => n.startsWith('apis_mellifera:'))).toContain('threads 60, steps.getfastq.threads 60, steps.quant.threads 60');
    // species with absolute work_dir (no run table here) are discovered at ENA with their own search_string,
    // translated; the count is shown before anything is downloaded; max_sample is honoured
    const absolute = speciesConfigs.filter((f) => isAbsolute(configs.get(f)?.work_dir));
    expect(ena.queries).toHaveLength(absolute.length);
    for (const q of ena.queries) {
      expect(q.query).toMatch(/^tax_tree\(\d+\) AND library_strategy="RNA-Seq" AND instrument_platform="ILLUMINA" AND library_source="TRANSCRIPTOMIC"$/);
      expect('status' in parseSearchQuery(q.query ?? '')).toBe(false);
    }
    expect(p.notes.some((n) => /^camponotus_floridanus: ENA search tax_tree\(104421\) .* found 30 run\(s\); all will be downloaded/.test(n))).toBe(true);
    expect(byId('camponotus_floridanus').totalRuns).toBe(30);
    // run tables where work_dir points are read instead (2 rows each)
    expect(byId('pbarbatus_5sample').totalRuns).toBe(2);
  });

  it('max_sample caps runs found at ENA, and a search_string it cannot translate is a problem, not a wider search', async () => {
    const root = repo();
    addTheirFiles(root);
    const file = join(root, 'config/amalgkit/amalgkit_pogonomyrmex_barbatus.yaml');
    const text = readFileSync(file, 'utf8');
    // as in their amalgkit_pbarbatus_5sample.yaml
    writeFileSync(file, text.replace('  select: {}', '  select:\n    max_sample: 1'));
    const ena = fakeEna();
    const plan = await discoverBatch({ ...options(root), species: ['pogonomyrmex_barbatus'] }, 'mi', root, { searchRunsByTaxon: ena.search, dryRun: true });
    const entry = plan.species.find((s) => s.speciesId === 'pogonomyrmex_barbatus')!;
    expect(entry.totalRuns).toBe(1);
    expect(plan.notes.some((n) => n.includes('found 30 run(s); max_sample 1 keeps the first 1 by accession'))).toBe(true);
    writeFileSync(file, text.replace('AND Illumina[Platform]', 'AND (Illumina[Platform] OR "BGISEQ"[Platform])'));
    const problems = await problemsOf(discoverBatch({ ...options(root), species: ['pogonomyrmex_barbatus'] }, 'mi', root, { searchRunsByTaxon: ena.search, dryRun: true }));
    expect(problems.map(formatProblem).filter((l) => l.includes('amalgkit_pogonomyrmex_barbatus.yaml'))).toEqual([
      expect.stringMatching(/steps\.metadata\.search_string = .*cannot translate .*OR.*give a run table/),
    ]);
  });
});
