/**
 * Projects and studies as input (fetchquant.projects): the archive answers in test/fixtures/archives
 * through the parsers; expansion against the mirror (ENA filereport for PRJ/SRP, E-utilities for GSE, errors
 * for unknown ids); discovery keeps only bulk RNA-Seq of the config's species, records the expansion and
 * reads the record on a re-run even after the archive has added runs; bad accessions never reach a URL.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { discoverBatch, projectRecordPath } from '../../src/config/discover.js';
import { defaultBatchOptions, InvalidInputError, type BatchOptions } from '../../src/config/schema.js';
import { HttpClient } from '../../src/tools/http.js';
import { expandProject, parseGdsSearch, parseGdsSummary, parseProjectRows, rowExclusion } from '../../src/tools/projects.js';
import { useMirrorWorld } from '../helpers/world.js';

const DIR = fileURLToPath(new URL('../../../test/fixtures/archives/', import.meta.url));
const fixture = (f: string) => readFileSync(`${DIR}${f}`, 'utf8');

describe('archive answers for projects (fixtures)', () => {
  it('a study filereport: every run row; only bulk RNA-Seq of the species is kept, each left-out row says why', () => {
    const rows = parseProjectRows(fixture('ena/filereport-project.tsv'));
    expect(rows.map((r) => r.run)).toEqual(['SRR9990004', 'SRR9990005', 'SRR9990006', 'SRR9990007', 'SRR9990008']);
    expect(rows.map((r) => rowExclusion(r, 'Mus musculus'))).toEqual([
      null, null, 'library_source TRANSCRIPTOMIC SINGLE CELL', 'library_strategy WGS', 'another species (Homo sapiens)',
    ]);
  });

  it('GEO: the series uid from esearch, its SRA study from esummary; unknown and array-only series give none', () => {
    expect(parseGdsSearch(fixture('eutils/gds-esearch-gse.json'), 'GSE145919')).toBe('200145919');
    expect(parseGdsSearch(fixture('eutils/gds-esearch-unknown.json'), 'GSE999999999')).toBeNull();
    expect(parseGdsSummary(fixture('eutils/gds-esummary-gse.json'), '200145919')).toEqual({ accession: 'SRP250724', via: 'SRA study' });
    expect(parseGdsSummary(fixture('eutils/gds-esummary-microarray.json'), '200018729')).toBeNull();
  });
});

const world = useMirrorWorld('projects', {
  seed: 3,
  species: [
    { name: 'Projecta prima', runs: 4, pairedFraction: 0.5, singleCellFraction: 0.25, readsPerRun: 100 },
    { name: 'Projecta secunda', runs: 2, pairedFraction: 0, readsPerRun: 100 },
  ],
});

const http = () => new HttpClient({ backoffBaseMs: 5, backoffMaxMs: 50, retries: 1 });
const expand = (accession: string) => expandProject({ accession, portalUrl: world.mirror.enaPortalUrl, eutilsUrl: world.mirror.eutilsUrl, http: http() });

describe('expansion against the mirror', () => {
  it('a BioProject, its SRA study and its GEO series give the same runs', async () => {
    const sp = world.dataset.species[0]!;
    const all = sp.runs.map((r) => r.run);
    expect((await expand(sp.study)).rows.map((r) => r.run)).toEqual(all);
    expect((await expand(`SRP${sp.study.replace(/\D/g, '')}`)).rows.map((r) => r.run)).toEqual(all);
    const gse = await expand(`GSE${sp.study.replace(/\D/g, '')}`);
    expect(gse.resolvedAs).toBe(`${sp.study} (its bioproject)`);
    expect(gse.rows.map((r) => r.run)).toEqual(all);
  });

  it('unknown ids fail naming the archive answer; a malformed one never reaches a URL', async () => {
    await expect(expand('PRJNA1')).rejects.toThrow(/ENA lists no runs for PRJNA1 \(.*no content|header-only/);
    await expect(expand('GSE12')).rejects.toThrow(/GEO does not know the series GSE12/);
    world.mirror.resetStats();
    await expect(expand('PRJNA1&format=json')).rejects.toThrow(/invalid project accession/);
    expect(world.mirror.stats().requests).toBe(0);
  });
});

describe('fetchquant.projects in a species config', () => {
  let options: BatchOptions;
  let original: string;
  beforeAll(async () => {
    original = await readFile(world.dataset.species[0]!.configPath, 'utf8');
    options = { ...defaultBatchOptions(), configDir: world.dataset.configDir, outputDir: world.dataset.outputDir, enaPortalUrl: world.mirror.enaPortalUrl, eutilsUrl: world.mirror.eutilsUrl, species: ['projecta_prima'], startOrder: 'table' }; // the expansion's own order is under test
  });
  const withProjects = async (projects: unknown) => {
    const cfg = parse(original) as Record<string, unknown>;
    // the GSE route: no run table, only the project list
    cfg.fetchquant = { projects };
    delete (cfg as { work_dir?: unknown }).work_dir;
    await writeFile(world.dataset.species[0]!.configPath, stringify(cfg));
  };
  const runsOf = async () => {
    const got = new Map<string, string[]>();
    const plan = await discoverBatch(options, 'projects', world.root, {
      dryRun: true, onRuns: (id, r) => void got.set(id, r.map((x) => x.run)),
      expandProject: (o) => expandProject({ ...o, http: http() }),
    });
    return { runs: got.get('projecta_prima') ?? [], notes: plan.notes };
  };

  it('expands a GEO series to the bulk runs of the species, records it, and a re-run reads the record though the archive added a run', async () => {
    const sp = world.dataset.species[0]!;
    const gse = `GSE${sp.study.replace(/\D/g, '')}`;
    const bulk = sp.runs.filter((r) => !r.singleCell).map((r) => r.run);
    // one run is not public yet when the project is first expanded
    const late = bulk[bulk.length - 1]!;
    world.mirror.setFaults({ [late]: [{ kind: 'unknown' }] });
    await withProjects([gse]);
    const first = await runsOf();
    expect(first.runs).toEqual(bulk.filter((r) => r !== late));
    const record = projectRecordPath(world.dataset.outputDir, gse);
    expect(existsSync(record)).toBe(true);
    expect(first.notes.join('\n')).toMatch(new RegExp(`projecta_prima: ${gse} -> ${sp.study} \\(its bioproject\\): ${bulk.length - 1} of ${sp.runs.length - 1} run\\(s\\) are bulk RNA-Seq of Projecta prima \\(left out: 1 library_source TRANSCRIPTOMIC SINGLE CELL\\); recorded in .*delete it to ask the archives again`));
    // the archive now lists the late run too; the re-run keeps to the record and asks nothing
    world.mirror.setFaults({});
    world.mirror.resetStats();
    const again = await runsOf();
    expect(again.runs).toEqual(first.runs);
    expect(again.notes.join('\n')).toContain(`as recorded in ${record}`);
    expect(world.mirror.stats().requests).toBe(0);
    // deleting the record asks again
    await rm(record);
    expect((await runsOf()).runs).toEqual(bulk);
  });

  it('bad and unknown accessions: one problem each naming file, field and value, before any URL', async () => {
    world.mirror.resetStats();
    await withProjects(['SRR123456', 'prjna5', 'PRJEB1']);
    const err = await runsOf().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    const msgs = (err as InvalidInputError).problems.map((p) => `${p.field} = ${JSON.stringify(p.value)}: ${p.message}`);
    expect(msgs).toEqual([
      expect.stringMatching(/^fetchquant\.projects\[0\] = "SRR123456": .*SRR123456 is a run: list it under fetchquant\.runs/),
      expect.stringMatching(/^fetchquant\.projects\[1\] = "prjna5": .*accessions are upper case: PRJNA5/),
    ]);
    expect(world.mirror.stats().requests).toBe(0);
    await withProjects(['PRJEB1']);
    const unknown = await runsOf().then(() => null, (e: unknown) => e);
    expect((unknown as InvalidInputError).problems.map((p) => [p.field, p.value, p.message])).toEqual([
      ['fetchquant.projects[0]', 'PRJEB1', expect.stringMatching(/ENA lists no runs for PRJEB1/)],
    ]);
  });

  afterAll(async () => {
    await writeFile(world.dataset.species[0]!.configPath, original);
  });
});
