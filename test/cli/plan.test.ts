/**
 * `fetchquant plan` against the mirror, through the real CLI in a child process: every run asked at each
 * allowed source before anything is downloaded; 3-file runs, SRA-Lite-only copies, runs missing everywhere,
 * duplicates, disk against free space and a time estimate from measured speeds; exit 0 only when every run
 * can be had. In-process: the plan's requests go through the same per-archive rate limiters as downloads.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { defaultBatchOptions } from '../../src/config/schema.js';
import { generateDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { planBatch } from '../../src/plan/plan.js';
import { HttpClient } from '../../src/tools/http.js';
import { humanBytes } from '../../src/cli/progress.js';
import { CLI } from '../helpers/e2e.js';

let root: string;
let ds: Dataset;
let mirror: Mirror;

function plan(extra: string[] = [], env: Record<string, string> = {}) {
  return execa(process.execPath, [
    CLI, 'plan', '--config-dir', ds.configDir, '--output-dir', ds.outputDir,
    '--ena-portal-url', mirror.enaPortalUrl, '--sra-locate-url', mirror.sraLocateUrl, '--ena-file-scheme', 'http',
    '--min-free-gb', '0.01', ...extra,
  ], { reject: false, timeout: 60_000, env: { TEMPORAL_ADDRESS: '', ...env } });
}

const pathsServed = () => Object.entries(mirror.stats().byPath);
const requestsTo = (prefix: string) => pathsServed().filter(([p]) => p.startsWith(prefix)).reduce((n, [, s]) => n + s.requests, 0);
const fileRequests = () => pathsServed().filter(([p]) => p.startsWith('/vol1/') || p.startsWith('/sra/')).length;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fq-plan-'));
  ds = await generateDataset({
    root,
    seed: 17,
    species: [
      // paired: run 0 is a 3-file run (the generator gives every third paired run unpaired reads)
      { name: 'Planus primus', runs: 3, pairedFraction: 1, readsPerRun: 200 },
      // single: one run is SRA-only (ENA lists it without files)
      { name: 'Planus secundus', runs: 3, pairedFraction: 0, sraOnlyFraction: 0.34, readsPerRun: 200 },
    ],
  });
  mirror = await startMirror({ dataset: ds });
});
afterAll(async () => {
  await mirror.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('fetchquant plan', () => {
  it('every run can be had: exit 0, sizes per source, 3-file and SRA-Lite-only runs named, nothing downloaded', async () => {
    const sraOnly = ds.species[1]!.runs.find((r) => r.sraOnly)!;
    mirror.setFaults({ [sraOnly.run]: [{ kind: 'sra-lite' }] });
    mirror.resetStats();
    const r = await plan();
    expect(r.stderr).not.toMatch(/PROBLEM/);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/plan: 6 run\(s\), 0 already done, 6 to fetch; 6 can be had now, 0 cannot/);
    const enaBytes = ds.species.flatMap((s) => s.runs).filter((x) => !x.sraOnly).reduce((n, x) => n + x.fastq.reduce((m, f) => m + f.bytes, 0), 0);
    expect(r.stdout).toContain(`from ena: 5 run(s), ${humanBytes(enaBytes)}`);
    // the AWS copy: amalgkit's order, the locator lists NCBI's first
    expect(r.stdout).toContain(`from sra (s3): 1 run(s)`);
    expect(r.stdout).toMatch(/1 three-file runs \(unpaired reads listed, not fetched\)/);
    expect(r.stdout).toMatch(/1 runs with only an SRA Lite copy/);
    expect(r.stdout).toContain(`note  ${sraOnly.run}  planus_secundus  only an SRA Lite copy exists`);
    expect(r.stdout).toContain(`note  ${ds.species[0]!.runs[0]!.run}  planus_primus  ENA also lists ${ds.species[0]!.runs[0]!.run}.fastq.gz (unpaired reads`);
    expect(r.stdout).toMatch(/disk \(.+\) .*: 6 run\(s\).*: ok/);
    expect(r.stdout).toMatch(/time: no estimate: no finished run/);
    // each run asked at every allowed source (ENA filereport and the locator), and no file fetched
    expect(requestsTo('/ena/portal/api/filereport')).toBe(6);
    expect(requestsTo('/sdl/2/retrieve')).toBe(6);
    expect(fileRequests()).toBe(0);
  });

  it('a run missing everywhere and a disk too small: exit 1, one PROBLEM line each, naming what each source said', async () => {
    const gone = ds.species[0]!.runs[1]!.run;
    mirror.setFaults({ [gone]: [{ kind: 'unknown' }] });
    const r = await plan(['--min-free-gb', '1000000']);
    expect(r.exitCode).toBe(1);
    const problems = r.stdout.split('\n').filter((l) => l.startsWith('PROBLEM'));
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(new RegExp(`^PROBLEM  ${gone}  planus_primus  missing everywhere \\(ena: .*HTTP 204.*; sra: status 404`));
    expect(problems[1]).toMatch(/disk of .*the largest run needs \d+ bytes but only 0 are free above the --min-free-gb 1000000 floor/);
    expect(r.stdout).toMatch(/5 can be had now, 1 cannot/);
  });

  it('--sources sra asks only the locator; a duplicate run across species is named; past speeds give an estimate', async () => {
    mirror.setFaults({});
    // a third config lists a run of the first species (its own dirs): downloaded once for each species
    const dup = ds.species[0]!.runs[2]!.run;
    mkdirSync(join(root, 'fasta3'), { recursive: true });
    writeFileSync(join(root, 'fasta3', 'Planus_tertius.fa'), '>t1\nACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTAC\n');
    writeFileSync(join(ds.configDir, 'amalgkit_Planus_tertius.yaml'),
      `species_list: [Planus_tertius]\nsteps:\n  quant:\n    fasta_dir: ${join(root, 'fasta3')}\nfetchquant:\n  runs: [${dup}]\n`);
    // one finished run of the second species, with its provenance: 4,000,000 bytes in 2 s of downloading
    const doneRun = ds.species[1]!.runs[0]!.run;
    const qdir = join(ds.outputDir, 'planus_secundus', 'quant', doneRun);
    mkdirSync(qdir, { recursive: true });
    writeFileSync(join(qdir, `${doneRun}_abundance.tsv`), 'target_id\tlength\teff_length\test_counts\ttpm\n');
    writeFileSync(join(qdir, `${doneRun}_fetchquant.json`), JSON.stringify({
      run: doneRun, source: { source: 'ena', files: [{ bytes: 4_000_000 }] },
      stages: [{ stage: 'downloading', host: 'h', startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:02.000Z' }],
    }));
    try {
      mirror.resetStats();
      const r = await plan(['--sources', 'sra']);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toMatch(/plan: 7 run\(s\), 1 already done, 6 to fetch/);
      expect(requestsTo('/ena/portal/api/filereport')).toBe(0);
      expect(r.stdout).toMatch(/from sra \(s3\): 6 run\(s\)/);
      // 6 runs to fetch, the duplicate asked once
      expect(requestsTo('/sdl/2/retrieve')).toBe(5);
      expect(r.stdout).toContain(`note  ${dup} is listed by planus_primus, planus_tertius: downloaded and quantified once for each`);
      expect(r.stdout).toMatch(/time: about \d+s for .*: median speed of 1 past download\(s\) recorded in the quant dirs' provenance \(2\.0 MB\/s each\), 6 at once/);
    } finally {
      rmSync(join(ds.configDir, 'amalgkit_Planus_tertius.yaml'));
      rmSync(join(ds.outputDir, 'planus_secundus', 'quant', doneRun), { recursive: true });
    }
  });

  it('--sources ena,ncbi: the SRA copies come from NCBI\'s own servers', async () => {
    mirror.setFaults({});
    const r = await plan(['--sources', 'ena,ncbi']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('from sra (ncbi): 1 run(s)');
  });

  it('asks through the per-archive rate limiters the download path uses', async () => {
    mirror.setFaults({});
    mirror.resetStats();
    const http = new HttpClient({ rates: { ena: 50, sra: 2 } });
    const options = { ...defaultBatchOptions(), enaPortalUrl: mirror.enaPortalUrl, sraLocateUrl: mirror.sraLocateUrl, enaFileScheme: 'http' as const, minFreeGb: 0.01 };
    const species = ds.species.map((s) => ({
      speciesId: s.speciesId, readsDir: join(root, 'r', s.speciesId), quantDir: join(root, 'q', s.speciesId),
      runs: s.runs.map((x) => ({ run: x.run })), sources: ['ena', 'sra'] as ('ena' | 'sra')[],
    }));
    const report = await planBatch({ species, options, http, askAll: true, concurrency: 6 });
    expect(report.problems).toEqual([]);
    expect(http.limiters.ena.stats.granted).toBe(requestsTo('/ena/portal/api/filereport'));
    expect(http.limiters.sra.stats.granted).toBe(requestsTo('/sdl/2/retrieve'));
    // 6 locator requests at 2/s with a burst of 2: at least 4 waited for a token
    expect(http.limiters.sra.stats.delayed).toBeGreaterThanOrEqual(4);
    expect(readdirSync(root)).not.toContain('r');
  });
});
