/**
 * The provenance file's content (<quantDir>/<RUN>/<RUN>_fetchquant.json): what the sample knew before quant
 * (ProvenanceDraft) with what quant found. Built by the quant step that publishes
 * (src/activities/sample-steps.ts) and, when quant did not publish (older workers, recorded histories), by the
 * workflow (src/workflows/sample.ts). Pure: the workflow bundle imports it.
 */
import type { DownloadResult, Provenance, ProvenanceDraft, QuantResult, SourcePlan } from './types.js';

export function completeProvenance(draft: ProvenanceDraft, quant: Omit<QuantResult, 'tmpDir' | 'published'>, finishedAt: string): Provenance {
  return { ...draft, quant, tools: { kallisto: quant.kallistoVersion }, finishedAt };
}

/** What the provenance says about steps.getfastq.max_bp (docs/amalgkit.md). */
export function downsamplingRecord(maxBp: number, d: DownloadResult['downsampled'], plan: SourcePlan, bytesFetched: number): NonNullable<Provenance['downsampling']> {
  if (d) {
    return {
      maxBp,
      downsampled: true,
      reads: d.reads,
      bases: d.bases,
      bytesFetched,
      integrity:
        "the archive's md5 covers whole files and cannot be checked on a prefix; checked instead: every record whole (4 lines, @/+, sequence and quality of equal length), mates in step, the received bytes decompress as gzip, the written files pass the gzip test and read count, kallisto processed every read",
    };
  }
  return {
    maxBp,
    downsampled: false,
    bytesFetched,
    integrity: plan.source === 'sra' ? 'not applied: an SRA file is fetched whole; all its reads were quantified' : 'the run holds fewer bases than max_bp: fetched whole, md5 checked',
  };
}
