/**
 * Assembles every activity of the contract from its module, with dependencies passed in (paths, clients,
 * clock) so tests can hand in real or fast parts without module mocking.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Client } from '@temporalio/client';
import { takeLease } from '../run-lease.js';
import { allocate } from '../allocate.js';
import type { Activities } from './contract.js';
import { createConvertActivities } from './convert.js';
import { createDiscoverActivities } from './discover.js';
import { createDiskActivities, DiskLedger } from './disk.js';
import { createDownloadActivities } from './download.js';
import { describeWorkflows, listInFlightRuns } from './in-flight.js';
import { KnownDirs } from './known-dirs.js';
import { createIndexActivities } from './index-build.js';
import { createQuantActivities } from './quant.js';
import { createReadActivities } from './reads.js';
import { createSampleSteps } from './sample-steps.js';
import { createSourceActivities } from './source.js';
import { HttpClient } from '../tools/http.js';
import { searchRunsByTaxon } from '../tools/ena.js';

export interface ActivityDeps {
  hostId: string;
  /** directory relative config paths resolve against */
  cwd: string;
  /** for visibility queries (janitor) */
  client?: Client;
  http?: HttpClient;
  ledger?: DiskLedger;
  knownDirs?: KnownDirs;
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
  const source = createSourceActivities({ http });
  const index = createIndexActivities();
  const quant = createQuantActivities({ ledger });
  const download = createDownloadActivities({ http });
  const reads = createReadActivities();
  const convert = createConvertActivities({ ledger });
  // Every step that touches a run dir first takes its lease (src/run-lease.ts): while this worker lives, no
  // janitor on the machine, of any batch, treats the dir as an orphan. A retry on a restarted worker takes
  // the lease of the dead one over.
  const steps = createSampleSteps({ ...source, ...index, ...quant, checkDone: disk.checkDone, reserveDisk });
  const lease = (dir: string | undefined) => {
    if (dir) takeLease(dir, deps.hostId);
  };
  return {
    ...createDiscoverActivities({ cwd: deps.cwd, searchRunsByTaxon: (o) => searchRunsByTaxon({ ...o, http }) }),
    async allocate({ totalThreads, species }) {
      return allocate(totalThreads, species);
    },
    async claimHost() {
      return { hostId: deps.hostId };
    },
    ...source,
    async download(input) {
      if (input.runDir.startsWith('/')) {
        await mkdir(input.runDir, { recursive: true });
        lease(input.runDir);
      }
      return download.download(input);
    },
    async verifyReads(input) {
      if (input.files[0]?.startsWith('/')) lease(dirname(input.files[0]));
      return reads.verifyReads(input);
    },
    async convertSra(input) {
      if (input.runDir.startsWith('/')) lease(input.runDir);
      return convert.convertSra(input);
    },
    ...index,
    ...quant,
    async quant(input) {
      if (input.reads.files[0]?.startsWith('/')) lease(dirname(input.reads.files[0]));
      return quant.quant(input);
    },
    ...disk,
    reserveDisk,
    ...steps,
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
