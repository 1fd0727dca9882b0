/** This machine's fetchquant state: `$FETCHQUANT_STATE_DIR`, else `~/.fetchquant`. */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function stateRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.FETCHQUANT_STATE_DIR ?? join(homedir(), '.fetchquant');
}
