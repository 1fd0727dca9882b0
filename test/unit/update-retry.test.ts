/**
 * `fetchquant threads` sends setTotalThreads again when the server aborted it unapplied. The error is the one
 * test/workflows/control.test.ts met on the dev server (a batch's workflow task failed, UnhandledCommand, as
 * it continued as new): the client's ServiceError "Workflow Update failed" around a gRPC error, code 9
 * FAILED_PRECONDITION, details as in temporalio/temporal service/history/workflow/update/errors_failures.go.
 */
import { describe, expect, it } from '@jest/globals';
import { ServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { setTotalThreads, updateAbortedByTaskFailure } from '../../src/cli/control.js';

function grpcError(code: number, details: string): Error {
  const names: Record<number, string> = { 5: 'NOT_FOUND', 9: 'FAILED_PRECONDITION' };
  return Object.assign(new Error(`${code} ${names[code]}: ${details}`), { code, details, metadata: {} });
}
const aborted = () => new ServiceError('Workflow Update failed', { cause: grpcError(9, 'Unable to perform workflow execution update due to unexpected workflow task failure.') });

function handle(answers: (Error | Record<string, number>)[]) {
  const calls: unknown[] = [];
  return {
    calls,
    executeUpdate: (async (_def: unknown, opts: { args: unknown[] }) => {
      calls.push(opts.args[0]);
      const a = answers.shift();
      if (a instanceof Error) throw a;
      return a;
    }) as never,
  };
}

describe('setTotalThreads', () => {
  it('knows the abort by its code under the client error, and nothing else for it', () => {
    expect(updateAbortedByTaskFailure(aborted())).toBe(true);
    expect(updateAbortedByTaskFailure(new ServiceError('Workflow Update failed', { cause: grpcError(5, 'workflow not found for ID: fq-batch-x') }))).toBe(false);
    // the workflow's validator refused the value: an answer, not an accident
    expect(updateAbortedByTaskFailure(new WorkflowUpdateFailedError('Workflow Update failed', ApplicationFailure.create({ message: 'totalThreads must be a whole number >= 1, got 0' })))).toBe(false);
    expect(updateAbortedByTaskFailure(new Error('9 FAILED_PRECONDITION'))).toBe(false);
  });

  it('sends the same total again after an abort and answers with the allocation', async () => {
    const h = handle([aborted(), aborted(), { a: 3, b: 5 }]);
    await expect(setTotalThreads(h, 8, 5, 1)).resolves.toEqual({ a: 3, b: 5 });
    expect(h.calls).toEqual([8, 8, 8]);
  });

  it('gives up after the attempts, with the server error, and never repeats any other error', async () => {
    const h = handle([aborted(), aborted(), aborted()]);
    await expect(setTotalThreads(h, 8, 3, 1)).rejects.toThrow('Workflow Update failed');
    expect(h.calls).toHaveLength(3);
    const refused = new WorkflowUpdateFailedError('Workflow Update failed', ApplicationFailure.create({ message: 'totalThreads must be a whole number >= 1' }));
    const h2 = handle([refused, { a: 1 }]);
    await expect(setTotalThreads(h2, 8, 5, 1)).rejects.toBe(refused);
    expect(h2.calls).toHaveLength(1);
  });
});
