/** Command-line parsing: batch flags come from the schema (FLAG_OF), so flags and defaults live in one place. */
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DEFAULTS, FLAG_OF, resolveBatchOptions, type BatchOptions, type Problem } from '../config/schema.js';
import { defaultBatchId } from '../ids.js';

export const EXIT = { ok: 0, samplesFailed: 1, badInput: 2, environment: 3, interrupted: 130 } as const;

export class UsageError extends Error {
  override name = 'UsageError';
}
export class EnvError extends Error {
  override name = 'EnvError';
}

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

const batchFlagOptions: OptionSpec = Object.fromEntries(
  Object.values(FLAG_OF).map((flag) => [flag.slice(2), { type: 'string' as const }]),
);

export const connectionOptions: OptionSpec = {
  address: { type: 'string' },
  namespace: { type: 'string' },
  profile: { type: 'string' },
  'ui-url': { type: 'string' },
  'host-id': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export function parse(argv: string[], extra: OptionSpec = {}, withBatchFlags = true) {
  try {
    return parseArgs({
      args: argv,
      options: { ...(withBatchFlags ? batchFlagOptions : {}), ...connectionOptions, ...extra },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Batch options from flags: validated, defaults applied, paths absolute against cwd. */
export function batchOptionsFromFlags(values: Record<string, unknown>, cwd = process.cwd()): BatchOptions {
  const raw: Record<string, unknown> = {};
  for (const [key, flag] of Object.entries(FLAG_OF)) {
    const v = values[flag.slice(2)];
    if (v !== undefined) raw[key] = v;
  }
  const { options, problems } = resolveBatchOptions(raw, 'command line');
  if (problems.length) throw new InputProblems(problems.map((p) => ({ ...p, field: FLAG_OF[p.field as keyof BatchOptions] ?? p.field })));
  options.configDir = resolve(cwd, options.configDir);
  options.outputDir = resolve(cwd, options.outputDir);
  options.batchId ??= defaultBatchId(options.outputDir);
  return options;
}

export class InputProblems extends Error {
  constructor(public readonly problems: Problem[]) {
    super(problems.map((p) => `${p.where}: ${p.field} = ${JSON.stringify(p.value)}: ${p.message}`).join('\n'));
    this.name = 'InputProblems';
  }
}

export function batchFlagsHelp(): string {
  const rows = (Object.keys(FLAG_OF) as (keyof BatchOptions)[]).map((k) => {
    const d = DEFAULTS[k];
    const shown = d === null ? '(none)' : Array.isArray(d) ? d.join(',') : String(d);
    return `  ${FLAG_OF[k].padEnd(26)} default ${shown}`;
  });
  return rows.join('\n');
}

export const CONNECTION_HELP = `Connection (Temporal's conventions): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_*, temporal.toml profiles (TEMPORAL_PROFILE); flags --address, --namespace, --profile.
Without any of them, run/demo start an embedded dev server under <output-dir>/.temporal/.`;
