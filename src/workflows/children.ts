/**
 * Children started ABANDONed: species by the batch (batch.ts), samples by a species (species.ts). They
 * report back by signal to their parent's workflow id, so the parent may continue-as-new with children in
 * flight; and, abandoned, they do not follow the parent's cancellation by themselves.
 */
import { CancellationScope, ParentClosePolicy, condition, getExternalWorkflowHandle, type ChildWorkflowHandle, type Workflow } from '@temporalio/workflow';
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

/**
 * Patch (batch and species): a parent closes quietly. Every event that lands in a workflow's history while
 * it completes fails that workflow task (UnhandledCommand: a failed event in a healthy batch's Web UI; CI
 * saw one in the batch). So the parent stops its Ticker (tick.ts) when its loop ends, before it reports or
 * waits, and completes only once every child this run started has closed: a child's close is an event in
 * its parent's history.
 */
export const CLOSE_QUIETLY = 'close-quietly';

/**
 * The children this run started that have not closed. Children of an earlier run (before continue-as-new)
 * report their close to no one and are not counted; a child that failed or was terminated has closed.
 */
export class OpenChildren {
  private open = 0;
  track(handle: ChildWorkflowHandle<Workflow>): void {
    this.open++;
    const closed = () => {
      this.open--;
    };
    void handle.result().then(closed, closed);
  }
  /** Resolves when every tracked child has closed. */
  allClosed(): Promise<void> {
    return condition(() => this.open === 0);
  }
}
