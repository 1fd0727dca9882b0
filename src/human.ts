/**
 * The lines a person reads on the terminal while a batch runs: one per retry, one per failed sample.
 * Pure (workflow code uses it too). The logger (src/log.ts) prints a log entry whose metadata carries
 * HUMAN_LINE and files everything else.
 */

/** Metadata key of a log entry meant for the terminal: its value is the whole line. */
export const HUMAN_LINE = 'fetchquantLine';

/** One line of at most `max` characters: a reason with newlines or a 2 kB URL list must not flood the screen. */
export function oneLine(s: string, max = 300): string {
  const flat = s.replace(/\s*\n\s*/g, ' | ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `retry  SRR1  download  attempt 1 of 4 failed on host-a: <reason>` */
export function retryLine(run: string, step: string, attempt: number, maxAttempts: number | null, host: string, reason: string): string {
  return `retry   ${run}  ${step}  attempt ${attempt}${maxAttempts ? ` of ${maxAttempts}` : ''} failed on ${host}: ${oneLine(reason)}`;
}

/** `FAILED  SRR1  download  [ChecksumMismatch] <reason>` */
export function failedLine(run: string, step: string, reason: string, type?: string): string {
  return `FAILED  ${run}  ${step}  ${type ? `[${type}] ` : ''}${oneLine(reason)}`;
}
