/**
 * The pacer client's patience with a pacer that cannot answer (src/pacing.ts, UPDATE_RETRY_MS): while a killed
 * worker still holds the pacer's workflow task, every update fails with the client's ServiceError "Workflow
 * Update failed" until that task times out. The crash test met an outage longer than the 21 tries the client
 * used to allow, and samples failed for it. A fake client stands in for the server; the tries are spaced 1 ms.
 */
import { describe, expect, it } from '@jest/globals';
import { ServiceError, type Client } from '@temporalio/client';
import { PacerClient, UPDATE_RETRY_MS } from '../../src/pacing.js';
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
