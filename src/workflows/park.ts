/**
 * Park and revisit (docs/park.md): a run that no source can serve *now* — an archive down or answering
 * 5xx/429 beyond every retry, the network to it gone, the run not yet synchronised to the allowed source —
 * waits on a durable timer (--park-wait) and is tried again from the start, instead of failing its sample.
 * `fetchquant resume-parked` (signal resumeParked) ends the wait at once. A run still unavailable
 * --park-deadline after it was first parked fails as ParkedPastDeadline, naming the last reason, so a batch
 * whose only runs left are parked ends when their deadlines pass.
 *
 * Guarded by patched(PARK_UNAVAILABLE) (settled without asking for samples of SAMPLE_PATHS, src/workflows/sample.ts),
 * asked only when a sample would park, so a clean sample's history gets no marker; samples of batches started before parking existed carry no parkWaitSec and fail as before.
 */
import { ApplicationFailure, condition, patched, setHandler } from '@temporalio/workflow';
import { isParkable, PARKED_PAST_DEADLINE } from '../failures.js';
import type { SampleOptions } from '../types.js';
import { resumeParkedSignal, type ParkedRun } from './messages.js';

export const PARK_UNAVAILABLE = 'park-unavailable';

export interface ParkHooks {
  /** the failure's message and type (the sample's describe()) */
  describe(err: unknown): { reason: string; type?: string };
  /** enter the 'parked' stage with its reason, and record the parked run (memo, search attribute, species) */
  parked(p: ParkedRun): Promise<void>;
  /** the wait is over: back to 'queued', and the species hears it */
  unparked(): Promise<void>;
  /** free the host's disk while the run waits (its partial reads are deleted) */
  clear(): Promise<void>;
}

export type ParkDecision = { kind: 'again' } | { kind: 'fail'; error: ApplicationFailure } | null;

export class Parking {
  /** workflow ms when the run was first parked */
  private since: number | null = null;
  private wake = false;
  /** times parked, for the log */
  count = 0;

  constructor(
    private readonly run: string,
    private readonly options: Pick<SampleOptions, 'parkWaitSec' | 'parkDeadlineSec'>,
    /** patched(), or true without asking for samples whose input settles the patch (src/workflows/sample.ts SAMPLE_PATHS) */
    private readonly has: (patchId: string) => boolean = patched,
  ) {
    setHandler(resumeParkedSignal, () => {
      this.wake = true;
    });
  }

  /**
   * After a failure of the sample's steps: null when it is not for parking (the sample fails as before);
   * 'again' after a wait (the sample starts over: claim a host, resolve, download); 'fail' with the
   * ParkedPastDeadline failure once the deadline has passed.
   */
  async decide(err: unknown, hooks: ParkHooks): Promise<ParkDecision> {
    const waitSec = this.options.parkWaitSec;
    // 0: the user chose to fail at once (decided before patched(), so such a sample's history is as before parking)
    if (waitSec === undefined || waitSec === 0) return null;
    const { reason, type } = hooks.describe(err);
    if (!isParkable(type)) return null;
    if (!this.has(PARK_UNAVAILABLE)) return null;
    const now = Date.now();
    this.since ??= now;
    const deadline = this.since + (this.options.parkDeadlineSec ?? waitSec) * 1000;
    if (now >= deadline) {
      return {
        kind: 'fail',
        error: ApplicationFailure.create({
          type: PARKED_PAST_DEADLINE,
          nonRetryable: true,
          message: `${this.run}: parked since ${new Date(this.since).toISOString()} (${this.count} time(s)), still unavailable at its deadline: ${reason}`,
        }),
      };
    }
    // never past the deadline: the last try comes at it
    const until = Math.min(now + waitSec * 1000, deadline);
    this.count++;
    await hooks.clear();
    await hooks.parked({ run: this.run, until: new Date(until).toISOString(), since: new Date(this.since).toISOString(), reason });
    this.wake = false;
    await condition(() => this.wake, Math.max(1, until - now));
    this.wake = false;
    await hooks.unparked();
    return { kind: 'again' };
  }
}
