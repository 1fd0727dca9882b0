// One real Temporal dev server for the whole suite; each test file gets its own namespace (helpers/temporal.ts).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startEmbeddedServer } from '../../src/server/embedded.js';

export default async function globalSetup(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'fq-test-temporal-'));
  const server = await startEmbeddedServer({ stateDir, port: await freePort(), headless: true });
  process.env.FQ_TEST_TEMPORAL_ADDRESS = server.address;
  process.env.FQ_TEST_TEMPORAL_STATE = stateDir;
  // host state (known reads dirs) of every worker started by the tests, CLI children included
  process.env.FETCHQUANT_STATE_DIR = stateDir;
  (globalThis as Record<string, unknown>).__FQ_SERVER__ = server;
}
