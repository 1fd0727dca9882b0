/**
 * docs/architecture.md §5.7: three `fetchquant worker` processes with different host ids (real activities, real tools, one
 * throttled mirror) share one batch; one of them is killed (-9) for good while it has samples in flight.
 * After --host-lost-timeout its samples restart on the other hosts, and the batch completes with every
 * sample done exactly once; the restarted samples say so in their provenance and memo.
 */
import { describe, expect, it } from '@jest/globals';
import type { BatchResult } from '../../src/workflows/batch.js';
import { eventually } from '../helpers/temporal.js';
import { countDone, eachRun, expectEverySampleDoneOnce, killHard, startMirrorBatch, useE2eWorld, type CliWorker } from '../helpers/e2e.js';
import { SA } from '../../src/search-attributes.js';

const BATCH = 'hosts';
const HOSTS = ['host-a', 'host-b', 'host-c'];
const HOST_LOST_SEC = 5;

interface Running {
  run: string;
  host: string;
  stage: string;
}

describe('three hosts, one lost for good mid-batch (real CLI workers, real tools)', () => {
  const world = useE2eWorld({
    label: 'e2e-hosts',
    prefix: 'hosts',
    data: { seed: 23, species: ['Hostus alpha', 'Hostus beta'].map((name) => ({ name, runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0.25, readsPerRun: 15_000 })) },
    // ~400 KB files, six at once through 300 KB/s: every host holds samples mid-download for seconds.
    mirror: () => ({ bandwidthBytesPerSec: 300_000 }),
    timeoutMs: 300_000,
  });
  const workers = new Map<string, CliWorker>();

  /** Running samples of the batch, by host and stage, from visibility. */
  async function runningSamples(): Promise<Running[]> {
    const out: Running[] = [];
    const query = `BatchId = '${BATCH}' AND WorkflowType = 'sampleWorkflow' AND ExecutionStatus = 'Running'`;
    for await (const wf of world.t.client.workflow.list({ query })) {
      const one = (k: keyof typeof SA) => wf.typedSearchAttributes.get(SA[k]) ?? '';
      out.push({ run: one('RunAccession'), host: one('WorkerHost'), stage: one('SampleStage') });
    }
    return out;
  }

  it(`restarts a lost host's samples elsewhere after --host-lost-timeout; every sample done exactly once`, async () => {
    for (const [i, w] of (await Promise.all(HOSTS.map((h) => world.cliWorker(h)))).entries()) workers.set(HOSTS[i]!, w);
    const runs = eachRun(world.dataset);
    const handle = await startMirrorBatch(world.t.client, BATCH, world.dataset, world.mirror, {
      totalThreads: 6,
      hostLostTimeoutSec: HOST_LOST_SEC,
      maxRetries: 3,
      stallTimeoutSec: 5,
    });

    // The victim: a host with a sample mid-download, once the batch is under way on every host.
    let victim = '';
    let caught = '';
    let inFlight: Running[] = [];
    await eventually(async () => {
      const running = await runningSamples();
      const hosts = new Set(running.map((r) => r.host));
      const downloading = running.find((r) => r.stage === 'downloading');
      if (!downloading || hosts.size < 2) return false;
      victim = downloading.host;
      caught = downloading.run;
      inFlight = running.filter((r) => r.host === victim);
      return true;
    }, 180_000, 100);
    const doneBefore = countDone(world.dataset);
    await killHard(workers.get(victim)!);
    workers.delete(victim);
    const lostAt = Date.now();
    // what visibility says the lost host held when it died (a late stage upsert may add one)
    const held = new Set([...inFlight, ...(await runningSamples()).filter((r) => r.host === victim)].map((r) => r.run));

    const result = (await handle.result()) as BatchResult;
    const batchSec = (Date.now() - lostAt) / 1000;
    expect(result.failures).toEqual([]);
    expect(result.totals).toEqual({ total: runs.length, done: runs.length, skipped: 0, failed: 0 });
    const provs = await expectEverySampleDoneOnce(world.t.client, world.dataset, BATCH);

    const restarted: { run: string; host: string; restarts: number }[] = [];
    for (const { r } of runs) {
      const prov = provs.get(r.run)!;
      const memo = (await world.t.client.workflow.getHandle(prov.workflowId).describe()).memo as { restarts: number; stages: { stage: string; host: string | null; error?: string }[] };
      const lostStage = memo.stages.find((s) => s.error === `host ${victim} lost`);
      expect(HOSTS).toContain(prov.host);
      expect(memo.restarts).toBe(prov.restarts);
      if (prov.restarts > 0) {
        // only the lost host's samples start over: on a surviving host, and the audit says why
        expect([r.run, held.has(r.run), prov.host === victim]).toEqual([r.run, true, false]);
        expect([r.run, lostStage?.stage, lostStage?.host]).toEqual([r.run, 'queued', victim]);
        expect(prov.stages.some((s) => s.error === `host ${victim} lost`)).toBe(true);
        restarted.push({ run: r.run, host: prov.host, restarts: prov.restarts });
      } else {
        // ran once where it started; one the victim held had already finished its last host step
        expect([r.run, lostStage]).toEqual([r.run, undefined]);
        if (held.has(r.run)) expect([r.run, prov.host]).toEqual([r.run, victim]);
      }
    }
    // the sample caught mid-download on the lost host could only finish elsewhere
    expect(restarted.map((x) => x.run)).toContain(caught);
    expect(restarted.length).toBeGreaterThanOrEqual(1);
    const hostsUsed = [...new Set([...provs.values()].map((p) => p.host))].sort();
    console.log(`hosts figures: ${JSON.stringify({ victim, caughtDownloading: caught, heldAtKill: [...held], doneBeforeKill: doneBefore, restarted, hostsUsed, secondsFromKillToEnd: Number(batchSec.toFixed(1)), hostLostTimeoutSec: HOST_LOST_SEC })}`);
  }, 420_000);
});
