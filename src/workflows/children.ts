/**
 * Children started ABANDONed: species by the batch (batch.ts), samples by a species (species.ts). They
 * report back by signal to their parent's workflow id, so the parent may continue-as-new with children in
 * flight; and, abandoned, they do not follow the parent's cancellation by themselves.
 */
import { CancellationScope, ParentClosePolicy, getExternalWorkflowHandle } from '@temporalio/workflow';
import { TASK_QUEUE } from '../ids.js';

/** The startChild options of an ABANDONed child on the fetchquant task queue (add its args). */
export function abandonedChild(workflowId: string, staticSummary: string) {
  return { workflowId, taskQueue: TASK_QUEUE, parentClosePolicy: ParentClosePolicy.ABANDON, staticSummary };
}

/**
 * On the parent's cancellation: cancel each child (by id) so it cleans up its files, in a non-cancellable
 * scope, a child that has closed already being no error. Not an async function: it returns the scope's own
 * promise, so the commands go out with the same ticks as when this stood inline in both parents
 * (recorded histories replay against it, test/replay/replay.test.ts).
 */
export function cancelChildren(workflowIds: string[]): Promise<void> {
  return CancellationScope.nonCancellable(async () => {
    await Promise.all(workflowIds.map((id) => getExternalWorkflowHandle(id).cancel().catch(() => undefined)));
  });
}
