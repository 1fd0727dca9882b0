/**
 * quant -> finalize -> deleteReads: the tail of a sample, each step safe to repeat.
 * - quant works in <quantDir>/.<RUN>.tmp (cleared first; kallisto in a dir of the attempt's own inside it),
 *   moves kallisto's outputs up under amalgkit's names
 *   and checks run_info.json against the reads we counted; nothing outside the temp dir changes.
 * - finalize adds the provenance file and renames the temp dir into place: the only step that makes a
 *   sample "done", and atomic (rename within one directory).
 * - deleteReads removes the run's reads only under .../getfastq/<RUN> and releases its disk reservation.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { FailureType } from '../failures.js';
import { abundancePath, provenancePath, runQuantDir, runQuantTmpDir } from '../ids.js';
import { kallistoQuant, parseRunInfo, quantArgs, verifyRunInfo, KALLISTO } from '../tools/kallisto.js';
import { cachedHostCores, decideQuantThreads } from '../cores.js';
import { toolVersion, toToolFailure } from '../tools/process.js';
import type { LocalFile, Provenance, QuantResult, ReadSet } from '../types.js';
import type { Activities } from './contract.js';
import { activityHooks, logInfo, waitInLine } from './heartbeat.js';
import { bytesUnder, KEPT_READS_MARK, type DiskLedger } from './disk.js';

const invalid = (message: string) => ApplicationFailure.create({ type: FailureType.InvalidInput, message, nonRetryable: true });
const isFile = (p: string) => stat(p).then((s) => s.isFile(), () => false);

function checkRun(run: string): void {
  if (!RUN_ACCESSION.test(run)) throw invalid(`invalid run accession ${JSON.stringify(run)}`);
}
function checkDir(run: string, what: string, dir: string): void {
  if (!isAbsolute(dir) || dir.split('/').includes('..') || dir.includes('\0')) {
    throw invalid(`run ${run}: ${what} must be an absolute path without '..' (got ${JSON.stringify(dir)})`);
  }
}

/**
 * Per-process quant limit (--quant-threads): at most `limit` kallisto runs at once. The limit comes with each
 * request, so a batch with another value needs no worker restart.
 *
 * Who waits gets a slot largest first (`weight`: the reads to quantify), as in longest-processing-time-first
 * scheduling: downloads outrun kallisto, so verified runs queue here, and taking the largest first leaves small
 * ones for the end, where a core would otherwise idle beside the last long kallisto (B5's 12 runs on 2 cores
 * ended with one kallisto alone for ~2 s). Equal weights go first come first served, and a waiter older than
 * AGE_MS goes before any weight, so a small run is never held back for long by a stream of larger ones.
 */
export class QuantSlots {
  private running = 0;
  private readonly waiters: { limit: number; weight: number; since: number; grant: () => void }[] = [];

  /** A waiter that has waited this long is served before any larger one (oldest first). */
  static readonly AGE_MS = 10 * 60_000;

  private readonly listeners: (() => void)[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  /** Calls fn whenever a slot is taken or asked for (src/activities/start-gate.ts watches the cores' work). */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  /**
   * Resolves with a release function once a slot is free; rejects with the signal's reason if cancelled first.
   * `weight`: how much work this run is (larger waits less; see the class).
   */
  async acquire(limit: number, signal: AbortSignal, onWait: () => void, everyMs = 1000, weight = 0): Promise<() => void> {
    if (signal.aborted) throw signal.reason;
    if (this.waiters.length === 0 && this.running < Math.max(1, limit)) {
      this.running++;
      this.changed();
    } else {
      const waited = waitInLine(this.waiters, { limit, weight, since: this.now() }, signal, onWait, everyMs);
      this.changed();
      await waited;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.pump();
      this.changed();
    };
  }

  /** The waiter served next: the oldest one past AGE_MS, else the heaviest (the earliest among equals). */
  private nextWaiter(): number {
    const old = this.now() - QuantSlots.AGE_MS;
    let best = 0;
    for (let i = 1; i < this.waiters.length; i++) {
      const w = this.waiters[i]!;
      const b = this.waiters[best]!;
      if (b.since <= old) break; // waiters are in arrival order: none later is older
      if (w.since <= old || w.weight > b.weight) best = i;
    }
    return best;
  }

  // The slot passes to the chosen waiter directly (running is counted for it before it wakes).
  private pump(): void {
    while (this.waiters.length > 0) {
      const i = this.nextWaiter();
      if (this.running >= Math.max(1, this.waiters[i]!.limit)) return;
      this.running++;
      this.waiters.splice(i, 1)[0]!.grant();
    }
  }

  get inUse(): number {
    return this.running;
  }

  get waiting(): number {
    return this.waiters.length;
  }
}

/** A run's provenance (<quantDir>/<RUN>/<RUN>_fetchquant.json) as written, or null (none, or not JSON). */
async function readProvenance({ quantDir, run }: { quantDir: string; run: string }): Promise<Partial<Provenance> | null> {
  checkRun(run);
  checkDir(run, 'quantDir', quantDir);
  const text = await readFile(provenancePath(quantDir, run), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as Partial<Provenance> | null;
  } catch {
    return null;
  }
}

/**
 * What a run was quantified from, by its provenance (the caller knows it is published: checkDone): the files it
 * records (the archive's, with md5: FASTQ from ENA, the .sra from SRA) and the reads kallisto read, named by its
 * command line (the last one or two arguments; `--single` for single-end). Null when the provenance lacks them.
 */
export async function readPublishedReads(at: { quantDir: string; run: string }): Promise<{ files: LocalFile[]; verified: ReadSet } | null> {
  const p = await readProvenance(at);
  const command = p?.quant?.command;
  if (!p || p.run !== at.run || typeof p.reads !== 'number' || !Array.isArray(p.files) || !Array.isArray(command)) return null;
  const layout = command.includes('--single') ? 'single' : 'paired';
  const verified: ReadSet = {
    layout,
    files: command.slice(layout === 'single' ? -1 : -2),
    reads: p.reads,
    ...(typeof p.unpairedReads === 'number' ? { unpairedReads: p.unpairedReads } : {}),
  };
  return { files: p.files, verified };
}

/** The quant figures in a published run's provenance, else null. */
export async function readPublishedQuant(at: { quantDir: string; run: string }): Promise<Omit<QuantResult, 'tmpDir'> | null> {
  const q = (await readProvenance(at))?.quant;
  return q && typeof q.nProcessed === 'number' && typeof q.kallistoVersion === 'string' ? q : null;
}

/**
 * `-t` of a quant that just got its slot. When fetchquant chose the threads (the user set neither
 * --kallisto-threads nor --quant-threads), a quant that starts with no other waiting for a slot and nothing
 * more coming on this host (no transfer, conversion or start still under way: `feeding`) is the host's last
 * for now: it takes every core, so it does not end alone on one while the others idle. B5 at GB-sized runs
 * (docs/benchmarks.md "The last quant takes every core") ended with one kallisto -t 1 alone for 7-10 s.
 * A later quant still gets its slot: kallisto's threads then share the cores for the overlap, which costs
 * little beside a core left idle. A value the user gave is never widened.
 */
export function quantThreadsNow(o: { planned: number; userSet: boolean; waiting: number; feeding: boolean; cores: number }): number {
  if (o.userSet || o.waiting > 0 || o.feeding) return o.planned;
  return Math.max(o.planned, o.cores);
}

export interface QuantDeps {
  quantSlots?: QuantSlots;
  /** true while this host transfers or converts reads, or its start is under way (more quants may come) */
  feeding?: () => boolean;
  /** this host's cores (default: src/cores.ts cachedHostCores) */
  cores?: () => number;
  /** deleteReads releases the run's reservation here (the ledger the disk activities admit with). */
  ledger?: DiskLedger;
}

export function createQuantActivities(deps: QuantDeps): Pick<Activities, 'quant' | 'finalize' | 'deleteReads'> {
  const slots = deps.quantSlots ?? new QuantSlots();
  return {
    async quant(input): Promise<QuantResult> {
      const { run, reads, quantDir, indexPath } = input;
      checkRun(run);
      checkDir(run, 'quantDir', quantDir);
      const hooks = activityHooks();
      const outDir = runQuantTmpDir(quantDir, run);
      // kallisto writes into a dir of this attempt's own inside it: an older attempt's kallisto still running
      // (a worker killed -9 leaves it behind; a host cut off from the server runs on) writes abundance.tsv and
      // run_info.json by path when it ends, and must not land them beside this attempt's outputs.
      const work = join(outDir, `.kallisto-${process.pid}-${randomBytes(4).toString('hex')}`);
      // Unset by the user: from this host's cores (src/cores.ts); a value the user gave wins.
      const plan = decideQuantThreads(cachedHostCores(), input);
      const q = {
        index: indexPath,
        outDir: work,
        threads: plan.kallistoThreads,
        reads: reads.files,
        layout: reads.layout,
        fragmentLength: input.fragmentLength,
        fragmentSd: input.fragmentSd,
      };
      // built now, so bad input fails before waiting for a slot; built again if the slot's -t differs
      let args = quantArgs(q);
      // kallisto's work grows with the reads it reads: a pair is two (the weight that orders waiters, above)
      const weight = reads.reads * (reads.layout === 'paired' ? 2 : 1);
      const release = await slots.acquire(plan.quantThreads, hooks.signal, () => hooks.heartbeat({ waitingForQuantSlot: true }), hooks.idleBeatMs, weight);
      const userSet = input.kallistoThreads != null || input.quantThreads != null;
      // No feeding() (a worker built without a start gate, tests): more may come, so nothing is widened.
      const threads = quantThreadsNow({ planned: q.threads, userSet, waiting: slots.waiting, feeding: deps.feeding?.() ?? true, cores: (deps.cores ?? cachedHostCores)() });
      if (threads !== q.threads) {
        logInfo(`kallisto ${run}: the host's last quant for now (no quant waiting, no download or conversion running): -t ${threads} instead of ${q.threads}, every core`);
        q.threads = threads;
        args = quantArgs(q);
      }
      try {
        // Leftovers of an attempt killed mid-run would otherwise mix with this one's outputs.
        await rm(outDir, { recursive: true, force: true });
        await mkdir(work, { recursive: true });
        const [res, version] = await Promise.all([
          kallistoQuant(q, { timeoutSec: input.timeoutSec, signal: hooks.signal, onHeartbeat: () => hooks.heartbeat() }),
          toolVersion(KALLISTO),
        ]);
        const infoFile = join(work, 'run_info.json');
        const text = await readFile(infoFile, 'utf8').catch(() => null);
        if (text === null) {
          throw ApplicationFailure.create({
            type: FailureType.ToolFailed,
            message: `run ${run}: kallisto quant exited ${res.exitCode} without writing ${infoFile}; stderr: ${res.stderr.trim().slice(-800)}`,
          });
        }
        const info = parseRunInfo(text, infoFile);
        verifyRunInfo(info, reads.reads, run);
        if (res.exitCode !== 0) {
          throw ApplicationFailure.create({ type: FailureType.ToolFailed, message: `run ${run}: kallisto quant exited ${res.exitCode}: ${res.stderr.trim().slice(-800)}` });
        }
        if (!(await isFile(join(work, 'abundance.tsv')))) {
          throw ApplicationFailure.create({ type: FailureType.ToolFailed, message: `run ${run}: kallisto quant wrote no abundance.tsv in ${work}` });
        }
        // amalgkit's names (quant.py rename_kallisto_outputs); abundance.h5 only where kallisto wrote one
        await rename(join(work, 'abundance.tsv'), join(outDir, `${run}_abundance.tsv`));
        await rename(infoFile, join(outDir, `${run}_run_info.json`));
        if (await isFile(join(work, 'abundance.h5'))) await rename(join(work, 'abundance.h5'), join(outDir, `${run}_abundance.h5`));
        await rm(work, { recursive: true, force: true });
        return {
          nProcessed: info.nProcessed,
          nPseudoaligned: info.nPseudoaligned,
          pPseudoaligned: info.pPseudoaligned,
          kallistoVersion: version,
          command: [KALLISTO, ...args],
          tmpDir: outDir,
        };
      } catch (err) {
        throw toToolFailure(err, `run ${run}: kallisto quant`);
      } finally {
        release();
      }
    },

    async finalize({ run, quantDir, tmpDir, provenance }) {
      checkRun(run);
      checkDir(run, 'quantDir', quantDir);
      if (tmpDir !== runQuantTmpDir(quantDir, run)) throw invalid(`run ${run}: tmpDir must be ${runQuantTmpDir(quantDir, run)} (got ${tmpDir})`);
      const dir = runQuantDir(quantDir, run);
      // Already done (a retry after the rename): the result on disk stands; the temp dir is a leftover.
      if ((await isFile(abundancePath(quantDir, run))) && (await isFile(provenancePath(quantDir, run)))) {
        await rm(tmpDir, { recursive: true, force: true });
        return { dir };
      }
      for (const f of [`${run}_abundance.tsv`, `${run}_run_info.json`]) {
        if (!(await isFile(join(tmpDir, f)))) {
          throw ApplicationFailure.create({ type: FailureType.QuantInvalid, message: `run ${run}: ${join(tmpDir, f)} is missing; quant has to run again` });
        }
      }
      const prov = join(tmpDir, `${run}_fetchquant.json`);
      const fh = await open(`${prov}.part`, 'w');
      try {
        await fh.writeFile(JSON.stringify(provenance, null, 2) + '\n');
        // On disk before the rename that declares the sample done, so "done" survives a power cut too.
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(`${prov}.part`, prov);
      // A not-done dir is a leftover of an older attempt (e.g. abundance without provenance): replace it.
      await rm(dir, { recursive: true, force: true });
      await rename(tmpDir, dir);
      return { dir };
    },

    async deleteReads({ run, runDir, quantDir, keep }) {
      checkRun(run);
      checkDir(run, 'runDir', runDir);
      // A sample that ends before finalize (cancelled, failed) also drops its unpublished quant output.
      if (quantDir !== undefined) {
        checkDir(run, 'quantDir', quantDir);
        await rm(runQuantTmpDir(quantDir, run), { recursive: true, force: true });
      }
      // keep_fastq: yes / clean_fastq: no — the reads stay; only the in-flight reservation ends
      if (keep) {
        // marked so that neither the janitor nor `fetchquant cleanup` takes them for an orphaned download
        await writeFile(join(runDir, KEPT_READS_MARK), 'reads kept after quant: the species config asks for it (keep_fastq / clean_fastq: no)\n').catch(() => undefined);
        deps.ledger?.release(run);
        return { removedBytes: 0 };
      }
      const clean = runDir.replace(/\/+$/, '');
      // Refuse anything but a run's own reads dir: a wrong path here would delete someone's data.
      if (!clean.endsWith(`/getfastq/${run}`)) {
        throw invalid(`run ${run}: refusing to delete ${runDir}: reads dirs end with /getfastq/${run}`);
      }
      const removedBytes = await bytesUnder(clean);
      await rm(clean, { recursive: true, force: true });
      deps.ledger?.release(run);
      return { removedBytes };
    },
  };
}
