/**
 * `fetchquant demo`: a synthetic three-species batch served by the project's local mirror, end to end,
 * offline. The dataset and the mirror's port are kept in the demo dir, so killing the demo and running it
 * again resumes the same batch against the same URLs.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateDataset, loadDataset, type Dataset } from '../mirror/fixtures.js';
import { startMirror, type FaultPlan } from '../mirror/server.js';
import { CLI_OPTIONS } from '../config/schema.js';
import { freePort } from '../server/embedded.js';
import { batchOptionsFromFlags, UsageError } from './args.js';
import { DEMO_DEFAULTS } from './demo-defaults.js';
import { runBatch } from './run.js';

type Out = (l: string) => void;

export const DEMO_SPECIES = [
  { name: 'Apis mellifera', runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0.25 },
  { name: 'Camponotus floridanus', runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0.25 },
  { name: 'Drosophila melanogaster', runs: 4, pairedFraction: 0.5, sraOnlyFraction: 0.25 },
];

async function mirrorPort(root: string): Promise<number> {
  const file = join(root, 'mirror.json');
  if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { port: number }).port;
  const port = await freePort();
  writeFileSync(file, JSON.stringify({ port }));
  return port;
}

/**
 * Hidden, for tests and for seeing retries in `history`/`report`: a mirror fault plan (JSON, see
 * src/mirror/faults.ts) from `--faults FILE` or FETCHQUANT_DEMO_FAULTS=FILE.
 */
function faultPlan(values: Record<string, unknown>): FaultPlan | undefined {
  const file = (values.faults as string | undefined) ?? process.env.FETCHQUANT_DEMO_FAULTS;
  if (!file) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as FaultPlan;
  } catch (err) {
    throw new UsageError(`demo: fault plan ${file}: ${(err as Error).message}`);
  }
}

export async function cmdDemo(values: Record<string, unknown>, out: Out): Promise<number> {
  const root = resolve((values.dir as string | undefined) ?? CLI_OPTIONS.dir.default);
  let dataset: Dataset;
  if (existsSync(join(root, 'dataset.json'))) {
    dataset = await loadDataset(root);
    out(`demo dataset: ${root} (existing)`);
  } else {
    out(`demo dataset: generating ${DEMO_SPECIES.length} synthetic species x 4 runs in ${root}`);
    dataset = await generateDataset({ root, species: DEMO_SPECIES, seed: 42 });
  }
  const mirror = await startMirror({ dataset, port: await mirrorPort(root), faults: faultPlan(values) });
  out(`local archive mirror: ENA ${mirror.enaPortalUrl}  SRA ${mirror.sraLocateUrl}`);
  try {
    // Demo-sized defaults (demo-defaults.ts, also shown by `demo --help`); any flag the user gives wins.
    const base = { ...DEMO_DEFAULTS, configDir: dataset.configDir, outputDir: dataset.outputDir, enaPortalUrl: mirror.enaPortalUrl, sraLocateUrl: mirror.sraLocateUrl, eutilsUrl: mirror.eutilsUrl };
    const options = batchOptionsFromFlags(values, process.cwd(), base);
    const code = await runBatch(values, options, { out, listSamples: true });
    out(`outputs: ${dataset.outputDir}/<species>/quant/<RUN>/<RUN>_abundance.tsv`);
    return code;
  } finally {
    await mirror.stop();
  }
}
