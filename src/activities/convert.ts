/**
 * convertSra: .sra -> <RUN>.fastq (single) or <RUN>_1/_2.fastq (paired), inside the run's dir; gzipped
 * (.fastq.gz) only when the disk needs the room. Reads deleted after quant (`fastaReads`, the default unless a
 * config keeps its reads) come out as FASTA instead (<RUN>.fasta, <RUN>_1/_2.fasta): no qualities, which
 * kallisto never reads (src/tools/fasterq-dump.ts). Order matters for retries and crashes:
 *  1. vdb-validate first: fasterq-dump converts a damaged .sra with rc 0 and altered reads. A bad .sra is
 *     deleted so the next download fetches it again instead of resuming the damaged bytes.
 *  2. fasterq-dump --split-3 into a directory of this attempt's own, <runDir>/.convert-<pid>-<random>, temp
 *     files inside it (the disk reserved for this run). Never into the run dir itself: an older attempt may
 *     still run (a host lost to the server keeps converting; a worker killed -9 leaves its fasterq-dump
 *     behind), and fasterq-dump ends by renaming its first part onto the output name and appending the rest
 *     to it by path, so a late one replaced the reads this attempt had checked with a file still growing
 *     (kallisto then read 13,830 of 15,000 reads in test/cluster/cluster.test.ts). Older attempts' dirs are
 *     removed first; their tools then fail on a missing dir.
 *  3. One pass over each kept file counts its records (whole records or it fails). kallisto reads plain
 *     FASTQ, so the files stay plain when admission allows it: the run holds a reservation on this worker
 *     (src/activities/disk.ts DiskLedger), the FASTQ fits in it, and free space less the other runs'
 *     reservations is still above the floor. Otherwise each file is gzipped (level 1) through a temp name,
 *     and the log says why. Gzipping only to gunzip again cost ~11 CPU-s per GB of FASTQ (issue 15).
 *  4. A check record per file (src/tools/fastq.ts) carries the count to verifyReads; each file is renamed
 *     into the run dir (the rename publishes it whole), then the attempt's dir and, last, the .sra are deleted.
 * So final outputs beside a missing .sra are always complete, and an attempt that finds the .sra gone but
 * the outputs present (a crash after step 4) returns them instead of failing, with the unpaired count that
 * the first mate's record keeps (without it a 3-file run's whole reads failed the spot count as truncated).
 */
import { readdir, rename, rm, mkdir, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, isAbsolute, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { FailureType } from '../failures.js';
import { classifySplit, fasterqDump, splitExt } from '../tools/fasterq-dump.js';
import { cachedHostCores, decideQuantThreads } from '../cores.js';
import { countFastq, countFastqPlain, gzipFile, readCheckRecord, writeCheckRecord } from '../tools/fastq.js';
import { verifiedInStep } from './reads.js';
import { toToolFailure } from '../tools/process.js';
import { vdbValidate } from '../tools/vdb-validate.js';
import type { Layout } from '../types.js';
import type { Activities } from './contract.js';
import { freeBytesOf, type DiskLedger } from './disk.js';
import { activityHooks, logInfo, withHeartbeat } from './heartbeat.js';

const GB = 1e9;

/** This attempt's own working dir in the run dir: see step 2 above. */
export const CONVERT_DIR_PREFIX = '.convert-';
const isAttemptDir = (n: string) => n.startsWith(CONVERT_DIR_PREFIX) || n === 'tmp'; // 'tmp': the shared temp dir of older releases
/** Every attempt's dir in the run dir (their tools, if still running, fail on the missing dir). */
async function removeAttemptDirs(runDir: string): Promise<void> {
  await Promise.all((await readdir(runDir)).filter(isAttemptDir).map((n) => rm(join(runDir, n), { recursive: true, force: true })));
}

const exists = (p: string) => stat(p).then(() => true, () => false);
const invalid = (message: string) => ApplicationFailure.create({ type: FailureType.InvalidInput, message, nonRetryable: true });

/** What a finished conversion leaves: FASTQ or FASTA (fastaReads), plain or gzipped. */
const FINISHED_EXTS = ['.fastq', '.fastq.gz', '.fasta', '.fasta.gz'];

/** Outputs of a previous attempt that completed (plain or gzipped, the .sra already gone), or null. */
async function finishedOutputs(run: string, runDir: string): Promise<{ files: string[]; layout: Layout; unpairedReads?: number } | null> {
  for (const ext of FINISHED_EXTS) {
    const paired = [join(runDir, `${run}_1${ext}`), join(runDir, `${run}_2${ext}`)];
    if ((await exists(paired[0]!)) && (await exists(paired[1]!))) {
      // The unpaired count lives only in the first mate's record: without it the run's spots (pairs plus
      // unpaired) would not match and reads that are whole would be called truncated.
      const unpaired = (await readCheckRecord(paired[0]!))?.unpaired;
      return { files: paired, layout: 'paired', ...(Number.isInteger(unpaired) && unpaired! >= 0 ? { unpairedReads: unpaired } : {}) };
    }
  }
  for (const ext of FINISHED_EXTS) {
    const single = join(runDir, `${run}${ext}`);
    if (await exists(single)) return { files: [single], layout: 'single' };
  }
  return null;
}

export interface ConvertDeps {
  /** this worker's admissions: whether the run's reservation holds its plain FASTQ (absent: always gzip) */
  ledger?: DiskLedger;
  freeBytes?: (dir: string) => Promise<number>;
}

/**
 * Keeps the FASTQ plain (null) or says why it must be gzipped: only the disk decides, plain FASTQ must leave
 * it above the floor (gzip -1 costs ~7 CPU-s per GB and kallisto pays again to inflate it). Plain FASTQ bigger
 * than the run's reservation (~3x the .sra; real ratios vary with the qualities) is kept when the disk has
 * room, and the reservation in the ledger grows to it so later admissions count it.
 */
async function plainOrWhyGzip(run: string, runDir: string, plainBytes: number, deps: ConvertDeps): Promise<string | null> {
  const r = deps.ledger?.reservation(run);
  if (!deps.ledger || !r) return 'this worker holds no disk reservation for the run (restarted since admission?)';
  // Measured now: the plain FASTQ and the .sra are both in it, so this is conservative.
  const free = await (deps.freeBytes ?? freeBytesOf)(runDir);
  const others = deps.ledger.reservedExcept(run);
  if (free - others < r.minFreeGb * GB) {
    return `${free} bytes free less ${others} reserved by other runs is below the --min-free-gb ${r.minFreeGb} floor`;
  }
  if (plainBytes > r.bytes) {
    logInfo(`convertSra ${run}: its plain FASTQ (${plainBytes} bytes) is more than the ${r.bytes} bytes reserved for the run; the disk has room, so the reservation grows to it`);
    deps.ledger.reserve(run, r.dir, plainBytes, r.minFreeGb, free);
  }
  return null;
}

export function createConvertActivities(deps: ConvertDeps = {}): Pick<Activities, 'convertSra'> {
  return {
    async convertSra(input) {
      const r = await convert(input);
      if (!input.verify) return r;
      const check = { run: input.run, files: r.files, layout: r.layout, expectedReads: input.verify.expectedReads, ...(r.unpairedReads !== undefined ? { unpairedReads: r.unpairedReads } : {}) };
      const verified = await verifiedInStep(check);
      return verified ? { ...r, verified } : r;
    },
  };

  async function convert({ run, sraPath, runDir, threads, timeoutSec, fastaReads }: Parameters<Activities['convertSra']>[0]): Promise<Awaited<ReturnType<Activities['convertSra']>>> {
    if (!RUN_ACCESSION.test(run)) throw invalid(`invalid run accession ${JSON.stringify(run)}`);
    if (!isAbsolute(runDir) || runDir.split('/').includes('..')) throw invalid(`run ${run}: runDir must be absolute without '..' (got ${runDir})`);
    if (sraPath !== join(runDir, `${run}.sra`)) throw invalid(`run ${run}: expected the .sra at ${join(runDir, `${run}.sra`)}, got ${sraPath}`);
    const hooks = activityHooks();
    const tool = { timeoutSec, signal: hooks.signal, onHeartbeat: () => hooks.heartbeat() };

    if (!(await exists(sraPath))) {
      const done = await finishedOutputs(run, runDir);
      if (done) {
        // An attempt killed after it deleted the .sra leaves its own dir behind.
        await removeAttemptDirs(runDir);
        return done;
      }
      throw ApplicationFailure.create({
        type: FailureType.ChecksumMismatch,
        message: `run ${run}: ${sraPath} is missing (removed after a failed validation?) and no converted reads are there; download it again`,
      });
    }

    try {
      // Outputs beside a present .sra are from an older conversion (or an older download): never reuse them.
      const stale = (await readdir(runDir)).filter((n) => (n.startsWith(run) || n.startsWith(`.${run}`)) && /\.(fastq|fasta)(\.gz)?(\.part|\.checked)?$/.test(n));
      await Promise.all(stale.map((n) => rm(join(runDir, n), { force: true })));
      const v = await vdbValidate(sraPath, tool);
      if (!v.consistent) {
        await rm(sraPath, { force: true });
        throw ApplicationFailure.create({
          type: FailureType.ChecksumMismatch,
          message: `run ${run}: vdb-validate ${sraPath} found bad data (exit ${v.exitCode}: ${v.detail}); deleted it so the next attempt downloads it again`,
        });
      }
      // Older attempts' dirs (their tools, if still running, fail on the missing dir), then this attempt's own.
      await removeAttemptDirs(runDir);
      const work = join(runDir, `${CONVERT_DIR_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
      await mkdir(join(work, 'tmp'), { recursive: true });
      try {
        return await convertIn(work);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    } catch (err) {
      throw toToolFailure(err, `run ${run}: converting ${sraPath}`);
    }

    async function convertIn(work: string): Promise<Awaited<ReturnType<Activities['convertSra']>>> {
      const fasta = fastaReads === true;
      const ext = splitExt(fasta);
      await fasterqDump({ sraPath, outDir: work, tmpDir: join(work, 'tmp'), threads: threads ?? decideQuantThreads(cachedHostCores(), {}).kallistoThreads, fasta }, tool);

      const split = classifySplit(run, await readdir(work), ext);
      if (!split) {
        throw ApplicationFailure.create({
          type: FailureType.ToolFailed,
          message: `run ${run}: fasterq-dump --split-3${fasta ? ' --fasta' : ''} exited 0 but wrote neither ${run}${ext} nor ${run}_1${ext} + ${run}_2${ext} into ${work}`,
        });
      }
      const plain = split.keep.map((n) => join(work, n));
      // A paired run's unpaired spots land in RUN.fastq (RUN.fasta): counted (the run's spots include them), not kept.
      const unpairedReads = split.layout === 'paired' && split.discard.length > 0 ? await countFastqPlain(join(work, split.discard[0]!), hooks.signal) : undefined;
      // The one pass over the output: whole records counted (fasterq-dump exits 0 on a damaged .sra).
      const counts = await withHeartbeat(hooks, () => Promise.all(plain.map((p) => countFastq(p, { signal: hooks.signal }))));
      const plainBytes = (await Promise.all(plain.map((p) => stat(p)))).reduce((n, s) => n + s.size, 0);
      const why = await plainOrWhyGzip(run, runDir, plainBytes, deps);
      let made = plain;
      if (why) {
        logInfo(`convertSra ${run}: gzipping ${split.keep.join(' and ')} (${plainBytes} bytes) because ${why}`);
        made = plain.map((p) => `${p}.gz`);
        await withHeartbeat(hooks, () => Promise.all(plain.map((p) => gzipFile(p, `${p}.gz`, { signal: hooks.signal }))));
      } else {
        logInfo(`convertSra ${run}: keeping ${split.keep.join(' and ')} plain (${plainBytes} bytes; the disk stays above the floor)`);
      }
      const files = made.map((p) => join(runDir, basename(p)));
      // The record first (it names the final file, stat-ing this one: a rename keeps inode and mtime), then the rename.
      await Promise.all(
        files.map((f, i) => writeCheckRecord(f, { records: counts[i]!, md5: null, by: 'convert', ...(i === 0 && unpairedReads !== undefined ? { unpaired: unpairedReads } : {}) }, made[i])),
      );
      for (const [i, f] of files.entries()) await rename(made[i]!, f);
      // The .sra goes last: until here a crash leaves it for the retry to convert again.
      await rm(sraPath, { force: true });
      return { files, layout: split.layout, ...(unpairedReads !== undefined ? { unpairedReads } : {}) };
    }
  }
}
