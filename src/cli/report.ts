/** `fetchquant report` — placeholder until the report issue lands: says so plainly instead of pretending. */
import { EXIT } from './args.js';

export async function cmdReport(_values: Record<string, unknown>, out: (l: string) => void): Promise<number> {
  out('report: not implemented yet (summary TSV + timeline picture are tracked in the commands issue)');
  return EXIT.environment;
}
