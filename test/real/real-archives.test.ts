/**
 * Opt-in: the real ENA and NCBI, answer for answer. `FETCHQUANT_REAL_ARCHIVES=1 npm test` (internet needed)
 * resolves, downloads and verifies a few tiny public runs with the same code the worker runs, and checks that
 * ENA still accepts every field fetchquant asks for. Otherwise it is skipped, and its title says why.
 * Runs: nf-core/fetchngs' own module tests use DRR000774 (single-end) and SRR11140744 (paired-end)
 * (modules/nf-core/sratools/prefetch/tests, subworkflows/nf-core/fastq_download_prefetch_fasterqdump_sratools/tests);
 * the SRA path is the same single-end run with --sources sra (locator, .sra, vdb-validate, fasterq-dump).
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createConvertActivities } from '../../src/activities/convert.js';
import { createDownloadActivities } from '../../src/activities/download.js';
import { createReadActivities } from '../../src/activities/reads.js';
import { createSourceActivities } from '../../src/activities/source.js';
import { DEFAULTS } from '../../src/config/schema.js';
import { fetchFilereport } from '../../src/tools/ena.js';
import { HttpClient } from '../../src/tools/http.js';
import { locateRun } from '../../src/tools/sra.js';
import type { DownloadResult, ReadSet, SampleOptions, SourcePlan } from '../../src/types.js';

const ENABLED = process.env.FETCHQUANT_REAL_ARCHIVES === '1';
const title = ENABLED
  ? 'real archives (ENA, NCBI)'
  : 'real archives (skipped: set FETCHQUANT_REAL_ARCHIVES=1 to run against the real ENA and NCBI; needs internet)';

if (!ENABLED) process.stdout.write(`test/real/real-archives: ${title.replace(/^real archives \((.*)\)$/, '$1')}\n`);

const PAIRED = 'SRR11140744';
const SINGLE = 'DRR000774';
const http = new HttpClient();
const options: SampleOptions = { ...DEFAULTS };
const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

async function fetchAndVerify(run: string, sources: ('ena' | 'sra')[]): Promise<{ plan: SourcePlan; reads: ReadSet }> {
  const env = new MockActivityEnvironment();
  const plan: SourcePlan = await env.run(createSourceActivities({ http }).resolveSource, { run: { run }, options: { ...options, sources } });
  const root = mkdtempSync(join(tmpdir(), 'fq-real-'));
  roots.push(root);
  const runDir = join(root, 'getfastq', run);
  const dl = (await env.run(createDownloadActivities({ http }).download, { plan, runDir, stallTimeoutSec: 120 })) as DownloadResult;
  let files = dl.files.map((f) => f.path);
  let layout = plan.layout;
  let unpairedReads: number | null | undefined = plan.unpaired ? null : undefined;
  if (plan.source === 'sra') {
    const conv = (await env.run(createConvertActivities().convertSra, { run, sraPath: files[0]!, runDir, threads: 2, timeoutSec: 1800 })) as {
      files: string[]; layout: 'single' | 'paired'; unpairedReads?: number;
    };
    files = conv.files;
    layout = conv.layout;
    unpairedReads = conv.unpairedReads;
  }
  const reads = (await env.run(createReadActivities().verifyReads, {
    run, files, layout, expectedReads: plan.expectedReads, ...(unpairedReads !== undefined ? { unpairedReads } : {}),
  })) as ReadSet;
  return { plan, reads };
}

(ENABLED ? describe : describe.skip)(title, () => {
  it('ENA accepts every field fetchquant asks for (a 400 here means ENA renamed one)', async () => {
    const a = await fetchFilereport({ portalUrl: options.enaPortalUrl, run: PAIRED, http });
    expect(a.found).toBe(true);
  }, 120_000);

  it('the locator answers the run with its own file (not a companion)', async () => {
    const a = await locateRun({ locateUrl: options.sraLocateUrl, run: SINGLE, http });
    expect(a.found).toBe(true);
    if (a.found) expect(a.file.name).toBe(`${SINGLE}.sra`);
  }, 120_000);

  it(`paired run from ENA (${PAIRED}): mates verified against ENA's spot count`, async () => {
    const { plan, reads } = await fetchAndVerify(PAIRED, ['ena', 'sra']);
    expect(plan.source).toBe('ena');
    expect(reads.layout).toBe('paired');
    expect(reads.reads).toBeGreaterThan(0);
  }, 1_800_000);

  it(`single-end run from ENA (${SINGLE})`, async () => {
    const { plan, reads } = await fetchAndVerify(SINGLE, ['ena', 'sra']);
    expect(plan.source).toBe('ena');
    expect(reads.layout).toBe('single');
  }, 1_800_000);

  it(`the SRA path (${SINGLE} with --sources sra): locator, .sra, vdb-validate, fasterq-dump`, async () => {
    const { plan, reads } = await fetchAndVerify(SINGLE, ['sra']);
    expect(plan.source).toBe('sra');
    expect(reads.reads).toBeGreaterThan(0);
  }, 1_800_000);
});
