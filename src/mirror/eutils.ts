/**
 * NCBI E-utilities as the mirror answers them, for GEO series only (db=gds): esearch finds a series' GDS uid
 * (200000000 + the GSE number), esummary gives its record with the BioProject and the SRA study it links to.
 * Shapes: test/fixtures/archives/eutils (README there). Each synthetic species is the GEO series
 * GSE<its study number> (PRJEB900001 -> GSE900001); any other series is unknown to GEO.
 */
import type { ApiAnswer } from './ena-api.js';
import { secondaryStudyOf } from './ena-api.js';
import type { SyntheticSpecies } from './types.js';

const HEADER = (type: string) => ({ type, version: '0.3' });
const json = (status: number, body: unknown): ApiAnswer => ({ status, contentType: 'application/json; charset=UTF-8', body: JSON.stringify(body) });

export function gseOf(s: SyntheticSpecies): string {
  return `GSE${s.study.replace(/\D/g, '')}`;
}

function uidOf(gse: string): string {
  return String(200_000_000 + Number(gse.slice(3)));
}

export function eutilsAnswer(endpoint: 'esearch' | 'esummary', q: URLSearchParams, species: SyntheticSpecies[]): ApiAnswer {
  const db = q.get('db') ?? '';
  // E-utilities report a bad request inside a JSON body (pysradb and fetchngs both look for these keys)
  if (db !== 'gds') return json(200, { header: HEADER(endpoint), [`${endpoint}result`]: { ERROR: `Invalid db name specified: ${db}` } });
  if (endpoint === 'esearch') {
    const term = (q.get('term') ?? '').trim();
    const m = /^(GSE\d+)(?:\[ACCN\])?$/i.exec(term);
    const sp = m ? species.find((s) => gseOf(s) === m[1]!.toUpperCase()) : undefined;
    const idlist = sp ? [uidOf(gseOf(sp))] : [];
    return json(200, {
      header: HEADER('esearch'),
      esearchresult: {
        count: String(idlist.length), retmax: String(idlist.length), retstart: '0', idlist, translationset: [],
        querytranslation: term,
        ...(idlist.length ? {} : { errorlist: { phrasesnotfound: [term.replace(/\[ACCN\]$/i, '')], fieldsnotfound: [] }, warninglist: { phrasesignored: [], quotedphrasesnotfound: [], outputmessages: ['No items found.'] } }),
      },
    });
  }
  const id = (q.get('id') ?? '').trim();
  const sp = species.find((s) => uidOf(gseOf(s)) === id);
  if (!sp) return json(200, { header: HEADER('esummary'), esummaryresult: [`Invalid uid ${id} at position=0`] });
  const srp = secondaryStudyOf(sp.study);
  return json(200, {
    header: HEADER('esummary'),
    result: {
      uids: [id],
      [id]: {
        uid: id, accession: gseOf(sp), gds: '', title: `${sp.name} RNA-seq`, summary: '', gpl: '24247', gse: gseOf(sp).slice(3),
        taxon: sp.name, entrytype: 'GSE', gdstype: 'Expression profiling by high throughput sequencing',
        bioproject: sp.study,
        extrelations: [{ relationtype: 'SRA', targetobject: srp, targetftplink: `ftp://ftp-trace.ncbi.nlm.nih.gov/sra/sra-instant/reads/ByStudy/sra/SRP/${srp.slice(0, 6)}/${srp}/` }],
        n_samples: sp.runs.length,
      },
    },
  });
}
