/**
 * The kinds of option the schema (./schema.ts) declares. Each kind builds, from a few facts (default, range,
 * help), everything the rest of the code needs about one option: a zod check of a value as a user hands it in
 * (a command-line string or a JSON value of the workflow's input) with a message in the user's terms, the
 * placeholder and range for help texts and the README, and how its default is shown.
 * Pure (no Node built-ins): the batch workflow's bundle includes it.
 */
import { z } from 'zod';

/** The commands of the CLI (src/cli.ts). An option names the ones that take it. */
export const COMMAND_NAMES = ['run', 'worker', 'start', 'status', 'watch', 'threads', 'pause', 'resume', 'cancel', 'history', 'cleanup', 'report', 'server', 'setup', 'demo', 'plan', 'resume-parked'] as const;
export type Command = (typeof COMMAND_NAMES)[number];

export type Checked<T> = { value: T } | { error: string };

export interface Opt<T = unknown> {
  readonly default: T;
  /** A value handed in (not null/undefined: those mean "the default"), checked and converted. */
  check(value: unknown): Checked<T>;
  /** one line for help and the README */
  readonly help: string;
  /** placeholder in help (`N`, `SEC`, `DIR`, …); '' for a switch that takes no value */
  readonly arg: string;
  /** accepted range for help and docs (`1..10000`), '' if none */
  readonly range: string;
  /** the flag, when it is not `--` + the key in kebab-case without a trailing `Sec` */
  readonly flag?: string;
  /** how help and docs show the default when it is not the value itself (null defaults, derived ones) */
  readonly show?: string;
  /** commands that take this flag (batch options: beyond run, start and demo, which take them all) */
  readonly commands?: readonly Command[];
}

interface Common {
  help: string;
  flag?: string;
  show?: string;
  commands?: readonly Command[];
  arg?: string;
}

/**
 * The first problem zod finds is the one reported: one message per field, as users fix one thing at a time.
 * The schema is built on the first check, not at declaration: the workflow bundle imports these declarations,
 * and the Temporal SDK evaluates the bundle's modules again for every workflow it starts, so building ~40 zod
 * schemas at import cost every sample workflow CPU it never used (B3 profile: ~10 % of the worker's workflow
 * thread).
 */
function fromZod<T>(make: () => z.ZodType<T>): (v: unknown) => Checked<T> {
  let schema: z.ZodType<T> | undefined;
  return (v) => {
    schema ??= make();
    const r = schema.safeParse(v);
    return r.success ? { value: r.data } : { error: r.error.issues[0]?.message ?? 'is not valid' };
  };
}

function opt<T>(schema: () => z.ZodType<T>, o: Common & { default: T; arg: string; range?: string }): Opt<T> {
  return {
    default: o.default,
    check: fromZod(schema),
    help: o.help,
    arg: o.arg,
    range: o.range ?? '',
    ...(o.flag ? { flag: o.flag } : {}),
    ...(o.show ? { show: o.show } : {}),
    ...(o.commands ? { commands: o.commands } : {}),
  };
}

/** Decimal notation only: Number() would also take "0x10", "0b1", " " and "Infinity". */
const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
const asNumber = (v: unknown) => (typeof v === 'string' ? (DECIMAL.test(v) ? Number(v) : NaN) : v);

function numeric(whole: boolean, min: number, max: number) {
  const kind = whole ? 'must be a whole number' : 'must be a number';
  let n = z.number({ error: kind });
  if (whole) n = n.int({ error: kind });
  return z.preprocess(asNumber, n.min(min, { error: `must be at least ${min}` }).max(max, { error: `must be at most ${max}` }));
}

/** A whole number in [min, max]; strings in decimal notation are read as numbers (flags are strings). */
export function int<D extends number | null>(o: Common & { default: D; min: number; max: number }): Opt<number | D> {
  return opt<number | D>(() => numeric(true, o.min, o.max), { arg: 'N', ...o, range: `${o.min}..${o.max}` });
}

/** A number in [min, max]. */
export function num<D extends number | null>(o: Common & { default: D; min: number; max: number }): Opt<number | D> {
  return opt<number | D>(() => numeric(false, o.min, o.max), { arg: 'N', ...o, range: `${o.min}..${o.max}` });
}

/**
 * Longest time option in seconds: 2^31-1 ms, the longest timer Node.js keeps. A longer one is not "wait longer":
 * Node fires it after 1 ms (a --process-timeout of 30 days would kill every tool at once).
 */
export const MAX_SECONDS = 2_147_483;

/** A duration in seconds, at most MAX_SECONDS unless a lower bound is given. */
export function seconds(o: Common & { default: number; min: number; max?: number }): Opt<number> {
  return num({ arg: 'SEC', ...o, max: o.max ?? MAX_SECONDS });
}

const PATH_MESSAGE = 'must be a non-empty path';
/** A path as written: not empty, no NUL, no leading ~ (no shell between us and the user to expand it). */
export const pathSchema = () =>
  z
    .string({ error: PATH_MESSAGE })
    .refine((s) => s.trim().length > 0 && !s.includes('\0'), { error: PATH_MESSAGE })
    .refine((s) => !s.startsWith('~'), { error: 'a leading ~ is not expanded here: give the full path' });

export function path<D extends string | null>(o: Common & { default: D }): Opt<string | D> {
  return opt<string | D>(pathSchema, { arg: 'DIR', ...o });
}

/** http(s), a host name or IP (no credentials), an optional port and path; paths are appended, so no query. */
export const HTTP_URL = /^https?:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(\/[^\s?#]*)?$/;

/** An http(s) URL; trailing slashes are dropped (paths are appended to it). */
export function url<D extends string | null>(o: Common & { default: D }): Opt<string | D> {
  const message = 'must be an http(s) URL without query or fragment';
  const schema = () =>
    z
      .string({ error: message })
      .regex(HTTP_URL, { error: message })
      .transform((s) => s.replace(/\/+$/, ''));
  return opt<string | D>(schema, { arg: 'URL', ...o });
}

/** A name that must match a pattern (ids that become workflow ids, queries and directory names). */
export function pattern<D extends string | null>(re: RegExp, o: Common & { default: D }): Opt<string | D> {
  const message = `must match ${re.source}`;
  return opt<string | D>(() => z.string({ error: message }).regex(re, { error: message }), { arg: 'ID', ...o });
}

/** Free text handed on as it is (a server address, a namespace). */
export function text<D extends string | null>(o: Common & { default: D }): Opt<string | D> {
  return opt<string | D>(() => z.string(), { arg: 'TEXT', ...o });
}

/** One of a few words. */
export function oneOf<const V extends string>(values: readonly V[], o: Common & { default: V; message?: string }): Opt<V> {
  const message = o.message ?? `must be one of ${values.join(', ')}`;
  return opt<V>(() => z.enum(values as [V, ...V[]], { error: message }), { arg: values.join('|'), ...o });
}

/**
 * A non-empty list, as an array or a comma-separated string: of the given words (`items`, each at most once),
 * or of any non-empty strings.
 */
export function list<V extends string, D extends V[] | null>(o: Common & { default: D; items?: readonly V[]; message: string }): Opt<V[] | D> {
  const m = { error: o.message };
  const split = (v: unknown) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => o.items || s) : v);
  const schema = () => {
    const item = o.items ? z.enum(o.items as [V, ...V[]], m) : z.string(m).refine((s) => s.trim().length > 0, m);
    return z.preprocess(split, z.array(item, m).min(1, m).refine((a) => new Set(a).size === a.length || !o.items, m)) as unknown as z.ZodType<V[]>;
  };
  return opt<V[] | D>(schema, { arg: 'LIST', ...o });
}

/** A switch: present or not, no value. */
export function toggle(o: Common): Opt<boolean> {
  return opt<boolean>(() => z.boolean(), { ...o, arg: '', default: false });
}

/** `--kebab-case` of a key, without a trailing `Sec` (seconds are said in the help). */
export function flagOf(key: string, o: Pick<Opt, 'flag'>): string {
  return o.flag ?? `--${key.replace(/Sec$/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** The default as help and docs show it. */
export function shownDefault(o: Pick<Opt, 'default' | 'show'>): string {
  if (o.show) return o.show;
  const d = o.default;
  return d === null ? '(none)' : Array.isArray(d) ? d.join(',') : String(d);
}
