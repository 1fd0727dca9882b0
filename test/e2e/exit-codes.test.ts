/**
 * Issue 13 items 4-6, through the real CLI on its own embedded server:
 * - SIGINT exits 130 and SIGTERM 143 every time, at any moment (during the server's start-up, mid-batch,
 *   as the batch completes), within seconds, leaving no server behind; running again resumes and completes.
 * - `fetchquant server` owns the server it starts (a signal stops it), adopts one whose owner was killed
 *   with -9, and leaves one a live owner holds to it, saying how to stop it.
 * - A damaged state file: exit 3 saying what happened and what to do; after moving it aside, the next run
 *   keeps and skips every published result.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { generateDataset, type Dataset } from '../../src/mirror/fixtures.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { freePort } from '../../src/server/embedded.js';
import { CLI, countDone, eachRun } from '../helpers/e2e.js';
import { eventually } from '../helpers/temporal.js';
import { pidAlive } from '../../src/state-dir.js';

const alive = pidAlive;

describe('exit codes, server ownership and a damaged state file', () => {
  let root: string;
  let dataset: Dataset;
  let mirror: Mirror;
  const procs: ResultPromise[] = [];
  const servers: number[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fq-exit-'));
    dataset = await generateDataset({
      root,
      seed: 41,
      species: [{ name: 'Exitus alpha', runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0, readsPerRun: 8_000 }],
    });
    // fast enough that a batch completes in seconds, slow enough that signals land mid-batch too
    mirror = await startMirror({ dataset, bandwidthBytesPerSec: 400_000 });
  }, 300_000);

  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    for (const pid of servers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await mirror?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const stateDir = () => join(dataset.outputDir, '.temporal');
  const record = () => JSON.parse(readFileSync(join(stateDir(), 'server.json'), 'utf8')) as { pid: number; ownerPid?: number };
  const env = { TEMPORAL_ADDRESS: '', FETCHQUANT_HOST_ID: 'exitcodes' };
  const runArgs = [
    CLI, 'run',
    '--config-dir', () => dataset.configDir, '--output-dir', () => dataset.outputDir,
    '--ena-portal-url', () => mirror.enaPortalUrl, '--sra-locate-url', () => mirror.sraLocateUrl, '--ena-file-scheme', 'http',
    '--total-threads', '2', '--min-free-gb', '0.01', '--kallisto-threads', '1', '--retry-initial', '0.2', '--monitor-interval', '1', '--disk-wait', '0.5',
  ];
  const startRun = () => {
    // no SIGKILL 5 s after our signal (execa's default): a run interrupted during start-up first waits for its server, then stops it
    const p = execa('node', runArgs.map((a) => (typeof a === 'function' ? a() : a)), { env, reject: false, all: true, forceKillAfterDelay: false, timeout: 300_000 });
    procs.push(p);
    let text = '';
    p.all!.on('data', (d: Buffer) => (text += d.toString()));
    return { p, output: () => text };
  };

  /** The run is starting its server: server.log (removed before the run) was opened again, just before the spawn. */
  const serverLog = () => join(stateDir(), 'server.log');
  const startingUp = async () => void (await eventually(async () => existsSync(serverLog()), 60_000, 5));

  it('SIGINT -> 130 and SIGTERM -> 143 at every moment, no server left behind; running again resumes', async () => {
    const moments: { signal: 'SIGINT' | 'SIGTERM'; when: string; at: (o: () => string, pid: number) => Promise<void> }[] = [
      // the state dir appears as the server starts (an earlier run's stays: then its server.log grows)
      { signal: 'SIGINT', when: 'during the server start-up', at: startingUp },
      { signal: 'SIGTERM', when: 'during the server start-up', at: startingUp },
      { signal: 'SIGTERM', when: 'once the batch runs', at: async (o) => { await eventually(async () => /batch \S+ running/.test(o()), 60_000, 20); } },
      { signal: 'SIGINT', when: 'as a sample is published', at: async () => { const n = countDone(dataset); await eventually(async () => countDone(dataset) > n, 120_000, 5); } },
      { signal: 'SIGTERM', when: 'as the last sample is published', at: async () => { await eventually(async () => countDone(dataset) === eachRun(dataset).length, 120_000, 5); } },
    ];
    const seen: string[] = [];
    for (const m of moments) {
      if (countDone(dataset) === eachRun(dataset).length && m.when !== 'as the last sample is published' && !m.when.includes('start-up')) continue;
      if (m.when.includes('start-up')) rmSync(serverLog(), { force: true });
      const run = startRun();
      await m.at(run.output, run.p.pid!);
      const signalledAt = Date.now();
      run.p.kill(m.signal);
      const r = await run.p;
      const tookSec = (Date.now() - signalledAt) / 1000;
      seen.push(`${m.signal} ${m.when}: ${r.exitCode} after ${tookSec.toFixed(1)} s`);
      expect([m.signal, m.when, r.exitCode, r.signal]).toEqual([m.signal, m.when, m.signal === 'SIGINT' ? 130 : 143, undefined]);
      // A stop, not a wait: a local activity asking the worker's own pacer held it until its 2-minute timeout
      // (a draining worker answers no update); now 1-3 s. The bound leaves room for a slow machine.
      if (tookSec > 45) throw new Error(`${m.signal} ${m.when}: exit took ${tookSec.toFixed(1)} s\n${run.output()}`);
      if (existsSync(join(stateDir(), 'server.json'))) {
        const pid = record().pid;
        servers.push(pid);
        // the server this run started (or adopted) is stopped with it
        await eventually(async () => !alive(pid), 30_000).catch(() => {
          throw new Error(`${m.signal} ${m.when}: server pid ${pid} still running\n${run.output()}`);
        });
      }
    }
    const last = startRun();
    const r = await last.p;
    expect([r.exitCode, last.output()]).toEqual([0, expect.stringMatching(/of 4\n/)]);
    expect(countDone(dataset)).toBe(4);
    console.log(`signals: ${seen.join('; ')}`);
  }, 400_000);

  it('`fetchquant server` stops its server on a signal, adopts an orphan, and names the owner of a live one', async () => {
    const out = mkdtempSync(join(root, 'srv-'));
    const port = String(await freePort());
    const serverCmd = () => {
      const p = execa('node', [CLI, 'server', '--output-dir', out, '--port', port], { env: { TEMPORAL_ADDRESS: '' }, reject: false, all: true, forceKillAfterDelay: false });
      procs.push(p);
      let text = '';
      p.all!.on('data', (d: Buffer) => (text += d.toString()));
      return { p, output: () => text };
    };
    const rec = () => JSON.parse(readFileSync(join(out, '.temporal', 'server.json'), 'utf8')) as { pid: number; ownerPid: number };
    const a = serverCmd();
    await eventually(async () => /Ctrl-C stops it/.test(a.output()), 60_000, 50);
    const first = rec();
    servers.push(first.pid);
    expect(first.ownerPid).toBe(a.p.pid);

    // a second `server` leaves it to its owner and says how to stop it
    const b = serverCmd();
    const rb = await b.p;
    expect([rb.exitCode, rb.all]).toEqual([0, expect.stringContaining(`already running`)]);
    expect(rb.all).toContain(`stop it with Ctrl-C there, or kill ${a.p.pid}`);
    expect(alive(first.pid)).toBe(true);

    // the owner killed with -9: its server is an orphan until the next `server` adopts it
    a.p.kill('SIGKILL');
    await a.p;
    expect(alive(first.pid)).toBe(true);
    const c = serverCmd();
    await eventually(async () => /Ctrl-C stops it/.test(c.output()), 60_000, 50);
    expect(c.output()).toContain(`adopted (pid ${first.pid}; the fetchquant process that started it, pid ${a.p.pid}, is gone)`);
    c.p.kill('SIGINT');
    const rc = await c.p;
    expect([rc.exitCode, rc.all]).toEqual([130, expect.stringContaining('Temporal dev server stopped')]);
    expect(alive(first.pid)).toBe(false);
  }, 200_000);

  it('a damaged state file: exit 3 saying what happened and what to do; moved aside, published results are skipped', async () => {
    expect(countDone(dataset)).toBe(4);
    const db = join(stateDir(), 'temporal.db');
    for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
    writeFileSync(db, Buffer.alloc(64 * 1024, 0x5a)); // not a database any more
    const broken = startRun();
    const r = await broken.p;
    expect(r.exitCode).toBe(3);
    expect(broken.output()).toContain(`cannot read its state file ${db}: it is damaged or unreadable (SQLite: "file is not a database")`);
    expect(broken.output()).toContain(`Move it aside (mv ${db} ${db}.damaged`);
    expect(broken.output()).toMatch(/samples already published \(abundance \+ provenance\) are kept and skipped/);
    expect(broken.output()).not.toMatch(/at .*\.js:\d+/); // a message, not a stack trace
    renameSync(db, `${db}.damaged`);
    const again = startRun();
    const r2 = await again.p;
    expect([r2.exitCode, again.output()]).toEqual([0, expect.stringMatching(/0 done, 4 skipped, 0 failed of 4/)]);
  }, 200_000);
});
