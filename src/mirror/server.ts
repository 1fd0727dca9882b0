/**
 * A local stand-in for the archives over loopback: the ENA Portal API (filereport, search), ENA file
 * hosting (/vol1/fastq, /vol1/srr) and the NCBI SRA Data Locator (/sdl/2/retrieve) plus its file links.
 * It answers like the real services (shapes in docs/archives-and-tools.md) and can misbehave on demand (faults.ts),
 * under a shared bandwidth cap, so downloads are tested against real HTTP, not mocks.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RUN_ACCESSION } from '../config/schema.js';
import { FaultBook, type FaultPlan, type RequestFault, type RequestKind } from './faults.js';
import { runsByAccession } from './fixtures.js';
import {
  DEFAULT_FILEREPORT_FIELDS, DEFAULT_SEARCH_FIELDS, notFound, parseFields, parseFormat, parseSearchQuery, render,
  apiError, enaFileName, secondaryStudyOf, type ApiAnswer, type EnaRun,
} from './ena-api.js';
import { answerHeadFault, bufferSource, fileSource, parseRange, sendBody, type SendContext } from './send.js';
import { eutilsAnswer } from './eutils.js';
import { locate } from './sra-locate.js';
import { TokenBucket } from './throttle.js';
import { Outages, SlidingWindowLimit, type LimitedService, type RateLimitSpec, type RateLimitStats } from './limits.js';
import type { Dataset, SyntheticFile, SyntheticRun, SyntheticSpecies } from './types.js';

export type { Fault, FaultPlan, FaultTarget } from './faults.js';

export interface MirrorStats {
  requests: number;
  bytesServed: number;
  /** per path: requests, bytes sent, and the requests with a Range header (a resumed download) */
  byPath: Record<string, { requests: number; bytes: number; ranges: number }>;
  rangeRequests: number;
  /** faults applied, per run ('*' for plan-wide ones) and kind */
  faultsFired: Record<string, Record<string, number>>;
  /** per rate-limited service: accepted, rejected (429) and the most accepted in any one-second window */
  rateLimits: Partial<Record<LimitedService, RateLimitStats>>;
  /** requests answered 503 by an outage, per service */
  outageRefused: Partial<Record<LimitedService, number>>;
}

export interface Mirror {
  baseUrl: string;
  enaPortalUrl: string;
  sraLocateUrl: string;
  /** NCBI E-utilities (GEO series -> BioProject) */
  eutilsUrl: string;
  enaFileScheme: 'http';
  stop(): Promise<void>;
  stats(): MirrorStats;
  resetStats(): void;
  setFaults(plan: FaultPlan): void;
  /** `source` answers 503 to everything for `ms` from now (0 ends an outage) */
  setOutage(source: 'ena' | 'sra', ms: number): void;
}

export interface MirrorOptions {
  dataset: Dataset;
  /** 0 = ephemeral */
  port?: number;
  /** total across connections (token bucket, 20 ms ticks) */
  bandwidthBytesPerSec?: number;
  latencyMs?: number;
  faults?: FaultPlan;
  /** requests per second each service allows (a sliding window over all clients); beyond it 429 */
  rateLimits?: Partial<Record<LimitedService, RateLimitSpec>>;
  /** outages from the start: source -> ms */
  outages?: Partial<Record<'ena' | 'sra', number>>;
}

type Entry = { species: SyntheticSpecies; run: SyntheticRun };

function emptyStats(): Omit<MirrorStats, 'faultsFired' | 'rateLimits' | 'outageRefused'> {
  return { requests: 0, bytesServed: 0, byPath: {}, rangeRequests: 0 };
}

export async function startMirror(opts: MirrorOptions): Promise<Mirror> {
  const runs = runsByAccession(opts.dataset);
  const faults = new FaultBook();
  faults.set(opts.faults);
  const bucket = opts.bandwidthBytesPerSec ? new TokenBucket(opts.bandwidthBytesPerSec) : null;
  const stopping = new AbortController();
  let stats = emptyStats();
  let host = '127.0.0.1:0';
  const limits = new Map<LimitedService, SlidingWindowLimit>(
    Object.entries(opts.rateLimits ?? {}).map(([k, spec]) => [k as LimitedService, new SlidingWindowLimit(spec!)]),
  );
  const outages = new Outages();
  for (const [src, ms] of Object.entries(opts.outages ?? {})) outages.set(src as 'ena' | 'sra', ms!);
  /** an outage or a rate limit answered the request (503 or 429): true */
  function refused(res: ServerResponse, service: LimitedService, ctx: SendContext): boolean {
    if (outages.down(service)) {
      // what a front end says for a back end that is down: 503, an HTML page, no Retry-After
      const body = '<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>\n';
      res.writeHead(503, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) });
      res.end(body, () => ctx.count(Buffer.byteLength(body)));
      return true;
    }
    const limit = limits.get(service);
    if (!limit || limit.admit()) return false;
    const body = JSON.stringify({ error: 'API rate limit exceeded', 'api-key': '127.0.0.1', count: String(limit.spec.perSec + 1), limit: String(limit.spec.perSec) });
    res.writeHead(429, {
      'Content-Type': 'application/json',
      'Content-Length': String(Buffer.byteLength(body)),
      'X-RateLimit-Limit': String(limit.spec.perSec),
      'X-RateLimit-Remaining': '0',
      ...(limit.spec.retryAfterSec !== undefined ? { 'Retry-After': String(limit.spec.retryAfterSec) } : {}),
    });
    res.end(body, () => ctx.count(Buffer.byteLength(body)));
    return true;
  }

  const known = (run: string) => runs.has(run) && !faults.hasState(run, 'unknown');
  /** ENA has it: known, and not still on its way from SRA (ena-lag) */
  const enaKnows = (run: string) => known(run) && !faults.lagging(run);
  const enaRun = (e: Entry): EnaRun => ({
    ...e,
    hasFiles: !e.run.sraOnly && !faults.hasState(e.run.run, 'sra-only'),
    singleAsMate1: faults.hasState(e.run.run, 'single-as-mate1'),
    ...(faults.state(e.run.run, 'declared-bytes') ? { declaredBytes: faults.state(e.run.run, 'declared-bytes')!.bytes } : {}),
  });

  function ctxFor(path: string): SendContext {
    const rec = (stats.byPath[path] ??= { requests: 0, bytes: 0, ranges: 0 });
    rec.requests++;
    const s = stats;
    return { bucket, signal: stopping.signal, count: (n) => { s.bytesServed += n; rec.bytes += n; } };
  }

  function sendApi(req: IncomingMessage, res: ServerResponse, ans: ApiAnswer, fault: RequestFault | null, ctx: SendContext): Promise<void> {
    const body = Buffer.from(ans.body);
    const chunked = fault?.kind === 'truncate';
    res.writeHead(ans.status, { 'Content-Type': ans.contentType, ...(chunked || ans.status === 204 ? {} : { 'Content-Length': String(body.length) }) });
    if (req.method === 'HEAD' || ans.status === 204) {
      res.end();
      return Promise.resolve();
    }
    return sendBody(res, bufferSource(body), 0, body.length - 1, fault, [], ctx);
  }

  async function enaApi(req: IncomingMessage, res: ServerResponse, url: URL, ctx: SendContext, endpoint: string): Promise<void> {
    const q = url.searchParams;
    const accession = q.get('accession')?.trim() ?? null;
    const fault = faults.take(accession && RUN_ACCESSION.test(accession) ? accession : null, { kind: 'ena-api' });
    if (answerHeadFault(req, res, fault, ctx)) return;
    const answer = ((): ApiAnswer => {
      if (q.get('result') !== 'read_run') return apiError(400, `Invalid result: ${q.get('result')} (this mirror serves read_run)`);
      const format = parseFormat(q.get('format'));
      if (typeof format !== 'string') return format;
      const fields = parseFields(q.get('fields'), endpoint === 'filereport' ? DEFAULT_FILEREPORT_FIELDS : DEFAULT_SEARCH_FIELDS);
      if (!Array.isArray(fields)) return fields;
      const renamed = faults.state(accession ?? '*', 'ena-reject-field');
      if (renamed && fields.includes(renamed.field)) return apiError(400, `Invalid fieldName(s) supplied: ${renamed.field}`);
      if (endpoint === 'filereport') {
        if (!accession) return apiError(400, 'accession is required');
        if (RUN_ACCESSION.test(accession)) {
          const e = runs.get(accession);
          return e && enaKnows(accession) ? render(fields, [enaRun(e)], format, host) : notFound(accession, fields, format);
        }
        if (!/^(PRJ[EDN][A-Z]\d+|[SED]RP\d+)$/.test(accession)) return apiError(400, `Invalid accession: ${accession}`);
        const sp = opts.dataset.species.find((s) => s.study === accession || secondaryStudyOf(s.study) === accession);
        const rows = sp ? sp.runs.filter((r) => enaKnows(r.run)).map((run) => enaRun({ species: sp, run })) : [];
        return rows.length > 0 ? render(fields, rows, format, host) : notFound(accession, fields, format);
      }
      const query = parseSearchQuery(q.get('query'));
      if ('status' in query) return query;
      let rows = [...runs.values()]
        .filter((e) => enaKnows(e.run.run))
        .filter((e) => query.taxa.every((t) => t === e.species.taxonId))
        .filter(() => query.strategy === null || query.strategy.toLowerCase() === 'rna-seq')
        .filter((e) => query.source === null || query.source.toUpperCase() === (e.run.singleCell ? 'TRANSCRIPTOMIC SINGLE CELL' : 'TRANSCRIPTOMIC'))
        // every mirrored run is ILLUMINA (ena-api.ts FIELDS)
        .filter(() => query.platform === null || query.platform === 'ILLUMINA')
        .map(enaRun);
      const offset = Number(q.get('offset') ?? 0) || 0;
      const limit = Number(q.get('limit') ?? 0) || 0;
      rows = rows.slice(offset, limit > 0 ? offset + limit : undefined);
      return render(fields, rows, format, host);
    })();
    await sendApi(req, res, answer, fault, ctx);
  }

  async function sraApi(req: IncomingMessage, res: ServerResponse, url: URL, ctx: SendContext): Promise<void> {
    const accs = (url.searchParams.get('acc') ?? '').split(',').map((a) => a.trim()).filter(Boolean);
    const fault = faults.take(accs.length === 1 && RUN_ACCESSION.test(accs[0]!) ? accs[0]! : null, { kind: 'sra-api' });
    if (answerHeadFault(req, res, fault, ctx)) return;
    const filetype = url.searchParams.get('filetype') ?? 'run';
    const stateOf = (a: string) => ({
      lite: faults.hasState(a, 'sra-lite'), payRequired: faults.hasState(a, 'sra-pay-required'), ceRequired: faults.hasState(a, 'sra-ce-required'),
      gsFree: faults.hasState(a, 'sra-gs-free'),
    });
    const answer: ApiAnswer = accs.length === 0
      ? { status: 400, contentType: 'application/json', body: JSON.stringify({ version: '2.1', status: 400, message: 'acc is required' }) }
      : accs.some((a) => faults.hasState(a, 'locator-error'))
        // The locator failed as a whole: a top-level status and no result (sra-tools testErrorResponse).
        ? { status: 200, contentType: 'application/json', body: JSON.stringify({ version: '2.1', status: 500, message: 'Internal Server Error' }) }
        : { status: 200, contentType: 'application/json', body: JSON.stringify(locate(accs, filetype, (a) => (known(a) ? runs.get(a)!.run : null), `http://${host}`, stateOf)) };
    await sendApi(req, res, answer, fault, ctx);
  }

  /** The dataset file a file URL names, or null; only files of the dataset can ever be served. */
  function resolveFile(path: string): { run: string; file: SyntheticFile; kind: RequestKind; corrupt: boolean } | null {
    let m = /^\/vol1\/fastq\/([SED]RR\d{3})\/([SED]RR\d{6,})\/([^/]+)$/.exec(path);
    if (m) {
      const [, dir, run, name] = m as unknown as [string, string, string, string];
      const e = runs.get(run);
      if (!e || run.slice(0, 6) !== dir || !enaKnows(run) || !enaRun(e).hasFiles) return null;
      const er = enaRun(e);
      const file = [...e.run.fastq, ...(e.run.orphan ? [e.run.orphan] : [])].find((f) => enaFileName(er, f) === name);
      return file ? { run, file, kind: { kind: 'fastq', mate: file.mate }, corrupt: false } : null;
    }
    // ENA's copy, then the locator's (serviceLink in sra-locate.ts): AWS, NCBI's own servers, Google Cloud
    m = /^\/vol1\/srr\/([SED]RR\d{3})\/([SED]RR\d{6,})$/.exec(path) ?? /^\/sra\/([SED]RR\d{6,})\/([SED]RR\d{6,})$/.exec(path)
      ?? /^\/(?:sos\/sra-pub-run-2|sra-pub-run-1)\/([SED]RR\d{6,})\/([SED]RR\d{6,})\.2$/.exec(path);
    if (m) {
      const viaEna = path.startsWith('/vol1/');
      const run = m[2]!;
      const e = runs.get(run);
      if (!e || !(viaEna ? enaKnows(run) : known(run)) || (viaEna ? run.slice(0, 6) !== m[1] || !enaRun(e).hasFiles : m[1] !== run)) return null;
      return { run, file: e.run.sra, kind: { kind: 'sra' }, corrupt: !viaEna && faults.hasState(run, 'corrupt-sra') };
    }
    return null;
  }

  async function serveFile(req: IncomingMessage, res: ServerResponse, path: string, ctx: SendContext): Promise<void> {
    const target = resolveFile(path);
    if (!target) {
      res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': '10' });
      res.end(req.method === 'HEAD' ? undefined : 'Not Found\n');
      return;
    }
    if (path.startsWith('/sra-pub-run-1/') && !faults.hasState(target.run, 'sra-gs-free')) {
      // The Google copy is requester-pays outside Google Cloud (amalgkit adds a userProject to gs links):
      // without credentials Cloud Storage refuses it (reconstructed: its UserProjectMissing error).
      const body = '<?xml version=\'1.0\' encoding=\'UTF-8\'?><Error><Code>UserProjectMissing</Code><Message>Bucket is a requester pays bucket but no user project provided.</Message></Error>';
      res.writeHead(400, { 'Content-Type': 'application/xml; charset=UTF-8', 'Content-Length': String(Buffer.byteLength(body)) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const fault = faults.take(target.run, target.kind);
    if (answerHeadFault(req, res, fault, ctx)) return;
    const size = target.file.bytes;
    if (req.headers.range) {
      stats.rangeRequests++;
      stats.byPath[path]!.ranges++;
    }
    const range = fault?.kind === 'ignore-range' ? null : parseRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
      res.end();
      return;
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes' };
    // A truncated body ends cleanly (chunked), so only a size check can tell it from a whole one.
    if (fault?.kind !== 'truncate') headers['Content-Length'] = String(end - start + 1);
    if (range) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const flip: number[] = [];
    // corrupt-sra flips the same absolute bytes every time, so a resumed download stays corrupt.
    if (target.corrupt) for (let i = 0; i < 16; i++) flip.push(Math.floor(size / 2) + i);
    if (fault?.kind === 'wrong-bytes') for (let i = 0; i < 4; i++) flip.push(start + Math.floor((end - start + 1) / 2) + i);
    await sendBody(res, fileSource(target.file.path, size), start, end, fault, flip.filter((o) => o <= end), ctx);
  }

  const server = createServer((req, res) => {
    stats.requests++;
    const url = new URL(req.url ?? '/', `http://${host}`);
    const ctx = ctxFor(url.pathname);
    const handle = async () => {
      if (opts.latencyMs) await new Promise((r) => setTimeout(r, opts.latencyMs));
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': '0' });
        return void res.end();
      }
      const api = /^\/ena\/portal\/api\/(filereport|search)$/.exec(url.pathname);
      const eutils = /^\/entrez\/eutils\/(esearch|esummary)\.fcgi$/.exec(url.pathname);
      const service: LimitedService = api ? 'ena-api' : url.pathname === '/sdl/2/retrieve' || eutils ? 'sra-api' : url.pathname.startsWith('/vol1/') ? 'ena-files' : 'sra-files';
      if (refused(res, service, ctx)) return;
      if (eutils) return sendApi(req, res, eutilsAnswer(eutils[1] as 'esearch' | 'esummary', url.searchParams, opts.dataset.species), null, ctx);
      if (api) return enaApi(req, res, url, ctx, api[1]!);
      if (url.pathname === '/sdl/2/retrieve') return sraApi(req, res, url, ctx);
      return serveFile(req, res, url.pathname, ctx);
    };
    handle().catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`mirror internal error: ${err.message}\n`);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const baseUrl = `http://${host}`;
  return {
    baseUrl,
    enaPortalUrl: `${baseUrl}/ena/portal/api`,
    sraLocateUrl: `${baseUrl}/sdl/2/retrieve`,
    eutilsUrl: `${baseUrl}/entrez/eutils`,
    enaFileScheme: 'http',
    stats: () =>
      JSON.parse(
        JSON.stringify({ ...stats, faultsFired: faults.fired, rateLimits: Object.fromEntries([...limits].map(([k, l]) => [k, l.stats])), outageRefused: outages.refused }),
      ) as MirrorStats,
    resetStats: () => {
      stats = emptyStats();
      for (const k of Object.keys(faults.fired)) delete faults.fired[k];
    },
    setFaults: (plan) => faults.set(plan),
    setOutage: (source, ms) => outages.set(source, ms),
    stop: async () => {
      stopping.abort();
      bucket?.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
