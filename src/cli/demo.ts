/**
 * `fetchquant demo`: a synthetic three-species batch served by the project's local mirror, end to end,
 * offline. The dataset and the mirror's port are kept in the demo dir, so killing the demo and running it
 * again resumes the same batch against the same URLs.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateDataset, loadDataset, type Dataset } from '../mirror/fixtures.js';
import { startMirror, type FaultPlan } from '../mirror/server.js';
import { freePort } from '../server/embedded.js';
import { batchOptionsFromFlags, UsageError } from './args.js';
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
  const root = resolve((values.dir as string | undefined) ?? 'output/demo');
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
    // Demo-sized defaults; any flag the user gives wins.
    const flags: Record<string, unknown> = {
      'config-dir': dataset.configDir,
      'output-dir': dataset.outputDir,
      'ena-portal-url': mirror.enaPortalUrl,
      'sra-locate-url': mirror.sraLocateUrl,
      'ena-file-scheme': 'http',
      'total-threads': '6',
      'min-free-gb': '0.5',
      'auto-cleanup-threshold': '0.2',
      'check-interval': '5',
      'monitor-interval': '1',
      'retry-initial': '1',
      'process-timeout': '600',
      ...values,
    };
    const options = batchOptionsFromFlags(flags);
    const code = await runBatch(flags, options, { out, listSamples: true });
    out(`outputs: ${dataset.outputDir}/<species>/quant/<RUN>/<RUN>_abundance.tsv`);
    return code;
  } finally {
    await mirror.stop();
  }
}
