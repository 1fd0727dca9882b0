import { rmSync } from 'node:fs';
import type { EmbeddedServer } from '../../src/server/embedded.js';

export default async function globalTeardown(): Promise<void> {
  const server = (globalThis as Record<string, unknown>).__FQ_SERVER__ as EmbeddedServer | undefined;
  await server?.stop();
  if (process.env.FQ_TEST_TEMPORAL_STATE) rmSync(process.env.FQ_TEST_TEMPORAL_STATE, { recursive: true, force: true });
}
