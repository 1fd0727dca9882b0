/**
 * Projects and studies as input (`fetchquant.projects` in a species config): a BioProject (PRJNA/PRJEB/PRJDB),
 * an SRA/ENA/DDBJ study (SRP/ERP/DRP) or a GEO series (GSE) expanded to its runs.
 *
 * - Projects and studies: ENA Portal API `filereport?accession=<ACC>&result=read_run`, one row per run
 *   (docs/archives-and-tools.md; nf-core/fetchngs bin/sra_ids_to_runinfo.py asks the same for ENA ids and
 *   treats 204 as "no content for this id").
 * - GSE: NCBI E-utilities `esearch.fcgi?db=gds&term=<GSE>[ACCN]&retmode=json` gives the series' GDS uid,
 *   `esummary.fcgi?db=gds&id=<uid>&retmode=json` its record, which links the series to its BioProject
 *   (`bioproject`) and to its SRA study (`extrelations`, relationtype SRA, targetobject SRP…); that
 *   accession then goes through the filereport above. Shapes: test/fixtures/archives/eutils (README there).
 *
 * Rows are kept only when they are bulk RNA-Seq (library_strategy RNA-Seq, library_source TRANSCRIPTOMIC)
 * of the config's species (or a subspecies of it): a project can hold WGS, single-cell and other species.
 * Pure parsing is exported for the fixture tests; accessions are checked before they reach a URL.
 */
import { ApplicationFailure } from '@temporalio/common';
import { PROJECT_ACCESSION, projectAccessionProblem, RUN_ACCESSION } from '../config/schema.js';
import { FailureType } from '../failures.js';
import type { RunMeta } from '../types.js';
import { BULK_LIBRARY_SOURCE, enaRejected, layoutOf, parseTsv } from './ena.js';
import { excerpt, type HttpClient } from './http.js';

export { PROJECT_ACCESSION, projectAccessionProblem };

export const PROJECT_FIELDS = ['run_accession', 'library_layout', 'nominal_length', 'read_count', 'library_strategy', 'library_source', 'scientific_name'] as const;

export function projectFilereportUrl(portalUrl: string, accession: string): string {
  const q = new URLSearchParams({ accession, result: 'read_run', fields: PROJECT_FIELDS.join(','), format: 'tsv' });
  return `${portalUrl.replace(/\/+$/, '')}/filereport?${q.toString()}`;
}

export function gdsSearchUrl(eutilsUrl: string, gse: string): string {
  const q = new URLSearchParams({ db: 'gds', term: `${gse}[ACCN]`, retmode: 'json' });
  return `${eutilsUrl.replace(/\/+$/, '')}/esearch.fcgi?${q.toString()}`;
}

export function gdsSummaryUrl(eutilsUrl: string, uid: string): string {
  const q = new URLSearchParams({ db: 'gds', id: uid, retmode: 'json' });
  return `${eutilsUrl.replace(/\/+$/, '')}/esummary.fcgi?${q.toString()}`;
}

/** One run row of a project as recorded (before the species and library filters). */
export interface ProjectRow {
  run: string;
  layout: string;
  nominalLength: string;
  spots: string;
  strategy: string;
  source: string;
  scientificName: string;
}

/** The rows of a project filereport (valid run accessions once each); 204 or header-only: none. */
export function parseProjectRows(body: string): ProjectRow[] {
  const out: ProjectRow[] = [];
  const seen = new Set<string>();
  for (const r of parseTsv(body)) {
    const run = (r.run_accession ?? '').trim();
    if (!RUN_ACCESSION.test(run) || seen.has(run)) continue;
    seen.add(run);
    out.push({
      run, layout: r.library_layout ?? '', nominalLength: r.nominal_length ?? '', spots: r.read_count ?? '',
      strategy: r.library_strategy ?? '', source: r.library_source ?? '', scientificName: r.scientific_name ?? '',
    });
  }
  return out;
}

/** The GDS uid of a series from an esearch answer, or null when GEO does not know it. */
export function parseGdsSearch(body: string, gse: string): string | null {
  let data: { esearchresult?: { idlist?: unknown; ERROR?: unknown } };
  try {
    data = JSON.parse(body);
  } catch {
    throw new Error(`E-utilities esearch answer for ${gse} is not JSON: ${body.slice(0, 120)}`);
  }
  const ids = data?.esearchresult?.idlist;
  if (!Array.isArray(ids)) throw new Error(`E-utilities esearch answer for ${gse} has no idlist: ${body.slice(0, 200)}`);
  // A series' GDS uid is 200000000 + its number; several uids can match a term: take the series itself.
  const want = String(200_000_000 + Number(gse.slice(3)));
  const found = ids.map(String);
  return found.includes(want) ? want : (found.find((id) => /^2\d{8}$/.test(id)) ?? null);
}

/** The accession a GSE record links to: its BioProject, else its SRA study; null for a series without SRA data. */
export function parseGdsSummary(body: string, uid: string): { accession: string; via: string } | null {
  let data: { result?: Record<string, { bioproject?: unknown; extrelations?: { relationtype?: unknown; targetobject?: unknown }[] }> };
  try {
    data = JSON.parse(body);
  } catch {
    throw new Error(`E-utilities esummary answer for uid ${uid} is not JSON: ${body.slice(0, 120)}`);
  }
  const rec = data?.result?.[uid];
  if (!rec) throw new Error(`E-utilities esummary answer has no record for uid ${uid}: ${body.slice(0, 200)}`);
  const bp = typeof rec.bioproject === 'string' ? rec.bioproject.trim() : '';
  if (bp && PROJECT_ACCESSION.test(bp)) return { accession: bp, via: 'bioproject' };
  const sra = (rec.extrelations ?? []).find((x) => String(x?.relationtype ?? '').toUpperCase() === 'SRA');
  const target = typeof sra?.targetobject === 'string' ? sra.targetobject.trim() : '';
  if (target && PROJECT_ACCESSION.test(target)) return { accession: target, via: 'SRA study' };
  return null;
}

function fail(message: string, retryable: boolean): ApplicationFailure {
  return ApplicationFailure.create({ type: retryable ? FailureType.ServerError : FailureType.InvalidInput, message, nonRetryable: !retryable });
}

export interface Expansion {
  accession: string;
  /** for a GSE: the BioProject or SRA study it links to */
  resolvedAs?: string;
  rows: ProjectRow[];
}

/**
 * Every run row the archives list for one project, study or series. Throws InvalidInput (non-retryable) when
 * the accession is unknown, ServerError (retryable) when an archive could not answer.
 */
export async function expandProject(opts: { accession: string; portalUrl: string; eutilsUrl: string; http: HttpClient }): Promise<Expansion> {
  const { accession, http } = opts;
  if (!PROJECT_ACCESSION.test(accession)) throw fail(`invalid project accession ${JSON.stringify(accession)}: ${projectAccessionProblem(accession)}`, false);
  let target = accession;
  let resolvedAs: string | undefined;
  if (accession.startsWith('GSE')) {
    const sUrl = gdsSearchUrl(opts.eutilsUrl, accession);
    const s = await http.getText(sUrl, { rateClass: 'sra' });
    if (s.status !== 200) throw fail(`GEO search for ${accession}: HTTP ${s.status} from ${sUrl}: ${excerpt(s.body)}`, s.status >= 500 || s.status === 429);
    const uid = parseGdsSearch(s.body, accession);
    if (!uid) throw fail(`GEO does not know the series ${accession} (${sUrl} lists no GDS record)`, false);
    const dUrl = gdsSummaryUrl(opts.eutilsUrl, uid);
    const d = await http.getText(dUrl, { rateClass: 'sra' });
    if (d.status !== 200) throw fail(`GEO record of ${accession}: HTTP ${d.status} from ${dUrl}: ${excerpt(d.body)}`, d.status >= 500 || d.status === 429);
    const link = parseGdsSummary(d.body, uid);
    if (!link) throw fail(`GEO series ${accession} links to no BioProject or SRA study (${dUrl}): it has no sequencing runs to fetch (a microarray series?)`, false);
    target = link.accession;
    resolvedAs = `${link.accession} (its ${link.via})`;
  }
  const url = projectFilereportUrl(opts.portalUrl, target);
  const r = await http.getText(url, { rateClass: 'ena' });
  if (r.status === 400) throw enaRejected(r.status, r.body, url, PROJECT_FIELDS);
  if (r.status !== 200 && r.status !== 204) throw fail(`ENA filereport of ${target}: HTTP ${r.status} from ${url}: ${excerpt(r.body)}`, true);
  const rows = r.status === 204 ? [] : parseProjectRows(r.body);
  if (rows.length === 0) {
    throw fail(`ENA lists no runs for ${target}${resolvedAs ? ` (of ${accession})` : ''} (${r.status === 204 ? 'HTTP 204, no content' : 'header-only answer'} from ${url}): unknown, not public yet, or without reads`, false);
  }
  return { accession, ...(resolvedAs ? { resolvedAs } : {}), rows };
}

/** Why a row is left out for this species, or null to keep it. */
export function rowExclusion(row: ProjectRow, speciesName: string): string | null {
  if (row.strategy.trim().toLowerCase() !== 'rna-seq') return `library_strategy ${row.strategy || '(empty)'}`;
  const src = row.source.trim().toUpperCase();
  if (src !== BULK_LIBRARY_SOURCE) return `library_source ${row.source || '(empty)'}`;
  const n = row.scientificName.replace(/_/g, ' ').trim().replace(/\s+/g, ' ').toLowerCase();
  const want = speciesName.toLowerCase();
  if (n !== want && !n.startsWith(`${want} `)) return `another species (${row.scientificName || 'unnamed'})`;
  return null;
}

export function rowToRun(row: ProjectRow): RunMeta {
  const meta: RunMeta = { run: row.run };
  const layout = layoutOf(row.layout);
  if (layout) meta.layout = layout;
  const nominal = Number(row.nominalLength);
  if (row.nominalLength !== '' && Number.isInteger(nominal) && nominal > 0) meta.nominalLength = nominal;
  const spots = Number(row.spots);
  if (row.spots !== '' && Number.isInteger(spots) && spots >= 0) meta.spots = spots;
  return meta;
}

const RECORD_HEADER = ['run_accession', 'library_layout', 'nominal_length', 'read_count', 'library_strategy', 'library_source', 'scientific_name'];

/** The recorded expansion: a comment line naming what was asked, then the rows as ENA gave them. */
export function formatRecord(e: Expansion, when: string): string {
  const lines = [
    `# ${e.accession}${e.resolvedAs ? ` -> ${e.resolvedAs}` : ''}: runs as the archives listed them on ${when}; fetchquant reads this file instead of asking again. Delete it to ask again.`,
    RECORD_HEADER.join('\t'),
    ...e.rows.map((r) => [r.run, r.layout, r.nominalLength, r.spots, r.strategy, r.source, r.scientificName].map((v) => v.replace(/[\t\n\r]/g, ' ')).join('\t')),
  ];
  return lines.join('\n') + '\n';
}

export function parseRecord(text: string, path: string): Expansion {
  const lines = text.split('\n');
  const m = /^# (\S+)(?: -> (.+?))?: runs as the archives/.exec(lines[0] ?? '');
  if (!m || lines[1] !== RECORD_HEADER.join('\t')) throw new Error(`${path}: not a fetchquant project record (delete it to ask the archives again)`);
  const rows = parseProjectRows(lines.slice(1).join('\n'));
  return { accession: m[1]!, ...(m[2] ? { resolvedAs: m[2] } : {}), rows };
}
