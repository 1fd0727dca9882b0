/**
 * Cloud copies as sources: the SRA Data Locator lists NCBI's own server first, then the AWS Open Data copy,
 * then Google's requester-pays copy (the mirror, as test-sdl-response.cpp's answers). Which one a run is
 * downloaded from follows the species config (steps.getfastq.aws/gcp/ncbi/ena) and --sources, through
 * discovery and resolveSource, and the chosen link serves the run's bytes.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import { discoverBatch } from '../../src/config/discover.js';
import { defaultBatchOptions, type SourceName } from '../../src/config/schema.js';
import type { SyntheticRun } from '../../src/mirror/fixtures.js';
import type { SampleOptions } from '../../src/types.js';
import { failureOf, fastHttp, resolve } from './fixture.js';
import { get, md5 } from '../mirror/helpers.js';
import { useMirrorWorld } from '../helpers/world.js';

// the run is SRA-only: ENA lists it without files, so the copy comes from the locator
const world = useMirrorWorld('cloud', { seed: 5, species: [{ name: 'Nubes prima', runs: 1, pairedFraction: 0, sraOnlyFraction: 1, readsPerRun: 300 }] });
let run: SyntheticRun;
let original: string;
beforeAll(async () => {
  run = world.dataset.species[0]!.runs[0]!;
  original = await readFile(world.dataset.species[0]!.configPath, 'utf8');
});

/** The sample options discovery gives this species under `getfastq` flags and --sources. */
async function optionsFor(getfastq: Record<string, string>, sources: SourceName[]): Promise<{ options: SampleOptions; notes: string[] }> {
  const cfg = parse(original) as { steps: { getfastq: Record<string, unknown> } };
  Object.assign(cfg.steps.getfastq, getfastq);
  await writeFile(world.dataset.species[0]!.configPath, stringify(cfg));
  const batch = { ...defaultBatchOptions(), configDir: world.dataset.configDir, outputDir: world.dataset.outputDir, sources };
  const plan = await discoverBatch(batch, 'cloud', world.root, { dryRun: true });
  const ak = plan.species[0]!.amalgkit!;
  const options: SampleOptions = {
    ...batch, sources: ak.sources, sraServices: ak.sraServices,
    enaPortalUrl: world.mirror.enaPortalUrl, enaFileScheme: world.mirror.enaFileScheme, sraLocateUrl: world.mirror.sraLocateUrl,
  };
  return { options, notes: plan.notes };
}

async function chosenPath(getfastq: Record<string, string>, sources: SourceName[]): Promise<string> {
  const { options } = await optionsFor(getfastq, sources);
  const p = await resolve(fastHttp(), { run: run.run }, options);
  expect(p.source).toBe('sra');
  const url = p.files[0]!.url;
  // the chosen copy really serves the run
  expect(md5((await get(url)).body)).toBe(run.sra.md5);
  return new URL(url).pathname;
}

const S3 = () => `/sra/${run.run}/${run.run}`;
const NCBI = () => `/sos/sra-pub-run-2/${run.run}/${run.run}.2`;
const GS = () => `/sra-pub-run-1/${run.run}/${run.run}.2`;

describe('cloud copies follow steps.getfastq.aws/gcp/ncbi and --sources', () => {
  it("every source allowed: the AWS Open Data copy (amalgkit's order AWS, GCP, NCBI), not the locator's first listing", async () => {
    world.mirror.setFaults({});
    expect(await chosenPath({}, ['ena', 'sra'])).toBe(S3());
  });

  it('aws: no -> the Google copy needs credentials, so NCBI; the discovery note says which services are left', async () => {
    world.mirror.setFaults({});
    const { notes } = await optionsFor({ aws: 'no' }, ['ena', 'sra']);
    expect(notes).toContain('nubes_prima: sources ena, sra (gs, ncbi) (--sources, steps.getfastq.aws/gcp/ncbi/ena)');
    expect(await chosenPath({ aws: 'no' }, ['ena', 'sra'])).toBe(NCBI());
  });

  it('gcp only: no free copy (named why); with a free Google copy (inside GCP) it is taken', async () => {
    world.mirror.setFaults({});
    const { options } = await optionsFor({ aws: 'no', ncbi: 'no' }, ['ena', 'sra']);
    const f = await failureOf(resolve(fastHttp(), { run: run.run }, options));
    expect(f.type).toBe('RunNotFound');
    expect(f.message).toMatch(/gs us-east1 needs cloud credentials \(ceRequired\)/);
    world.mirror.setFaults({ [run.run]: [{ kind: 'sra-gs-free' }] });
    try {
      expect(await chosenPath({ aws: 'no', ncbi: 'no' }, ['ena', 'sra'])).toBe(GS());
    } finally {
      world.mirror.setFaults({});
    }
  });

  it('--sources names the copies: its order wins over amalgkit\'s, and what it leaves out is never used', async () => {
    world.mirror.setFaults({});
    expect(await chosenPath({}, ['ena', 'ncbi', 'aws'])).toBe(NCBI());
    expect(await chosenPath({}, ['ena', 'gcp', 'aws'])).toBe(S3());
    world.mirror.setFaults({ [run.run]: [{ kind: 'sra-gs-free' }] });
    try {
      expect(await chosenPath({}, ['gcp', 'aws'])).toBe(GS());
      // the config switches off what --sources names: aws: no leaves only the Google copy
      expect(await chosenPath({ aws: 'no' }, ['aws', 'gcp'])).toBe(GS());
    } finally {
      world.mirror.setFaults({});
    }
  });

  it('aws, gcp and ncbi all no: SRA is not asked at all', async () => {
    world.mirror.setFaults({});
    const { options } = await optionsFor({ aws: 'no', gcp: 'no', ncbi: 'no' }, ['ena', 'sra']);
    expect(options.sources).toEqual(['ena']);
    world.mirror.resetStats();
    const f = await failureOf(resolve(fastHttp(), { run: run.run }, options));
    expect(f.type).toBe('RunNotFound');
    expect(world.mirror.stats().byPath['/sdl/2/retrieve']).toBeUndefined();
  });
});
