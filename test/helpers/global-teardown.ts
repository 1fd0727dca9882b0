import { rmSync } from 'node:fs';
import type { EmbeddedServer } from '../../src/server/embedded.js';
import { reapOrphanTools } from '../../src/tools/process.js';

export default async function globalTeardown(): Promise<void> {
  // Tools a failed test left running (a kallisto spinning on a corrupt .gz, say) would eat the cores of
  // whatever runs next: jest's workers are gone now, so every tool they recorded is an orphan.
  for (const g of reapOrphanTools()) process.stderr.write(`test teardown: killed ${g.cmd} (process group ${g.pgid}) left by jest worker ${g.workerPid}\n`);
  const server = (globalThis as Record<string, unknown>).__FQ_SERVER__ as EmbeddedServer | undefined;
  await server?.stop();
  if (process.env.FQ_TEST_TEMPORAL_STATE) rmSync(process.env.FQ_TEST_TEMPORAL_STATE, { recursive: true, force: true });
}
