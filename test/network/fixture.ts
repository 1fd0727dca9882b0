/** One synthetic dataset and mirror shared by the network tests of a file; each test sets its own faults. */
import { readFile } from 'node:fs/promises';
import type { MockActivityEnvironment } from '@temporalio/testing';
import { createDownloadActivities } from '../../src/activities/download.js';
import { createSourceActivities } from '../../src/activities/source.js';
import type { DiskLedger } from '../../src/activities/disk.js';
import { DEFAULTS } from '../../src/config/schema.js';
import type { Dataset, SyntheticRun } from '../../src/mirror/fixtures.js';
import type { Mirror } from '../../src/mirror/server.js';
import { HttpClient } from '../../src/tools/http.js';
import type { DownloadResult, RunMeta, SampleOptions, SourcePlan } from '../../src/types.js';
import { startMirrorWorld } from '../helpers/world.js';
import { failureOf, quiet as quietEnv } from '../tools/util.js';

// An activity context whose expected failures do not flood the test output, and the failure an activity
// threw: the tools tests' own (test/tools/util.ts).
export { failureOf, quietEnv };

export interface World {
  root: string;
  dataset: Dataset;
  mirror: Mirror;
  /** every paired run has mates; the first also has unmated reads listed first (three files) */
  paired: SyntheticRun;
  single: SyntheticRun;
  sraOnly: SyntheticRun;
  options: SampleOptions;
  stop(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  // Enough reads that a file is a few hundred KB: faults "after N bytes" land mid-body.
  const { root, dataset, mirror, stop } = await startMirrorWorld('network', {
    seed: 11,
    species: [
      { name: 'Pairus primus', runs: 1, pairedFraction: 1, readsPerRun: 8000 },
      { name: 'Singulus secundus', runs: 2, pairedFraction: 0, sraOnlyFraction: 0.5, readsPerRun: 8000 },
    ],
  });
  const [p, s] = dataset.species;
  const paired = p!.runs[0]!;
  const single = s!.runs.find((r) => !r.sraOnly)!;
  const sraOnly = s!.runs.find((r) => r.sraOnly)!;
  if (!paired.orphan || !single || !sraOnly) throw new Error('fixture: dataset does not have the runs the tests need');
  const options: SampleOptions = {
    ...DEFAULTS,
    sources: ['ena', 'sra'],
    enaPortalUrl: mirror.enaPortalUrl,
    enaFileScheme: mirror.enaFileScheme,
    sraLocateUrl: mirror.sraLocateUrl,
  };
  return { root, dataset, mirror, paired, single, sraOnly, options, stop };
}

/** A client with tiny back-off so retries cost milliseconds, not seconds. */
export function fastHttp(extra: ConstructorParameters<typeof HttpClient>[0] = {}): HttpClient {
  return new HttpClient({ backoffBaseMs: 5, backoffMaxMs: 2000, requestsPerSec: 1000, ...extra });
}

export function meta(r: SyntheticRun, withSpots = true): RunMeta {
  return { run: r.run, layout: r.layout, nominalLength: r.nominalLength, ...(withSpots ? { spots: r.reads } : {}) };
}

export async function resolve(http: HttpClient, run: RunMeta, options: SampleOptions): Promise<SourcePlan> {
  const { resolveSource } = createSourceActivities({ http });
  return quietEnv().run(resolveSource, { run, options });
}

export async function download(
  http: HttpClient,
  plan: SourcePlan,
  runDir: string,
  opts: {
    stallTimeoutSec?: number;
    env?: MockActivityEnvironment;
    verify?: boolean;
    /** plainReads with this worker's ledger (and disk): a .gz may be kept plain */
    plain?: { ledger: DiskLedger; freeBytes?: (dir: string) => Promise<number>; minFreeGb?: number };
  } = {},
): Promise<DownloadResult> {
  const p = opts.plain;
  const { download: dl } = createDownloadActivities({ http, heartbeatEveryMs: 20, ...(p ? { ledger: p.ledger, ...(p.freeBytes ? { freeBytes: p.freeBytes } : {}) } : {}) });
  return (opts.env ?? quietEnv()).run(dl, {
    plan,
    runDir,
    stallTimeoutSec: opts.stallTimeoutSec ?? 30,
    ...(opts.verify ? { verify: true } : {}),
    ...(p ? { plainReads: true, ...(p.minFreeGb !== undefined ? { minFreeGb: p.minFreeGb } : {}) } : {}),
  });
}

export async function sameBytes(a: string, b: string): Promise<boolean> {
  return (await readFile(a)).equals(await readFile(b));
}
