/**
 * A periodic wake-up that outlives the waits it bounds (workflow code).
 *
 * `await condition(fn, ms)` starts a timer for each wait and, when fn wakes it first, cancels it: two history
 * events and a timer task for every signal, update or child event that wakes a long-lived workflow. In B5
 * (12 samples) that was 23 timers each for the species and the pacer and 15 for the batch, ~20 % of their
 * events. A Ticker's timer starts once per period and is shared by every wait until it fires.
 *
 * Patch TICK_TIMER: a run that asks it (once, at its first wait) waits with a Ticker; older histories replay
 * their timer per wait.
 */
import { CancellationScope, condition, patched, sleep } from '@temporalio/workflow';

export const TICK_TIMER = 'tick-timer';

/**
 * Patch (the batch): continue as new between ticks. A tick that fires while the task that continues as new is
 * in flight fails that task (UnhandledCommand), and the server aborts every update sent then: a user's
 * `fetchquant threads` failed with "Unable to perform workflow execution update due to unexpected workflow
 * task failure" (test/workflows/control.test.ts saw it). A batch due to continue while a tick is pending
 * cancels it in one task and continues in a later one, woken by a 1-ms timer. Not the species: it gets no
 * user updates, and under load the timer fires late — B3 at 10,000 samples, where samples close by the
 * dozen each second, grew its largest species run from 575 to 729 events.
 */
export const CONTINUE_BETWEEN_TICKS = 'continue-between-ticks';

export class Ticker {
  private timer: Promise<void> | null = null;
  private scope: CancellationScope | null = null;
  private fired = false;
  /** patched(TICK_TIMER), asked at the first wait */
  private use: boolean | null = null;

  constructor(private readonly ms: number) {}

  /**
   * Until fn() holds or the period ends (the first wait starts the period; a fired tick is consumed). Not
   * async: unpatched, it hands back condition()'s own promise, so an old history's microtask order (which
   * coroutine issues its command first in one activation) is exactly what it was with condition(fn, ms).
   */
  wait(fn: () => boolean): Promise<unknown> {
    this.use ??= patched(TICK_TIMER);
    if (!this.use) return condition(fn, this.ms);
    if (!this.timer) {
      const end = () => {
        this.fired = true;
        this.timer = null;
      };
      // A cancelled workflow rejects the sleep too: the wait below rejects for it, the tick just ends.
      const scope = new CancellationScope();
      this.scope = scope;
      this.timer = scope.run(() => sleep(this.ms)).then(end, end);
    }
    return condition(() => this.fired || fn()).then(() => {
      this.fired = false;
    });
  }

  /**
   * Before a continue-as-new (CONTINUE_BETWEEN_TICKS): with a tick pending, cancel it in this task and hand
   * back a 1-ms sleep; the loop awaits it and turns again (its state may have moved), to continue in a later
   * task with no tick left to fire. Null when nothing is pending, or for a run from before the patch. Not
   * async: with nothing to cancel it adds no await, so the continue-as-new goes out in the same tick as before.
   */
  clearForContinue(): Promise<void> | null {
    if (this.timer === null || !patched(CONTINUE_BETWEEN_TICKS)) return null;
    this.stop();
    return sleep(1);
  }

  /**
   * Cancel the pending tick, if any: before the workflow completes, and in an earlier workflow task than
   * the completion where it can. A tick that fires while the workflow completes fails that workflow task
   * (UnhandledCommand: a failed event in a healthy batch's Web UI); a cancelled one cannot fire.
   */
  stop(): void {
    this.scope?.cancel();
    this.scope = null;
  }
}
