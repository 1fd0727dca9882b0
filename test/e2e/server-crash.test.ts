/**
 * docs/architecture.md §5.6, the server half: `fetchquant run` on its embedded Temporal server (SQLite file under
 * <output-dir>/.temporal/), the server killed with -9 twice mid-batch. `run` notices, starts it again on the
 * same file and port, says so, and the same worker and client carry on: the batch completes, every sample
 * done exactly once. Real mirror (bandwidth-capped so the batch lasts), real tools, real files.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { defaultBatchId } from '../../src/ids.js';
import { createServer } from 'node:net';
import { freePort, startEmbeddedServer, superviseEmbeddedServer } from '../../src/server/embedded.js';
import { CLI, countDone, eachRun, expectEverySampleDoneOnce, runDirOf } from '../helpers/e2e.js';
import { eventually } from '../helpers/temporal.js';
import { useMirrorWorld } from '../helpers/world.js';
import { pidAlive } from '../../src/state-dir.js';

interface ServerRecord {
  pid: number;
  address: string;
}

const alive = pidAlive;

describe('Temporal server killed (-9) mid-batch under `fetchquant run`', () => {
  const world = useMirrorWorld(
    'srvcrash',
    {
      seed: 17,
      species: [
        { name: 'Serverus alpha', runs: 3, pairedFraction: 0.67, sraOnlyFraction: 0.34, readsPerRun: 15_000 },
        { name: 'Serverus beta', runs: 3, pairedFraction: 0.34, sraOnlyFraction: 0.34, readsPerRun: 15_000 },
      ],
    },
    // ~400 KB files at 250 KB/s shared by two slots: each download takes a few seconds.
    () => ({ bandwidthBytesPerSec: 250_000 }),
    300_000,
  );

  it('restarts the server on the same SQLite file and port, and the batch completes with every sample done once', async () => {
    const stateDir = join(world.dataset.outputDir, '.temporal');
    const recordOf = () => JSON.parse(readFileSync(join(stateDir, 'server.json'), 'utf8')) as ServerRecord;
    const port = await freePort();
    const runs = eachRun(world.dataset);
    const partGrowing = () => runs.some(({ sp, r }) => {
      const dir = runDirOf(world.dataset, sp, r.run);
      return existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.part'));
    });
    const args = [
      CLI, 'run', '--port', String(port),
      '--config-dir', world.dataset.configDir, '--output-dir', world.dataset.outputDir,
      '--ena-portal-url', world.mirror.enaPortalUrl, '--sra-locate-url', world.mirror.sraLocateUrl, '--ena-file-scheme', 'http',
      '--total-threads', '2', '--min-free-gb', '0.01', '--kallisto-threads', '1',
      '--stall-timeout', '5', '--retry-initial', '0.2', '--monitor-interval', '1', '--check-interval', '2', '--disk-wait', '0.5',
    ];
    const run = execa('node', args, { env: { TEMPORAL_ADDRESS: '', FETCHQUANT_HOST_ID: 'srvcrash' }, reject: false, all: true });
    let output = '';
    run.all!.on('data', (d: Buffer) => (output += d.toString()));

    const killed: number[] = [];
    try {
      // 1: once a sample is done and downloads are on the wire
      await eventually(async () => existsSync(join(stateDir, 'server.json')) && countDone(world.dataset) >= 1 && partGrowing(), 180_000, 50);
      const first = recordOf();
      expect(first.address).toBe(`127.0.0.1:${port}`);
      process.kill(first.pid, 'SIGKILL');
      killed.push(first.pid);
      await eventually(async () => /Temporal dev server restarted/.test(output) && recordOf().pid !== first.pid && alive(recordOf().pid), 120_000);
      // 2: again, later in the batch, while downloads run on the restarted one
      const doneAtFirst = countDone(world.dataset);
      await eventually(async () => countDone(world.dataset) > doneAtFirst && countDone(world.dataset) < runs.length && partGrowing(), 180_000, 50).catch(() => undefined);
      const second = recordOf();
      if (countDone(world.dataset) < runs.length) {
        process.kill(second.pid, 'SIGKILL');
        killed.push(second.pid);
      }
    } catch (err) {
      run.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n--- fetchquant run output ---\n${output}`);
    }
    const r = await run;
    if (process.env.FQ_DEBUG) process.stderr.write(`--- fetchquant run output ---\n${output}\n`);
    const doneAfter = countDone(world.dataset);
    expect([r.exitCode, output]).toEqual([0, expect.any(String)]);
    expect(doneAfter).toBe(runs.length);
    expect(killed.length).toBeGreaterThanOrEqual(1);
    // the user is told what happened, once per crash, naming the state file and the same address
    for (const pid of killed) {
      expect(output).toContain(`Temporal dev server (pid ${pid}) exited unexpectedly; restarting it on ${join(stateDir, 'temporal.db')} at 127.0.0.1:${port}`);
    }
    expect(output.match(/Temporal dev server restarted \(pid \d+\)/g)?.length).toBe(killed.length);
    expect(output).toMatch(new RegExp(`: ${runs.length} done, 0 skipped, 0 failed of ${runs.length}`));
    expect(output).not.toMatch(/retried \d+ times|Error:/); // no SDK retry noise, no stack traces
    // the run that owned the server stopped it at the end
    const last = recordOf();
    expect(last.address).toBe(`127.0.0.1:${port}`);
    await eventually(async () => !alive(last.pid), 30_000);

    // The state file survived both crashes: open it again and check every sample ran exactly once.
    const server = await startEmbeddedServer({ stateDir, port: await freePort(), headless: true });
    const connection = await Connection.connect({ address: server.address });
    try {
      await expectEverySampleDoneOnce(new Client({ connection, namespace: server.namespace }), world.dataset, defaultBatchId(world.dataset.outputDir));
    } finally {
      await connection.close();
      await server.stop();
    }
    console.log(`server crash: killed ${killed.length}x, ${runs.length} samples done once each`);
  }, 420_000);

  it('a server that cannot be started again (its port taken meanwhile) is reported, naming the state file', async () => {
    const stateDir = join(world.root, 'gives-up');
    const server = await startEmbeddedServer({ stateDir, port: await freePort(), headless: true });
    const exits: number[] = [];
    const supervisor = superviseEmbeddedServer(server, { everyMs: 200, attempts: 2, onExit: (pid) => exits.push(pid) });
    const squatter = createServer();
    try {
      process.kill(server.pid, 'SIGKILL');
      // someone else takes the port before the restart can
      await eventually(async () => new Promise<boolean>((resolve) => {
        squatter.once('error', () => resolve(false));
        squatter.listen(Number(server.address.split(':')[1]), '127.0.0.1', () => resolve(true));
      }), 10_000, 20);
      await expect(supervisor.failed).rejects.toThrow(
        new RegExp(`the Temporal dev server \\(pid ${server.pid}\\) exited and could not be restarted on ${join(stateDir, 'temporal.db').replace(/[.]/g, '\\.')}`),
      );
      expect(exits).toEqual([server.pid]);
    } finally {
      supervisor.stop();
      squatter.close();
      await supervisor.current().stop();
    }
  }, 120_000);
});
