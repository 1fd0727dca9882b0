/**
 * Shared bandwidth cap: one token bucket (bytes) for every connection of the mirror, waiters served in
 * arrival order so parallel downloads share the link fairly — like a real site whose uplink, not each
 * connection, is the limit. Tokens accrue with elapsed time (not per timer tick), so a busy machine that
 * fires the tick late does not silently lower the cap.
 */
import { performance } from 'node:perf_hooks';

export class TokenBucket {
  private tokens: number;
  private readonly capacity: number;
  /** while senders wait, credit of a late tick is kept up to this much (ms of bandwidth) */
  private readonly catchUpCapacity: number;
  /** the smallest grant (unless a sender asks for less): without it, senders woken by every refill get a few bytes each */
  private readonly quantum: number;
  private readonly now: () => number;
  private last: number;
  private waiters: { max: number; resolve: (n: number) => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** bytes granted in total, to compare with what the cap allows */
  granted = 0;

  /** `now` (ms) is for tests: a late tick can be simulated without stalling the test's event loop. */
  constructor(readonly bytesPerSec: number, readonly tickMs = 20, opts: { catchUpMs?: number; now?: () => number } = {}) {
    if (!(bytesPerSec > 0)) throw new Error(`bandwidth must be > 0 bytes/s (got ${bytesPerSec})`);
    this.now = opts.now ?? (() => performance.now());
    this.last = this.now();
    const catchUpMs = opts.catchUpMs ?? 250;
    // Burst of two ticks: smooth output, and the bound "granted <= rate * t + capacity" stays tight.
    this.capacity = Math.max(1, (bytesPerSec * tickMs * 2) / 1000);
    this.catchUpCapacity = Math.max(this.capacity, (bytesPerSec * catchUpMs) / 1000);
    this.tokens = this.capacity;
    this.quantum = Math.max(1, Math.min(16 * 1024, Math.floor(this.capacity / 2)));
  }

  get burst(): number {
    return this.capacity;
  }

  /** Resolves with 1..max bytes the caller may send now. */
  take(max: number): Promise<number> {
    return new Promise((resolve) => {
      this.refill();
      this.waiters.push({ max: Math.max(1, max), resolve });
      this.serve();
      if (this.waiters.length > 0 && !this.timer) {
        this.timer = setInterval(() => this.tick(), this.tickMs);
        this.timer.unref();
      }
    });
  }

  /**
   * Tokens made since the last refill: rate x elapsed, so the total ever granted stays within
   * rate * t + capacity. An idle link keeps at most `capacity`; with senders waiting, a tick the event
   * loop ran late was the server's delay, not the link's idleness, so that credit is kept (up to
   * catchUpCapacity) and the cap is what is delivered on average even on a loaded machine.
   */
  private refill(): void {
    const now = this.now();
    const made = ((now - this.last) * this.bytesPerSec) / 1000;
    this.last = now;
    const limit = this.waiters.length > 0 ? this.catchUpCapacity : this.capacity;
    this.tokens = Math.min(limit, this.tokens + made);
  }

  private tick(): void {
    this.refill();
    this.serve();
    if (this.waiters.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private serve(): void {
    // The first waiter is served once a quantum (or all it asked for) has accrued: granting whatever
    // trickled in since the last call handed out ~4-byte chunks at 360,000 grants/s, burning a core in
    // the mirror and another in every client reading the trickle.
    while (this.waiters.length > 0 && this.tokens >= Math.min(this.waiters[0]!.max, this.quantum)) {
      const w = this.waiters.shift()!;
      const n = Math.min(w.max, Math.floor(this.tokens));
      this.tokens -= n;
      this.granted += n;
      w.resolve(n);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // Pending senders get what they asked for so their streams can end when the server closes.
    for (const w of this.waiters.splice(0)) w.resolve(w.max);
  }
}
