/**
 * convertSra: .sra -> <RUN>.fastq.gz (single) or <RUN>_1/_2.fastq.gz (paired), inside the run's dir.
 * Order matters for retries and crashes:
 *  1. vdb-validate first: fasterq-dump converts a damaged .sra with rc 0 and altered reads. A bad .sra is
 *     deleted so the next download fetches it again instead of resuming the damaged bytes.
 *  2. fasterq-dump --split-3 with its temp dir in <runDir>/tmp (the disk reserved for this run).
 *  3. gzip each kept file through a temp name; only then delete plain FASTQ, tmp and, last, the .sra.
 * So a final .fastq.gz on disk is always complete, and an attempt that finds the .sra gone but the
 * outputs present (a crash after step 3) returns them instead of failing.
 */
import { readdir, rm, mkdir, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { FailureType } from '../failures.js';
import { classifySplit, fasterqDump } from '../tools/fasterq-dump.js';
import { cachedHostCores, decideQuantThreads } from '../cores.js';
import { countFastqPlain, gzipFile } from '../tools/fastq.js';
import { toToolFailure } from '../tools/process.js';
import { vdbValidate } from '../tools/vdb-validate.js';
import type { Layout } from '../types.js';
import type { Activities } from './contract.js';
import { activityHooks, withHeartbeat } from './heartbeat.js';

const exists = (p: string) => stat(p).then(() => true, () => false);
const invalid = (message: string) => ApplicationFailure.create({ type: FailureType.InvalidInput, message, nonRetryable: true });

/** Outputs of a previous attempt that completed (all .gz present), or null. */
async function finishedOutputs(run: string, runDir: string): Promise<{ files: string[]; layout: Layout } | null> {
  const paired = [join(runDir, `${run}_1.fastq.gz`), join(runDir, `${run}_2.fastq.gz`)];
  if ((await exists(paired[0]!)) && (await exists(paired[1]!))) return { files: paired, layout: 'paired' };
  const single = join(runDir, `${run}.fastq.gz`);
  if (await exists(single)) return { files: [single], layout: 'single' };
  return null;
}

export function createConvertActivities(): Pick<Activities, 'convertSra'> {
  return {
    async convertSra({ run, sraPath, runDir, threads, timeoutSec }) {
      if (!RUN_ACCESSION.test(run)) throw invalid(`invalid run accession ${JSON.stringify(run)}`);
      if (!isAbsolute(runDir) || runDir.split('/').includes('..')) throw invalid(`run ${run}: runDir must be absolute without '..' (got ${runDir})`);
      if (sraPath !== join(runDir, `${run}.sra`)) throw invalid(`run ${run}: expected the .sra at ${join(runDir, `${run}.sra`)}, got ${sraPath}`);
      const hooks = activityHooks();
      const tool = { timeoutSec, signal: hooks.signal, onHeartbeat: () => hooks.heartbeat() };

      if (!(await exists(sraPath))) {
        const done = await finishedOutputs(run, runDir);
        if (done) return done;
        throw ApplicationFailure.create({
          type: FailureType.ChecksumMismatch,
          message: `run ${run}: ${sraPath} is missing (removed after a failed validation?) and no converted reads are there; download it again`,
        });
      }

      try {
        // Outputs beside a present .sra are from an older conversion (or an older download): never reuse them.
        const stale = (await readdir(runDir)).filter((n) => n.startsWith(run) && /\.fastq(\.gz)?(\.part)?$/.test(n));
        await Promise.all(stale.map((n) => rm(join(runDir, n), { force: true })));
        const v = await vdbValidate(sraPath, tool);
        if (!v.consistent) {
          await rm(sraPath, { force: true });
          throw ApplicationFailure.create({
            type: FailureType.ChecksumMismatch,
            message: `run ${run}: vdb-validate ${sraPath} found bad data (exit ${v.exitCode}: ${v.detail}); deleted it so the next attempt downloads it again`,
          });
        }
        const tmpDir = join(runDir, 'tmp');
        await rm(tmpDir, { recursive: true, force: true });
        await mkdir(tmpDir, { recursive: true });
        await fasterqDump({ sraPath, outDir: runDir, tmpDir, threads: threads ?? decideQuantThreads(cachedHostCores(), {}).kallistoThreads }, tool);

        const split = classifySplit(run, await readdir(runDir));
        if (!split) {
          throw ApplicationFailure.create({
            type: FailureType.ToolFailed,
            message: `run ${run}: fasterq-dump --split-3 exited 0 but wrote neither ${run}.fastq nor ${run}_1.fastq + ${run}_2.fastq into ${runDir}`,
          });
        }
        const files = split.keep.map((n) => join(runDir, `${n}.gz`));
        // A paired run's unpaired spots land in RUN.fastq: counted (the run's spots include them), not kept.
        const unpairedReads = split.layout === 'paired' && split.discard.length > 0 ? await countFastqPlain(join(runDir, split.discard[0]!), hooks.signal) : undefined;
        await withHeartbeat(hooks, () => Promise.all(split.keep.map((n) => gzipFile(join(runDir, n), join(runDir, `${n}.gz`), { signal: hooks.signal }))));
        await Promise.all([...split.keep, ...split.discard].map((n) => rm(join(runDir, n), { force: true })));
        await rm(tmpDir, { recursive: true, force: true });
        // The .sra goes last: until here a crash leaves it for the retry to convert again.
        await rm(sraPath, { force: true });
        return { files, layout: split.layout, ...(unpairedReads !== undefined ? { unpairedReads } : {}) };
      } catch (err) {
        throw toToolFailure(err, `run ${run}: converting ${sraPath}`);
      }
    },
  };
}
