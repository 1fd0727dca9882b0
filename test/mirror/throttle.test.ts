/**
 * The bandwidth cap under a late timer: tokens follow elapsed time, so an event loop that ran a tick
 * late (a loaded machine) does not lower the cap while senders wait, and an idle link banks no more
 * than its two-tick burst. A fake clock stands in for the late loop.
 */
import { describe, expect, it } from '@jest/globals';
import { TokenBucket } from '../../src/mirror/throttle.js';

describe('TokenBucket', () => {
  it('keeps the credit of a late tick while a sender waits, but banks only one burst while idle', async () => {
    let t = 0;
    const rate = 100_000; // 100 bytes per ms
    const bucket = new TokenBucket(rate, 20, { catchUpMs: 250, now: () => t });
    try {
      expect(bucket.burst).toBe(4000);
      expect(await bucket.take(50_000)).toBe(4000); // the initial burst, at once

      const waiting = bucket.take(50_000);
      t = 100; // the loop was 100 ms late with a sender waiting: 10,000 bytes of link time passed
      expect(await waiting).toBe(10_000); // not clipped to the two-tick burst

      t = 1100; // a second with nobody sending: an idle link keeps only its burst
      expect(await bucket.take(50_000)).toBe(4000);

      const late = bucket.take(50_000);
      t = 2100; // very late: the credit is bounded by catchUpMs
      expect(await late).toBe(25_000);
      // Whatever happens, never more than rate x elapsed + burst.
      expect(bucket.granted).toBeLessThanOrEqual((rate * t) / 1000 + bucket.burst);
    } finally {
      bucket.stop();
    }
  });

  it('hands out chunks of at least a quantum, not the trickle accrued since the last call', async () => {
    let t = 0;
    const rate = 1_500_000; // 1.5 bytes per ms: the benchmark's cap
    const bucket = new TokenBucket(rate, 20, { now: () => t });
    try {
      expect(await bucket.take(65_536)).toBe(bucket.burst); // the initial burst
      // Eight senders ask for 64 KiB each while the clock moves 2 ms at a time (3,000 bytes).
      const sizes: number[] = [];
      const waiting = Array.from({ length: 8 }, () => bucket.take(65_536).then((n) => sizes.push(n)));
      for (let i = 0; i < 200 && sizes.length < 8; i++) {
        t += 2;
        await new Promise((r) => setTimeout(r, 25)); // the bucket's own 20 ms tick serves them
      }
      await Promise.all(waiting);
      expect(sizes).toHaveLength(8);
      // Half the two-tick burst (15,000 bytes) at least; before the fix each got the ~3,000 bytes of one step.
      for (const n of sizes) expect(n).toBeGreaterThanOrEqual(15_000);
      // A sender asking for less than a quantum is served as soon as that much is there.
      const small = bucket.take(100);
      t += 1;
      expect(await small).toBe(100);
      expect(bucket.granted).toBeLessThanOrEqual((rate * t) / 1000 + bucket.burst);
    } finally {
      bucket.stop();
    }
  });
});
