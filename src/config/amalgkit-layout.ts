/**
 * What amalgkit merge and sanity read, written where they look (docs/amalgkit.md):
 * - results under `<steps.quant.out_dir>/quant/<RUN>/<RUN>_abundance.tsv` (amalgkit quant --out_dir);
 *   results of older fetchquant releases, written to `<steps.quant.out_dir>/<RUN>/`, are moved there;
 * - the sample table `<steps.quant.out_dir>/metadata/metadata.tsv` (their `--metadata inferred`), with the
 *   columns merge needs (run, scientific_name, exclusion) and those sanity and quant read. A table fetchquant
 *   did not write is never replaced: a marker file beside it holds the digest of the table fetchquant wrote.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { joinPath } from '../ids.js';
import type { RunMeta } from '../types.js';

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Moves finished results from `<outDir>/<RUN>/` to `<quantDir>/<RUN>/`; returns the runs moved. */
export async function moveOldLayout(outDir: string, quantDir: string, runs: RunMeta[]): Promise<string[]> {
  const present = new Set(await readdir(outDir).catch(() => [] as string[]));
  const moved: string[] = [];
  for (const { run } of runs) {
    if (!present.has(run)) continue;
    const old = joinPath(outDir, run);
    const done = (dir: string) => Promise.all([exists(joinPath(dir, `${run}_abundance.tsv`)), exists(joinPath(dir, `${run}_fetchquant.json`))]).then(([a, b]) => a && b);
    if (!(await done(old))) continue;
    const target = joinPath(quantDir, run);
    if (await exists(target)) continue;
    await mkdir(quantDir, { recursive: true });
    await rename(old, target);
    moved.push(run);
  }
  return moved;
}

export const METADATA_COLUMNS = ['run', 'scientific_name', 'lib_layout', 'nominal_length', 'total_spots', 'exclusion', 'is_sampled'];

export function metadataTable(runs: RunMeta[], speciesName: string): string {
  const rows = runs.map((r) =>
    [r.run, speciesName, r.layout ?? '', r.nominalLength ?? '', r.spots ?? '', 'no', 'yes'].join('\t'),
  );
  return [METADATA_COLUMNS.join('\t'), ...rows, ''].join('\n');
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Writes the species' table unless a table fetchquant did not write is there. Returns what happened, for a
 * note: 'written', 'unchanged' or 'kept' (a user's own table).
 */
export async function writeMetadataTable(path: string, runs: RunMeta[], speciesName: string): Promise<'written' | 'unchanged' | 'kept'> {
  const marker = `${path}.fetchquant-sha256`;
  const text = metadataTable(runs, speciesName);
  const current = await readFile(path, 'utf8').catch(() => null);
  if (current !== null) {
    const ours = (await readFile(marker, 'utf8').catch(() => '')).trim();
    if (ours !== sha(current)) return 'kept';
    if (current === text) return 'unchanged';
  }
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
  // after the table: a crash in between leaves a table without our digest, which is then kept, never replaced
  await writeFile(marker, `${sha(text)}\n`);
  return 'written';
}
