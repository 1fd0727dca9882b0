/** One error type per exit code, and one helper that walks the causes an error wraps. */
import { describe, expect, it } from '@jest/globals';
import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { exitCodeOf, UsageError } from '../../src/cli/args.js';
import { InvalidInputError } from '../../src/config/schema.js';
import { causeChain, EnvironmentError, FailureType, rootCause } from '../../src/failures.js';

describe('errors', () => {
  it('exit 2 is InvalidInputError (UsageError is one), exit 3 is EnvironmentError; anything else is a bug shown with its stack', () => {
    expect(exitCodeOf(new UsageError('run: unknown option --x'))).toEqual({ code: 2, expected: true });
    expect(exitCodeOf(new InvalidInputError([{ where: 'f.yaml', field: 'a', value: 1, message: 'must be' }]))).toEqual({ code: 2, expected: true });
    expect(exitCodeOf(new EnvironmentError('no Temporal CLI found'))).toEqual({ code: 3, expected: true });
    expect(exitCodeOf(ApplicationFailure.create({ type: FailureType.ToolMissing, message: 'kallisto is not installed' }))).toEqual({ code: 3, expected: true });
    expect(exitCodeOf(new TypeError('x is undefined'))).toEqual({ code: 3, expected: false });
  });

  it('causeChain lists an error and what it wraps, outermost first; rootCause is the innermost; cycles end', () => {
    const app = ApplicationFailure.create({ type: FailureType.IndexError, message: 'kallisto index failed' });
    const act = new ActivityFailure('activity failed', 'ensureIndex', '1', RetryState.MAXIMUM_ATTEMPTS_REACHED, 'w', app);
    expect(causeChain(act)).toEqual([act, app]);
    expect((rootCause(act) as Error).message).toBe('kallisto index failed');
    expect(rootCause('plain')).toBe('plain');
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(causeChain(b)).toEqual([b, a]);
  });
});
