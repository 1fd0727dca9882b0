/**
 * The one schema: every batch option with its default, and validation of what users hand in.
 * Pure (no Node built-ins): the batch workflow applies it to raw JSON started from the Temporal CLI.
 * Species configs and run tables are validated in ./species.ts against the same rules.
 */

export type Source = 'ena' | 'sra';

/** Every option of a batch. CLI flags map 1:1 (see FLAG_OF). */
export interface BatchOptions {
  configDir: string;
  outputDir: string;
  totalThreads: number;
  maxSpecies: number | null;
  species: string[] | null;
  checkIntervalSec: number;
  monitorIntervalSec: number;
  quantThreads: number;
  maxRetries: number;
  processTimeoutSec: number;
  healthCheckIntervalSec: number;
  minFreeGb: number;
  autoCleanupThresholdGb: number;
  kallistoThreads: number;
  sources: Source[];
  enaPortalUrl: string;
  /** ftp is not offered: the downloader speaks HTTP(S) only (ENA serves the same paths over https) */
  enaFileScheme: 'https' | 'http';
  sraLocateUrl: string;
  batchId: string | null;
  /** A sample whose host's queue is not polled for this long restarts on another host. */
  hostLostTimeoutSec: number;
  /** How long a sample waits before asking for disk again. */
  diskWaitSec: number;
  /** First retry back-off; doubles per attempt (capped at 100x). Tests make it small. */
  retryInitialSec: number;
  /** A download that receives no byte for this long fails its attempt. */
  stallTimeoutSec: number;
  /** A species workflow continues-as-new once its history passes this many events. */
  maxHistoryEvents: number;
}

export const DEFAULTS: Readonly<BatchOptions> = Object.freeze({
  configDir: 'config/amalgkit',
  outputDir: 'output/amalgkit',
  totalThreads: 24,
  maxSpecies: null,
  species: null,
  checkIntervalSec: 300,
  monitorIntervalSec: 60,
  quantThreads: 10,
  maxRetries: 3,
  processTimeoutSec: 3600,
  healthCheckIntervalSec: 600,
  minFreeGb: 10,
  autoCleanupThresholdGb: 5,
  kallistoThreads: 2,
  sources: ['ena', 'sra'] as Source[],
  enaPortalUrl: 'https://www.ebi.ac.uk/ena/portal/api',
  enaFileScheme: 'https' as const,
  sraLocateUrl: 'https://locate.ncbi.nlm.nih.gov/sdl/2/retrieve',
  batchId: null,
  hostLostTimeoutSec: 600,
  diskWaitSec: 30,
  retryInitialSec: 5,
  stallTimeoutSec: 120,
  maxHistoryEvents: 8000,
});

/** Per-species defaults (single-end kallisto fragment model). */
export const SPECIES_DEFAULTS = Object.freeze({ fragmentLength: 200, fragmentSd: 20 });

/** CLI flag of each option, for messages that name what the user typed. */
export const FLAG_OF: Record<keyof BatchOptions, string> = {
  configDir: '--config-dir',
  outputDir: '--output-dir',
  totalThreads: '--total-threads',
  maxSpecies: '--max-species',
  species: '--species',
  checkIntervalSec: '--check-interval',
  monitorIntervalSec: '--monitor-interval',
  quantThreads: '--quant-threads',
  maxRetries: '--max-retries',
  processTimeoutSec: '--process-timeout',
  healthCheckIntervalSec: '--health-check-interval',
  minFreeGb: '--min-free-gb',
  autoCleanupThresholdGb: '--auto-cleanup-threshold',
  kallistoThreads: '--kallisto-threads',
  sources: '--sources',
  enaPortalUrl: '--ena-portal-url',
  enaFileScheme: '--ena-file-scheme',
  sraLocateUrl: '--sra-locate-url',
  batchId: '--batch-id',
  hostLostTimeoutSec: '--host-lost-timeout',
  diskWaitSec: '--disk-wait',
  retryInitialSec: '--retry-initial',
  stallTimeoutSec: '--stall-timeout',
  maxHistoryEvents: '--max-history-events',
};

/**
 * SPEC §2.1 says ^[SED]RR[0-9]{6,}$; the bound on digits is ours: accessions name files (<RUN>_fetchquant.json)
 * and workflow ids, and a 300-digit one would pass the check only to fail mid-batch with ENAMETOOLONG.
 * Today's runs have 6 to 9 digits.
 */
export const RUN_ACCESSION = /^[SED]RR[0-9]{6,20}$/;
/**
 * Batch ids become part of workflow ids, visibility queries and one directory name (the run snapshots under
 * <outputDir>/.fetchquant/<batchId>/): no slash, no quote, no leading dot.
 */
export const BATCH_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** Host ids name a task queue, a visibility query value and a state directory (~/.fetchquant/hosts/<id>/). */
export const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
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

export class InvalidInputError extends Error {
  constructor(public readonly problems: Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'InvalidInputError';
  }
}

type Kind = 'int' | 'number' | 'string' | 'url';
/**
 * Longest time option in seconds: 2^31-1 ms, the longest timer Node.js keeps. A longer one is not "wait longer":
 * Node fires it after 1 ms (a --process-timeout of 30 days would kill every tool at once).
 */
export const MAX_SECONDS = 2_147_483;
const secs = (min: number) => ({ kind: 'number' as const, min, max: MAX_SECONDS });
const KINDS: Partial<Record<keyof BatchOptions, { kind: Kind; min?: number; max?: number }>> = {
  configDir: { kind: 'string' },
  outputDir: { kind: 'string' },
  totalThreads: { kind: 'int', min: 1, max: 10_000 },
  maxSpecies: { kind: 'int', min: 1, max: 1_000_000 },
  checkIntervalSec: secs(0.1),
  monitorIntervalSec: secs(0.1),
  quantThreads: { kind: 'int', min: 1, max: 1024 },
  maxRetries: { kind: 'int', min: 0, max: 100 },
  processTimeoutSec: secs(1),
  healthCheckIntervalSec: secs(0.1),
  minFreeGb: { kind: 'number', min: 0, max: 1_000_000 },
  autoCleanupThresholdGb: { kind: 'number', min: 0, max: 1_000_000 },
  kallistoThreads: { kind: 'int', min: 1, max: 1024 },
  enaPortalUrl: { kind: 'url' },
  sraLocateUrl: { kind: 'url' },
  hostLostTimeoutSec: secs(1),
  diskWaitSec: secs(0.05),
  // the retry back-off grows to 100x this
  retryInitialSec: { kind: 'number', min: 0.01, max: Math.floor(MAX_SECONDS / 100) },
  stallTimeoutSec: secs(0.5),
  // Temporal terminates a workflow whose history passes 51,200 events
  maxHistoryEvents: { kind: 'int', min: 200, max: 50_000 },
};

/** The accepted range of a numeric option, for help texts: `1..10000`, or '' for other kinds. */
export function optionRange(key: keyof BatchOptions): string {
  const k = KINDS[key];
  if (!k || (k.kind !== 'int' && k.kind !== 'number') || k.min === undefined) return '';
  return `${k.min}..${k.max ?? ''}`;
}

/** http(s), a host name or IP (no credentials), an optional port and path; paths are appended, so no query. */
const HTTP_URL = /^https?:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(\/[^\s?#]*)?$/;
export function isHttpUrl(v: unknown): v is string {
  return typeof v === 'string' && HTTP_URL.test(v);
}

/** Decimal notation only: Number() would also take "0x10", "0b1", " " and "Infinity". */
const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

function checkScalar(key: keyof BatchOptions, v: unknown, where: string, problems: Problem[]): unknown {
  const spec = KINDS[key];
  if (!spec) return v;
  const field = key;
  if (spec.kind === 'string') {
    if (typeof v !== 'string' || v.trim().length === 0 || v.includes('\0')) {
      problems.push({ where, field, value: v, message: 'must be a non-empty path' });
    } else if (/^~/.test(v)) {
      problems.push({ where, field, value: v, message: 'a leading ~ is not expanded here: give the full path' });
    }
    return v;
  }
  if (spec.kind === 'url') {
    if (typeof v !== 'string' || !HTTP_URL.test(v)) {
      problems.push({ where, field, value: v, message: 'must be an http(s) URL without query or fragment' });
    }
    return typeof v === 'string' ? v.replace(/\/+$/, '') : v;
  }
  const n = typeof v === 'string' ? (DECIMAL.test(v) ? Number(v) : NaN) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    problems.push({ where, field, value: v, message: `must be a ${spec.kind === 'int' ? 'whole number' : 'number'}` });
    return v;
  }
  if (spec.kind === 'int' && !Number.isInteger(n)) {
    problems.push({ where, field, value: v, message: 'must be a whole number' });
  } else if (spec.min !== undefined && n < spec.min) {
    problems.push({ where, field, value: v, message: `must be at least ${spec.min}` });
  } else if (spec.max !== undefined && n > spec.max) {
    problems.push({ where, field, value: v, message: `must be at most ${spec.max}` });
  }
  return n;
}

/**
 * Apply defaults and validate. Unknown fields are an error (a typo must not be silently ignored).
 * Returns the problems instead of throwing so the CLI can report every one at once.
 */
export function resolveBatchOptions(
  input: unknown,
  where = 'input',
): { options: BatchOptions; problems: Problem[] } {
  const problems: Problem[] = [];
  const raw: Record<string, unknown> = input == null ? {} : (input as Record<string, unknown>);
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push({ where, field: '(root)', value: input, message: 'must be a JSON object' });
    return { options: { ...DEFAULTS, sources: [...DEFAULTS.sources] }, problems };
  }
  const out: Record<string, unknown> = { ...DEFAULTS, sources: [...DEFAULTS.sources] };
  for (const [key, value] of Object.entries(raw)) {
    if (!(key in DEFAULTS)) {
      problems.push({ where, field: key, value, message: `unknown option (known: ${Object.keys(DEFAULTS).join(', ')})` });
      continue;
    }
    if (value === undefined || value === null) continue;
    const k = key as keyof BatchOptions;
    if (k === 'sources') {
      const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
      if (!Array.isArray(list) || list.length === 0 || list.some((s) => s !== 'ena' && s !== 'sra') || new Set(list).size !== list.length) {
        problems.push({ where, field: k, value, message: 'must be a non-empty list of distinct "ena" and "sra"' });
      } else out[k] = list;
    } else if (k === 'species') {
      const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
      // An empty filter would select nothing and start a batch with no work: that is a typo, not a request.
      if (!Array.isArray(list) || list.length === 0 || list.some((s) => typeof s !== 'string' || s.trim().length === 0)) {
        problems.push({ where, field: k, value, message: 'must be a non-empty list of species names or ids' });
      } else out[k] = list;
    } else if (k === 'enaFileScheme') {
      if (value !== 'https' && value !== 'http') {
        problems.push({ where, field: k, value, message: 'must be https or http (ftp is not supported; ENA serves the same paths over https)' });
      } else out[k] = value;
    } else if (k === 'batchId') {
      if (typeof value !== 'string' || !BATCH_ID.test(value)) {
        problems.push({ where, field: k, value, message: `must match ${BATCH_ID.source}` });
      } else out[k] = value;
    } else {
      out[k] = checkScalar(k, value, where, problems);
    }
  }
  return { options: out as unknown as BatchOptions, problems };
}
