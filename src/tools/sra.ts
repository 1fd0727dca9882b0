/**
 * NCBI SRA Data Locator client: pure URL building and parsing plus a thin fetch.
 * Answer shape (DOMAIN.md): {"version":"2","result":[{"bundle":RUN,"status":200,"files":[{"type":"sra",
 * "name":RUN,"size":N,"md5":"…","locations":[{"service":"s3","link":"https://…"}]}]}]}
 */
import { ApplicationFailure } from '@temporalio/common';
import { RUN_ACCESSION } from '../config/schema.js';
import { FailureType } from '../failures.js';
import type { RemoteFile } from '../types.js';
import type { HttpClient } from './http.js';

export function locateUrl(locateBase: string, run: string): string {
  const q = new URLSearchParams({ acc: run, filetype: 'run' });
  return `${locateBase.replace(/\/+$/, '')}?${q.toString()}`;
}

export type LocateAnswer = { found: true; file: RemoteFile } | { found: false; answer: string };

interface LocatorFile {
  type?: unknown;
  name?: unknown;
  size?: unknown;
  md5?: unknown;
  locations?: { link?: unknown; service?: unknown }[];
}

/** amalgkit getfastq's --aws/--gcp/--ncbi as locator services: s3 = aws, gs = gcp, any other = NCBI's own. */
export function serviceAllowed(service: unknown, allowed: string[] | undefined): boolean {
  if (!allowed) return true;
  const s = String(service ?? '');
  return allowed.includes(s === 's3' || s === 'gs' ? s : 'ncbi');
}

/** Interpret a locator answer for one run. Throws only on a body that is not the locator's JSON. */
export function parseLocate(text: string, run: string, services?: string[]): LocateAnswer {
  let data: { result?: { bundle?: unknown; status?: unknown; msg?: unknown; message?: unknown; files?: LocatorFile[] }[] };
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`SRA locator answer for ${run} is not JSON: ${text.slice(0, 120)}`);
  }
  const entry = (data.result ?? []).find((r) => r.bundle === run) ?? data.result?.[0];
  if (!entry) return { found: false, answer: 'empty result' };
  // The per-run status is what says "not found"; the HTTP status of the whole answer is usually 200.
  if (Number(entry.status) !== 200) {
    const msg = entry.msg ?? entry.message;
    return { found: false, answer: `status ${String(entry.status)}${msg ? ` (${String(msg)})` : ''}` };
  }
  const file = (entry.files ?? []).find((f) => f.type === 'sra') ?? entry.files?.[0];
  const link = file?.locations?.find((l) => typeof l.link === 'string' && /^https?:\/\//.test(l.link) && serviceAllowed(l.service, services))?.link;
  if (!file || typeof link !== 'string') {
    const only = services ? ` from the allowed services (${services.join(', ') || 'none'}: steps.getfastq.aws/gcp/ncbi)` : '';
    return { found: false, answer: `status 200 but no downloadable location${only}` };
  }
  const size = Number(file.size);
  const md5 = typeof file.md5 === 'string' && /^[0-9a-f]{32}$/i.test(file.md5) ? file.md5.toLowerCase() : null;
  return {
    found: true,
    file: { url: link, name: `${run}.sra`, bytes: Number.isSafeInteger(size) && size > 0 ? size : null, md5, mate: 0 },
  };
}

export async function locateRun(opts: { locateUrl: string; run: string; http: HttpClient; signal?: AbortSignal; services?: string[] }): Promise<LocateAnswer> {
  if (!RUN_ACCESSION.test(opts.run)) {
    throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: `invalid run accession ${JSON.stringify(opts.run)}`, nonRetryable: true });
  }
  const url = locateUrl(opts.locateUrl, opts.run);
  const { status, body } = await opts.http.getText(url, { signal: opts.signal });
  if (status === 404 || status === 204) return { found: false, answer: `HTTP ${status} from ${url}` };
  if (status !== 200) return { found: false, answer: `HTTP ${status} from ${url}: ${body.slice(0, 200).trim()}` };
  try {
    const a = parseLocate(body, opts.run, opts.services);
    return a.found ? a : { found: false, answer: `${a.answer} from ${url}` };
  } catch (err) {
    // A proxy's error page in place of JSON is a transient server problem, not an unknown run.
    throw ApplicationFailure.create({ type: FailureType.ServerError, message: `${(err as Error).message} (from ${url})`, nonRetryable: false });
  }
}
