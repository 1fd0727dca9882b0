/**
 * The NCBI SRA Data Locator's answer (version 2): one result entry per accession. As rude as the real
 * one (test/fixtures/archives/sdl, copied from sra-tools' tests): a `.pileup` companion of type sra is
 * listed BEFORE the run and its vdbcache after it, so a client that takes "the first sra file" fetches
 * the wrong thing (the mirror serves no bytes for companions); a run can be offered only as an SRA Lite
 * copy, or only at a location that needs payment or cloud credentials.
 */
import { RUN_ACCESSION } from '../config/schema.js';
import type { SyntheticRun } from './types.js';

export interface LocateLocation { service: string; region: string; link: string; payRequired?: boolean; ceRequired?: boolean }
export interface LocateFile {
  object: string; accession?: string; type: string; name: string; size: number; md5: string;
  modificationDate: string; noqual?: boolean; locations: LocateLocation[];
}
export interface LocateResult {
  version: '2';
  result: Array<{ bundle: string; status: number; msg: string; files?: LocateFile[] }>;
}

/** How the archive offers a run (mirror fault states). */
export interface LocateState {
  lite?: boolean;
  payRequired?: boolean;
  ceRequired?: boolean;
  /** the GCP copy is free to read here (as from inside Google Cloud): no ceRequired on the gs location */
  gsFree?: boolean;
}

/**
 * Where the mirror serves a run's .sra per locator service, shaped like the real links
 * (test/fixtures/archives/sdl/multiple-locations.json, ce-required.json): NCBI's own servers, the AWS Open
 * Data bucket (sra-pub-run-odp, free to read) and Google Cloud Storage.
 */
export function serviceLink(base: string, service: 'ncbi' | 's3' | 'gs', acc: string): string {
  if (service === 'ncbi') return `${base}/sos/sra-pub-run-2/${acc}/${acc}.2`;
  if (service === 'gs') return `${base}/sra-pub-run-1/${acc}/${acc}.2`;
  return `${base}/sra/${acc}/${acc}`;
}

/**
 * `lookup` returns the run if the SRA serves it. The md5/size are the ORIGINAL file's even when the
 * mirror serves corrupted bytes (corrupt-sra): the locator describes the archive, not the transfer.
 */
export function locate(
  accs: string[], filetype: string, lookup: (acc: string) => SyntheticRun | null, base: string, stateOf: (acc: string) => LocateState = () => ({}),
): LocateResult {
  return {
    version: '2',
    result: accs.map((acc) => {
      if (!RUN_ACCESSION.test(acc)) return { bundle: acc, status: 400, msg: 'Invalid accession' };
      if (filetype !== 'run' && filetype !== 'sra') return { bundle: acc, status: 404, msg: `No data for filetype ${filetype}` };
      const run = lookup(acc);
      if (!run) return { bundle: acc, status: 404, msg: 'No data at given location.run not found' };
      const st = stateOf(acc);
      const name = st.lite ? `${acc}.lite` : acc;
      // Normally three locations in the real answer's order (ncbi before s3, multiple-locations.json), the
      // Google copy needing cloud credentials (ce-required.json; amalgkit reads gs copies only with a
      // requester-pays project): a client that takes the first location never follows the config's order.
      const locations: LocateLocation[] = st.payRequired
        ? [{ service: 's3', region: 'us-east-1', link: serviceLink(base, 's3', acc), payRequired: true }]
        : st.ceRequired
          ? [{ service: 'gs', region: 'us-east1', link: serviceLink(base, 'gs', acc), ceRequired: true }]
          : [
              { service: 'ncbi', region: 'be-md', link: serviceLink(base, 'ncbi', acc) },
              { service: 's3', region: 'us-east-1', link: serviceLink(base, 's3', acc) },
              { service: 'gs', region: 'us-east1', link: serviceLink(base, 'gs', acc), ...(st.gsFree ? {} : { ceRequired: true }) },
            ];
      return {
        bundle: acc,
        status: 200,
        msg: 'ok',
        files: [
          {
            object: `srapub_files|${acc}`, type: 'sra', name: `${acc}.pileup`, size: 842809, md5: '323d0b76f741ae0b71aeec0176645301',
            modificationDate: '2016-11-20T07:38:19Z',
            locations: [{ service: 'sra-ncbi', region: 'public', link: `${base}/sra/${acc}/${acc}.pileup` }],
          },
          {
            object: `srapub|${name}`, accession: acc, type: 'sra', name, size: run.sra.bytes, md5: run.sra.md5,
            modificationDate: '2024-01-01T00:00:00Z', ...(st.lite ? { noqual: true } : {}), locations,
          },
          {
            object: `srapub|${acc}`, accession: acc, type: 'vdbcache', name: `${acc}.vdbcache`, size: 17615526, md5: '2eb204cedf5eefe45819c228817ee466',
            modificationDate: '2016-02-08T16:31:35Z',
            locations: [{ service: 's3', region: 'us-east-1', link: `${base}/sra/${acc}/${acc}.vdbcache` }],
          },
        ],
      };
    }),
  };
}
