/** Small real-HTTP helpers for the mirror tests: node:http so every byte, header and socket event is visible. */
import { createHash } from 'node:crypto';
import { request } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** true if the body ended normally (false: the socket was dropped mid-body) */
  complete: boolean;
  error: string | null;
}

/** GET (or HEAD) with optional headers; never throws on a dropped body, it reports it. */
export function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let error: string | null = null;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => (error = e.message));
      res.on('close', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete, error }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

export function md5(buf: Buffer): string {
  return createHash('md5').update(buf).digest('hex');
}

export function tsvRows(text: string): string[][] {
  return text.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

export const FILEREPORT_FIELDS =
  'run_accession,fastq_ftp,fastq_md5,fastq_bytes,library_layout,read_count,base_count,scientific_name,tax_id,nominal_length,sra_ftp,sra_md5,sra_bytes';

export function filereportUrl(portal: string, accession: string, fields = FILEREPORT_FIELDS, format = 'tsv'): string {
  const q = new URLSearchParams({ accession, result: 'read_run', fields, format });
  return `${portal}/filereport?${q}`;
}
