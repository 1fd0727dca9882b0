/** Command-line parsing: batch flags come from the schema (FLAG_OF), so flags and defaults live in one place. */
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  BATCH_ID,
  DEFAULTS,
  FLAG_OF,
  HOST_ID,
  isHttpUrl,
  optionRange,
  resolveBatchOptions,
  RUN_ACCESSION,
  runAccessionProblem,
  showValue,
  type BatchOptions,
  type Problem,
} from '../config/schema.js';
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

const str = { type: 'string' as const };
const bool = { type: 'boolean' as const };
/** Which batch: by id, or by the output dir the default id derives from (and where an embedded server lives). */
const which: OptionSpec = { 'output-dir': str, 'batch-id': str };

/**
 * The options each command accepts, beyond the connection flags. A flag another command takes is an error here,
 * not silently ignored: `fetchquant status --total-threads 8` must not look like it did something.
 */
export const COMMAND_OPTIONS: Record<string, OptionSpec> = {
  // --port: the embedded server's (a restart after a crash keeps it)
  run: { ...batchFlagOptions, port: str },
  demo: { ...batchFlagOptions, dir: str, faults: str, port: str },
  start: { ...batchFlagOptions },
  worker: { 'output-dir': str },
  status: which,
  watch: { ...which, every: str },
  threads: which,
  pause: which,
  resume: which,
  cancel: which,
  history: { 'output-dir': str, json: bool },
  cleanup: { 'output-dir': str, execute: bool },
  report: { ...which, 'out-dir': str },
  server: { 'output-dir': str, port: str },
  setup: { 'retention-days': str },
};

/** Positional arguments per command: [min, max, what]. */
const POSITIONALS: Record<string, [number, number, string]> = {
  threads: [1, 1, '<n>'],
  history: [1, 1, '<RUN>'],
  cleanup: [1, Infinity, '<reads dir>…'],
};

const MAX_THREADS = 10_000;

/**
 * Parse and check one command's arguments before anything connects, starts or writes: unknown flags, flags of
 * another command, missing or extra positionals, and every value that is not a batch option (those are checked
 * by the schema in batchOptionsFromFlags) with the flag and value named.
 */
export function parseCommand(cmd: string, argv: string[], env: NodeJS.ProcessEnv = process.env) {
  // `threads -1` would otherwise read as an unknown short option "-1"
  const negative = cmd === 'threads' ? argv.find((a) => /^-[0-9.]/.test(a)) : undefined;
  if (negative !== undefined) throw new UsageError(`threads: expected a whole number >= 1, got ${JSON.stringify(negative)}`);
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv, COMMAND_OPTIONS[cmd] ?? {}, false);
  } catch (err) {
    throw new UsageError(`${cmd}: ${usageText((err as Error).message, cmd, argv)}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { values, positionals };
  const [min, max, what] = POSITIONALS[cmd] ?? [0, 0, ''];
  if (positionals.length > max) {
    const extra = positionals.slice(max).map((p) => JSON.stringify(p)).join(' ');
    throw new UsageError(`${cmd}: unexpected argument(s) ${extra}${max ? ` (expected ${what})` : ' (options start with --)'}`);
  }
  if (positionals.length < min) throw new UsageError(`${cmd}: missing ${what}`);
  const first = positionals[0] as string;
  if (cmd === 'threads') {
    const n = /^\s*\d+\s*$/.test(first) ? Number(first) : NaN;
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`threads: expected a whole number >= 1, got ${JSON.stringify(first)}`);
    if (n > MAX_THREADS) throw new UsageError(`threads: expected a whole number <= ${MAX_THREADS}, got ${JSON.stringify(first)}`);
  }
  if (cmd === 'history' && !RUN_ACCESSION.test(first)) {
    throw new UsageError(`history: expected a run accession matching ${RUN_ACCESSION.source}, got ${showValue(first)}${runAccessionProblem(first).slice(`must be a run accession matching ${RUN_ACCESSION.source}`.length)}`);
  }

  const problems: Problem[] = [];
  const bad = (flag: string, value: unknown, message: string) => problems.push({ where: 'command line', field: flag, value, message });
  const isBatchCmd = 'total-threads' in (COMMAND_OPTIONS[cmd] ?? {});
  const v = values as Record<string, string | boolean | undefined>;
  // Batch flags through the schema now, with the others: demo would otherwise generate its dataset first.
  if (isBatchCmd) problems.push(...flagProblems(values));
  else {
    if (v['batch-id'] !== undefined && !BATCH_ID.test(v['batch-id'] as string)) bad('--batch-id', v['batch-id'], `must match ${BATCH_ID.source}`);
    if (v['output-dir'] !== undefined) checkPath('--output-dir', v['output-dir'] as string, bad);
  }
  for (const flag of ['out-dir', 'dir', 'faults'] as const) if (v[flag] !== undefined) checkPath(`--${flag}`, v[flag] as string, bad);
  if (cmd === 'cleanup') positionals.forEach((p, i) => checkPath(`<reads dir> ${i + 1}`, p, bad));
  if (v.every !== undefined) checkNumber('--every', v.every as string, { min: 0.1, max: 3600 }, bad);
  if (v.port !== undefined) checkNumber('--port', v.port as string, { min: 0, max: 65535, int: true }, bad);
  if (v['retention-days'] !== undefined) checkNumber('--retention-days', v['retention-days'] as string, { min: 1, max: 3650, int: true }, bad);
  if (v['ui-url'] !== undefined && !isHttpUrl(v['ui-url'])) bad('--ui-url', v['ui-url'], 'must be an http(s) URL');
  // The host id names a state dir (~/.fetchquant/hosts/<id>/): `--host-id ../../x` must not reach a path.
  if (v['host-id'] !== undefined && !HOST_ID.test(v['host-id'] as string)) bad('--host-id', v['host-id'], `must match ${HOST_ID.source}`);
  else if (v['host-id'] === undefined && env.FETCHQUANT_HOST_ID) {
    // the worker replaces other characters by "-"; what is left must still be a plain name (not "..")
    const sanitized = env.FETCHQUANT_HOST_ID.replace(/[^A-Za-z0-9._-]/g, '-');
    if (!HOST_ID.test(sanitized)) problems.push({ where: 'environment', field: 'FETCHQUANT_HOST_ID', value: env.FETCHQUANT_HOST_ID, message: `must match ${HOST_ID.source}` });
  }
  if (problems.length) throw new InputProblems(problems);
  return { values, positionals };
}

/** node:util parseArgs messages, made one line that names the flag and the value. */
function usageText(m: string, cmd: string, argv: string[]): string {
  let x: RegExpExecArray | null;
  if ((x = /^Unknown option '([^']+)'/.exec(m))) return `unknown option ${x[1]} (\`fetchquant ${cmd} --help\` lists its options)`;
  if ((x = /^Option '(--[a-z-]+)[^']*' argument missing/.exec(m))) return `${x[1]} needs a value`;
  if ((x = /^Option '(--[a-z-]+)' argument is ambiguous/.exec(m))) {
    const flag = x[1] as string;
    const value = argv[argv.indexOf(flag) + 1] ?? '';
    return `${flag} ${JSON.stringify(value)}: a value starting with "-" is written ${flag}=${value}`;
  }
  if ((x = /^Option '(--[a-z-]+)' does not take an argument/.exec(m))) return `${x[1]} takes no value`;
  return m.split('\n')[0] as string;
}

function checkPath(flag: string, value: string, bad: (flag: string, value: unknown, message: string) => void): void {
  if (value.trim() === '') bad(flag, value, 'must be a non-empty path');
  else if (value.startsWith('~')) bad(flag, value, 'a leading ~ is not expanded here: give the full path');
}

function checkNumber(flag: string, value: string, o: { min: number; max: number; int?: boolean }, bad: (flag: string, value: unknown, message: string) => void): void {
  const n = /^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n) || (o.int && !Number.isInteger(n))) bad(flag, value, `must be a ${o.int ? 'whole number' : 'number'}`);
  else if (n < o.min) bad(flag, value, `must be at least ${o.min}`);
  else if (n > o.max) bad(flag, value, `must be at most ${o.max}`);
}

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

function resolveFlags(values: Record<string, unknown>) {
  const raw: Record<string, unknown> = {};
  for (const [key, flag] of Object.entries(FLAG_OF)) {
    const v = values[flag.slice(2)];
    if (v !== undefined) raw[key] = v;
  }
  const { options, problems } = resolveBatchOptions(raw, 'command line');
  return { options, problems: problems.map((p) => ({ ...p, field: FLAG_OF[p.field as keyof BatchOptions] ?? p.field })) };
}

function flagProblems(values: Record<string, unknown>): Problem[] {
  return resolveFlags(values).problems;
}

/** Batch options from flags: validated, defaults applied, paths absolute against cwd. */
export function batchOptionsFromFlags(values: Record<string, unknown>, cwd = process.cwd()): BatchOptions {
  const { options, problems } = resolveFlags(values);
  if (problems.length) throw new InputProblems(problems);
  options.configDir = resolve(cwd, options.configDir);
  options.outputDir = resolve(cwd, options.outputDir);
  options.batchId ??= defaultBatchId(options.outputDir);
  return options;
}

export class InputProblems extends Error {
  constructor(public readonly problems: Problem[]) {
    super(problems.map((p) => `${p.where}: ${p.field} = ${showValue(p.value)}: ${p.message}`).join('\n'));
    this.name = 'InputProblems';
  }
}

export function batchFlagsHelp(): string {
  const rows = (Object.keys(FLAG_OF) as (keyof BatchOptions)[]).map((k) => {
    const d = DEFAULTS[k];
    const shown = d === null ? '(none)' : Array.isArray(d) ? d.join(',') : String(d);
    const range = optionRange(k);
    return `  ${FLAG_OF[k].padEnd(26)} default ${shown}${range ? `  (${range})` : ''}`;
  });
  return rows.join('\n');
}

const FLAG_HELP: Record<string, string> = {
  'output-dir': '--output-dir DIR    which batch (its default id derives from it) and where an embedded server lives',
  'batch-id': '--batch-id ID       which batch',
  every: '--every SEC         refresh period (0.1..3600, default 2)',
  json: '--json              JSON instead of text',
  execute: '--execute           remove what is listed (needs a reachable server)',
  'out-dir': '--out-dir DIR       where the report goes (default <output-dir>/reports)',
  port: '--port N            embedded server\'s gRPC port (0..65535; default 7233 if free, else any free one)',
  'retention-days': '--retention-days N  closed-workflow retention (1..3650, default 30)',
  dir: '--dir DIR           demo dataset and outputs (default output/demo)',
  faults: '--faults FILE       mirror fault plan (JSON, for tests)',
};

/** The command's own options (not batch flags), one per line; '' when it has none. */
export function commandFlagsHelp(cmd: string): string {
  const opts = COMMAND_OPTIONS[cmd] ?? {};
  // batch commands list --output-dir and --batch-id with the batch flags
  const own = Object.keys(opts).filter((f) => f in FLAG_HELP && !('total-threads' in opts && f in batchFlagOptions));
  return own.map((f) => `  ${FLAG_HELP[f]}`).join('\n');
}

export const CONNECTION_HELP = `Connection (Temporal's conventions): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_*, temporal.toml profiles (TEMPORAL_PROFILE); flags --address, --namespace, --profile.
Without any of them, run/demo start an embedded dev server under <output-dir>/.temporal/.`;
