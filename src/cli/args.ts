/**
 * Command-line parsing (node:util parseArgs) and help. Every flag, its check and its help line come from the
 * schema's declaration (BATCH_OPTIONS, CLI_OPTIONS in src/config/schema.ts): nothing about an option is written
 * here.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  BATCH_COMMANDS,
  BATCH_OPTIONS,
  CLI_OPTIONS,
  flagOf,
  HOST_ID,
  InvalidInputError,
  resolveBatchOptions,
  RUN_ACCESSION,
  runAccessionProblem,
  showValue,
  shownDefault,
  type BatchOptions,
  type Command,
  type Opt,
  type Problem,
} from '../config/schema.js';
import { pathSchema } from '../config/option-kinds.js';
import { EnvironmentError, FailureType } from '../failures.js';
import { defaultBatchId } from '../ids.js';
import { DEMO_DEFAULTS, DEMO_DERIVED } from './demo-defaults.js';

export const EXIT = { ok: 0, samplesFailed: 1, badInput: 2, environment: 3, interrupted: 130 } as const;

/**
 * Exit codes have one error type each: 2 InvalidInputError (a list of problems, each naming where, field and
 * value; UsageError is one with a single line about the command line itself), 3 EnvironmentError.
 */
export class UsageError extends InvalidInputError {
  constructor(message: string) {
    super([]);
    this.message = message;
    this.name = 'UsageError';
  }
}

/** The exit code an error stands for, and whether it is one we expect (a message) or a bug (a stack trace). */
export function exitCodeOf(err: unknown): { code: number; expected: boolean } {
  const e = err as { name?: string; type?: string } | null;
  if (err instanceof InvalidInputError || e?.name === 'InvalidInputError') return { code: EXIT.badInput, expected: true };
  if (err instanceof EnvironmentError || e?.name === 'EnvironmentError' || e?.type === FailureType.ToolMissing) return { code: EXIT.environment, expected: true };
  return { code: EXIT.environment, expected: false };
}

export const COMMANDS: Record<Command, string> = {
  run: 'the main job: embedded server (unless TEMPORAL_ADDRESS), worker and batch, with progress; re-run resumes',
  worker: 'a worker only, for extra hosts or a real cluster',
  start: 'start a batch on an existing server; prints its id and Web UI link',
  status: 'progress of a batch, once',
  watch: 'live progress bars per species',
  threads: 'threads <n>: change total threads of a running batch',
  pause: 'stop starting new downloads (samples in flight finish)',
  resume: 'undo pause',
  'resume-parked': 'try every parked run of a batch again now (runs no source could serve: outage, not yet synchronised)',
  cancel: 'cancel a batch; samples clean up their partial files',
  history: 'history <RUN>: every stage, attempt, host, error and timing of a run',
  cleanup: 'cleanup <reads dirs>: list orphaned partial downloads; --execute removes them',
  report: 'summary TSV and timeline picture of a batch',
  server: 'only the local dev server, with the search attributes registered',
  setup: 'register search attributes and retention on an existing namespace',
  demo: 'synthetic three-species batch served by a local mirror, end to end, offline',
  plan: 'resolve every run at its sources before downloading: sizes, problems, disk, time; exit 1 if any run cannot be had',
};

interface Flag {
  key: string;
  flag: string;
  opt: Opt;
  batch: boolean;
}

/**
 * The flags a command takes, in the schema's order: every batch option for run, start and demo (others take the
 * ones that name them), then the command's own. A flag another command takes is an error, not silently ignored:
 * `fetchquant status --total-threads 8` must not look like it did something.
 */
export function commandFlags(cmd: Command): Flag[] {
  const batch = Object.entries(BATCH_OPTIONS as Record<string, Opt>)
    .filter(([, o]) => BATCH_COMMANDS.includes(cmd) || o.commands?.includes(cmd))
    .map(([key, opt]) => ({ key, flag: flagOf(key, opt), opt, batch: true }));
  const own = Object.entries(CLI_OPTIONS as Record<string, Opt>)
    .filter(([, o]) => o.commands?.includes(cmd))
    .map(([key, opt]) => ({ key, flag: flagOf(key, opt), opt, batch: false }));
  return [...batch, ...own];
}

/** parseArgs' option table of each command (flag names without `--`). */
export const COMMAND_OPTIONS = Object.fromEntries(
  (Object.keys(COMMANDS) as Command[]).map((cmd) => [cmd, Object.fromEntries(commandFlags(cmd).map((f) => [f.flag.slice(2), { type: f.opt.arg ? ('string' as const) : ('boolean' as const) }]))]),
) as Record<Command, Record<string, { type: 'string' | 'boolean' }>>;

/** Positional arguments per command: [min, max, what]. */
const POSITIONALS: Partial<Record<Command, [number, number, string]>> = {
  threads: [1, 1, '<n>'],
  history: [1, 1, '<RUN>'],
  cleanup: [1, Infinity, '<reads dir>…'],
};

const MAX_THREADS = 10_000;

export type Values = Record<string, string | boolean | undefined>;

/**
 * Parse and check one command's arguments before anything connects, starts or writes: unknown flags, flags of
 * another command, missing or extra positionals, and every value, with the flag and value named.
 */
export function parseCommand(cmd: Command, argv: string[], env: NodeJS.ProcessEnv = process.env): { values: Values; positionals: string[] } {
  // `threads -1` would otherwise read as an unknown short option "-1"
  const negative = cmd === 'threads' ? argv.find((a) => /^-[0-9.]/.test(a)) : undefined;
  if (negative !== undefined) throw new UsageError(`threads: expected a whole number >= 1, got ${JSON.stringify(negative)}`);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMAND_OPTIONS[cmd], help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
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

  // Every value through the schema now, before anything runs: demo would otherwise generate its dataset first.
  const problems: Problem[] = [];
  for (const f of commandFlags(cmd)) {
    const v = values[f.flag.slice(2)];
    if (v === undefined) continue;
    const r = f.opt.check(v);
    if ('error' in r) problems.push({ where: 'command line', field: f.flag, value: v, message: r.error });
  }
  if (cmd === 'cleanup') {
    positionals.forEach((p, i) => {
      const r = pathSchema().safeParse(p);
      if (!r.success) problems.push({ where: 'command line', field: `<reads dir> ${i + 1}`, value: p, message: r.error.issues[0]!.message });
    });
  }
  if (values['host-id'] === undefined && env.FETCHQUANT_HOST_ID) {
    // the worker replaces other characters by "-"; what is left must still be a plain name (not "..")
    const sanitized = env.FETCHQUANT_HOST_ID.replace(/[^A-Za-z0-9._-]/g, '-');
    if (!HOST_ID.test(sanitized)) problems.push({ where: 'environment', field: 'FETCHQUANT_HOST_ID', value: env.FETCHQUANT_HOST_ID, message: `must match ${HOST_ID.source}` });
  }
  if (problems.length) throw new InvalidInputError(problems);
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

/**
 * Batch options from flags: validated, defaults applied (`base` replaces some, e.g. the demo's), paths absolute
 * against cwd.
 */
export function batchOptionsFromFlags(values: Record<string, unknown>, cwd = process.cwd(), base: Partial<BatchOptions> = {}): BatchOptions {
  const raw: Record<string, unknown> = {};
  for (const f of commandFlags('run')) if (f.batch && values[f.flag.slice(2)] !== undefined) raw[f.key] = values[f.flag.slice(2)];
  const { options, problems } = resolveBatchOptions(raw, 'command line', base);
  if (problems.length) throw new InvalidInputError(problems.map((p) => ({ ...p, field: flagOf(p.field, (BATCH_OPTIONS as Record<string, Opt>)[p.field] ?? {}) })));
  options.configDir = resolve(cwd, options.configDir);
  options.outputDir = resolve(cwd, options.outputDir);
  options.batchId ??= defaultBatchId(options.outputDir);
  return options;
}

/** The embedded Temporal server's ports from flags; 0 = choose (see startEmbeddedServer). */
export function serverPorts(values: Record<string, unknown>): { port: number; uiPort: number; httpPort: number; metricsPort: number } {
  const n = (flag: string) => (values[flag] === undefined ? 0 : Number(values[flag]));
  return { port: n('port'), uiPort: n('ui-port'), httpPort: n('http-port'), metricsPort: n('metrics-port') };
}

function helpLine(f: Flag, shown: string): string {
  const left = `  ${f.flag}${f.opt.arg ? ` ${f.opt.arg}` : ''}`;
  const facts = [f.opt.range, f.opt.arg ? `default ${shown}` : ''].filter(Boolean).join('; ');
  return `${left.padEnd(34)} ${f.opt.help}${facts ? ` (${facts})` : ''}`;
}

/** `fetchquant --help` and `fetchquant <command> --help`, from the schema. */
export function usage(cmd?: Command): string {
  if (!cmd) {
    return [
      'usage: fetchquant <command> [options]   (fetchquant <command> --help)',
      '',
      ...Object.entries(COMMANDS).map(([c, d]) => `  ${c.padEnd(9)} ${d}`),
      '',
      'exit codes: 0 all samples done or skipped; 1 some samples failed; 2 bad input or usage; 3 environment',
    ].join('\n');
  }
  const flags = commandFlags(cmd);
  // demo's help shows the defaults demo really uses
  const shown = (f: Flag) => {
    if (cmd === 'demo' && f.batch) {
      const key = f.key as keyof BatchOptions;
      if (DEMO_DERIVED[key]) return DEMO_DERIVED[key];
      if (DEMO_DEFAULTS[key] !== undefined) return shownDefault({ default: DEMO_DEFAULTS[key] });
    }
    return shownDefault(f.opt);
  };
  const batch = flags.filter((f) => f.batch && BATCH_COMMANDS.includes(cmd));
  const own = flags.filter((f) => !batch.includes(f));
  return [
    `usage: fetchquant ${cmd} [options]`,
    COMMANDS[cmd],
    '',
    ...(batch.length ? ['Batch options (also fields of the batch workflow\'s JSON input, in camelCase):', ...batch.map((f) => helpLine(f, shown(f))), ''] : []),
    'Options:',
    ...own.map((f) => helpLine(f, shown(f))),
    '',
    CONNECTION_HELP,
  ].join('\n');
}

export const CONNECTION_HELP = `Connection (Temporal's conventions): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_*, temporal.toml profiles (TEMPORAL_PROFILE); flags --address, --namespace, --profile.
Without any of them, run/demo start an embedded dev server under <output-dir>/.temporal/.`;
