/** A fresh namespace on the suite's dev server, with a client and a worker connection. */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { setupNamespace } from '../../src/server/setup.js';

export interface TestTemporal {
  address: string;
  namespace: string;
  client: Client;
  connection: Connection;
  native: NativeConnection;
  close(): Promise<void>;
}

let runtimeInstalled = false;
/** Worker logs at WARN in tests: failures should not drown in INFO lines. */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger((process.env.FQ_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN') });
  } catch {
    // already installed in this process by an earlier test file
  }
}

export async function testTemporal(label: string): Promise<TestTemporal> {
  quietRuntime();
  const address = process.env.FQ_TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('FQ_TEST_TEMPORAL_ADDRESS unset: run tests through jest (globalSetup starts the server)');
  const namespace = `${label}-${randomBytes(3).toString('hex')}`;
  const connection = await Connection.connect({ address });
  await setupNamespace(connection, namespace, 1);
  const native = await NativeConnection.connect({ address });
  const client = new Client({ connection, namespace });
  return {
    address,
    namespace,
    client,
    connection,
    native,
    async close() {
      await native.close();
      await connection.close();
    },
  };
}

/** Poll until fn returns a truthy value (or throw after timeoutMs). Not a timed assertion: a bound on waiting. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
