/**
 * The disk janitor of one host: every healthCheckIntervalSec, record free space and (below the cleanup
 * threshold) remove orphaned partial downloads — never a run whose sample workflow is still running on
 * this host. A long-running workflow rather than cronSchedule so each sweep is an auditable activity.
 */
import { continueAsNew, proxyActivities, sleep, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/contract.js';
import { hostQueue, TASK_QUEUE } from '../ids.js';
import { SA } from '../search-attributes.js';
import type { JanitorReport } from '../types.js';

export interface JanitorInput {
  hostId: string;
  readsDirs: string[];
  healthCheckIntervalSec: number;
  autoCleanupThresholdGb: number;
  /** stop after this many sweeps (tests); unbounded in production */
  maxSweeps?: number;
}

export async function janitorWorkflow(input: JanitorInput): Promise<JanitorReport | null> {
  upsertSearchAttributes([{ key: SA.WorkerHost, value: input.hostId }]);
  const shared = proxyActivities<Activities>({ taskQueue: TASK_QUEUE, startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3 } });
  const host = proxyActivities<Activities>({
    taskQueue: hostQueue(input.hostId),
    // A host that is down has no disk to watch: give up this sweep rather than queue forever.
    scheduleToStartTimeout: Math.max(1000, input.healthCheckIntervalSec * 1000),
    startToCloseTimeout: '10 minutes',
    retry: { maximumAttempts: 2 },
  });
  let last: JanitorReport | null = null;
  for (let i = 0; input.maxSweeps === undefined || i < input.maxSweeps; i++) {
    try {
      const inFlight = await shared.listInFlight({ hostId: input.hostId });
      last = await host.janitorSweep({ readsDirs: input.readsDirs, autoCleanupThresholdGb: input.autoCleanupThresholdGb, inFlight, execute: true });
      await upsertMemo({ lastSweep: { freeBytes: last.freeBytes, freedBytes: last.freedBytes, removed: last.removed.length } });
    } catch {
      // A missed sweep is not an error of the janitor; the next one will look again.
    }
    if (input.maxSweeps !== undefined && i + 1 >= input.maxSweeps) break;
    await sleep(Math.round(input.healthCheckIntervalSec * 1000));
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2000) {
      return await continueAsNew<typeof janitorWorkflow>(input);
    }
  }
  return last;
}
