/** The NCBI SRA Data Locator's answer (version 2), per DOMAIN.md: one result entry per accession. */
import { RUN_ACCESSION } from '../config/schema.js';
import type { SyntheticRun } from './types.js';

export interface LocateResult {
  version: '2';
  result: Array<{
    bundle: string;
    status: number;
    msg: string;
    files?: Array<{
      object: string; accession: string; type: string; name: string; size: number; md5: string;
      modificationDate: string; noqual: boolean;
      locations: Array<{ service: string; region: string; link: string }>;
    }>;
  }>;
}

/**
 * `lookup` returns the run if the SRA serves it. The md5/size are the ORIGINAL file's even when the
 * mirror serves corrupted bytes (corrupt-sra): the locator describes the archive, not the transfer.
 */
export function locate(accs: string[], filetype: string, lookup: (acc: string) => SyntheticRun | null, base: string): LocateResult {
  return {
    version: '2',
    result: accs.map((acc) => {
      if (!RUN_ACCESSION.test(acc)) return { bundle: acc, status: 400, msg: 'Invalid accession' };
      if (filetype !== 'run' && filetype !== 'sra') return { bundle: acc, status: 404, msg: `No data for filetype ${filetype}` };
      const run = lookup(acc);
      if (!run) return { bundle: acc, status: 404, msg: 'No data at given location.run not found' };
      return {
        bundle: acc,
        status: 200,
        msg: 'ok',
        files: [{
          object: `srapub|${acc}`, accession: acc, type: 'sra', name: acc, size: run.sra.bytes, md5: run.sra.md5,
          modificationDate: '2024-01-01T00:00:00Z', noqual: false,
          locations: [{ service: 's3', region: 'us-east-1', link: `${base}/sra/${acc}/${acc}` }],
        }],
      };
    }),
  };
}
