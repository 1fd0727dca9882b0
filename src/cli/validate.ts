/**
 * Before anything starts: every config problem at once (exit 2) and every missing tool named with the
 * package that provides it (exit 3). The batch workflow validates again, for batches started elsewhere.
 */
import { execa } from 'execa';
import { discoverBatch } from '../config/discover.js';
import type { BatchOptions } from '../config/schema.js';
import { searchRunsByTaxon } from '../tools/ena.js';
import { EnvError } from './args.js';

const TOOLS: [string, string[], string][] = [
  ['kallisto', ['version'], 'kallisto'],
  ['fasterq-dump', ['--version'], 'sra-toolkit'],
  ['vdb-validate', ['--version'], 'sra-toolkit'],
];

export async function checkTools(): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, args, pkg] of TOOLS) {
    try {
      await execa(cmd, args, { timeout: 20_000 });
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') missing.push(`${cmd} (Debian package ${pkg})`);
    }
  }
  if (missing.length) {
    const pkgs = [...new Set(missing.map((m) => m.match(/package (\S+)\)/)![1]))].join(' ');
    throw new EnvError(`missing tools: ${missing.join(', ')}. Install them with: sudo apt-get install -y ${pkgs}   (or run npm run setup)`);
  }
}

export async function validateConfigs(options: BatchOptions, cwd = process.cwd()): Promise<void> {
  await checkTools();
  // Throws InvalidInputError listing every problem of every config; main() maps it to exit 2.
  await discoverBatch(options, options.batchId!, cwd, { searchRunsByTaxon: (o) => searchRunsByTaxon(o), dryRun: true });
}
