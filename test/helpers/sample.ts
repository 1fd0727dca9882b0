/** Running one sample workflow directly, as its species would, for workflow tests. */
import type { Client } from '@temporalio/client';
import type { SampleInput, SampleOutcome } from '../../src/types.js';

/**
 * The sample's outcome: its result, or for a failed sample (which ends its workflow Failed, patch
 * 'failed-sample-fails') the outcome carried in the failure's details.
 */
export async function sampleOutcome(client: Client, workflowId: string, input: SampleInput): Promise<SampleOutcome> {
  try {
    return (await client.workflow.execute('sampleWorkflow', { taskQueue: 'fetchquant', workflowId, args: [input] })) as SampleOutcome;
  } catch (err) {
    const outcome = ((err as { cause?: { details?: unknown[] } }).cause?.details ?? [])[0];
    if (outcome) return outcome as SampleOutcome;
    throw err;
  }
}
