/** Running one sample workflow directly, as its species would, for workflow tests. */
import type { Client } from '@temporalio/client';
import { DEFAULTS } from '../../src/config/schema.js';
import type { AmalgkitRunSettings, RunMeta, SampleInput, SampleOptions, SampleOutcome } from '../../src/types.js';
import { SAMPLE_PATHS } from '../../src/workflows/sample.js';

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

/**
 * One run of species 'sp' (virtual paths, for fast activities) in batch `batchId`, with fast retries and waits
 * (options override them), as workflow `fetchquant/<batchId>/sp/<run>`: its outcome.
 */
export function runVirtualSample(
  client: Client,
  batchId: string,
  run: RunMeta,
  options: Partial<SampleOptions>,
  amalgkit?: AmalgkitRunSettings,
  /** what else the species would put in; `{ paths: undefined }`: a sample started by a species of an older release */
  extra: Partial<SampleInput> = {},
): Promise<SampleOutcome> {
  const input: SampleInput = {
    batchId,
    speciesId: 'sp',
    speciesName: 'Sp sp',
    speciesWorkflowId: `fetchquant/${batchId}/sp`,
    run,
    readsDir: '/virtual/sp/fastq',
    quantDir: '/virtual/sp/quant',
    indexPath: '/virtual/sp.idx',
    fastaPaths: [],
    fragmentLength: 200,
    fragmentSd: 20,
    options: { ...DEFAULTS, retryInitialSec: 0.05, stallTimeoutSec: 1, hostLostTimeoutSec: 60, diskWaitSec: 0.1, ...options },
    ...(amalgkit ? { amalgkit } : {}),
    paths: SAMPLE_PATHS,
    ...extra,
  };
  return sampleOutcome(client, `fetchquant/${batchId}/sp/${run.run}`, input);
}
