/**
 * NCBI SRA Data Locator client: pure URL building and parsing plus a thin fetch.
 * Answer shapes, copied from sra-tools' own tests, are in test/fixtures/archives/sdl (README there):
 * {"version":"2","result":[{"bundle":RUN,"status":200,"msg":"ok","files":[{"object":"srapub|RUN","type":"sra",
 *  "name":RUN,"size":N,"md5":"…","noqual":false,"locations":[{"service":"s3","region":"…","link":"https://…"}]}]}]}
 * An answer can list companions before the run (a `.pileup` of type sra, a vdbcache, a reference FASTA), an
 * SRA Lite copy (`RUN.lite`, noqual), locations that need payment, cloud credentials or dbGaP access, a
 * per-run error status, or only a top-level error status with no result at all.
 */
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { FailureType } from '../failures.js';
import type { RemoteFile } from '../types.js';
import { excerpt, type HttpClient } from './http.js';

export function locateUrl(locateBase: string, run: string): string {
  const q = new URLSearchParams({ acc: run, filetype: 'run' });
  return `${locateBase.replace(/\/+$/, '')}?${q.toString()}`;
}

export interface LocatedCopy {
  file: RemoteFile;
  /** SRA Lite: the copy has no original quality scores (noqual) */
  noqual: boolean;
  /** the copy's name at NCBI (RUN or RUN.lite) and the service that serves it */
  remoteName: string;
  service: string;
}

export type LocateAnswer =
  | ({ found: true } & LocatedCopy)
  /** retryable: the locator had a problem (top-level or per-run server error), not an answer about the run */
  | { found: false; answer: string; retryable?: boolean };

interface LocatorLocation {
  link?: unknown;
  service?: unknown;
  region?: unknown;
  payRequired?: unknown;
  ceRequired?: unknown;
  encryptedForProjectId?: unknown;
}

interface LocatorFile {
  object?: unknown;
  type?: unknown;
  name?: unknown;
  size?: unknown;
  md5?: unknown;
  noqual?: unknown;
  locations?: LocatorLocation[];
}

interface LocatorEntry {
  bundle?: unknown;
  status?: unknown;
  msg?: unknown;
  message?: unknown;
  files?: LocatorFile[];
}

/** A locator service as amalgkit getfastq's --aws/--gcp/--ncbi name it: s3 = aws, gs = gcp, any other = NCBI's own. */
export function serviceKind(service: unknown): 's3' | 'gs' | 'ncbi' {
  const s = String(service ?? '');
  return s === 's3' || s === 'gs' ? s : 'ncbi';
}

/**
 * amalgkit getfastq's order when every source is allowed (SRA_DOWNLOAD_SOURCE_PRIORITY in amalgkit 0.16's
 * getfastq.py: AWS, GCP, NCBI); a config or --sources that lists services gives its own order.
 */
export const DEFAULT_SERVICE_ORDER: readonly string[] = ['s3', 'gs', 'ncbi'];

export function serviceAllowed(service: unknown, allowed: string[] | undefined): boolean {
  if (!allowed) return true;
  return allowed.includes(serviceKind(service));
}

/** Why a location cannot be used without credentials or payment (or is not allowed by the config), or null. */
function locationProblem(l: LocatorLocation, services?: string[]): string | null {
  const where = [l.service, l.region].filter((x) => typeof x === 'string' && x).join(' ') || 'a location';
  if (!serviceAllowed(l.service, services)) return `${where} is not among the allowed services (${services?.join(', ') || 'none'}: steps.getfastq.aws/gcp/ncbi)`;
  if (typeof l.link !== 'string' || !/^https?:\/\//i.test(l.link)) return `${where} has no http(s) link`;
  if (l.payRequired === true) return `${where} needs payment (payRequired)`;
  if (l.ceRequired === true) return `${where} needs cloud credentials (ceRequired)`;
  if (typeof l.encryptedForProjectId === 'string' && l.encryptedForProjectId) return `${where} is encrypted for dbGaP project ${l.encryptedForProjectId}`;
  return null;
}

/**
 * Interpret a locator answer for one run. Takes only the run's own file (type sra, named RUN or RUN.lite),
 * never a companion; prefers the full-quality copy over SRA Lite, as sra-tools does; skips locations that
 * need payment, cloud credentials or dbGaP access. Throws only on a body that is not JSON.
 */
export function parseLocate(text: string, run: string, services?: string[]): LocateAnswer {
  let data: { status?: unknown; message?: unknown; msg?: unknown; result?: unknown };
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`SRA locator answer for ${run} is not JSON: ${text.slice(0, 120)}`);
  }
  if (data === null || typeof data !== 'object') throw new Error(`SRA locator answer for ${run} is not a JSON object: ${text.slice(0, 120)}`);
  if (!Array.isArray(data.result)) {
    const status = data.status;
    if (status !== undefined && String(status) !== '200') {
      // {"version":"2.1","status":500,"message":"Internal Server Error"}: the locator failed, the run may exist.
      const msg = data.message ?? data.msg;
      return { found: false, retryable: true, answer: `locator error status ${String(status)}${msg ? ` (${String(msg)})` : ''} without a result` };
    }
    return { found: false, answer: 'answer without a result' };
  }
  const results = data.result as LocatorEntry[];
  const entry = results.find((r) => r?.bundle === run) ?? (results.length === 1 ? results[0] : undefined);
  if (!entry) return { found: false, answer: 'empty result' };
  // The per-run status is what says "not found"; the HTTP status of the whole answer is usually 200.
  const status = Number(entry.status);
  if (status !== 200) {
    const msg = entry.msg ?? entry.message;
    const answer = `status ${String(entry.status)}${msg ? ` (${String(msg)})` : ''}`;
    return status >= 500 ? { found: false, retryable: true, answer } : { found: false, answer };
  }
  const own = (entry.files ?? []).filter(
    (f) => f?.type === 'sra' && typeof f.name === 'string' && (f.name === run || f.name === `${run}.lite` || f.name === `${run}.sra`),
  );
  // Full quality first; a Lite copy only when no full one can be had.
  own.sort((a, b) => Number(a.noqual === true) - Number(b.noqual === true));
  const problems: string[] = [];
  // Locations in the order of the allowed services (amalgkit's order when none is given); the answer's own
  // order only breaks ties. An unlisted service sorts last and is reported as not allowed.
  const order = services ?? DEFAULT_SERVICE_ORDER;
  const rank = (l: LocatorLocation) => {
    const i = order.indexOf(serviceKind(l.service));
    return i < 0 ? order.length : i;
  };
  for (const f of own) {
    const locations = [...(f.locations ?? [])].sort((a, b) => rank(a) - rank(b));
    for (const l of locations) {
      const problem = locationProblem(l, services);
      if (problem) {
        problems.push(`${String(f.name)} at ${problem}`);
        continue;
      }
      const size = Number(f.size);
      const md5 = typeof f.md5 === 'string' && /^[0-9a-f]{32}$/i.test(f.md5) ? f.md5.toLowerCase() : null;
      return {
        found: true,
        file: { url: l.link as string, name: `${run}.sra`, bytes: Number.isSafeInteger(size) && size > 0 ? size : null, md5, mate: 0 },
        noqual: f.noqual === true,
        remoteName: String(f.name),
        service: typeof l.service === 'string' ? l.service : '',
      };
    }
  }
  if (own.length === 0) {
    const listed = (entry.files ?? []).map((f) => `${String(f?.name)} (${String(f?.type)})`).join(', ');
    return { found: false, answer: `status 200 but no file of the run itself${listed ? ` (listed: ${listed})` : ''}` };
  }
  return { found: false, answer: `status 200 but no copy is free to download: ${problems.join('; ') || 'no locations'}` };
}

export async function locateRun(opts: { locateUrl: string; run: string; http: HttpClient; signal?: AbortSignal; services?: string[] }): Promise<LocateAnswer> {
  if (!RUN_ACCESSION.test(opts.run)) {
    throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: `invalid run accession ${JSON.stringify(opts.run)}`, nonRetryable: true });
  }
  const url = locateUrl(opts.locateUrl, opts.run);
  const { status, body } = await opts.http.getText(url, { signal: opts.signal, rateClass: 'sra' });
  if (status === 404 || status === 204) return { found: false, answer: `HTTP ${status} from ${url}` };
  let a: LocateAnswer;
  try {
    a = parseLocate(body, opts.run, opts.services);
  } catch (err) {
    if (status !== 200) return { found: false, answer: `HTTP ${status} from ${url}: ${excerpt(body)}` };
    // A proxy's error page in place of JSON is a transient server problem, not an unknown run.
    throw ApplicationFailure.create({ type: FailureType.ServerError, message: `${(err as Error).message} (from ${url})`, nonRetryable: false });
  }
  if (a.found) return a;
  if (a.retryable) {
    throw ApplicationFailure.create({ type: FailureType.ServerError, message: `SRA locator: ${a.answer} (GET ${url})`, nonRetryable: false });
  }
  return { found: false, answer: status === 200 ? `${a.answer} from ${url}` : `HTTP ${status} from ${url}: ${a.answer}` };
}
