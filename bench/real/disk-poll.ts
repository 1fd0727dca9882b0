/**
 * Bytes of reads on disk, polled: each parent dir holds one dir per run (fetchquant's
 * `<reads dir>/getfastq/<RUN>/`, the baseline's `<reads>/<RUN>/`). Peak total, per-run peaks (the
 * largest sample's real footprint: an .sra plus its converted FASTQ), and snapshots for the kill moments.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isSharedPartName } from '../../src/activities/part-file.js';

export interface DiskSnapshot {
  at: number;
  totalBytes: number;
  /** bytes in `*.part` files: downloads in progress */
  partBytes: number;
  partFiles: number;
  /** `<run>/<file>.part` -> bytes */
  parts: Map<string, number>;
  runDirs: number;
  perRun: Map<string, number>;
}

type Acc = { bytes: number; partBytes: number; partFiles: number; parts: Map<string, number>; run: string; seen: Set<string> };

async function sizeUnder(path: string, acc: Acc): Promise<void> {
  let entries;
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return; // removed while we looked: the sample finished
  }
  await Promise.all(
    entries.map(async (e) => {
      const p = join(path, e.name);
      if (e.isDirectory()) return sizeUnder(p, acc);
      const st = await stat(p).catch(() => null);
      if (!st) return;
      // A download in progress has two names, its own and `<name>.part` (src/activities/part-file.ts): counted once.
      const id = `${st.dev}:${st.ino}`;
      if (!acc.seen.has(id)) acc.bytes += st.size;
      acc.seen.add(id);
      if (isSharedPartName(e.name)) {
        acc.partBytes += st.size;
        acc.partFiles++;
        acc.parts.set(`${acc.run}/${e.name}`, st.size);
      }
    }),
  );
}

export async function snapshot(parents: string[]): Promise<DiskSnapshot> {
  const snap: DiskSnapshot = { at: Date.now(), totalBytes: 0, partBytes: 0, partFiles: 0, parts: new Map(), runDirs: 0, perRun: new Map() };
  for (const parent of parents) {
    let runs: string[];
    try {
      runs = (await readdir(parent, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      continue;
    }
    await Promise.all(
      runs.map(async (run) => {
        const acc: Acc = { bytes: 0, partBytes: 0, partFiles: 0, parts: snap.parts, run, seen: new Set() };
        await sizeUnder(join(parent, run), acc);
        snap.runDirs++;
        snap.totalBytes += acc.bytes;
        snap.partBytes += acc.partBytes;
        snap.partFiles += acc.partFiles;
        snap.perRun.set(run, acc.bytes);
      }),
    );
  }
  return snap;
}

export interface DiskPeaks {
  polls: number;
  peakBytes: number;
  peakAtMs: number;
  peakRunDirs: number;
  /** the largest footprint any one run reached */
  largestRunBytes: number;
  largestRun: string | null;
}

/** Polls every `everyMs` until stopped; parents are re-read every time (dirs appear as species start). */
export function pollDisk(parents: () => string[], everyMs = 150): { stop(): Promise<DiskPeaks> } {
  const peaks: DiskPeaks = { polls: 0, peakBytes: 0, peakAtMs: 0, peakRunDirs: 0, largestRunBytes: 0, largestRun: null };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const s = await snapshot(parents());
      peaks.polls++;
      if (s.totalBytes > peaks.peakBytes) Object.assign(peaks, { peakBytes: s.totalBytes, peakAtMs: s.at, peakRunDirs: s.runDirs });
      for (const [run, bytes] of s.perRun) if (bytes > peaks.largestRunBytes) Object.assign(peaks, { largestRunBytes: bytes, largestRun: run });
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return peaks;
    },
  };
}
