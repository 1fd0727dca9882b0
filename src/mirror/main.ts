/**
 * Standalone mirror: `node dist/src/mirror/main.js --root DIR [--port N] [--bandwidth BYTES_PER_SEC]
 * [--latency MS] [--generate species=3,runs=4[,reads=2000,seed=1]]`. Serves DIR's dataset (generating
 * one first when DIR has no dataset.json) and prints its URLs as one JSON line; stops on SIGINT/SIGTERM.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defaultSpeciesSpecs, generateDataset, loadDataset } from './fixtures.js';
import { startMirror, type Mirror } from './server.js';

const USAGE = 'usage: mirror --root DIR [--port N] [--bandwidth BYTES_PER_SEC] [--latency MS] [--generate species=3,runs=4,reads=2000,seed=1]';

export interface MainArgs {
  root: string;
  port: number;
  bandwidth?: number;
  latency?: number;
  generate: { species: number; runs: number; reads: number; seed: number };
}

export function parseMainArgs(argv: string[]): MainArgs {
  const out: MainArgs = { root: '', port: 0, generate: { species: 3, runs: 4, reads: 2000, seed: 1 } };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const need = () => {
      if (value === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      i++;
      return value;
    };
    const int = (v: string, min: number) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`${flag}: ${JSON.stringify(v)} is not a whole number >= ${min}\n${USAGE}`);
      return n;
    };
    if (flag === '--root') out.root = resolve(need());
    else if (flag === '--port') out.port = int(need(), 0);
    else if (flag === '--bandwidth') out.bandwidth = int(need(), 1);
    else if (flag === '--latency') out.latency = int(need(), 0);
    else if (flag === '--generate') {
      for (const kv of need().split(',')) {
        const [k, v] = kv.split('=');
        if (k !== 'species' && k !== 'runs' && k !== 'reads' && k !== 'seed') throw new Error(`--generate: unknown key ${JSON.stringify(k)} (species, runs, reads, seed)\n${USAGE}`);
        out.generate[k] = int(v ?? '', k === 'seed' ? 0 : 1);
      }
    } else throw new Error(`unknown argument ${JSON.stringify(flag)}\n${USAGE}`);
  }
  if (!out.root) throw new Error(`--root is required\n${USAGE}`);
  return out;
}

/** Starts the mirror and returns it (the CLI entry keeps the process alive until a signal). */
export async function main(argv: string[]): Promise<Mirror> {
  const args = parseMainArgs(argv);
  const dataset = existsSync(join(args.root, 'dataset.json'))
    ? await loadDataset(args.root)
    : await generateDataset({
        root: args.root,
        seed: args.generate.seed,
        species: defaultSpeciesSpecs(args.generate.species, args.generate.runs, { readsPerRun: args.generate.reads }),
      });
  const mirror = await startMirror({ dataset, port: args.port, bandwidthBytesPerSec: args.bandwidth, latencyMs: args.latency });
  process.stdout.write(
    JSON.stringify({
      baseUrl: mirror.baseUrl,
      enaPortalUrl: mirror.enaPortalUrl,
      sraLocateUrl: mirror.sraLocateUrl,
      eutilsUrl: mirror.eutilsUrl,
      enaFileScheme: mirror.enaFileScheme,
      root: dataset.root,
      configDir: dataset.configDir,
      outputDir: dataset.outputDir,
      species: dataset.species.map((s) => s.name),
      runs: dataset.species.reduce((n, s) => n + s.runs.length, 0),
    }) + '\n',
  );
  return mirror;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (mirror) => {
      const stop = () => void mirror.stop().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
    (err: Error) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    },
  );
}
