/**
 * What the kill tests (test/e2e/crash.test.ts, test/e2e/chaos.test.ts) look at while they kill a worker
 * again and again: the files of the dataset as they land on disk, the worker's tool processes, and a
 * debug trace.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../../src/mirror/fixtures.js';
import { eachRun, runDirOf } from './e2e.js';

/** `[tag hh:mm:ss.mmm] line` on stderr with FQ_DEBUG set; nothing otherwise. */
export function debugTrace(tag: string): (line: string) => void {
  return (line) => {
    if (process.env.FQ_DEBUG) process.stderr.write(`[${tag} ${new Date().toISOString().slice(11, 23)}] ${line}\n`);
  };
}

/** Size of a file, null when there is none. */
export function sizeOf(p: string): number | null {
  try {
    return statSync(p).size;
  } catch {
    return null;
  }
}

/** One downloadable file of the dataset as the worker sees it: where it lands, the URL path the mirror counts it under. */
export interface Tracked {
  run: string;
  local: string;
  urlPath: string;
  bytes: number;
}

export function trackedFiles(d: Dataset): Tracked[] {
  const out: Tracked[] = [];
  for (const { sp, r } of eachRun(d)) {
    const dir = runDirOf(d, sp, r.run);
    if (r.sraOnly) out.push({ run: r.run, local: join(dir, `${r.run}.sra`), urlPath: `/sra/${r.run}/${r.run}`, bytes: r.sra.bytes });
    else for (const f of r.fastq) out.push({ run: r.run, local: join(dir, f.name), urlPath: `/vol1/fastq/${r.run.slice(0, 6)}/${r.run}/${f.name}`, bytes: f.bytes });
  }
  return out;
}

/** Direct children of pid, from /proc (the worker's tools run as its direct children, in their own process groups). */
export function childrenOf(pid: number): { pid: number; name: string }[] {
  const out: { pid: number; name: string }[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(readFileSync(`/proc/${e}/stat`, 'utf8'));
      if (m && Number(m[2]) === pid) out.push({ pid: Number(e), name: m[1]! });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
