/** URL and disk paths the mirror and the generator agree on (ENA's and NCBI's layouts). */
import { join } from 'node:path';

/** ENA-style directory of a run: vol1/fastq/<RUN[0:6]>/<RUN>. */
export function enaRunDir(run: string): string {
  return `vol1/fastq/${run.slice(0, 6)}/${run}`;
}

/** Where the generator writes what the mirror serves. */
export function enaFileOnDisk(root: string, run: string, name: string): string {
  return join(root, 'files', 'ena', enaRunDir(run), name);
}
export function sraFileOnDisk(root: string, run: string): string {
  return join(root, 'files', 'sra', run, `${run}.sra`);
}
