/**
 * Makes a small but real .sra from plain FASTQ with the sra-toolkit's own loader, so the SRA path of
 * the product (md5, vdb-validate, fasterq-dump --split-3) runs against the genuine format.
 */
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { RUN_ACCESSION } from '../config/schema.js';
import { fileInfo } from './simulate.js';
import type { SyntheticFile } from './types.js';

/** for the few-MB runs of tests; bench/b5/dataset.ts gives 100+ MB runs longer */
const TOOL_TIMEOUT_MS = 60_000;

/**
 * latf-load pairs mates by name and rejects the same name twice ("Duplicate read name"), so paired
 * inputs get `/1` and `/2` suffixes in a temporary copy; fasterq-dump gives back `<RUN>.<n>` names.
 */
async function withMateSuffix(src: string, dest: string, mate: 1 | 2): Promise<void> {
  const lines = (await readFile(src, 'utf8')).split('\n');
  for (let i = 0; i < lines.length; i += 4) {
    const head = lines[i];
    if (head && head.startsWith('@')) lines[i] = `${head.split(/\s/)[0]}/${mate}`;
  }
  await writeFile(dest, lines.join('\n'));
}

/**
 * `unpaired`: plain FASTQ of a paired run's reads without a mate. They become one-read spots of the same
 * run, as in the real archive, so fasterq-dump --split-3 writes them to RUN.fastq beside the mates.
 */
export async function makeSra(run: string, plainFastq: string[], outPath: string, unpaired?: string, opts: { timeoutMs?: number } = {}): Promise<SyntheticFile> {
  const timeout = opts.timeoutMs ?? TOOL_TIMEOUT_MS;
  if (!RUN_ACCESSION.test(run)) throw new Error(`makeSra: invalid run accession ${JSON.stringify(run)}`);
  if (plainFastq.length !== 1 && plainFastq.length !== 2) throw new Error(`makeSra ${run}: need 1 or 2 FASTQ files, got ${plainFastq.length}`);
  await mkdir(dirname(outPath), { recursive: true });
  // Temp DB next to the output: same disk, and removed whatever happens.
  const tmp = await mkdtemp(join(dirname(outPath), `.latf-${run}-`));
  try {
    let inputs = plainFastq;
    if (plainFastq.length === 2) {
      inputs = [join(tmp, 'r1.fastq'), join(tmp, 'r2.fastq')];
      await withMateSuffix(plainFastq[0] as string, inputs[0] as string, 1);
      await withMateSuffix(plainFastq[1] as string, inputs[1] as string, 2);
      if (unpaired) {
        // Appended to the first mate's file under their own names: latf-load makes them spots of one read.
        const extra = join(tmp, 'u.fastq');
        await withMateSuffix(unpaired, extra, 1);
        const r1 = await readFile(inputs[0] as string, 'utf8');
        await writeFile(inputs[0] as string, (r1.endsWith('\n') ? r1 : `${r1}\n`) + (await readFile(extra, 'utf8')));
      }
    }
    const db = join(tmp, run);
    // latf-load prints a harmless "KQueuePop failed" on stderr; only its exit code matters. It must be
    // checked: kar happily archives the half-written DB of a failed load into a .sra that validates.
    const load = await execa('latf-load', ['--platform', 'ILLUMINA', '--quality', 'PHRED_33', '-o', db, ...inputs], {
      cwd: tmp,
      reject: false,
      timeout,
    });
    if (load.exitCode !== 0) throw new Error(`makeSra ${run}: latf-load exited ${load.exitCode}: ${String(load.stderr).slice(-500)}`);
    const kar = await execa('kar', ['--create', outPath, '-d', db, '-f'], { cwd: tmp, reject: false, timeout });
    if (kar.exitCode !== 0) throw new Error(`makeSra ${run}: kar exited ${kar.exitCode}: ${String(kar.stderr).slice(-500)}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return fileInfo(outPath, 0);
}
