/**
 * amalgkit configs say which runs to fetch with an NCBI Entrez query (steps.metadata.search_string, e.g.
 * `"Apis mellifera"[Organism] AND RNA-Seq[Strategy] AND Illumina[Platform]`); fetchquant discovers runs at
 * ENA. This translates the Entrez terms those configs use into ENA's portal query language, or says which
 * term it cannot translate (never a silently wider search). Pure.
 */
import { BULK_LIBRARY_SOURCE } from '../tools/ena.js';
import { normalizeSpeciesName } from './species.js';

export type Translation = { query: string; shown: string } | { error: string };

const TERM = /^\(?\s*"?([^"[\]]+?)"?\s*\[(\w+)\]\s*\)?$/;

/** `ena query` for the config's taxon, or the first term that has no ENA equivalent. */
export function entrezToEna(searchString: string, speciesName: string, taxonId: number): Translation {
  const parts: string[] = [`tax_tree(${taxonId})`];
  let strategy = false;
  for (const raw of searchString.trim().split(/\s+AND\s+/)) {
    const term = raw.trim();
    const m = TERM.exec(term);
    if (!m || /\s(OR|NOT)\s/.test(term)) return { error: `cannot translate ${JSON.stringify(term)} to an ENA query (fetchquant understands "Genus species"[Organism], X[Strategy] and X[Platform] joined by AND)` };
    const value = (m[1] as string).trim();
    const field = (m[2] as string).toLowerCase();
    if (field === 'organism' || field === 'orgn') {
      // The config's taxon_id stands for the organism: both must name the same species.
      if (normalizeSpeciesName(value).toLowerCase() !== speciesName.toLowerCase()) {
        return { error: `${JSON.stringify(term)} names another organism than the config's species ${speciesName}` };
      }
    } else if (field === 'strategy') {
      parts.push(`library_strategy="${value}"`);
      strategy = true;
    } else if (field === 'platform') {
      parts.push(`instrument_platform="${value.toUpperCase()}"`);
    } else {
      return { error: `cannot translate ${JSON.stringify(term)} to an ENA query (field [${m[2]}] has no ENA equivalent here)` };
    }
  }
  // fetchquant quantifies RNA-Seq; a query without a strategy would also list genomic runs of the taxon.
  if (!strategy) parts.push('library_strategy="RNA-Seq"');
  // bulk transcriptomes only, as fetchquant's own search asks (tools/ena.ts searchUrl): kallisto's model is bulk
  parts.push(`library_source="${BULK_LIBRARY_SOURCE}"`);
  const query = parts.join(' AND ');
  return { query, shown: query };
}
