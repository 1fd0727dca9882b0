import { describe, expect, it } from '@jest/globals';
import { allocate, type AllocationInput } from '../../src/allocate.js';

function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('allocate (docs/architecture.md §5.1)', () => {
  it("holds the seed's worked examples", () => {
    const twenty = Array.from({ length: 20 }, (_, i) => ({ speciesId: `s${i}`, remaining: 50 }));
    const a = allocate(24, twenty);
    const counts = Object.values(a);
    expect(counts.filter((n) => n === 2)).toHaveLength(4);
    expect(counts.filter((n) => n === 1)).toHaveLength(16);
    // ties go by config order
    expect([a.s0, a.s1, a.s2, a.s3, a.s4]).toEqual([2, 2, 2, 2, 1]);
    expect(allocate(24, [{ speciesId: 'a', remaining: 12 }, { speciesId: 'b', remaining: 40 }])).toEqual({ a: 12, b: 12 });
  });

  it('gives leftovers to the species with most remaining runs and caps at remaining', () => {
    expect(allocate(10, [{ speciesId: 'a', remaining: 2 }, { speciesId: 'b', remaining: 100 }, { speciesId: 'c', remaining: 50 }])).toEqual({ a: 2, b: 4, c: 4 });
    expect(allocate(5, [{ speciesId: 'a', remaining: 10 }, { speciesId: 'b', remaining: 30 }])).toEqual({ a: 2, b: 3 });
    expect(allocate(8, [{ speciesId: 'a', remaining: 1 }, { speciesId: 'b', remaining: 1 }])).toEqual({ a: 1, b: 1 });
  });

  it('with more species than slots activates only `total` species, preferring running ones', () => {
    const sp: AllocationInput[] = [
      { speciesId: 'a', remaining: 5 },
      { speciesId: 'b', remaining: 5, current: 1 },
      { speciesId: 'c', remaining: 5 },
      { speciesId: 'd', remaining: 5, current: 1 },
    ];
    expect(allocate(2, sp)).toEqual({ a: 0, b: 1, c: 0, d: 1 });
    expect(allocate(3, sp)).toEqual({ a: 1, b: 1, c: 0, d: 1 });
  });

  it('gives nothing to finished species and nothing when total < 1', () => {
    expect(allocate(4, [{ speciesId: 'a', remaining: 0 }, { speciesId: 'b', remaining: 9 }])).toEqual({ a: 0, b: 4 });
    expect(allocate(0, [{ speciesId: 'a', remaining: 3 }])).toEqual({ a: 0 });
  });

  it('property: within budget, >= 1 per active species, <= remaining, nothing idle while runs wait', () => {
    const rnd = prng(7);
    for (let trial = 0; trial < 3000; trial++) {
      const n = 1 + Math.floor(rnd() * 30);
      const total = 1 + Math.floor(rnd() * 64);
      const species = Array.from({ length: n }, (_, i) => ({
        speciesId: `s${i}`,
        remaining: rnd() < 0.2 ? 0 : 1 + Math.floor(rnd() * (rnd() < 0.5 ? 5 : 500)),
        current: rnd() < 0.3 ? 1 + Math.floor(rnd() * 4) : 0,
      }));
      const a = allocate(total, species);
      const sum = Object.values(a).reduce((x, y) => x + y, 0);
      const waiting = species.reduce((x, s) => x + s.remaining, 0);
      const eligible = species.filter((s) => s.remaining > 0);
      expect(sum).toBeLessThanOrEqual(total);
      expect(sum).toBe(Math.min(total, waiting)); // nothing idle while runs wait
      for (const s of species) {
        expect(a[s.speciesId]!).toBeLessThanOrEqual(s.remaining);
        expect(a[s.speciesId]!).toBeGreaterThanOrEqual(0);
      }
      const active = eligible.filter((s) => a[s.speciesId]! > 0);
      expect(active.length).toBe(Math.min(total, eligible.length));
      // leftovers never go to a species with fewer remaining runs while one with more is below it by 2+
      for (const x of active) for (const y of active) {
        if (x.remaining >= y.remaining && a[y.speciesId]! - a[x.speciesId]! >= 2) throw new Error(`unfair: ${JSON.stringify({ total, x, y, a })}`);
      }
    }
  });
});
