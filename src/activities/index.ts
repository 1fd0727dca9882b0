/**
 * Assembles every activity of the contract from its module, with dependencies passed in (paths, clients,
 * clock) so tests can hand in real or fast parts without module mocking.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Client } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { takeLease } from '../run-lease.js';
import { allocate } from '../allocate.js';
import type { Activities } from './contract.js';
import type { QuantAfter } from '../types.js';
import { createConvertActivities } from './convert.js';
import { createDiscoverActivities } from './discover.js';
import { createDiskActivities, DiskLedger } from './disk.js';
import { createDownloadActivities } from './download.js';
import { describeWorkflows, listInFlightRuns } from './in-flight.js';
import { KnownDirs } from './known-dirs.js';
import { createIndexActivities } from './index-build.js';
import { createQuantActivities, QuantSlots, readPublishedQuant, readPublishedReads } from './quant.js';
import { StartGate } from './start-gate.js';
import { cachedHostCores, decideQuantThreads } from '../cores.js';
import { createReadActivities } from './reads.js';
import { createSampleSteps, quantAfter, tellSpecies, tellVerified } from './sample-steps.js';
import { createSourceActivities } from './source.js';
import { HttpClient, rateDefaults } from '../tools/http.js';
import { PacerClient, paceDefaults } from '../pacing.js';
import type { Source } from '../config/schema.js';
import { searchRunsByTaxon } from '../tools/ena.js';
import { expandProject } from '../tools/projects.js';

export interface ActivityDeps {
  hostId: string;
  /** directory relative config paths resolve against */
  cwd: string;
  /** for visibility queries (janitor) */
  client?: Client;
  http?: HttpClient;
  ledger?: DiskLedger;
  knownDirs?: KnownDirs;
  /**
   * the namespace's source pacer (docs/pacing.md); default: one on `client` unless FETCHQUANT_PACER=off;
   * null: none (each process paces itself only)
   */
  pacer?: PacerClient | null;
  /** aborted when the worker begins to shut down (PacerClientOptions.stopping) */
  stopping?: AbortSignal;
}

/** The pacer of these deps: given, or made on the client (FETCHQUANT_PACER=off turns it off). */
export function pacerOf(deps: ActivityDeps): PacerClient | null {
  if (deps.pacer !== undefined) return deps.pacer;
  if (!deps.client || process.env.FETCHQUANT_PACER === 'off') return null;
  return new PacerClient({ client: deps.client, holder: deps.hostId, limits: paceDefaults(process.env, rateDefaults()), ...(deps.stopping ? { stopping: deps.stopping } : {}) });
}

export function createActivities(deps: ActivityDeps): Activities {
  const http = deps.http ?? new HttpClient();
  const ledger = deps.ledger ?? new DiskLedger();
  const knownDirs = deps.knownDirs ?? KnownDirs.forHost(deps.hostId);
  const disk = createDiskActivities({ ledger, hostId: deps.hostId });
  const reserveDisk: Activities['reserveDisk'] = async (input) => {
    knownDirs.add(input.dir);
    return disk.reserveDisk(input);
  };
  const pacer = pacerOf(deps);
  if (pacer) {
    // API requests to ENA's portal and the SRA locator spend the pacer's shared tokens (one window for all hosts)
    http.setGate('ena', pacer.gate('ena'));
    http.setGate('sra', pacer.gate('sra'));
  }
  const source = createSourceActivities({ http, ...(pacer ? { order: (s: Source[]) => pacer.order(s) as Promise<Source[]> } : {}) });
  const index = createIndexActivities();
  const quantSlots = new QuantSlots();
  // a host's first downloads one at a time until kallisto has work for every slot (./start-gate.ts)
  const startGate = new StartGate(quantSlots, decideQuantThreads(cachedHostCores(), {}).quantThreads);
  // the host's last quant for now takes every core (./quant.ts quantThreadsNow)
  const quant = createQuantActivities({ ledger, quantSlots, feeding: () => startGate.busy });
  const download = createDownloadActivities({ http, ledger });
  const reads = createReadActivities();
  const convert = createConvertActivities({ ledger });
  // Steps that finish a sample's part signal its species themselves (src/activities/sample-steps.ts).
  const tell = tellSpecies(deps.client);
  const steps = createSampleSteps({ ...source, ...index, ...quant, checkDone: disk.checkDone, reserveDisk, publishedQuant: readPublishedQuant }, tell);
  // Every step that touches a run dir first takes its lease (src/run-lease.ts): while this worker lives, no
  // janitor on the machine, of any batch, treats the dir as an orphan. A retry on a restarted worker takes
  // the lease of the dead one over.
  const lease = (dir: string | undefined) => {
    if (dir) takeLease(dir, deps.hostId);
  };
  /** the download's own work: the run dir's lease, its turn at the host's start, a permit of the source pacer, then the transfer */
  const fetchReads: Activities['download'] = async (input) => {
    if (input.runDir.startsWith('/')) {
      await mkdir(input.runDir, { recursive: true });
      lease(input.runDir);
    }
    const ctx = Context.current();
    const after = input.quantAfter?.quant;
    const limit = after ? decideQuantThreads(cachedHostCores(), after).quantThreads : null;
    const turn = await startGate.enter(limit, ctx.cancellationSignal, () => ctx.heartbeat({ file: '', offset: 0, waitingForStart: true }));
    try {
      return await transfer(input, ctx);
    } finally {
      turn();
    }
  };
  const transfer = async (input: Parameters<Activities['download']>[0], ctx: Context) => {
    if (!pacer) return download.download(input);
    // One permit of the plan's source per download, waited for here (heartbeating: the wait may be long).
    const beat = setInterval(() => ctx.heartbeat({ file: '', offset: 0, waitingForPermit: true }), 1000);
    let waited = false;
    try {
      return await pacer.withPermit(
        input.plan.source,
        () => {
          clearInterval(beat);
          return download.download(input);
        },
        {
          signal: ctx.cancellationSignal,
          label: input.plan.run,
          waiting: (why) => {
            if (!waited) ctx.log.info(`download ${input.plan.run}: waiting for a ${input.plan.source} permit: ${why}`);
            waited = true;
          },
        },
      );
    } finally {
      clearInterval(beat);
    }
  };
  /**
   * A step asked to quantify after it verifies (quantAfter) whose run is published already: an earlier attempt
   * of this step got that far, then its worker died before reporting. Its reads are gone by design (the quant
   * step deletes them), so fetching or converting them again would cost the whole run, or, for an .sra already
   * converted and deleted, fail the sample. The earlier attempt told the species the reads were verified (quant
   * runs only after that); the quant step answers from the provenance without kallisto, publishes again
   * (nothing changes on disk) and tells the species the sample finished, in case the dead attempt had not.
   */
  const publishedBefore = async (input: { quantAfter?: QuantAfter; tell?: unknown }) => {
    const after = input.quantAfter?.quant;
    if (!after || !input.tell || !(await disk.checkDone({ quantDir: after.quantDir, run: after.run }))) return null;
    return readPublishedReads({ quantDir: after.quantDir, run: after.run });
  };
  const quantStep: Activities['quant'] = async (input) => {
    if (input.reads.files[0]?.startsWith('/')) lease(dirname(input.reads.files[0]));
    if (input.publish) lease(input.publish.runDir);
    return steps.quant(input);
  };
  return {
    ...createDiscoverActivities({ cwd: deps.cwd, searchRunsByTaxon: (o) => searchRunsByTaxon({ ...o, http }), expandProject: (o) => expandProject({ ...o, http }) }),
    async allocate({ totalThreads, species }) {
      return allocate(totalThreads, species);
    },
    async claimHost() {
      return { hostId: deps.hostId };
    },
    ...source,
    async download(input) {
      const earlier = await publishedBefore(input);
      if (earlier) return quantAfter(quantStep, input, { files: earlier.files, bytesFetched: 0, resumedFromBytes: 0, verified: earlier.verified, told: true as const });
      const r = await tellVerified(tell, input, input.plan.run, await fetchReads(input));
      return quantAfter(quantStep, input, r, { files: r.files, downsampled: r.downsampled, bytesFetched: r.bytesFetched });
    },
    async verifyReads(input) {
      if (input.files[0]?.startsWith('/')) lease(dirname(input.files[0]));
      return reads.verifyReads(input);
    },
    async convertSra(input) {
      const earlier = await publishedBefore(input);
      if (earlier) return quantAfter(quantStep, input, { files: earlier.verified.files, layout: earlier.verified.layout, verified: earlier.verified, told: true as const });
      if (input.runDir.startsWith('/')) lease(input.runDir);
      return quantAfter(quantStep, input, await tellVerified(tell, input, input.run, await startGate.converting(() => convert.convertSra(input))));
    },
    ...index,
    ...quant,
    ...disk,
    reserveDisk,
    ...steps,
    quant: quantStep,
    async publish(input) {
      lease(input.runDir);
      return steps.publish(input);
    },
    async janitorSweep(input) {
      return disk.janitorSweep({ ...input, readsDirs: [...new Set([...input.readsDirs, ...knownDirs.list()])] });
    },
    async describeWorkflows({ workflowIds }) {
      return deps.client ? describeWorkflows(deps.client, workflowIds) : {};
    },
    async listInFlight({ hostId }) {
      if (!deps.client) return [];
      return listInFlightRuns(deps.client, hostId);
    },
  };
}
