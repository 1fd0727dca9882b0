/**
 * Two batches on one host (issue 13 item 1): two `fetchquant run`s with different output dirs, each with
 * its own embedded Temporal server, sharing one state dir and host id. Batch B's disk janitor sweeps every
 * reads dir the host ever used, A's included, and runs below its cleanup threshold the whole time. B's
 * server knows nothing of A's samples: only the lease A's worker holds on each run dir (src/run-lease.ts)
 * tells B's janitor that A's partial downloads are live work. A must finish with every sample done once and
 * without fetching any file again; before leases, B's janitor deleted A's in-flight reads within seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import { defaultBatchId } from '../../src/ids.js';
import { generateDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { freePort, startEmbeddedServer } from '../../src/server/embedded.js';
import { CLI, eachRun, expectEverySampleDoneOnce, runDirOf } from '../helpers/e2e.js';
import { eventually } from '../helpers/temporal.js';

describe('two batches on one host, one state dir', () => {
  let root: string;
  let a: Dataset;
  let b: Dataset;
  let mirrorA: Mirror;
  let mirrorB: Mirror;
  const procs: ResultPromise[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fq-twobatch-'));
    a = await generateDataset({
      root: join(root, 'a'),
      seed: 31,
      species: [{ name: 'Duobus alpha', runs: 3, pairedFraction: 0.67, sraOnlyFraction: 0, readsPerRun: 30_000 }],
    });
    b = await generateDataset({
      root: join(root, 'b'),
      seed: 32,
      firstRun: 7_000_000,
      species: [{ name: 'Duobus beta', runs: 2, pairedFraction: 0.5, sraOnlyFraction: 0, readsPerRun: 3_000 }],
    });
    // A's downloads last long enough for B to start, run and sweep many times.
    mirrorA = await startMirror({ dataset: a, bandwidthBytesPerSec: 150_000 });
    mirrorB = await startMirror({ dataset: b });
  }, 300_000);

  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.catch(() => undefined)));
    await mirrorA?.stop();
    await mirrorB?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("B's janitor, below its threshold, never touches A's in-flight reads; A refetches nothing", async () => {
    const stateDir = join(root, 'host-state');
    const env = { TEMPORAL_ADDRESS: '', FETCHQUANT_HOST_ID: 'twobatch', FETCHQUANT_STATE_DIR: stateDir };
    const runArgs = async (d: Dataset, m: Mirror, extra: string[]) => [
      CLI, 'run', '--port', String(await freePort()),
      '--config-dir', d.configDir, '--output-dir', d.outputDir,
      '--ena-portal-url', m.enaPortalUrl, '--sra-locate-url', m.sraLocateUrl, '--ena-file-scheme', 'http',
      '--total-threads', '2', '--min-free-gb', '0.01', '--kallisto-threads', '1',
      '--stall-timeout', '10', '--retry-initial', '0.2', '--monitor-interval', '1', '--check-interval', '2', '--disk-wait', '0.5',
      ...extra,
    ];
    const start = async (d: Dataset, m: Mirror, extra: string[]) => {
      const p = execa('node', await runArgs(d, m, extra), { env, reject: false, all: true });
      procs.push(p);
      let text = '';
      p.all!.on('data', (x: Buffer) => (text += x.toString()));
      return { p, output: () => text };
    };
    const partsOfA = () =>
      eachRun(a).filter(({ sp, r }) => {
        const dir = runDirOf(a, sp, r.run);
        return existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.part'));
      }).length;

    // A: its own janitor never cleans (threshold 0).
    const runA = await start(a, mirrorA, ['--auto-cleanup-threshold', '0']);
    await eventually(async () => partsOfA() > 0, 120_000, 50).catch((err: Error) => {
      throw new Error(`${err.message}\n--- run A ---\n${runA.output()}`);
    });
    // B: always below its threshold, sweeping every half second, over every reads dir of the host (A's too).
    const runB = await start(b, mirrorB, ['--auto-cleanup-threshold', '1000000', '--health-check-interval', '0.5']);
    // Watch A's run dirs while B runs: a dir that vanishes before its sample is published was deleted under A.
    const vanished = new Set<string>();
    const seen = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const { sp, r } of eachRun(a)) {
          const dir = runDirOf(a, sp, r.run);
          const published = existsSync(join(a.outputDir, sp.speciesId, 'quant', r.run, `${r.run}_fetchquant.json`));
          if (existsSync(dir)) seen.add(r.run);
          else if (seen.has(r.run) && !published) vanished.add(r.run);
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    const rb = await runB.p;
    const partsWhenBEnded = partsOfA();
    const ra = await runA.p;
    watching = false;
    await watcher;
    expect([rb.exitCode, runB.output()]).toEqual([0, expect.stringMatching(/2 done, 0 skipped, 0 failed of 2/)]);
    expect([ra.exitCode, runA.output()]).toEqual([0, expect.stringMatching(/3 done, 0 skipped, 0 failed of 3/)]);
    expect([...vanished]).toEqual([]);
    // `run` resolved every run at its sources (the plan summary, src/cli/plan.ts)
    expect(runA.output()).toMatch(/^plan: 3 run\(s\), 0 already done, 3 to fetch; 3 can be had now, 0 cannot$/m);
    expect(runB.output()).toMatch(/^plan: 2 run\(s\), 0 already done, 2 to fetch; 2 can be had now, 0 cannot$/m);
    expect(runA.output()).toMatch(/^disk \(.+: 3 run\(s\), .*: ok$/m);
    // Start-up does not wait on the archives: the batch runs first, the plan summary comes while it runs.
    expect(runA.output().search(/^batch \S+ running/m)).toBeGreaterThanOrEqual(0);
    expect(runA.output().search(/^batch \S+ running/m)).toBeLessThan(runA.output().search(/^plan: /m));

    // A fetched every byte once: nothing it had was deleted and downloaded again.
    const fileBytes = eachRun(a).reduce((s, { r }) => s + r.fastq.reduce((x, f) => x + f.bytes, 0), 0);
    expect(mirrorA.stats().bytesServed).toBeGreaterThanOrEqual(fileBytes);
    expect(mirrorA.stats().bytesServed - fileBytes).toBeLessThan(64 * 1024);

    const server = await startEmbeddedServer({ stateDir: join(a.outputDir, '.temporal'), port: await freePort(), headless: true });
    const connection = await Connection.connect({ address: server.address });
    try {
      await expectEverySampleDoneOnce(new Client({ connection, namespace: server.namespace }), a, defaultBatchId(a.outputDir));
    } finally {
      await connection.close();
      await server.stop();
    }
    console.log(`two batches: A's run dirs seen ${seen.size}, with .part files when B ended ${partsWhenBEnded}; A served ${mirrorA.stats().bytesServed} of ${fileBytes} file bytes`);
  }, 420_000);
});
