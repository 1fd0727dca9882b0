/**
 * Fast activities for workflow tests: the real contract, with files replaced by an in-memory ledger so
 * orchestration (allocation, windows, signals, host pinning) is what is exercised, in milliseconds.
 * The end-to-end tests use the real activities.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { allocate } from '../../src/allocate.js';
import { describeWorkflows } from '../../src/activities/in-flight.js';
import type { Activities } from '../../src/activities/contract.js';
import { createSampleSteps, quantAfter, tellSpecies, tellVerified, type TellSpecies } from '../../src/activities/sample-steps.js';
import { FailureType, WORKER_LOST } from '../../src/failures.js';
import type { BatchPlan, RunMeta, SpeciesPlan } from '../../src/types.js';

export interface FastWorld {
  species: { id: string; runs: number; indexFails?: boolean }[];
  /** ms each download takes */
  downloadMs?: number;
  quantMs?: number;
  /** runs that fail RunNotFound */
  unknownRuns?: Set<string>;
  /** runs whose download fails (retryably, NetworkError) this many times before it works; Infinity: always */
  flakyDownloads?: Map<string, number>;
  /** runs already done */
  doneRuns?: Set<string>;
  /** lets describeWorkflows answer from the real server */
  client?: Client;
  /** bookkeeping activities (by name) whose next attempts fail as a killed worker's do (WorkerLost, retryable) */
  lostAttempts?: Map<string, number>;
}

export interface FastLog {
  events: { t: number; kind: string; run?: string; host?: string; data?: unknown }[];
  allocations: { t: number; alloc: Record<string, number>; total: number; remaining: Record<string, number> }[];
  active: { downloads: Map<string, number>; maxDownloads: number };
}

export function runName(speciesIndex: number, i: number): string {
  return `SRR${String(1_000_000 + speciesIndex * 100_000 + i)}`;
}

/** What every fast quant finds (and a published run's provenance says). */
const FAST_QUANT = { nProcessed: 10, nPseudoaligned: 9, pPseudoaligned: 90, kallistoVersion: '0.48.0', command: ['kallisto'] };

/** The single steps of a fast host: what src/activities/index.ts composes from the real modules. */
export type FastParts = Omit<Activities, 'prepareSample' | 'publish'> & { publishedQuant(input: { quantDir: string; run: string }): Promise<typeof FAST_QUANT | null> };

export function createFastActivities(world: FastWorld, hostId: string, log: FastLog): Activities {
  return composeSteps(createFastParts(world, hostId, log), tellSpecies(world.client));
}

/**
 * The folded sample steps, and the signals and the quant that steps run after verifying their reads, composed
 * from single steps exactly as src/activities/index.ts composes the real ones (less the run-dir leases).
 */
export function composeSteps(parts: FastParts, tell: TellSpecies = tellSpecies()): Activities {
  const { publishedQuant, ...single } = parts;
  const steps = createSampleSteps({ ...single, publishedQuant }, tell);
  const download: Activities['download'] = async (input) => {
    const r = await tellVerified(tell, input, input.plan.run, await single.download(input));
    return quantAfter(steps.quant, input, r, { files: r.files, downsampled: r.downsampled, bytesFetched: r.bytesFetched });
  };
  const convertSra: Activities['convertSra'] = async (input) => quantAfter(steps.quant, input, await tellVerified(tell, input, input.run, await single.convertSra(input)));
  return { ...single, download, convertSra, ...steps };
}

export function createFastParts(world: FastWorld, hostId: string, log: FastLog): FastParts {
  // Like the real activities: heartbeat while working, since cancellation arrives only through heartbeats.
  const wait = (ms: number) => {
    const ctx = Context.current();
    return new Promise<void>((resolve, reject) => {
      const beat = setInterval(() => ctx.heartbeat(), 200);
      const t = setTimeout(() => {
        clearInterval(beat);
        resolve();
      }, ms);
      ctx.cancellationSignal.addEventListener('abort', () => {
        clearTimeout(t);
        clearInterval(beat);
        reject(ctx.cancellationSignal.reason);
      });
    });
  };
  const failedSoFar = new Map<string, number>();
  const note = (kind: string, run?: string, data?: unknown) => log.events.push({ t: Date.now(), kind, run, host: hostId, data });
  const plans: SpeciesPlan[] = world.species.map((s) => ({
    speciesId: s.id,
    name: s.id.replace('_', ' '),
    configPath: `/virtual/${s.id}.yaml`,
    readsDir: `/virtual/${s.id}/fastq`,
    quantDir: `/virtual/${s.id}/quant`,
    indexPath: s.indexFails ? '/virtual/missing.idx' : `/virtual/${s.id}.idx`,
    fastaPaths: [],
    runListPath: `/virtual/${s.id}.runs`,
    fragmentLength: 200,
    fragmentSd: 20,
    totalRuns: s.runs,
    doneRuns: 0,
  }));
  const runsOf = (path: string): RunMeta[] => {
    const i = world.species.findIndex((s) => `/virtual/${s.id}.runs` === path);
    return Array.from({ length: world.species[i]!.runs }, (_, k) => ({ run: runName(i, k), layout: 'single' as const }));
  };
  /** An attempt lost with its worker, as the restarted worker hands it back (src/activity-attempts.ts). */
  const lose = (name: string) => {
    const left = world.lostAttempts?.get(name) ?? 0;
    if (left <= 0) return;
    world.lostAttempts!.set(name, left - 1);
    throw ApplicationFailure.create({ type: WORKER_LOST, message: `${name}: the worker running this attempt was killed (handed back)` });
  };
  const base: Omit<Activities, 'prepareSample' | 'publish'> = {
    async discoverBatch({ batchId }): Promise<BatchPlan> {
      lose('discoverBatch');
      return { batchId, outputDir: '/virtual', species: plans, notes: [] };
    },
    async listRuns({ runListPath, cursor, limit }) {
      lose('listRuns');
      const all = runsOf(runListPath);
      const page = all.slice(cursor, cursor + limit);
      const skipped = page.filter((r) => world.doneRuns?.has(r.run)).map((r) => r.run);
      return { runs: page.filter((r) => !world.doneRuns?.has(r.run)), skipped, nextCursor: cursor + limit >= all.length ? null : cursor + limit };
    },
    async allocate({ totalThreads, species }) {
      const alloc = allocate(totalThreads, species);
      log.allocations.push({ t: Date.now(), alloc, total: totalThreads, remaining: Object.fromEntries(species.map((s) => [s.speciesId, s.remaining])) });
      return alloc;
    },
    async preflightDisk() {
      return { host: hostId, freeBytes: 1e12 };
    },
    async resolveSource({ run }) {
      if (world.unknownRuns?.has(run.run)) {
        throw ApplicationFailure.create({ type: FailureType.RunNotFound, nonRetryable: true, message: `${run.run}: not found at ENA (204) nor SRA (404)` });
      }
      return { source: 'ena', run: run.run, layout: 'single', files: [{ url: `http://x/${run.run}.fastq.gz`, name: `${run.run}.fastq.gz`, bytes: 100, md5: 'x', mate: 0 }], expectedReads: 10, reserveBytes: 100 };
    },
    async claimHost() {
      return { hostId };
    },
    async ensureIndex({ indexPath }) {
      if (indexPath.includes('missing')) throw ApplicationFailure.create({ type: FailureType.IndexError, nonRetryable: true, message: `no index at ${indexPath} and no FASTA to build it` });
      return { indexPath, built: false };
    },
    async checkDone({ run }) {
      return world.doneRuns?.has(run) ?? false;
    },
    async reserveDisk({ bytes }) {
      return { granted: true, freeBytes: 1e12, reservedBytes: 0, neededBytes: bytes };
    },
    async download({ plan, verify }) {
      log.active.downloads.set(plan.run, Date.now());
      log.active.maxDownloads = Math.max(log.active.maxDownloads, log.active.downloads.size);
      note('download-start', plan.run);
      const failures = world.flakyDownloads?.get(plan.run) ?? 0;
      if (failures > 0) {
        world.flakyDownloads!.set(plan.run, failures - 1);
        log.active.downloads.delete(plan.run);
        const nth = (failedSoFar.get(plan.run) ?? 0) + 1;
        failedSoFar.set(plan.run, nth);
        throw ApplicationFailure.create({ type: FailureType.NetworkError, message: `${plan.run}: connection reset by peer (failure ${nth})` });
      }
      try {
        await wait(world.downloadMs ?? 50);
      } finally {
        log.active.downloads.delete(plan.run);
      }
      note('download-end', plan.run);
      const files = [{ path: `/virtual/${plan.run}.fastq.gz`, bytes: 100, md5: 'x' }];
      // checked where written, as the real download does when asked (same answer as verifyReads below)
      return { files, bytesFetched: 100, resumedFromBytes: 0, ...(verify ? { verified: { layout: plan.layout, files: files.map((f) => f.path), reads: 10 } } : {}) };
    },
    async convertSra() {
      throw new Error('not used');
    },
    async verifyReads({ files, layout }) {
      return { layout, files, reads: 10 };
    },
    async quant({ run }) {
      note('quant-start', run);
      await wait(world.quantMs ?? 20);
      return { ...FAST_QUANT, tmpDir: `/virtual/.${run}.tmp` };
    },
    async finalize({ run, quantDir }) {
      note('finalize', run);
      return { dir: `${quantDir}/${run}` };
    },
    async deleteReads({ run }) {
      note('delete', run);
      return { removedBytes: 100 };
    },
    async janitorSweep() {
      return { host: hostId, dir: '/virtual', freeBytes: 1e12, removed: [], freedBytes: 0, kept: [] };
    },
    async listInFlight() {
      return [];
    },
    async describeWorkflows({ workflowIds }) {
      return world.client ? describeWorkflows(world.client, workflowIds) : {};
    },
  };
  return { ...base, publishedQuant: async ({ run }) => (world.doneRuns?.has(run) ? FAST_QUANT : null) };
}

export function newLog(): FastLog {
  return { events: [], allocations: [], active: { downloads: new Map(), maxDownloads: 0 } };
}
