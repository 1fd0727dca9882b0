/**
 * Runs the real CLI (`node dist/src/cli.js run …`) on a scenario against a Temporal server the bench
 * started, polling the reads dirs; optionally kills it with SIGKILL at given moments and starts the same
 * command again (what a user or systemd does), which attaches to the running batch.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Mirror } from '../../src/mirror/server.js';
import { pollDisk, snapshot, type DiskPeaks } from './disk-poll.js';
import type { Scenario } from './workload.js';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface KillRecord {
  /** seconds after the first start */
  atSec: number;
  /** samples done (published) when it was due */
  samplesDone: number;
  /** downloads in progress (`.part` files) and their bytes on disk at the kill */
  partFiles: number;
  partBytes: number;
  /** `<run>/<file>.part` names, to look up the whole files' sizes */
  parts: string[];
  /** reads on disk at the kill (all runs) */
  readsBytes: number;
  /** file bytes the mirror had served before the kill */
  fileBytesServedBefore: number;
}

export interface FetchquantRun {
  makespanSec: number;
  /** first start -> the CLI printing `batch … running` (server connect, worker start, batch start) */
  startupSec: number | null;
  /** every start's seconds to `batch … running` */
  startupsSec: number[];
  exitCode: number | null;
  starts: number;
  kills: KillRecord[];
  disk: DiskPeaks;
  startedAt: number;
  endedAt: number;
  logFile: string;
}

/** Bytes the mirror served from data files (ENA fastq, .sra), not API answers. */
export function fileBytesServed(m: Mirror): number {
  return Object.entries(m.stats().byPath)
    .filter(([p]) => p.startsWith('/vol1/') || p.startsWith('/sra/'))
    .reduce((n, [, v]) => n + v.bytes, 0);
}

/** Samples published so far: a quant dir's entries, less the hidden `.<RUN>.tmp` work dirs. */
async function doneCount(sc: Scenario): Promise<number> {
  let n = 0;
  for (const sp of sc.species) n += (await readdir(sp.quantDir).catch(() => [] as string[])).filter((x) => !x.startsWith('.')).length;
  return n;
}

export async function runFetchquant(o: {
  scenario: Scenario;
  mirror: Mirror;
  address: string;
  namespace: string;
  batchId: string;
  threads: number;
  hostId: string;
  extraFlags?: string[];
  /** kill -9 the CLI (worker) once this many samples are done (published), one kill per entry */
  killAfterDone?: number[];
  restartDelayMs?: number;
  log: (l: string) => void;
}): Promise<FetchquantRun> {
  const { scenario, mirror } = o;
  const args = [
    CLI, 'run',
    '--config-dir', scenario.configDir,
    '--output-dir', join(scenario.dir, 'out'),
    '--batch-id', o.batchId,
    '--total-threads', String(o.threads),
    '--ena-portal-url', mirror.enaPortalUrl,
    '--sra-locate-url', mirror.sraLocateUrl,
    '--ena-file-scheme', mirror.enaFileScheme,
    ...(o.extraFlags ?? []),
  ];
  const env = { ...process.env, TEMPORAL_ADDRESS: o.address, TEMPORAL_NAMESPACE: o.namespace, FETCHQUANT_HOST_ID: o.hostId };
  const logFile = join(scenario.dir, 'fetchquant.log');
  const logStream = createWriteStream(logFile);
  const readsDirs = () => scenario.species.map((s) => join(s.readsDir, 'getfastq'));
  const poll = pollDisk(readsDirs);
  const startedAt = Date.now();
  let runningAt: number | null = null;
  const startupsSec: number[] = [];
  let starts = 0;

  const start = (): { child: ChildProcess; exited: Promise<number | null> } => {
    starts++;
    const t0 = Date.now();
    let seen = false;
    // FQ_BENCH_NODE_FLAGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) profiles the CLI; NODE_OPTIONS refuses --cpu-prof.
    const nodeFlags = (process.env.FQ_BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
    const child = spawn('node', [...nodeFlags, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      logStream.write(d);
      buf += d.toString();
      if (!seen && /batch \S+ running/.test(buf)) {
        seen = true;
        runningAt ??= Date.now();
        startupsSec.push((Date.now() - t0) / 1000);
      }
      buf = buf.slice(-200);
    });
    child.stderr!.on('data', (d: Buffer) => logStream.write(d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, exited };
  };

  let cur = start();
  const kills: KillRecord[] = [];
  for (const due of [...(o.killAfterDone ?? [])].sort((a, b) => a - b)) {
    let ended = false;
    void cur.exited.then(() => (ended = true));
    while (!ended && (await doneCount(scenario)) < due) await new Promise((r) => setTimeout(r, 200));
    if (ended) break; // the batch ended before this kill was due
    const snap = await snapshot(readsDirs());
    const rec: KillRecord = {
      atSec: (Date.now() - startedAt) / 1000,
      samplesDone: due,
      partFiles: snap.partFiles,
      partBytes: snap.partBytes,
      parts: [...snap.parts.keys()],
      readsBytes: snap.totalBytes,
      fileBytesServedBefore: fileBytesServed(mirror),
    };
    cur.child.kill('SIGKILL');
    await cur.exited;
    kills.push(rec);
    o.log(`  kill -9 at ${rec.atSec.toFixed(1)} s: ${rec.partFiles} downloads in progress (${(rec.partBytes / 1e6).toFixed(1)} MB on disk)`);
    await new Promise((r) => setTimeout(r, o.restartDelayMs ?? 1000));
    cur = start();
  }
  const exitCode = await cur.exited;
  const endedAt = Date.now();
  const disk = await poll.stop();
  await new Promise<void>((r) => logStream.end(() => r()));
  return {
    makespanSec: (endedAt - startedAt) / 1000,
    startupSec: runningAt === null ? null : (runningAt - startedAt) / 1000,
    startupsSec,
    exitCode,
    starts,
    kills,
    disk,
    startedAt,
    endedAt,
    logFile,
  };
}
