/**
 * The one schema: every option (batch options and the CLI's own flags) declared once, with its type, default,
 * range, flag and help, and validation of what users hand in. Pure (no Node built-ins): the batch workflow
 * applies it to raw JSON started from the Temporal CLI. Species configs and run tables are validated in
 * ./species.ts against the same rules. How to add an option: docs/options.md.
 */

import { COMMAND_NAMES, flagOf, HTTP_URL as HTTP_URL_RE, int, MAX_SECONDS, list, num, oneOf, path, pattern, seconds, text, toggle, url, type Command, type Opt } from './option-kinds.js';
import { LONG_LIVED_MAX_EVENTS } from '../workflows/options.js';
import { SOURCE_NAMES, type SourceName } from './sources.js';

export { COMMAND_NAMES, flagOf, HTTP_URL, MAX_SECONDS, shownDefault, type Command, type Opt } from './option-kinds.js';

export { archivesOf, SERVICE_OF, SOURCE_NAMES, type Source, type SourceName } from './sources.js';

/**
 * Batch ids become part of workflow ids, visibility queries and one directory name (the run snapshots under
 * <outputDir>/.fetchquant/<batchId>/): no slash, no quote, no leading dot.
 */
export const BATCH_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** Host ids name a task queue, a visibility query value and a state directory (~/.fetchquant/hosts/<id>/). */
export const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Commands that start a batch: they take every batch option. */
export const BATCH_COMMANDS: readonly Command[] = ['run', 'start', 'demo', 'plan'];
/** Commands that find a batch by id or output dir. */
const WHICH_BATCH: Command[] = ['status', 'watch', 'threads', 'pause', 'resume', 'cancel', 'report', 'resume-parked'];

/**
 * THE DECLARATION of every batch option: type, default, range, flag, help. Each is a field of the batch
 * workflow's JSON input (validated by resolveBatchOptions inside the workflow) and a flag of run, start and
 * demo; help texts and the README's option table (`npm run docs:options`) are generated from it.
 * Adding an option is adding one entry here (docs/options.md).
 */
export const BATCH_OPTIONS = {
  configDir: path({ default: 'config/amalgkit', help: 'where species configs (`amalgkit_*.yaml`) are found' }),
  outputDir: path({
    default: 'output/amalgkit',
    help: "default base for per-species dirs; the embedded server's state; the default batch id derives from it",
    commands: [...WHICH_BATCH, 'worker', 'history', 'cleanup', 'server'],
  }),
  totalThreads: int({ default: 24, min: 1, max: 10_000, help: 'concurrent download slots across all species' }),
  // Longest processing time first: with ascending or random sizes the batch can end on one big run quantifying
  // alone on one core while the others idle (docs/benchmarks.md B5). Only the start order: which runs are done
  // does not change.
  startOrder: oneOf(['largest', 'table'] as const, {
    default: 'largest',
    help: "which of a species' runs start first: the largest (run table total_bases, else total_spots x mates; runs of unknown size last) so no long quant ends the batch alone, or the run table's order",
  }),
  maxSpecies: int({ default: null, min: 1, max: 1_000_000, show: 'all', help: 'keep the first N species' }),
  // An empty filter would select nothing and start a batch with no work: that is a typo, not a request.
  species: list({ default: null, show: 'all', help: 'keep only these species (names or ids, comma-separated)', message: 'must be a non-empty list of species names or ids' }),
  checkIntervalSec: seconds({ default: 300, min: 0.1, help: 'reconciliation sweep period (reallocation itself is event-driven)' }),
  monitorIntervalSec: seconds({ default: 60, min: 0.1, help: 'progress publication period' }),
  // null: each host decides from its cores (src/cores.ts), so 2-core and 16-core hosts both saturate
  quantThreads: int({ default: null, min: 1, max: 1024, show: "from the host's cores", help: 'concurrent kallisto jobs per host' }),
  maxRetries: int({ default: 3, min: 0, max: 100, help: 'retries per step before a sample fails' }),
  processTimeoutSec: seconds({ default: 3600, min: 1, help: 'limit for one attempt of any external tool' }),
  healthCheckIntervalSec: seconds({ default: 600, min: 0.1, help: 'disk janitor period per host' }),
  minFreeGb: num({ default: 10, min: 0, max: 1_000_000, arg: 'GB', help: 'preflight floor and download admission floor' }),
  autoCleanupThresholdGb: num({
    default: 5, min: 0, max: 1_000_000, arg: 'GB', flag: '--auto-cleanup-threshold',
    help: 'below this much free space the janitor removes orphaned partial downloads',
  }),
  kallistoThreads: int({ default: null, min: 1, max: 1024, show: "from the host's cores", help: '`-t` of each kallisto run (and fasterq-dump `-e`)' }),
  sources: list({
    default: ['ena', 'sra'] as SourceName[], items: SOURCE_NAMES,
    help: "order of sources tried per run: ena, sra (SRA's copies in amalgkit's order: AWS, GCP, NCBI) or SRA's copies by name: aws, gcp, ncbi",
    message: 'must be a non-empty list of distinct "ena", "sra", "aws", "gcp", "ncbi"',
  }),
  enaPortalUrl: url({ default: 'https://www.ebi.ac.uk/ena/portal/api', help: 'ENA Portal API' }),
  // ftp is not offered: the downloader speaks HTTP(S) only (ENA serves the same paths over https)
  enaFileScheme: oneOf(['https', 'http'], {
    default: 'https',
    help: "scheme for ENA's scheme-less file paths",
    message: 'must be https or http (ftp is not supported; ENA serves the same paths over https)',
  }),
  sraLocateUrl: url({ default: 'https://locate.ncbi.nlm.nih.gov/sdl/2/retrieve', help: 'NCBI SRA Data Locator' }),
  eutilsUrl: url({ default: 'https://eutils.ncbi.nlm.nih.gov/entrez/eutils', help: 'NCBI E-utilities (a GEO series in fetchquant.projects to its BioProject)' }),
  batchId: pattern(BATCH_ID, { default: null, show: 'derived from the output dir', help: "names the batch's workflows", commands: WHICH_BATCH }),
  hostLostTimeoutSec: seconds({ default: 600, min: 1, help: "a sample whose host's queue is not polled this long restarts on another host" }),
  diskWaitSec: seconds({ default: 30, min: 0.05, help: 'how long a sample waits before asking for disk again' }),
  // the retry back-off grows to 100x this
  retryInitialSec: seconds({ default: 5, min: 0.01, max: Math.floor(MAX_SECONDS / 100), help: 'first retry back-off; doubles per attempt up to 100x this' }),
  stallTimeoutSec: seconds({ default: 120, min: 0.5, help: 'a download that receives no byte this long fails its attempt' }),
  // docs/park.md: outages and runs not yet synchronised between archives last hours to days
  parkWaitSec: seconds({ default: 6 * 3600, min: 0, help: 'a run no source can serve now (outage, 5xx beyond retries, not yet at the allowed source) waits this long on a durable timer, then is tried again; 0: never park, such a run fails at once' }),
  parkDeadlineSec: seconds({ default: 3 * 86400, min: 0.5, help: 'a run still parked this long after it was first parked fails (reported as parked past its deadline, with the reason)' }),
  // Temporal terminates a workflow whose history passes 51,200 events; a long history is also a long replay
  // (src/workflows/options.ts, LONG_LIVED_MAX_EVENTS)
  maxHistoryEvents: int({ default: LONG_LIVED_MAX_EVENTS, min: 200, max: 50_000, help: 'the batch and each species continue-as-new past this many history events (a shorter history replays faster after a restart)' }),
} satisfies Record<string, Opt>;

/**
 * The flags of the CLI that are not batch options (they are not in the workflow's input): which commands take
 * them, their checks and help. Same kinds, same messages.
 */
export const CLI_OPTIONS = {
  port: int({ default: null, min: 0, max: 65535, show: '7233 if free, else any free one', help: "embedded Temporal server's gRPC (frontend) port; a restart after a crash keeps it", commands: ['run', 'demo', 'server'] }),
  uiPort: int({ default: null, min: 0, max: 65535, show: 'the gRPC port + 1000 if free, else any free one', help: "embedded server's Web UI port", commands: ['run', 'demo', 'server'] }),
  httpPort: int({ default: null, min: 0, max: 65535, show: 'any free one', help: "embedded server's HTTP API port", commands: ['run', 'demo', 'server'] }),
  metricsPort: int({ default: null, min: 0, max: 65535, show: 'any free one', help: "embedded server's metrics (Prometheus) port", commands: ['run', 'demo', 'server'] }),
  dir: path({ default: 'output/demo', help: 'demo dataset and outputs', commands: ['demo'] }),
  faults: path({ default: null, arg: 'FILE', show: 'none', help: 'mirror fault plan (JSON, for tests)', commands: ['demo'] }),
  every: num({ default: 2, min: 0.1, max: 3600, arg: 'SEC', help: 'refresh period', commands: ['watch'] }),
  json: toggle({ help: 'JSON instead of text', commands: ['history', 'plan'] }),
  // Off by default: the SDK's stack capture for every workflow promise costs CPU (src/worker/no-stack-traces.cts).
  workflowStackTraces: toggle({ help: "collect workflow stack traces for the Web UI's Stack Trace tab (costs worker CPU)", commands: ['run', 'demo', 'worker'] }),
  skipPlan: toggle({ help: 'leave out the plan summary (the runs asked at their sources while the batch runs)', commands: ['run'] }),
  execute: toggle({ help: 'remove what is listed (needs a reachable server)', commands: ['cleanup'] }),
  outDir: path({ default: null, show: '<output-dir>/reports', help: 'where the report goes', commands: ['report'] }),
  retentionDays: int({ default: 30, min: 1, max: 3650, help: 'closed-workflow retention (days)', commands: ['setup'] }),
  // The host id names a state dir (~/.fetchquant/hosts/<id>/): `--host-id ../../x` must not reach a path.
  hostId: pattern(HOST_ID, { default: null, show: 'FETCHQUANT_HOST_ID, else the hostname', help: "this host's id", commands: COMMAND_NAMES }),
  uiUrl: url({ default: null, show: 'TEMPORAL_UI_URL', help: 'Web UI base for links', commands: COMMAND_NAMES }),
  address: text({ default: null, arg: 'HOST:PORT', show: 'TEMPORAL_ADDRESS', help: 'Temporal server to use', commands: COMMAND_NAMES }),
  namespace: text({ default: null, arg: 'NAME', show: 'TEMPORAL_NAMESPACE', help: 'Temporal namespace', commands: COMMAND_NAMES }),
  profile: text({ default: null, arg: 'NAME', show: 'TEMPORAL_PROFILE', help: 'temporal.toml profile', commands: COMMAND_NAMES }),
} satisfies Record<string, Opt>;

type ValueOf<O> = O extends Opt<infer T> ? T : never;

/** Every option of a batch, typed from the declaration. */
export type BatchOptions = { -readonly [K in keyof typeof BATCH_OPTIONS]: ValueOf<(typeof BATCH_OPTIONS)[K]> };
export type BatchOptionKey = keyof BatchOptions;

const BATCH_KEYS = Object.keys(BATCH_OPTIONS) as BatchOptionKey[];

/** A fresh copy of the defaults (lists copied: callers may change them). */
export function defaultBatchOptions(): BatchOptions {
  return Object.fromEntries(BATCH_KEYS.map((k) => [k, copyOf(BATCH_OPTIONS[k].default)])) as BatchOptions;
}
function copyOf<T>(v: T): T {
  return (Array.isArray(v) ? [...v] : v) as T;
}

export const DEFAULTS: Readonly<BatchOptions> = Object.freeze(defaultBatchOptions());

/** Per-species defaults (single-end kallisto fragment model). */
export const SPECIES_DEFAULTS = Object.freeze({ fragmentLength: 200, fragmentSd: 20 });

/** CLI flag of each option, for messages that name what the user typed. */
export const FLAG_OF = Object.fromEntries(BATCH_KEYS.map((k) => [k, flagOf(k, BATCH_OPTIONS[k])])) as Record<BatchOptionKey, string>;

/**
 * docs/architecture.md §2.1 says ^[SED]RR[0-9]{6,}$; the bound on digits is ours: accessions name files (<RUN>_fetchquant.json)
 * and workflow ids, and a 300-digit one would pass the check only to fail mid-batch with ENAMETOOLONG.
 * Today's runs have 6 to 9 digits.
 */
export const RUN_ACCESSION = /^[SED]RR[0-9]{6,20}$/;
/** Species ids become directory names and workflow id parts. */
export const SPECIES_ID = /^[a-z0-9][a-z0-9._-]{0,99}$/;

export interface Problem {
  /** file, or `input` for workflow/CLI options */
  where: string;
  /** field path or row */
  field: string;
  value: unknown;
  message: string;
}

// Characters JSON.stringify leaves as they are but a terminal shows as nothing (zero-width, bidi controls, BOM).
const INVISIBLE = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/g;

/** A value as the user should see it: JSON, with invisible characters written as \uXXXX. */
export function showValue(v: unknown): string {
  const text = JSON.stringify(v === undefined ? null : v) ?? 'null';
  return text.replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function formatProblem(p: Problem): string {
  return `${p.where}: ${p.field} = ${showValue(p.value)}: ${p.message}`;
}

/** What is wrong with a would-be run accession, with a hint for the usual mistakes. */
export function runAccessionProblem(v: unknown): string {
  const base = `must be a run accession matching ${RUN_ACCESSION.source}`;
  if (typeof v !== 'string') return base;
  const t = v.trim();
  const foreign = [...new Set([...t].filter((c) => c.charCodeAt(0) > 0x7e || c.charCodeAt(0) < 0x20))].slice(0, 3);
  if (foreign.length) return `${base} (it contains ${foreign.map((c) => `U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`).join(', ')}: look-alike or invisible characters)`;
  if (RUN_ACCESSION.test(t.toUpperCase())) return `${base} (accessions are upper case: ${t.toUpperCase()})`;
  const parts = t.split(/[\s,;]+/);
  if (parts.length > 1 && parts.every((x) => RUN_ACCESSION.test(x))) return `${base} (one accession each: this holds ${parts.length})`;
  if (/^[SED]R[XSPA][0-9]+$/i.test(t)) return `${base} (${t.slice(0, 3).toUpperCase()} is an experiment, sample, study or submission accession, not a run)`;
  return base;
}

/** PRJNA/PRJEB/PRJDB BioProjects, SRP/ERP/DRP studies, GSE series (ENA's accession formats; GEO's GSE). */
export const PROJECT_ACCESSION = /^(?:PRJ[EDN][A-Z][0-9]{1,12}|[SED]RP[0-9]{6,12}|GSE[0-9]{1,12})$/;

/** What is wrong with a would-be project accession, with a hint for the usual mistakes. */
export function projectAccessionProblem(v: unknown): string {
  const base = 'must be a BioProject (PRJNA…, PRJEB…, PRJDB…), a study (SRP…, ERP…, DRP…) or a GEO series (GSE…)';
  if (typeof v !== 'string') return base;
  const t = v.trim();
  if (PROJECT_ACCESSION.test(t.toUpperCase())) return `${base} (accessions are upper case: ${t.toUpperCase()})`;
  if (RUN_ACCESSION.test(t)) return `${base}; ${t} is a run: list it under fetchquant.runs`;
  if (/^GSM[0-9]+$/i.test(t)) return `${base}; ${t} is a GEO sample, not a series`;
  if (/^(SAM[EDN]|[SED]R[SX])/i.test(t)) return `${base}; ${t} is a sample or experiment accession`;
  return base;
}

export class InvalidInputError extends Error {
  constructor(public readonly problems: Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'InvalidInputError';
  }
}

/** http(s), a host name or IP (no credentials), an optional port and path. */
export function isHttpUrl(v: unknown): v is string {
  return typeof v === 'string' && HTTP_URL_RE.test(v);
}

/**
 * Apply defaults and validate. Unknown fields are an error (a typo must not be silently ignored).
 * Returns the problems instead of throwing so the CLI can report every one at once, in the input's order.
 * `base` replaces defaults (the demo's); it is not validated.
 */
export function resolveBatchOptions(
  input: unknown,
  where = 'input',
  base: Partial<BatchOptions> = {},
): { options: BatchOptions; problems: Problem[] } {
  const problems: Problem[] = [];
  const out: Record<string, unknown> = { ...defaultBatchOptions(), ...base };
  const raw: Record<string, unknown> = input == null ? {} : (input as Record<string, unknown>);
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push({ where, field: '(root)', value: input, message: 'must be a JSON object' });
    return { options: out as BatchOptions, problems };
  }
  for (const [key, value] of Object.entries(raw)) {
    if (!Object.hasOwn(BATCH_OPTIONS, key)) {
      problems.push({ where, field: key, value, message: `unknown option (known: ${BATCH_KEYS.join(', ')})` });
      continue;
    }
    if (value === undefined || value === null) continue;
    const r = (BATCH_OPTIONS[key as BatchOptionKey] as Opt).check(value);
    if ('error' in r) problems.push({ where, field: key, value, message: r.error });
    else out[key] = r.value;
  }
  return { options: out as BatchOptions, problems };
}
