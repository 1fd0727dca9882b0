/**
 * Issue 13 item 7, the proof: one batch on a Temporal dev server the test runs itself (SQLite state file,
 * as `run` embeds it) with a real `fetchquant worker` (real HTTP to the throttled mirror, kallisto,
 * fasterq-dump, real files). The worker is killed with -9 again and again at whatever moment comes (mid
 * download, convert, verify, quant, publish: each kill records what was running) and the server too, each
 * restarted on the same state file and port. At the end every sample is done exactly once, the bytes the
 * archive sent again are about the bytes in flight at the kills, and no tool is left running.
 * The chaos variant ([long]) adds ≥ 200 samples, random archive faults (src/mirror/faults.ts) and a disk
 * filler that pushes the reads disk below the floor and back.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { generateDataset, type Dataset, type SpeciesSpec } from '../../src/mirror/fixtures.js';
import type { FaultPlan, Fault } from '../../src/mirror/faults.js';
import { startMirror, type Mirror } from '../../src/mirror/server.js';
import { freePort, startEmbeddedServer, type EmbeddedServer } from '../../src/server/embedded.js';
import { resultThroughOutages } from '../../src/cli/run.js';
import type { BatchResult } from '../../src/workflows/batch.js';
import { Prng } from '../../src/mirror/prng.js';
import { eachRun, expectEverySampleDoneOnce, killHard, quantDirOf, startCliWorker, startMirrorBatch, type CliWorker } from '../helpers/e2e.js';
import { childrenOf, debugTrace, sizeOf, trackedFiles } from '../helpers/kills.js';

const LONG = Boolean(process.env.FETCHQUANT_LONG);
const debug = debugTrace('chaos');

/** Processes (name, pid, parent) whose command line mentions `needle`: the tools of this test's batch. */
function toolsUnder(needle: string): { pid: number; name: string }[] {
  const out: { pid: number; name: string }[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) (\S)/.exec(stat);
      if (m && m[2] !== 'Z' && ['kallisto', 'fasterq-dump', 'vdb-validate', 'fasterq-dump-orig'].some((t) => m[1]!.startsWith(t)) && cmd.includes(needle)) {
        out.push({ pid: Number(e), name: m[1]! });
      }
    } catch {
      // gone
    }
  }
  return out;
}

interface Variant {
  title: string;
  species: SpeciesSpec[];
  workerKills: number;
  serverKills: number;
  /** ms between kills, drawn uniformly */
  killEveryMs: [number, number];
  bandwidth: number;
  /** random archive faults on this fraction of runs */
  faultFraction: number;
  /** reads on a small tmpfs, filled below the floor now and then */
  diskFiller: boolean;
  timeoutMs: number;
}

function chaosSuite(v: Variant): void {
  describe(v.title, () => {
    let root: string;
    let dataset: Dataset;
    let mirror: Mirror;
    let server: EmbeddedServer;
    let worker: CliWorker | null = null;
    let connection: Connection;
    let client: Client;
    let mounted = false;
    const rng = new Prng(1313);

    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), 'fq-chaos-'));
      if (v.diskFiller) {
        // a disk of its own, so filling it does not starve the machine; skipped only if mounting is not permitted
        try {
          execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1536m', 'tmpfs', root], { stdio: 'pipe' });
          mounted = true;
        } catch (err) {
          console.warn(`disk filler off: cannot mount a tmpfs (${String((err as Error).message).trim()})`);
        }
      }
      dataset = await generateDataset({ root: join(root, 'data'), seed: 1313, species: v.species });
      const faults: FaultPlan = {};
      if (v.faultFraction > 0) {
        const kinds: (() => Fault)[] = [
          () => ({ kind: 'status', status: 503, times: 1 + rng.int(2) }),
          () => ({ kind: 'reset', afterBytes: 10_000 + rng.int(50_000), times: 1 }),
          () => ({ kind: 'truncate', bytes: 5_000 + rng.int(20_000), times: 1 }),
          () => ({ kind: 'wrong-bytes', times: 1 }),
          () => ({ kind: 'ignore-range', times: 1 }),
          () => ({ kind: 'html', times: 1 }),
          () => ({ kind: 'status', status: 500, times: 1, target: 'api' }),
        ];
        for (const { r } of eachRun(dataset)) if (rng.next() < v.faultFraction) faults[r.run] = [kinds[rng.int(kinds.length)]!()];
      }
      mirror = await startMirror({ dataset, bandwidthBytesPerSec: v.bandwidth, faults });
      server = await startEmbeddedServer({ stateDir: mkdtempSync(join(tmpdir(), 'fq-chaos-state-')), port: await freePort(), headless: true });
      connection = await Connection.connect({ address: server.address });
      client = new Client({ connection, namespace: server.namespace });
    }, 600_000);

    afterAll(async () => {
      if (worker) await killHard(worker);
      await connection?.close();
      await server?.stop();
      await mirror?.stop();
      if (mounted) execFileSync('umount', ['-l', root]);
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it('every sample done exactly once, refetched bytes about the bytes in flight, no tool left', async () => {
      const env = { TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: server.namespace };
      const runs = eachRun(dataset);
      const files = trackedFiles(dataset);
      const done = (run: string) => {
        const e = runs.find((x) => x.r.run === run)!;
        return existsSync(join(quantDirOf(dataset, e.sp), run, `${run}_fetchquant.json`));
      };
      /** what a kill interrupts, all at once: growing .parts, tools, quant temp dirs (else the steps between them) */
      const momentNow = (w: CliWorker): string => {
        const kids = childrenOf(w.pid).map((c) => c.name);
        const now: string[] = [];
        if (files.some((f) => sizeOf(`${f.local}.part`) !== null)) now.push('download');
        if (kids.some((k) => k.startsWith('fasterq-dump') || k.startsWith('vdb-validate'))) now.push('convert');
        if (kids.some((k) => k.startsWith('kallisto'))) now.push('quant');
        else if (runs.some(({ sp, r }) => existsSync(join(quantDirOf(dataset, sp), `.${r.run}.tmp`)))) now.push('quant/publish');
        return now.length ? now.join('+') : 'verify/other';
      };
      const lostSoFar = new Map<string, number>();
      const inFlightNow = () => {
        const served = mirror.stats().byPath;
        let add = 0;
        for (const f of files) {
          const have = done(f.run) || sizeOf(f.local) === f.bytes ? f.bytes : (sizeOf(`${f.local}.part`) ?? 0);
          // converted .sra files are gone: count them whole once their sample moved past the download
          const sraGone = f.local.endsWith('.sra') && sizeOf(f.local) === null && sizeOf(`${f.local}.part`) === null && (served[f.urlPath]?.bytes ?? 0) >= f.bytes;
          const lost = Math.max(0, (served[f.urlPath]?.bytes ?? 0) - (sraGone ? f.bytes : have));
          add += Math.max(0, lost - (lostSoFar.get(f.urlPath) ?? 0));
          lostSoFar.set(f.urlPath, lost);
        }
        return add;
      };

      worker = await startCliWorker('chaos-host', env);
      const handle = await startMirrorBatch(client, 'chaos', dataset, mirror, {
        totalThreads: 3,
        maxRetries: v.faultFraction > 0 ? 4 : 0,
        stallTimeoutSec: 5,
        ...(mounted ? { minFreeGb: 0.3, diskWaitSec: 0.5 } : {}),
      });
      let finished = false;
      const result = resultThroughOutages(handle, () => undefined).finally(() => (finished = true));
      const started = Date.now();
      const kills: { sec: number; what: string; moment: string; bytesInFlight: number }[] = [];
      let fills = 0;
      let workerKills = 0;
      let serverKills = 0;
      const serverEvery = Math.max(1, Math.floor(v.workerKills / Math.max(1, v.serverKills)));
      // The next kill comes after a random wait, or sooner once the batch has done its share of samples for
      // that kill: kill i comes by the time i/(kills+2) of the samples are done, so every kill lands before the
      // batch ends however fast this machine runs it (session 13's CI: a faster download path let 200 samples
      // finish after 18 of 20 timed kills). A worker just started gets a moment to pick up work first.
      const doneCount = () => runs.filter(({ r }) => done(r.run)).length;
      const tick = async (): Promise<void> => {
        const waitMs = v.killEveryMs[0] + rng.int(v.killEveryMs[1] - v.killEveryMs[0]);
        const share = Math.floor(((workerKills + 1) * runs.length) / (v.workerKills + 2));
        const from = Date.now();
        for (;;) {
          await Promise.race([new Promise((r) => setTimeout(r, 250)), result.catch(() => undefined)]);
          const waited = Date.now() - from;
          if (finished || waited >= waitMs || (waited >= 2000 && doneCount() >= share)) return;
        }
      };
      while (!finished && (workerKills < v.workerKills || serverKills < v.serverKills)) {
        await tick();
        if (finished) break;
        if (mounted && rng.next() < 0.3) {
          // another process fills the reads disk below the floor for a few seconds
          const filler = join(root, 'filler.bin');
          const free = Number(execFileSync('df', ['-B1', '--output=avail', root], { encoding: 'utf8' }).trim().split('\n').pop());
          try {
            writeFileSync(filler, Buffer.alloc(Math.max(0, free - 200 * 1024 * 1024)));
          } catch {
            // full
          }
          fills++;
          setTimeout(() => rmSync(filler, { force: true }), 3000);
        }
        if (workerKills < v.workerKills) {
          const w = worker!;
          const moment = momentNow(w);
          w.proc.kill('SIGKILL');
          await w.proc;
          worker = null;
          await new Promise((r) => setTimeout(r, 300)); // the mirror sees the cut sockets
          workerKills++;
          kills.push({ sec: Math.round((Date.now() - started) / 1000), what: 'worker', moment, bytesInFlight: inFlightNow() });
          debug(`worker kill ${workerKills}: ${moment}`);
          if (serverKills < v.serverKills && workerKills % serverEvery === 0) {
            // the server too, while the worker is down or just back
            process.kill(server.pid, 'SIGKILL');
            await new Promise((r) => setTimeout(r, 200));
            server = await startEmbeddedServer(server.restartOptions);
            serverKills++;
            kills.push({ sec: Math.round((Date.now() - started) / 1000), what: 'server', moment: 'restarted on the same state file and port', bytesInFlight: 0 });
            debug(`server kill ${serverKills}`);
          }
          worker = await startCliWorker('chaos-host', env);
        }
      }
      expect([workerKills, serverKills]).toEqual([v.workerKills, v.serverKills]);
      const r = (await result) as BatchResult;
      const sec = (Date.now() - started) / 1000;
      expect(r.failures).toEqual([]);
      expect(r.totals).toEqual({ total: runs.length, done: runs.length, skipped: 0, failed: 0 });
      const provs = await expectEverySampleDoneOnce(client, dataset, 'chaos');

      // no tool left anywhere: neither the reaped orphans of the killed workers nor the last worker's
      await killHard(worker!);
      worker = null;
      expect(toolsUnder(dataset.outputDir)).toEqual([]);

      const stats = mirror.stats();
      const fileBytes = files.reduce((s, f) => s + f.bytes, 0);
      const served = files.reduce((s, f) => s + (stats.byPath[f.urlPath]?.bytes ?? 0), 0);
      const extra = served - fileBytes;
      const inFlight = kills.reduce((s, k) => s + k.bytesInFlight, 0);
      const figures = {
        samples: runs.length,
        workerKills,
        serverKills,
        // kills that caught each kind of step in flight (one kill may catch several)
        moments: kills.filter((k) => k.what === 'worker').flatMap((k) => k.moment.split('+')).reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {}),
        diskFills: fills,
        faultsFired: Object.values(stats.faultsFired).reduce((s, m) => s + Object.values(m).reduce((a, b) => a + b, 0), 0),
        datasetFileBytes: fileBytes,
        servedFileBytes: served,
        extra,
        bytesInFlightAtKills: inFlight,
        batchSec: Number(sec.toFixed(1)),
        // which files crossed the wire more than once (served / size), and runs taken from the other archive
        servedTwice: Object.fromEntries(files.filter((f) => (stats.byPath[f.urlPath]?.bytes ?? 0) > f.bytes).map((f) => [f.urlPath, Number(((stats.byPath[f.urlPath]?.bytes ?? 0) / f.bytes).toFixed(2))])),
        otherSource: Object.fromEntries(runs.filter(({ r }) => provs.get(r.run)!.source.source !== (r.sraOnly ? 'sra' : 'ena')).map(({ r }) => [r.run, provs.get(r.run)!.source.notes ?? []])),
      };
      console.log(`chaos figures: ${JSON.stringify(figures)}`);
      if (v.faultFraction === 0) {
        // without archive faults, what was sent again is what the kills cut in flight, plus what sockets held
        expect(extra).toBeLessThanOrEqual(inFlight + 64 * 1024 * v.workerKills);
      } else {
        // faults (wrong bytes, ignored ranges) cost whole files by design; the kills may not add more than in flight
        expect(extra).toBeLessThan(0.5 * fileBytes);
      }
    }, v.timeoutMs);
  });
}

(LONG ? chaosSuite : () => undefined)({
  title: '[long] proof: worker killed (-9) 20 times and the server 3 times during one 16-sample batch',
  species: [
    { name: 'Chaos alpha', runs: 8, pairedFraction: 0.5, sraOnlyFraction: 0.25, readsPerRun: 40_000 },
    { name: 'Chaos beta', runs: 8, pairedFraction: 0.5, sraOnlyFraction: 0.25, readsPerRun: 40_000 },
  ],
  workerKills: 20,
  serverKills: 3,
  killEveryMs: [6000, 10000],
  bandwidth: 150_000,
  faultFraction: 0,
  diskFiller: false,
  timeoutMs: 1_500_000,
});

(LONG ? chaosSuite : () => undefined)({
  title: '[long] chaos: 200 samples, random archive faults, worker and server kills, a disk filler',
  species: [
    { name: 'Chaos gamma', runs: 70, pairedFraction: 0.5, sraOnlyFraction: 0.15, readsPerRun: 4_000 },
    { name: 'Chaos delta', runs: 70, pairedFraction: 0.5, sraOnlyFraction: 0.15, readsPerRun: 4_000 },
    { name: 'Chaos epsilon', runs: 60, pairedFraction: 0.5, sraOnlyFraction: 0.15, readsPerRun: 4_000 },
  ],
  workerKills: 20,
  serverKills: 3,
  killEveryMs: [8000, 14000],
  bandwidth: 1_500_000,
  faultFraction: 0.2,
  diskFiller: true,
  timeoutMs: 2_400_000,
});

// npm test: the same proof, smaller
chaosSuite({
  title: 'worker killed (-9) 5 times and the server once during one 6-sample batch',
  species: [{ name: 'Chaos zeta', runs: 6, pairedFraction: 0.5, sraOnlyFraction: 0.34, readsPerRun: 30_000 }],
  workerKills: 5,
  serverKills: 1,
  killEveryMs: [5000, 8000],
  bandwidth: 300_000,
  faultFraction: 0,
  diskFiller: false,
  timeoutMs: 400_000,
});
