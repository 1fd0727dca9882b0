/**
 * A step that quantifies after it verifies (quantAfter: the download of an ENA run, the conversion of an .sra)
 * retried after an attempt that published the run and deleted its reads, its worker killed before it could
 * report. Seen in CI: the chaos test's worker, killed at such a moment, made the retry fetch a whole run again.
 * Real parts: the activity set, the mirror over HTTP, kallisto, fasterq-dump, and a dev server whose client
 * carries the steps' signals to a running workflow standing in for the species.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createActivities } from '../../src/activities/index.js';
import { KnownDirs } from '../../src/activities/known-dirs.js';
import { DEFAULTS } from '../../src/config/schema.js';
import type { SyntheticRun, SyntheticSpecies } from '../../src/mirror/fixtures.js';
import { HttpClient } from '../../src/tools/http.js';
import type { Activities } from '../../src/activities/contract.js';
import type { LocalFile, ProvenanceDraft, QuantAfter, SampleOptions, SourcePlan } from '../../src/types.js';
import { act, quiet } from '../tools/util.js';
import { useE2eWorld } from '../helpers/e2e.js';

const SPECIES_WF = 'retry-after-publish-species';

describe('a step retried after it published the run', () => {
  const world = useE2eWorld({
    label: 'e2e-retry-after-publish',
    prefix: 'retry-pub',
    data: { seed: 23, species: [{ name: 'Retrius primus', runs: 2, pairedFraction: 1, sraOnlyFraction: 0.5, readsPerRun: 3000 }] },
    timeoutMs: 120_000,
  });
  let acts: Activities;
  let sp: SyntheticSpecies;
  let options: SampleOptions;
  let indexPath: string;

  beforeAll(async () => {
    sp = world.dataset.species[0]!;
    acts = createActivities({
      hostId: 'retry-pub', cwd: world.root, client: world.t.client, pacer: null,
      http: new HttpClient({ backoffBaseMs: 5, backoffMaxMs: 200 }), knownDirs: new KnownDirs(join(world.root, 'state', 'reads-dirs.json')),
    });
    options = { ...DEFAULTS, sources: ['ena', 'sra'], enaPortalUrl: world.mirror.enaPortalUrl, enaFileScheme: world.mirror.enaFileScheme, sraLocateUrl: world.mirror.sraLocateUrl };
    indexPath = join(world.root, 'index', 'Retrius_primus.idx');
    await act(quiet(), acts.ensureIndex, { indexPath, fastaPaths: [sp.fastaPath], timeoutSec: 120 });
    // The species the steps signal (readsVerified, sampleFinished): a running workflow nobody polls for.
    await world.t.client.workflow.start('speciesStandIn', { taskQueue: 'retry-after-publish-nobody', workflowId: SPECIES_WF });
  }, 120_000);

  const dirs = (r: SyntheticRun) => ({ runDir: join(world.root, 'out', 'fastq', 'getfastq', r.run), quantDir: join(world.root, 'out', 'quant') });
  /** as the sample asks it; files: what the sample fetched before this step (the .sra, for a conversion) */
  const chain = (r: SyntheticRun, plan: SourcePlan, files: LocalFile[] = []): QuantAfter => {
    const { runDir, quantDir } = dirs(r);
    const provenance: ProvenanceDraft = { run: r.run, species: sp.name, source: plan, files, reads: 0, host: 'retry-pub', stages: [], restarts: 0, workflowId: `w-${r.run}`, runId: 'r' };
    return {
      quant: {
        run: r.run, indexPath, quantDir, kallistoThreads: 1, quantThreads: 1, timeoutSec: 120,
        publish: { provenance, runDir, tell: { speciesWorkflowId: SPECIES_WF, outcome: { run: r.run, speciesId: sp.speciesId, state: 'done', host: 'retry-pub' } } },
      },
      fragment: { single: { length: 200, sd: 20 }, paired: { length: 200, sd: 20 } },
    };
  };
  const served = (path: string) => world.mirror.stats().byPath[path]?.bytes ?? 0;
  const provenanceText = (r: SyntheticRun) => readFileSync(join(dirs(r).quantDir, r.run, `${r.run}_fetchquant.json`), 'utf8');

  it('an ENA download: the retry fetches nothing, answers from the provenance and tells the species again', async () => {
    const r = sp.runs.find((x) => !x.sraOnly)!;
    const plan = await act(quiet(), acts.resolveSource, { run: { run: r.run, layout: r.layout }, options });
    expect(plan.source).toBe('ena');
    const input = { plan, runDir: dirs(r).runDir, stallTimeoutSec: 30, verify: true, plainReads: true, tell: { speciesWorkflowId: SPECIES_WF }, quantAfter: chain(r, plan) };
    const paths = plan.files.map((f) => new URL(f.url).pathname);
    const first = await act(quiet(), acts.download, input);
    expect(first.chained).toMatchObject({ quant: { nProcessed: r.reads, published: { dir: join(dirs(r).quantDir, r.run), told: true } } });
    expect(existsSync(dirs(r).runDir)).toBe(false);
    const sent = paths.map(served);
    expect(sent).toEqual(r.fastq.map((f) => f.bytes));
    const prov = provenanceText(r);

    // As if its worker died before reporting: the same step again.
    const again = await act(quiet(), acts.download, input);
    expect(paths.map(served)).toEqual(sent);
    expect(again).toMatchObject({ bytesFetched: 0, told: true, verified: { layout: 'paired', reads: r.reads } });
    expect(again.files.map((f) => f.md5)).toEqual(r.fastq.map((f) => f.md5));
    expect(again.chained).toMatchObject({ quant: { nProcessed: r.reads, published: { earlier: true, removedBytes: 0, told: true } } });
    expect(provenanceText(r)).toBe(prov);
    expect(existsSync(dirs(r).runDir)).toBe(false);
  }, 120_000);

  it('an .sra conversion: the retry converts nothing and does not call the missing .sra a bad copy', async () => {
    const r = sp.runs.find((x) => x.sraOnly)!;
    const plan = await act(quiet(), acts.resolveSource, { run: { run: r.run, layout: r.layout }, options });
    expect(plan.source).toBe('sra');
    const { runDir } = dirs(r);
    const dl = await act(quiet(), acts.download, { plan, runDir, stallTimeoutSec: 30 });
    const input = {
      run: r.run, sraPath: dl.files[0]!.path, runDir, threads: 1, timeoutSec: 120, fastaReads: true,
      verify: { expectedReads: plan.expectedReads }, tell: { speciesWorkflowId: SPECIES_WF }, quantAfter: chain(r, plan, dl.files),
    };
    const first = await act(quiet(), acts.convertSra, input);
    expect(first.chained).toMatchObject({ quant: { nProcessed: r.reads, published: { told: true } } });
    expect(existsSync(runDir)).toBe(false);
    const prov = provenanceText(r);

    const again = await act(quiet(), acts.convertSra, input);
    expect(again).toMatchObject({ layout: 'paired', told: true, verified: { reads: r.reads } });
    // the reads kallisto read, by the names the conversion gave them (gzipped here: this worker reserved no disk)
    expect(again.files).toEqual(first.files);
    expect(first.files).toEqual([join(runDir, `${r.run}_1.fasta.gz`), join(runDir, `${r.run}_2.fasta.gz`)]);
    expect(again.chained).toMatchObject({ quant: { nProcessed: r.reads, published: { earlier: true, removedBytes: 0, told: true } } });
    expect(provenanceText(r)).toBe(prov);
    expect(served(`/sra/${r.run}/${r.run}`)).toBe(r.sra.bytes);
  }, 120_000);
});
