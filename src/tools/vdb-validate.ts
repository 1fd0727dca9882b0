/**
 * vdb-validate: the check that catches a damaged .sra, which fasterq-dump would convert with rc 0 and
 * altered reads. rc 3 means "bad data" (or truncated, or not found); rc 0 alone is not enough: a file
 * that is not an SRA archive at all also exits 0, silently, so only rc 0 plus "is consistent" passes.
 */
import { runTool, type RunToolOptions } from './process.js';

export const VDB_VALIDATE = 'vdb-validate';

export interface ValidateOutcome {
  consistent: boolean;
  exitCode: number;
  /** the tool's err/warn lines (or a note that it said nothing), for failure messages */
  detail: string;
}

export function vdbValidateArgs(sraPath: string): string[] {
  return [sraPath];
}

/** Interprets a finished vdb-validate run; pure so the rules are tested without the tool. */
export function interpretValidate(exitCode: number, output: string): ValidateOutcome {
  const consistent = exitCode === 0 && /\bis consistent\b/.test(output);
  const complaints = output
    .split('\n')
    .filter((l) => / (err|warn): |could not be found/.test(l))
    .map((l) => l.replace(/^\S+ vdb-validate\.\S+ /, '').trim());
  const detail = complaints.length
    ? complaints.slice(-3).join('; ')
    : consistent
      ? 'consistent'
      : `exit code ${exitCode} without "is consistent" (not an SRA archive?)`;
  return { consistent, exitCode, detail };
}

export async function vdbValidate(sraPath: string, opts: RunToolOptions): Promise<ValidateOutcome> {
  const r = await runTool(VDB_VALIDATE, vdbValidateArgs(sraPath), { okExitCodes: [0, 3], ...opts });
  return interpretValidate(r.exitCode, `${r.stdout}\n${r.stderr}`);
}
