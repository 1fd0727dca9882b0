/**
 * Every id, task-queue name and per-sample path is derived here and nowhere else.
 * Pure (no Node built-ins) so workflow code may import it: paths are POSIX strings.
 */

/** Shared task queue: workflows and activities that do not touch a host's files. */
export const TASK_QUEUE = 'fetchquant';
/** Prefix of every workflow id this tool creates. */
export const WORKFLOW_ID_PREFIX = 'fetchquant/';

/** Per-host task queue: a sample's file work runs where its files are. */
export function hostQueue(hostId: string): string {
  return `${TASK_QUEUE}@${hostId}`;
}

export function batchWorkflowId(batchId: string): string {
  return `${WORKFLOW_ID_PREFIX}${batchId}`;
}
export function speciesWorkflowId(batchId: string, speciesId: string): string {
  return `${WORKFLOW_ID_PREFIX}${batchId}/${speciesId}`;
}
export function sampleWorkflowId(batchId: string, speciesId: string, run: string): string {
  return `${WORKFLOW_ID_PREFIX}${batchId}/${speciesId}/${run}`;
}
/** One janitor per host, independent of batches (disk belongs to the host, not a batch). */
export function janitorWorkflowId(hostId: string): string {
  return `fetchquant-janitor/${hostId}`;
}

/**
 * The batch id of a batch workflow started by hand (`temporal workflow start --workflow-id fetchquant/b1`)
 * is derived from its workflow id, so species and sample ids always nest under it.
 */
export function batchIdFromWorkflowId(workflowId: string): string {
  return workflowId.startsWith(WORKFLOW_ID_PREFIX) ? workflowId.slice(WORKFLOW_ID_PREFIX.length) : workflowId;
}

/** `Camponotus floridanus` -> `camponotus_floridanus`. */
export function speciesIdOf(name: string): string {
  return name.trim().toLowerCase().replace(/\s+/g, '_');
}

/** `camponotus_floridanus` / `Camponotus floridanus` -> `Camponotus_floridanus` (amalgkit's file naming). */
export function genusSpeciesOf(name: string): string {
  const s = name.trim().replace(/\s+/g, '_');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** 32-bit FNV-1a, hex: a stable short digest without node:crypto (usable in workflows). */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** Default batch id: stable for one absolute output dir, readable, safe in workflow ids. */
export function defaultBatchId(absOutputDir: string): string {
  const trimmed = absOutputDir.replace(/\/+$/, '');
  const base = trimmed.slice(trimmed.lastIndexOf('/') + 1) || 'root';
  const slug = base.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').slice(0, 40);
  return `${slug}-${fnv1a(trimmed)}`;
}

export function joinPath(...parts: string[]): string {
  return parts
    .filter((p) => p.length > 0)
    .join('/')
    .replace(/\/{2,}/g, '/');
}

/** Where a run's reads live while the sample is in flight (amalgkit getfastq's layout). */
export function runReadsDir(readsDir: string, run: string): string {
  return joinPath(readsDir, 'getfastq', run);
}
export function runQuantDir(quantDir: string, run: string): string {
  return joinPath(quantDir, run);
}
/** Quant work happens here and is renamed to runQuantDir only after verification. */
export function runQuantTmpDir(quantDir: string, run: string): string {
  return joinPath(quantDir, `.${run}.tmp`);
}
export function abundancePath(quantDir: string, run: string): string {
  return joinPath(quantDir, run, `${run}_abundance.tsv`);
}
export function runInfoPath(quantDir: string, run: string): string {
  return joinPath(quantDir, run, `${run}_run_info.json`);
}
export function provenancePath(quantDir: string, run: string): string {
  return joinPath(quantDir, run, `${run}_fetchquant.json`);
}
export function indexPathOf(indexDir: string, speciesName: string): string {
  return joinPath(indexDir, `${genusSpeciesOf(speciesName)}.idx`);
}

/** Web UI link of one workflow. */
export function webUiWorkflowUrl(uiBase: string, namespace: string, workflowId: string): string {
  return `${uiBase.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/**
 * amalgkit quant's -l/-s for single-end reads (quant.py resolve_nominal_length_for_kallisto, docs/amalgkit.md):
 * the run's nominal length, raised to 200 when smaller, 200 when unknown; sd = length / 10.
 */
export function amalgkitFragment(nominalLength: number | undefined): { length: number; sd: number } {
  const l = nominalLength !== undefined && Number.isFinite(nominalLength) && nominalLength > 0 ? Math.max(200, nominalLength) : 200;
  return { length: l, sd: l / 10 };
}

/** The one source pacer of a namespace: every worker of every host takes its permits there (docs/pacing.md). */
export const PACER_WORKFLOW_ID = 'fetchquant-pacer';
