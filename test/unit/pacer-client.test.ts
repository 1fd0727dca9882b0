/**
 * The pacer client's patience with a pacer that cannot answer (src/pacing.ts, UPDATE_RETRY_MS): while a killed
 * worker still holds the pacer's workflow task, every update fails with the client's ServiceError "Workflow
 * Update failed" until that task times out. The crash test met an outage longer than the 21 tries the client
 * used to allow, and samples failed for it. A fake client stands in for the server; the tries are spaced 1 ms.
 */
import { describe, expect, it, jest } from '@jest/globals';
import { ServiceError, type Client } from '@temporalio/client';
import { ORDER_QUERY_MS, PacerClient, UPDATE_RETRY_MS } from '../../src/pacing.js';
import { UNKNOWN_SPECIES_TASK_TIMEOUT_MS } from '../../src/workflows/options.js';

/** A server whose pacer fails the first `failures` updates, then grants a permit. */
function fakeServer(failures: number) {
  let calls = 0;
  const client = {
    workflow: {
      getHandle: () => ({
        async executeUpdate() {
          calls++;
          if (calls <= failures) throw new ServiceError('Workflow Update failed', { cause: new Error('workflow task timed out') });
          return { granted: true, leaseId: 'lease-1' };
        },
        async signal() {
          return undefined;
        },
      }),
      async start() {
        return undefined;
      },
    },
  } as unknown as Client;
  return { client, calls: () => calls };
}

const limits = { ena: { maxConcurrency: 2, maxRatePerSec: 4 }, sra: { maxConcurrency: 2, maxRatePerSec: 3 } };

describe('PacerClient waits out a pacer that cannot answer', () => {
  it('keeps asking for a permit through 40 failed updates (21 used to end the download)', async () => {
    const server = fakeServer(40);
    const pacer = new PacerClient({ client: server.client, holder: 'h', limits, updateBackoffMaxMs: 1 });
    await expect(pacer.withPermit('ena', async () => 'downloaded')).resolves.toBe('downloaded');
    expect(server.calls()).toBe(41);
  });

  it('gives up with the server\'s error once the outage outlasts updateRetryMs', async () => {
    const server = fakeServer(Number.POSITIVE_INFINITY);
    const pacer = new PacerClient({ client: server.client, holder: 'h', limits, updateBackoffMaxMs: 1, updateRetryMs: 200 });
    await expect(pacer.withPermit('ena', async () => 'downloaded')).rejects.toThrow('Workflow Update failed');
  });

  it('by default outlasts several pacer task timeouts', () => {
    expect(UPDATE_RETRY_MS).toBeGreaterThanOrEqual(4 * UNKNOWN_SPECIES_TASK_TIMEOUT_MS);
  });
});

/** A pacer that never answers: what a draining worker's own pacer is (nobody runs its workflow tasks). */
function silentServer() {
  const never = new Promise<never>(() => undefined);
  const asked = { updates: 0, queries: 0 };
  const client = {
    workflow: {
      getHandle: () => ({
        executeUpdate: () => (asked.updates++, never),
        query: () => (asked.queries++, never),
        signal: async () => undefined,
      }),
      start: async () => undefined,
    },
  } as unknown as Client;
  return { client, asked };
}

describe('PacerClient gives way when its worker shuts down', () => {
  it('a token wait pending at shutdown rejects with the shutdown at once (it held Ctrl-C until the local activity timed out: 2 minutes)', async () => {
    const server = silentServer();
    const stopping = new AbortController();
    const pacer = new PacerClient({ client: server.client, holder: 'h', limits, stopping: stopping.signal });
    const waiting = pacer.token('ena');
    const settled = jest.fn();
    waiting.then(settled, settled);
    await new Promise((r) => setTimeout(r, 50));
    expect([server.asked.updates, settled.mock.calls.length]).toEqual([1, 0]);
    stopping.abort(new Error('the worker is shutting down'));
    await expect(waiting).rejects.toThrow('the worker is shutting down');
    // and nothing asked afterwards waits either
    await expect(pacer.withPermit('sra', async () => 'downloaded')).rejects.toThrow('the worker is shutting down');
  });

  it('the source order, a hint, keeps the configured order rather than wait on a pacer that cannot answer', async () => {
    const server = silentServer();
    const stopping = new AbortController();
    const pacer = new PacerClient({ client: server.client, holder: 'h', limits, stopping: stopping.signal });
    const order = pacer.order(['sra', 'ena']);
    await new Promise((r) => setTimeout(r, 50));
    stopping.abort(new Error('the worker is shutting down'));
    await expect(order).resolves.toEqual(['sra', 'ena']);
    expect(server.asked.queries).toBe(1);
  });

  it('without a shutdown, that wait on the order is bounded too', () => {
    expect(ORDER_QUERY_MS).toBeLessThanOrEqual(5000);
  });
});
