/**
 * fetchquant on a production-shaped Temporal: temporal-server 1.29.1 on PostgreSQL (persistence and SQL
 * visibility), brought up by scripts/cluster.sh, in the namespace `up` created (30-day retention, search
 * attributes registered). Everything goes through the CLI users run: three `fetchquant worker` hosts,
 * `fetchquant start` over the loopback mirror, `status`, `threads`, `pause`, `resume` while it runs; one
 * host killed for good (-9) with samples in flight; the temporal-server process killed (-9) mid-batch and
 * started again by `scripts/cluster.sh up`; at the end every sample done exactly once, `history` and
 * `report` read the batch back, and `temporal workflow list --query` finds each workflow by every search
 * attribute.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { batchWorkflowId, sampleWorkflowId, speciesWorkflowId } from '../../src/ids.js';
import { generateDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { TSV_COLUMNS } from '../../src/report/tsv.js';
import type { BatchResult } from '../../src/workflows/batch.js';
import { findTemporalCli } from '../../src/server/temporal-cli.js';
import type { Provenance } from '../../src/types.js';
import { CLI, countDone, eachRun, expectEverySampleDoneOnce, killHard, runDirOf, startCliWorker, type CliWorker } from '../helpers/e2e.js';
import { eventually, quietRuntime } from '../helpers/temporal.js';
import { SA } from '../../src/search-attributes.js';
import { CLUSTER_SCRIPT } from '../helpers/cluster.js';
import { pidAlive } from '../../src/state-dir.js';

const HOSTS = ['node-a', 'node-b', 'node-c'];
const HOST_LOST_SEC = 5;
const TEMPORAL = findTemporalCli() ?? 'temporal';

interface Running {
  run: string;
  host: string;
  stage: string;
}

describe('temporal-server on PostgreSQL: three CLI hosts, one lost, the server killed -9 mid-batch', () => {
  const address = process.env.FQ_CLUSTER_ADDRESS!;
  const namespace = process.env.FQ_CLUSTER_NAMESPACE!;
  // The cluster's data outlives a test run: a batch id and run accessions of this run's own.
  const stamp = Date.now() % 10_000_000;
  const batchId = `cluster-${stamp}`;
  let connection: Connection;
  let client: Client;
  let root: string;
  let dataset: Dataset;
  let mirror: Mirror;
  const workers = new Map<string, CliWorker>();
  const env = () => ({ TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace, FETCHQUANT_HOST_ID: 'cluster-cli' });
  const cli = (args: string[]) => execa(process.execPath, [CLI, ...args], { env: env(), reject: false, timeout: 120_000 });
  const batchFlags = () => ['--batch-id', batchId, '--output-dir', dataset.outputDir];
  let victim = '';
  let caught = '';
  let held = new Set<string>();
  let serverKills = 0;
  let provs = new Map<string, Provenance>();

  beforeAll(async () => {
    quietRuntime();
    if (!address) throw new Error('FQ_CLUSTER_ADDRESS unset: run through npm run test:cluster (its global setup brings the cluster up)');
    connection = await Connection.connect({ address });
    client = new Client({ connection, namespace });
    root = await mkdtemp(join(tmpdir(), 'fq-cluster-'));
    dataset = await generateDataset({
      root,
      seed: 31,
      firstRun: 10_000_000 + stamp * 20,
      species: [
        { name: 'Clusterus alpha', runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0.25, readsPerRun: 15_000 },
        { name: 'Clusterus beta', runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0.25, readsPerRun: 15_000 },
        { name: 'Clusterus gamma', runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0.25, readsPerRun: 15_000 },
      ],
    });
    // ~400 KB files through 200 KB/s shared by every slot: the batch lasts long enough to crash it twice.
    mirror = await startMirror({ dataset, bandwidthBytesPerSec: 200_000 });
  }, 300_000);

  afterAll(async () => {
    for (const w of workers.values()) await killHard(w);
    await mirror?.stop();
    await connection?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Running samples of the batch, by host and stage, from the cluster's SQL visibility. */
  async function runningSamples(): Promise<Running[]> {
    const out: Running[] = [];
    const query = `BatchId = '${batchId}' AND WorkflowType = 'sampleWorkflow' AND ExecutionStatus = 'Running'`;
    for await (const wf of client.workflow.list({ query })) {
      const one = (k: keyof typeof SA) => wf.typedSearchAttributes.get(SA[k]) ?? '';
      out.push({ run: one('RunAccession'), host: one('WorkerHost'), stage: one('SampleStage') });
    }
    return out;
  }
  const partGrowing = () =>
    eachRun(dataset).some(({ sp, r }) => {
      const dir = runDirOf(dataset, sp, r.run);
      return existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.part'));
    });
  const serverPid = () => Number(readFileSync(join(process.env.FQ_CLUSTER_DIR!, 'run', 'temporal-server.pid'), 'utf8').trim());
  const alive = pidAlive;

  it('three `fetchquant worker` hosts and `fetchquant start`; status, threads, pause and resume on the running batch', async () => {
    const workerEnv = { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace };
    for (const [i, w] of (await Promise.all(HOSTS.map((h) => startCliWorker(h, workerEnv)))).entries()) workers.set(HOSTS[i]!, w);
    for (const w of workers.values()) expect(w.output()).toContain(`on ${address} (namespace ${namespace})`);

    const start = await cli([
      'start', '--config-dir', dataset.configDir, ...batchFlags(),
      '--ena-portal-url', mirror.enaPortalUrl, '--sra-locate-url', mirror.sraLocateUrl, '--ena-file-scheme', 'http',
      '--total-threads', '1', '--host-lost-timeout', String(HOST_LOST_SEC), '--stall-timeout', '5', '--max-retries', '3',
      '--min-free-gb', '0.01', '--kallisto-threads', '1', '--retry-initial', '0.2', '--monitor-interval', '0.5',
      '--check-interval', '2', '--disk-wait', '0.5', '--process-timeout', '120',
    ]);
    // stderr: nothing but notes (its species, paired and single alike with equal spots, start largest first)
    expect([start.exitCode, start.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('note: '))]).toEqual([0, []]);
    expect(start.stderr).toMatch(/^note: runs start largest first .*clusterus_/m);
    expect(start.stdout).toContain(batchWorkflowId(batchId));
    expect(start.stdout).not.toContain('registered search attributes'); // `up` registered them

    // Steered while paused, so the batch is still young when the crashes below begin, however slow the machine.
    const total = eachRun(dataset).length;
    const status = async () => (await cli(['status', ...batchFlags()])).stdout;
    await eventually(async () => new RegExp(`^batch \\S+: \\d+/${total} samples finished, \\d+ failed, total threads 1$`, 'm').test(await status()), 60_000, 500);
    expect((await cli(['pause', ...batchFlags()])).exitCode).toBe(0);
    await eventually(async () => /\(PAUSED\)/.test(await status()), 30_000, 500);

    // while paused no species holds a slot; the new total is kept for the resume
    const th = await cli(['threads', '6', ...batchFlags()]);
    expect([th.exitCode, th.stderr]).toEqual([0, '']);
    expect(th.stdout).toMatch(/^total threads 6: clusterus_alpha=0 clusterus_beta=0 clusterus_gamma=0$/m);
    await eventually(async () => /\(PAUSED\)[^\n]*total threads 6$/m.test(await status()), 30_000, 500);

    expect((await cli(['resume', ...batchFlags()])).exitCode).toBe(0);
    await eventually(async () => {
      const s = await status();
      return !/\(PAUSED\)/.test(s) && /total threads 6$/m.test(s);
    }, 30_000, 500);
    // resumed: the three species (each with runs left) share all six slots, each at least one
    const again = await cli(['threads', '6', ...batchFlags()]);
    expect(again.exitCode).toBe(0);
    const alloc = Object.fromEntries([...again.stdout.matchAll(/(clusterus_\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    expect(Object.keys(alloc).sort()).toEqual(['clusterus_alpha', 'clusterus_beta', 'clusterus_gamma']);
    expect(Object.values(alloc).reduce((a, b) => a + b, 0)).toBe(6);
    expect(Math.min(...Object.values(alloc))).toBeGreaterThanOrEqual(1);
  }, 240_000);

  it('a host lost for good and temporal-server killed -9 and restarted mid-batch: the batch completes, every sample done exactly once', async () => {
    const runs = eachRun(dataset);
    // The victim: a host with a sample mid-download while the batch runs on at least two hosts.
    let inFlight: Running[] = [];
    await eventually(async () => {
      const running = await runningSamples();
      const downloading = running.find((r) => r.stage === 'downloading' && r.host);
      if (!downloading || new Set(running.map((r) => r.host)).size < 2) return false;
      victim = downloading.host;
      caught = downloading.run;
      inFlight = running.filter((r) => r.host === victim);
      return true;
    }, 180_000, 100);
    await killHard(workers.get(victim)!);
    workers.delete(victim);
    held = new Set([...inFlight, ...(await runningSamples()).filter((r) => r.host === victim)].map((r) => r.run));

    // The server, right after: while downloads are on the wire.
    const doneAtHostLoss = countDone(dataset);
    await eventually(async () => countDone(dataset) < runs.length && partGrowing(), 240_000, 20);
    const killed = serverPid();
    process.kill(killed, 'SIGKILL');
    serverKills++;
    await eventually(async () => !alive(killed), 10_000, 50);
    const status = await execa('bash', [CLUSTER_SCRIPT, 'status'], { reject: false });
    expect([status.exitCode, status.stdout]).toEqual([1, expect.stringMatching(/temporal-server\s+stopped/)]);
    await new Promise((r) => setTimeout(r, 2000)); // down for a moment: workers and clients retry meanwhile
    const up = await execa('bash', [CLUSTER_SCRIPT, 'up'], { reject: false });
    expect([up.exitCode, up.stdout]).toEqual([0, expect.stringContaining('starting temporal-server')]);
    expect(up.stdout).not.toMatch(/creating|registering|initdb/); // same databases, namespace and attributes
    const restarted = serverPid();
    expect(restarted).not.toBe(killed);
    expect(alive(restarted)).toBe(true);

    // The batch completes on the two hosts left (the client reconnects by itself).
    const handle = client.workflow.getHandle(batchWorkflowId(batchId));
    const result = (await eventually(async () => {
      const d = await handle.describe();
      return d.status.name === 'RUNNING' ? false : ((await handle.result()) as BatchResult);
    }, 420_000, 1000)) as BatchResult;
    expect(result.failures).toEqual([]);
    expect(result.totals).toEqual({ total: runs.length, done: runs.length, skipped: 0, failed: 0 });
    // visibility is written asynchronously: the last samples' COMPLETED may trail the batch's by a moment
    await eventually(async () => (await runningSamples()).length === 0, 60_000, 500);
    provs = await expectEverySampleDoneOnce(client, dataset, batchId);

    const restartedRuns: string[] = [];
    for (const { r } of runs) {
      const prov = provs.get(r.run)!;
      expect(HOSTS).toContain(prov.host);
      const lost = prov.stages.find((s) => s.error === `host ${victim} lost`);
      if (prov.restarts > 0) {
        // only the lost host's samples start over, on a surviving host, and the audit says why (what visibility
        // showed on the victim at the kill may trail by an upsert or two: the sample's own record decides)
        expect([r.run, prov.restarts, lost?.stage, lost?.host, prov.host === victim]).toEqual([r.run, 1, 'queued', victim, false]);
        restartedRuns.push(r.run);
      } else {
        expect([r.run, lost]).toEqual([r.run, undefined]);
        if (held.has(r.run)) expect([r.run, prov.host]).toEqual([r.run, victim]);
      }
    }
    expect(restartedRuns).toContain(caught);
    for (const w of workers.values()) expect(w.proc.exitCode).toBeNull(); // the survivors rode out the server restart
    console.log(`cluster figures: ${JSON.stringify({ victim, caught, held: [...held], restarted: restartedRuns, serverKills, doneAtHostLoss })}`);
  }, 600_000);

  it('history and report read the batch back from the cluster', async () => {
    expect(provs.size).toBe(eachRun(dataset).length);
    const r = await cli(['history', caught]);
    expect([r.exitCode, r.stderr]).toEqual([0, '']);
    const prov = provs.get(caught)!;
    const sp = eachRun(dataset).find(({ r: x }) => x.run === caught)!.sp;
    const id = sampleWorkflowId(batchId, sp.speciesId, caught).replace(/[/.]/g, '\\$&');
    // one execution, finished on a surviving host, restarted once after the victim was lost mid-download
    expect(r.stdout).toMatch(new RegExp(`^${id}\\s+COMPLETED\\s+stage=done\\s+host=${prov.host}\\s.*host restarts=${prov.restarts}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`stages: queued@${victim} .*downloading@${victim} .*-> queued@${prov.host} .*-> done@${prov.host}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`download\\s+attempt 1\\s+host ${victim}\\s+(timed out|cancelled)`));
    // samples of paths 4 quantify in the step that verified the reads: history lists it as `quant (in download)`
    expect(r.stdout).toMatch(new RegExp(`quant( \\(in (download|convertSra)\\))?\\s+attempt \\d+\\s+host ${prov.host}\\s+completed`));

    const rep = await cli(['report', ...batchFlags()]);
    expect([rep.exitCode, rep.stderr]).toEqual([0, '']);
    const [tsvPath, htmlPath] = rep.stdout.trim().split('\n');
    const lines = readFileSync(tsvPath!, 'utf8').replace(/\n$/, '').split('\n').map((l) => l.split('\t'));
    expect(lines[0]).toEqual([...TSV_COLUMNS]);
    const rows = new Map(lines.slice(1).map((l) => [l[0]!, Object.fromEntries(TSV_COLUMNS.map((c, i) => [c, l[i]!]))]));
    expect([...rows.keys()].sort()).toEqual([...provs.keys()].sort());
    for (const [run, p] of provs) expect([run, rows.get(run)!.final_stage, rows.get(run)!.host]).toEqual([run, 'done', p.host]);
    expect(readFileSync(htmlPath!, 'utf8')).toMatch(/<svg /);
  }, 120_000);

  it('`temporal workflow list --query` finds the workflows by every search attribute', async () => {
    // A run that continued as new is the same execution carried on (the batch and species do past
    // maxHistoryEvents): leave those out, so an id listed twice means it really ran twice.
    const list = async (query: string): Promise<string[]> => {
      const q = `(${query}) AND ExecutionStatus != 'ContinuedAsNew'`;
      const r = await execa(TEMPORAL, ['workflow', 'list', '--address', address, '--namespace', namespace, '--query', q, '-o', 'json'], { reject: false });
      expect([q, r.exitCode, r.stderr]).toEqual([q, 0, '']);
      const rows = JSON.parse(r.stdout || '[]') as { execution: { workflowId: string } }[];
      return rows.map((x) => x.execution.workflowId).sort();
    };
    const runs = eachRun(dataset);
    const sampleIds = runs.map(({ sp, r }) => sampleWorkflowId(batchId, sp.speciesId, r.run)).sort();
    const speciesIds = dataset.species.map((sp) => speciesWorkflowId(batchId, sp.speciesId));
    // BatchId: the batch, its species and its samples (each once: no execution ran twice)
    expect(await list(`BatchId = '${batchId}'`)).toEqual([batchWorkflowId(batchId), ...speciesIds, ...sampleIds].sort());
    // Species: that species' workflow and its samples only (earlier runs of this test used the same species)
    for (const sp of dataset.species) {
      expect(await list(`Species = '${sp.speciesId}' AND BatchId = '${batchId}'`)).toEqual(
        [speciesWorkflowId(batchId, sp.speciesId), ...sp.runs.map((r) => sampleWorkflowId(batchId, sp.speciesId, r.run))].sort(),
      );
    }
    // RunAccession: exactly one execution per run
    for (const { sp, r } of runs) expect(await list(`RunAccession = '${r.run}'`)).toEqual([sampleWorkflowId(batchId, sp.speciesId, r.run)]);
    // SampleStage: all done, none failed
    expect(await list(`BatchId = '${batchId}' AND SampleStage = 'done'`)).toEqual(sampleIds);
    expect(await list(`BatchId = '${batchId}' AND SampleStage = 'failed'`)).toEqual([]);
    // WorkerHost: the samples each host finished, as their provenance says (the lost host's restarted ones moved)
    for (const host of HOSTS) {
      const expected = runs.filter(({ r }) => provs.get(r.run)!.host === host).map(({ sp, r }) => sampleWorkflowId(batchId, sp.speciesId, r.run)).sort();
      expect([host, await list(`BatchId = '${batchId}' AND WorkerHost = '${host}' AND WorkflowType = 'sampleWorkflow'`)]).toEqual([host, expected]);
    }
  }, 120_000);
});
