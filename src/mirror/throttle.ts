/**
 * Shared bandwidth cap: one token bucket (bytes) for every connection of the mirror, refilled on a
 * fixed tick, waiters served in arrival order so parallel downloads share the link fairly — like a
 * real site whose uplink, not each connection, is the limit.
 */
export class TokenBucket {
  private tokens: number;
  private readonly perTick: number;
  private readonly capacity: number;
  private waiters: { max: number; resolve: (n: number) => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** bytes granted in total, to compare with what the cap allows */
  granted = 0;

  constructor(readonly bytesPerSec: number, readonly tickMs = 20) {
    if (!(bytesPerSec > 0)) throw new Error(`bandwidth must be > 0 bytes/s (got ${bytesPerSec})`);
    this.perTick = (bytesPerSec * tickMs) / 1000;
    // Burst of two ticks: smooth output, and the bound "granted <= rate * t + capacity" stays tight.
    this.capacity = Math.max(1, this.perTick * 2);
    this.tokens = this.capacity;
  }

  get burst(): number {
    return this.capacity;
  }

  /** Resolves with 1..max bytes the caller may send now. */
  take(max: number): Promise<number> {
    return new Promise((resolve) => {
      this.waiters.push({ max: Math.max(1, max), resolve });
      this.serve();
      if (this.waiters.length > 0 && !this.timer) {
        this.timer = setInterval(() => this.tick(), this.tickMs);
        this.timer.unref();
      }
    });
  }

  private tick(): void {
    this.tokens = Math.min(this.capacity, this.tokens + this.perTick);
    this.serve();
    if (this.waiters.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private serve(): void {
    while (this.waiters.length > 0 && this.tokens >= 1) {
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
