/**
 * A host's start: its first downloads transfer one at a time until kallisto has work for every quant slot.
 *
 * At a batch's start nothing is verified and every quant slot (a core) is idle until the first reads pass
 * their checks. Downloads started together share the link and the cores (the checks hash and inflate the bytes
 * as they arrive), so each run's reads are verified only when all of them nearly are: in B5 (2 cores, four
 * downloads at once) the first reads were verified 2.0–3.4 s after the batch began, against ~1.0 s when one
 * download ran alone (bench/results/experiments/README.md, session 23). One at a time, the first slot gets
 * work after one run's transfer, the second after two, and so on: the least idle core time when the link, not
 * the connection, bounds a transfer.
 *
 * So from this process's first download until the quant slots are all in use or asked for (quants running,
 * waiting for a slot, and SRA conversions, which also keep a core busy) a download begins its transfer only
 * when no other is transferring. The gate then opens for the rest of the process, and at the latest
 * WINDOW_MS after the first download came: a real archive caps each connection, so later downloads run side by
 * side as before, and the window bounds how long a slow first transfer holds the others back.
 */
import { waitInLine } from './heartbeat.js';
import type { QuantSlots } from './quant.js';

/** How long after its first download a process may keep downloads one at a time. */
export const START_WINDOW_MS = 4000;

interface Waiter {
  grant: () => void;
}

export class StartGate {
  private phase: 'idle' | 'starting' | 'open' = 'idle';
  private transferring = 0;
  private convertingNow = 0;
  private limit: number;
  private readonly waiters: Waiter[] = [];
  private window: ReturnType<typeof setTimeout> | undefined;

  /**
   * `slots`: this process's quant slots (their use and queue count as work for the cores); `limit`: how many
   * there are until a download says (src/cores.ts decides it from the host's cores when the user does not).
   */
  constructor(
    private readonly slots: QuantSlots,
    limit: number,
    readonly windowMs = START_WINDOW_MS,
  ) {
    this.limit = Math.max(1, limit);
    slots.onChange(() => this.pump());
  }

  /**
   * Resolves with a release (call it when the transfer ends, however it ends) once this download may transfer.
   * `limit`: the host's quant slots as this download's sample decides them, when it says (else the last known).
   */
  async enter(limit: number | null, signal: AbortSignal, onWait: () => void, everyMs = 1000): Promise<() => void> {
    if (signal.aborted) throw signal.reason;
    if (limit !== null) this.limit = Math.max(1, limit);
    if (this.phase === 'idle') {
      this.phase = 'starting';
      this.window = setTimeout(() => this.open(), this.windowMs);
      this.window.unref?.();
    }
    if (this.mayPass()) this.transferring++;
    else {
      // the granter counts this transfer before it wakes, so no other passes in between
      await waitInLine(this.waiters, {}, signal, onWait, everyMs);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.transferring--;
      this.pump();
    };
  }

  /** Runs an SRA conversion, counted as work for the cores while it runs. */
  async converting<T>(fn: () => Promise<T>): Promise<T> {
    this.convertingNow++;
    this.pump();
    try {
      return await fn();
    } finally {
      this.convertingNow--;
    }
  }

  /** More quants may come from this host: a transfer or a conversion runs, or its start has not passed (downloads wait in line only then). */
  get busy(): boolean {
    return this.phase !== 'open' || this.transferring > 0 || this.convertingNow > 0;
  }

  get isOpen(): boolean {
    return this.phase === 'open';
  }

  private mayPass(): boolean {
    if (this.phase === 'open') return true;
    if (this.slots.inUse + this.slots.waiting + this.convertingNow >= this.limit) {
      this.open();
      return true;
    }
    return this.transferring === 0 && this.waiters.length === 0;
  }

  private open(): void {
    if (this.phase === 'open') return;
    this.phase = 'open';
    clearTimeout(this.window);
    for (const w of this.waiters.splice(0)) {
      this.transferring++;
      w.grant();
    }
  }

  // First come first served: the longest waiter transfers next when the transfer before it ends.
  private pump(): void {
    if (this.phase === 'open' || this.waiters.length === 0) return;
    if (this.slots.inUse + this.slots.waiting + this.convertingNow >= this.limit) return this.open();
    if (this.transferring === 0) {
      this.transferring++;
      this.waiters.shift()!.grant();
    }
  }
}
