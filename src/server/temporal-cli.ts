/** Finding the `temporal` CLI: TEMPORAL_CLI_PATH, then PATH, then the copy `npm run setup` built. */
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Package root (dist/src/server/ -> ../../..). */
export const PACKAGE_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function candidateTemporalPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  if (env.TEMPORAL_CLI_PATH) out.push(env.TEMPORAL_CLI_PATH);
  for (const dir of (env.PATH ?? '').split(delimiter)) if (dir) out.push(join(dir, 'temporal'));
  out.push(join(PACKAGE_ROOT, '.tools', 'bin', 'temporal'));
  out.push(join(env.GOPATH ?? join(homedir(), 'go'), 'bin', 'temporal'));
  return out;
}

/** Path of a usable temporal CLI, or null. */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const p of candidateTemporalPaths(env)) if (executable(p)) return p;
  return null;
}

export const TEMPORAL_INSTALL_HINT =
  'install the Temporal CLI: run `npm run setup` (builds it with `go install github.com/temporalio/cli/cmd/temporal@v1.5.1`), or set TEMPORAL_CLI_PATH';
