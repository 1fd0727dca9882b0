// Pure parts of species config validation: no files, just values in and values/problems out.
import { describe, expect, it } from '@jest/globals';
import { SPECIES_DEFAULTS } from '../../src/config/schema.js';
import {
  isSkippedStem,
  matchFastaFiles,
  parseRunTable,
  readSpeciesConfig,
  speciesNameFromStem,
} from '../../src/config/species.js';

const ctx = { file: '/cfg/amalgkit_x.yaml', stem: 'amalgkit_x', cwd: '/repo', outputDir: '/out' };

describe('parseRunTable', () => {
  it('reads amalgkit metadata with CRLF, a BOM, pandas floats and missing values', () => {
    const text = '\uFEFFrun\tlib_layout\tnominal_length\ttotal_spots\r\nSRR0000001\tPaired\t350.0\t1.2e6\r\nERR0000002\t\tnan\t\r\n';
    const { runs, excluded, problems } = parseRunTable(text, '/t.tsv');
    expect(problems).toEqual([]);
    expect(excluded).toBe(0);
    expect(runs).toEqual([{ run: 'SRR0000001', layout: 'paired', nominalLength: 350, spots: 1200000 }, { run: 'ERR0000002' }]);
  });

  it('names file, row (line number), column and value of each problem', () => {
    const text = 'run\ttotal_spots\nSRR000001\t0x10\nSRR000001\t5\n';
    const { runs, problems } = parseRunTable(text, '/t.tsv');
    expect(problems).toEqual([
      { where: '/t.tsv', field: 'row 2 column total_spots', value: '0x10', message: 'must be a non-negative whole number' },
      { where: '/t.tsv', field: 'row 3 column run', value: 'SRR000001', message: 'duplicate run (also row 2)' },
    ]);
    expect(runs).toEqual([]);
  });

  it('skips excluded and unsampled rows and counts them', () => {
    const text = 'run\texclusion\tis_sampled\nSRR000001\tno\tyes\nSRR000002\tpoor_quality\tyes\nSRR000003\tno\tNo\n';
    const { runs, excluded } = parseRunTable(text, '/t.tsv');
    expect(runs.map((r) => r.run)).toEqual(['SRR000001']);
    expect(excluded).toBe(2);
  });

  it('an empty table is a problem', () => {
    expect(parseRunTable('\n\n', '/t.tsv').problems[0]?.message).toMatch(/empty/);
  });
});

describe('readSpeciesConfig', () => {
  it('applies amalgkit layout defaults under the output dir', () => {
    const { config, problems } = readSpeciesConfig({ species_list: ['Apis_mellifera'] }, ctx);
    expect(problems).toEqual([]);
    expect(config).toMatchObject({
      name: 'Apis mellifera',
      speciesId: 'apis_mellifera',
      readsDir: '/out/apis_mellifera/fastq',
      quantDir: '/out/apis_mellifera/quant',
      indexPath: '/out/apis_mellifera/index/Apis_mellifera.idx',
      fragmentLength: SPECIES_DEFAULTS.fragmentLength,
      fragmentSd: SPECIES_DEFAULTS.fragmentSd,
      runs: null,
      metadataPath: null,
      workDirTable: null,
      taxonId: null,
    });
  });

  it('resolves relative paths against cwd and keeps absolute ones', () => {
    const { config } = readSpeciesConfig(
      { work_dir: 'w', steps: { getfastq: { out_dir: '/abs/fq', metadata: '../m.tsv' }, quant: { index_dir: 'idx' } }, taxon_id: '7460' },
      ctx,
    );
    expect(config).toMatchObject({ readsDir: '/abs/fq', metadataPath: '/m.tsv', workDirTable: '/repo/w/metadata/metadata.tsv', indexPath: '/repo/idx/X.idx', taxonId: 7460 });
  });

  it('never builds paths for an id that escapes its directory', () => {
    const r = readSpeciesConfig({ species_list: ['../../etc x'], fetchquant: { runs: ['SRR000001'] } }, ctx);
    expect(r.config).toBeNull();
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatchObject({ field: 'species_list[0]', value: '../../etc x' });
  });

  it('reports a wrong type once even when several fields sit below it', () => {
    const { problems } = readSpeciesConfig({ steps: 'none', species_list: ['A b'] }, ctx);
    expect(problems).toEqual([{ where: ctx.file, field: 'steps', value: 'none', message: 'must be a mapping, found string' }]);
  });
});

describe('names and file matching', () => {
  it('skips template and test stems in any case, even inside a word (the seed did)', () => {
    expect(['amalgkit_template', 'amalgkit_TEST', 'amalgkit_latest_ants'].map(isSkippedStem)).toEqual([true, true, true]);
    expect(isSkippedStem('amalgkit_apis_mellifera')).toBe(false);
  });

  it('derives a species name from the stem', () => {
    expect(speciesNameFromStem('amalgkit_camponotus_floridanus')).toBe('Camponotus floridanus');
  });

  it('matches amalgkit FASTA names only', () => {
    const files = ['Apis_mellifera.fa', 'Apis_mellifera_v2.fasta.gz', 'Apis_mellifera.gtf', 'Apis_cerana.fa', 'apis_mellifera.fa', 'Apis_mellifera.fa.gz'];
    expect(matchFastaFiles(files, 'Apis mellifera')).toEqual(['Apis_mellifera.fa', 'Apis_mellifera.fa.gz', 'Apis_mellifera_v2.fasta.gz']);
  });
});
