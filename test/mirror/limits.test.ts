/**
 * The mirror's rate limits, outages and lagging runs (src/mirror/limits.ts; evidence in
 * test/fixtures/archives/README.md "Rate limits, outages, lagging runs"): the 429 NCBI sends beyond its
 * per-second limit, a source that answers 503 for a window, and a run that reaches ENA only after SRA.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import type { Dataset, SyntheticRun } from '../../src/mirror/fixtures.js';
import { SlidingWindowLimit } from '../../src/mirror/limits.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { useTempDataset } from '../helpers/world.js';
import { get } from './helpers.js';

const tmp = useTempDataset('mirror-limits', { seed: 3, species: [{ name: 'Lentus tardus', runs: 1, pairedFraction: 0, readsPerRun: 200, taxonId: 333 }] });
let ds: Dataset;
let run: SyntheticRun;
beforeAll(() => {
  ds = tmp.dataset;
  run = ds.species[0]!.runs[0]!;
});

const filereport = (m: Mirror, acc: string) => `${m.enaPortalUrl}/filereport?accession=${acc}&result=read_run&fields=run_accession,fastq_ftp&format=tsv`;
const locate = (m: Mirror, acc: string) => `${m.sraLocateUrl}?acc=${acc}&filetype=run`;

describe('mirror rate limits, outages and lagging runs', () => {
  it('counts a sliding one-second window: perSec requests pass, the next is refused until the oldest is a second old', () => {
    let now = 0;
    const w = new SlidingWindowLimit({ perSec: 3 }, () => now);
    expect([w.admit(), w.admit(), w.admit(), w.admit()]).toEqual([true, true, true, false]);
    now = 999;
    expect(w.admit()).toBe(false);
    now = 1000;
    expect(w.admit()).toBe(true);
    expect(w.stats).toEqual({ accepted: 4, rejected: 2, maxInWindow: 3 });
  });

  it("answers beyond NCBI's 3 requests/s with NCBI's 429: JSON error body, X-RateLimit headers, no Retry-After", async () => {
    const m = await startMirror({ dataset: ds, rateLimits: { 'sra-api': { perSec: 3 } } });
    try {
      const answers = await Promise.all([1, 2, 3, 4, 5].map(() => get(locate(m, run.run))));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(3);
      const refused = answers.find((a) => a.status === 429)!;
      expect(JSON.parse(refused.body.toString())).toEqual({ error: 'API rate limit exceeded', 'api-key': '127.0.0.1', count: '4', limit: '3' });
      expect(refused.headers['x-ratelimit-limit']).toBe('3');
      expect(refused.headers['retry-after']).toBeUndefined();
      // ENA's portal is another service: not limited here
      expect((await get(filereport(m, run.run))).status).toBe(200);
      expect(m.stats().rateLimits['sra-api']).toEqual({ accepted: 3, rejected: 2, maxInWindow: 3 });
    } finally {
      await m.stop();
    }
  });

  it('sends Retry-After when a test asks for one', async () => {
    const m = await startMirror({ dataset: ds, rateLimits: { 'ena-api': { perSec: 1, retryAfterSec: 2 } } });
    try {
      const [a, b] = await Promise.all([get(filereport(m, run.run)), get(filereport(m, run.run))]);
      expect([a!.status, b!.status].sort()).toEqual([200, 429]);
      expect([a!, b!].find((x) => x.status === 429)!.headers['retry-after']).toBe('2');
    } finally {
      await m.stop();
    }
  });

  it('an outage: the source answers 503 to its API and its files for the window, the other source is untouched', async () => {
    const m = await startMirror({ dataset: ds });
    try {
      m.setOutage('ena', 60_000);
      const fileUrl = `${m.baseUrl}/vol1/fastq/${run.run.slice(0, 6)}/${run.run}/${run.run}.fastq.gz`;
      expect((await get(filereport(m, run.run))).status).toBe(503);
      expect((await get(fileUrl)).status).toBe(503);
      expect((await get(locate(m, run.run))).status).toBe(200);
      m.setOutage('ena', 0);
      expect((await get(filereport(m, run.run))).status).toBe(200);
      expect((await get(fileUrl)).status).toBe(200);
      expect(m.stats().outageRefused).toEqual({ 'ena-api': 1, 'ena-files': 1 });
    } finally {
      await m.stop();
    }
  });

  it('a lagging run: at SRA at once, at ENA (report and files) only once the lag has run out', async () => {
    const m = await startMirror({ dataset: ds, faults: { [run.run]: [{ kind: 'ena-lag', seconds: 1.5 }] } });
    try {
      const early = await get(filereport(m, run.run));
      // ENA has no such run yet: 204, or a header line only (both are ENA's "unknown run")
      expect(early.status === 204 || early.body.toString().trim().split('\n').length === 1).toBe(true);
      expect(JSON.parse((await get(locate(m, run.run))).body.toString()).result[0].status).toBe(200);
      await new Promise((r) => setTimeout(r, 1600));
      const late = await get(filereport(m, run.run));
      expect(late.body.toString()).toContain(run.run);
    } finally {
      await m.stop();
    }
  });
});
