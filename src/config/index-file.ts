/**
 * The kallisto index of a species, found the way amalgkit quant 0.16 finds it (docs/amalgkit.md): in the index
 * dir, a non-empty `.idx` file whose stem is the species token (`Apis_mellifera.idx`). Older amalgkit globbed
 * `<Genus_species>*`, and MetaInformAnt's configs mention `<Genus_species>_transcripts.idx`, so a single
 * `<token>[._-]…idx` is used too when the exact name is absent. Two candidates of one kind are an error naming
 * both: picking one silently could quantify against the wrong reference. An existing index is never rebuilt.
 */
import { readdir, stat } from 'node:fs/promises';
import { joinPath } from '../ids.js';

/** amalgkit's normalize_species_token: runs of other characters become `_`, then `_` and `.` are trimmed. */
export function speciesToken(name: string): string {
  return name
    .trim()
    .replace(/[^0-9A-Za-z._-]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^[_.]+|[_.]+$/g, '');
}

export type IndexLookup = { path: string; exact: boolean } | { ambiguous: string[] } | null;

export async function findIndexFile(indexDir: string, speciesName: string): Promise<IndexLookup> {
  const entries = await readdir(indexDir).catch(() => [] as string[]);
  const token = speciesToken(speciesName);
  const isIdx = (e: string) => e.toLowerCase().endsWith('.idx');
  const nonEmptyFile = async (e: string) =>
    stat(joinPath(indexDir, e)).then(
      (s) => s.isFile() && s.size > 0,
      () => false,
    );
  const exact: string[] = [];
  const prefixed: string[] = [];
  for (const e of entries.filter(isIdx).sort()) {
    const stem = e.slice(0, -'.idx'.length);
    if (!(await nonEmptyFile(e))) continue;
    if (speciesToken(stem) === token) exact.push(joinPath(indexDir, e));
    else if (['.', '_', '-'].some((d) => e.startsWith(token + d))) prefixed.push(joinPath(indexDir, e));
  }
  if (exact.length === 1) return { path: exact[0] as string, exact: true };
  if (exact.length > 1) return { ambiguous: exact };
  if (prefixed.length === 1) return { path: prefixed[0] as string, exact: false };
  if (prefixed.length > 1) return { ambiguous: prefixed };
  return null;
}
