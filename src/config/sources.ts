/**
 * The archives and the names --sources may give them. Its own module, with no option machinery (zod), because
 * workflow code needs it: every module the workflow bundle imports at its top is evaluated again for every
 * workflow the worker creates (the SDK's reusable V8 context keeps one module cache per workflow), and
 * ./schema.ts with zod was ~85 % of that (docs/architecture.md §4, "What a workflow imports").
 */

export type Source = 'ena' | 'sra';
/** What --sources may name: the two archives, or SRA's copies by where they are (amalgkit's --aws/--gcp/--ncbi). */
export type SourceName = Source | 'aws' | 'gcp' | 'ncbi';
export const SOURCE_NAMES = ['ena', 'sra', 'aws', 'gcp', 'ncbi'] as const;
/** The locator service of each SRA copy name (Data Locator `service`: s3, gs, anything else is NCBI's own). */
export const SERVICE_OF: Readonly<Record<'aws' | 'gcp' | 'ncbi', string>> = { aws: 's3', gcp: 'gs', ncbi: 'ncbi' };

/** The archives a --sources list asks, in order, once each (aws, gcp and ncbi are SRA's). */
export function archivesOf(names: readonly string[]): Source[] {
  const out: Source[] = [];
  for (const n of names) {
    const a: Source = n === 'ena' ? 'ena' : 'sra';
    if (!out.includes(a)) out.push(a);
  }
  return out;
}
