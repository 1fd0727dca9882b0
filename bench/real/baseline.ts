/** Runs bench/baseline.sh (the `xargs -P` loop) over a scenario against the mirror and reads its timestamps. */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { enaRunDir } from '../../src/mirror/paths.js';
import type { Dataset } from '../../src/mirror/types.js';
import { pollDisk, type DiskPeaks } from './disk-poll.js';
import { indexPathOf, neededFiles, type Scenario } from './workload.js';

/** dist/bench/real/baseline.js -> <package>/bench/baseline.sh (the script is not compiled). */
export const BASELINE_SH = fileURLToPath(new URL('../../../bench/baseline.sh', import.meta.url));

export interface BaselineRun {
  makespanSec: number;
  exitCode: number;
  /** runs without an abundance.tsv */
  failed: string[];
  disk: DiskPeaks;
  /** per run, epoch ms of each event */
  events: Map<string, Record<string, number>>;
  startedAt: number;
  endedAt: number;
}

const SAFE = /^[A-Za-z0-9._\/:-]+$/;

/**
 * `cpuLog` (B5): each tool's CPU goes there (baseline.sh's CPU_LOG), and the whole script's children's CPU
 * (bash `times`, exact) to `<cpuLog>.total`.
 */
export async function runBaseline(o: { dataset: Dataset; scenario: Scenario; baseUrl: string; threads: number; kallistoThreads: number; fragmentSd: number; cpuLog?: string }): Promise<BaselineRun> {
  const { scenario } = o;
  const readsDir = join(scenario.dir, 'reads');
  const perSpecies: string[][] = [];
  for (const [i, sp] of scenario.species.entries()) {
    const lines: string[] = [];
    perSpecies.push(lines);
    const index = indexPathOf(o.dataset, o.dataset.species[i]!.name);
    await mkdir(sp.quantDir, { recursive: true });
    for (const r of sp.runs) {
      const urls = r.sraOnly ? [`${o.baseUrl}/sra/${r.run}/${r.run}`] : neededFiles(r).map((f) => `${o.baseUrl}/${enaRunDir(r.run)}/${f.name}`);
      const fields = [r.run, r.layout, r.sraOnly ? 'sra' : 'ena', index, sp.quantDir, String(o.kallistoThreads), String(r.nominalLength), String(o.fragmentSd), ...urls];
      // xargs splits on blanks: a path with one would silently shift every field.
      for (const f of fields) if (!SAFE.test(f)) throw new Error(`baseline: unsafe field ${JSON.stringify(f)}`);
      lines.push(fields.join(' '));
    }
  }
  // Interleaved over species, as fetchquant's allocation spreads slots over species.
  const lines: string[] = [];
  for (let i = 0; lines.length < perSpecies.flat().length; i++) for (const l of perSpecies) if (l[i]) lines.push(l[i]!);
  const jobsFile = join(scenario.dir, 'jobs.txt');
  const eventsFile = join(scenario.dir, 'events.log');
  await mkdir(readsDir, { recursive: true });
  await writeFile(jobsFile, lines.join('\n') + '\n');
  await writeFile(eventsFile, '');

  const poll = pollDisk(() => [readsDir]);
  const startedAt = Date.now();
  const args = [BASELINE_SH, String(o.threads), jobsFile, readsDir, eventsFile];
  const r = o.cpuLog
    ? await execa('bash', ['-c', 'rc=0; bash "$0" "$@" || rc=$?; times > "$CPU_LOG.total"; exit $rc', ...args], { reject: false, env: { CPU_LOG: o.cpuLog } })
    : await execa('bash', args, { reject: false });
  const endedAt = Date.now();
  const disk = await poll.stop();

  const events = new Map<string, Record<string, number>>();
  for (const line of (await readFile(eventsFile, 'utf8')).split('\n')) {
    const [run, ev, ms] = line.split(' ');
    if (!run || !ev || !ms) continue;
    const rec = events.get(run) ?? {};
    rec[ev] = Number(ms);
    events.set(run, rec);
  }
  const failed = scenario.species.flatMap((sp) => sp.runs.filter((x) => !existsSync(join(sp.quantDir, x.run, 'abundance.tsv'))).map((x) => x.run));
  if (r.exitCode !== 0) process.stderr.write(`baseline exited ${r.exitCode}: ${String(r.stderr).slice(-1000)}\n`);
  return { makespanSec: (endedAt - startedAt) / 1000, exitCode: r.exitCode ?? -1, failed, disk, events, startedAt, endedAt };
}
