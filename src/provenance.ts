/**
 * The provenance file's content (<quantDir>/<RUN>/<RUN>_fetchquant.json): what the sample knew before quant
 * (ProvenanceDraft) with what quant found. Built by the quant step that publishes
 * (src/activities/sample-steps.ts) and, when quant did not publish (older workers, recorded histories), by the
 * workflow (src/workflows/sample.ts). Pure: the workflow bundle imports it.
 */
import type { Provenance, ProvenanceDraft, QuantResult } from './types.js';

export function completeProvenance(draft: ProvenanceDraft, quant: Omit<QuantResult, 'tmpDir' | 'published'>, finishedAt: string): Provenance {
  return { ...draft, quant, tools: { kallisto: quant.kallistoVersion }, finishedAt };
}
