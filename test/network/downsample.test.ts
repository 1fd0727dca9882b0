/**
 * steps.getfastq.max_bp against the local mirror: the download stops once the reads hold max_bp bases,
 * keeps the run's first reads (whole records, mates in step) and fetches far less than the files.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createDownloadActivities } from '../../src/activities/download.js';
import { createReadActivities } from '../../src/activities/reads.js';
import { DEFAULTS } from '../../src/config/schema.js';
import { readCheckRecord } from '../../src/tools/fastq.js';
import type { SyntheticRun } from '../../src/mirror/fixtures.js';
import type { DownloadResult, ReadSet, SampleOptions, SourcePlan } from '../../src/types.js';
import { useMirrorWorld } from '../helpers/world.js';
import { fastHttp, meta, quietEnv, resolve } from './fixture.js';

const world = useMirrorWorld(
  'maxbp',
  {
    seed: 21,
    species: [
      { name: 'Pairus primus', runs: 1, pairedFraction: 1, readsPerRun: 40000 },
      { name: 'Singulus secundus', runs: 1, pairedFraction: 0, readsPerRun: 40000 },
    ],
  },
  undefined,
  180_000,
);
let options: SampleOptions;
let paired: SyntheticRun;
let single: SyntheticRun;
let n = 0;
beforeAll(() => {
  const { dataset, mirror } = world;
  paired = dataset.species[0]!.runs[0]!;
  single = dataset.species[1]!.runs[0]!;
  options = { ...DEFAULTS, sources: ['ena'], enaPortalUrl: mirror.enaPortalUrl, enaFileScheme: mirror.enaFileScheme, sraLocateUrl: mirror.sraLocateUrl };
});

async function downloadMax(plan: SourcePlan, maxBp: number): Promise<{ r: DownloadResult; runDir: string }> {
  const runDir = join(world.root, 'reads', `t${++n}`, 'getfastq', plan.run);
  const { download } = createDownloadActivities({ http: fastHttp(), heartbeatEveryMs: 20 });
  const r = (await quietEnv().run(download, { plan, runDir, stallTimeoutSec: 30, maxBp })) as DownloadResult;
  return { r, runDir };
}

const records = async (gzPath: string) => gunzipSync(await readFile(gzPath)).toString('latin1').split('\n').filter((_, i, a) => i < a.length - 1 || a[i] !== '');

describe('max_bp: the first reads of a run, and no more of the files than they need', () => {
  it('paired: whole pairs in step up to max_bp, the same first reads as the archive, a fraction of its bytes', async () => {
    const plan = await resolve(fastHttp(), meta(paired), options);
    expect(plan.layout).toBe('paired');
    const maxBp = 500_000; // 100 + 100 bases a pair: 2,500 pairs
    const { r } = await downloadMax(plan, maxBp);
    expect(r.downsampled).toEqual({ maxBp, reads: 2500, bases: 500_000 });
    const total = plan.files.reduce((s, f) => s + (f.bytes ?? 0), 0);
    // never the whole files: the transfer stopped (bytes in flight in socket buffers are all that is extra)
    expect(r.bytesFetched).toBeLessThan(total / 2);
    for (const mate of [1, 2] as const) {
      const ours = await records(r.files[mate - 1]!.path);
      const theirs = await records(paired.fastq.find((f) => f.name.endsWith(`_${mate}.fastq.gz`))!.path);
      expect(ours.length).toBe(2500 * 4);
      expect(ours).toEqual(theirs.slice(0, 2500 * 4)); // a contiguous block from the start, like amalgkit getfastq
    }
    // the read gate accepts them as they are: gzip test, equal mate counts, the count the download reports
    const rs = (await quietEnv().run(createReadActivities().verifyReads, { run: plan.run, files: r.files.map((f) => f.path), layout: 'paired' as const, expectedReads: 2500 })) as ReadSet;
    expect(rs.reads).toBe(2500);
    // ...from the record written with the files (their md5 hashed as written, equal to the bytes on disk)
    for (const f of r.files) {
      expect(await readCheckRecord(f.path)).toMatchObject({ records: 2500, by: 'downsample', md5: createHash('md5').update(await readFile(f.path)).digest('hex') });
      expect(f.md5).toBe(createHash('md5').update(await readFile(f.path)).digest('hex'));
    }
  });

  it('single-end: stops at the read that reaches max_bp', async () => {
    const plan = await resolve(fastHttp(), meta(single), options);
    const { r } = await downloadMax(plan, 123_456);
    expect(r.downsampled).toEqual({ maxBp: 123_456, reads: 1235, bases: 123_500 });
    expect((await records(r.files[0]!.path)).length).toBe(1235 * 4);
    expect(r.bytesFetched).toBeLessThan((plan.files[0]!.bytes ?? 0) / 2);
  });

  it('a run smaller than max_bp is fetched whole and its md5 checked, as any download', async () => {
    const plan = await resolve(fastHttp(), meta(single), options);
    const { r } = await downloadMax(plan, 10_000_000_000); // their amalgkit_megachile_rotundata.yaml
    expect(r.downsampled).toBeUndefined();
    expect(r.bytesFetched).toBe(plan.files[0]!.bytes);
    expect(await records(r.files[0]!.path)).toEqual(await records(single.fastq[0]!.path));
  });
});
