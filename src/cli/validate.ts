/**
 * Before anything starts: every config problem at once (exit 2) and every missing tool named with the
 * package that provides it (exit 3). The batch workflow validates again, for batches started elsewhere.
 */
import { execa } from 'execa';
import { discoverBatch, type DiscoverDeps } from '../config/discover.js';
import type { BatchPlan } from '../types.js';
import { FLAG_OF, InvalidInputError, type BatchOptions } from '../config/schema.js';
import { searchRunsByTaxon } from '../tools/ena.js';
import { HttpClient } from '../tools/http.js';
import { expandProject } from '../tools/projects.js';
import { INSTALL_HINT } from '../tools/process.js';
import { EnvironmentError } from '../failures.js';

/** The tools a sample needs, with the argument that makes each print its version and exit. */
const TOOLS: [string, string[]][] = [
  ['kallisto', ['version']],
  ['fasterq-dump', ['--version']],
  ['vdb-validate', ['--version']],
];

export async function checkTools(): Promise<void> {
  const missing: string[] = [];
  const pkgs = new Set<string>();
  // All at once (start-up, issue 15), each reported in TOOLS' order.
  const found = await Promise.all(TOOLS.map(([cmd, args]) => execa(cmd, args, { timeout: 20_000 }).then(() => true, (err: { code?: string }) => err.code !== 'ENOENT')));
  for (const [i, [cmd]] of TOOLS.entries()) {
    if (found[i]) continue;
    // INSTALL_HINT (tools/process.ts) is the one place that knows which Debian package has which tool.
    const pkg = INSTALL_HINT[cmd]!.split(' ').pop()!;
    missing.push(`${cmd} (Debian package ${pkg})`);
    pkgs.add(pkg);
  }
  if (missing.length) {
    throw new EnvironmentError(`missing tools: ${missing.join(', ')}. Install them with: sudo apt-get install -y ${[...pkgs].join(' ')}   (or run npm run setup)`);
  }
}

export async function validateConfigs(options: BatchOptions, cwd = process.cwd(), onRuns?: DiscoverDeps['onRuns']): Promise<BatchPlan> {
  // Both at once; a missing tool is reported first, as when they ran in turn.
  const [tools, plan] = await Promise.allSettled([checkTools(), discoverDry(options, cwd, onRuns)]);
  if (tools.status === 'rejected') throw tools.reason;
  if (plan.status === 'rejected') throw plan.reason;
  return plan.value;
}

/** Discovery without writing anything: notes to stderr, every problem at once (exit 2), flags named as typed. */
export async function discoverDry(options: BatchOptions, cwd = process.cwd(), onRuns?: DiscoverDeps['onRuns']): Promise<BatchPlan> {
  // Throws InvalidInputError listing every problem of every config; main() maps it to exit 2.
  try {
    const plan = await discoverBatch(options, options.batchId!, cwd, { searchRunsByTaxon: (o) => searchRunsByTaxon(o), expandProject: (o) => expandProject({ ...o, http: new HttpClient() }), dryRun: true, ...(onRuns ? { onRuns } : {}) });
    // Before anything is downloaded, one line each: configs skipped and why, runs found at ENA, config
    // fields not used, reads kept, downsampling (docs/amalgkit.md).
    for (const n of plan.notes) process.stderr.write(`note: ${n}\n`);
    return plan;
  } catch (err) {
    // An archive that could not answer while projects were expanded: nothing started, say so and which.
    if ((err as { nonRetryable?: boolean }).nonRetryable === false) throw new EnvironmentError(`could not ask the archives before starting: ${(err as Error).message}`);
    if (!(err instanceof InvalidInputError)) throw err;
    // Problems with the options themselves name the flag the user typed, as batchOptionsFromFlags does.
    throw new InvalidInputError(
      err.problems.map((p) => (p.where === 'input' ? { ...p, where: 'command line', field: FLAG_OF[p.field as keyof BatchOptions] ?? p.field } : p)),
    );
  }
}
