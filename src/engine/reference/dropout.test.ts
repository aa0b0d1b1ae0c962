import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { centralDiff } from './finite-diff.ts';
import { dropout, dropoutBackward, dropoutHash, dropoutMask, fmix32 } from './dropout.ts';

describe('reference dropout', () => {
  it('hashes with MurmurHash3 fmix32 in u32 arithmetic', () => {
    expect(fmix32(0)).toBe(0);
    expect(fmix32(1)).toBe(0x514e28b7);
    // fmix32(fmix32(42) ^ (i · 0x9E3779B9 mod 2³²)), computed with Python integers.
    expect([0, 1, 2, 3].map((i) => dropoutHash(42, i))).toEqual([0xb9dac15f, 0x6f533d78, 0xc09d47ff, 0x5ee274c5]);
  });

  it('drops the elements whose hash is below p · 2³² and scales the rest by 1 / (1 − p)', () => {
    // p = 0.5: threshold 0x80000000 keeps elements 0 and 2 of seed 42 (hashes above).
    expect([...dropout([1, 2, 3, 4], 42, 0.5)]).toEqual([2, 0, 6, 0]);
    expect([...dropout([1, -2, 3], 7, 0)]).toEqual([1, -2, 3]);
  });

  it('keeps a fraction close to 1 − p, and different seeds give different masks', () => {
    const n = 200_000;
    for (const p of [0.1, 0.5, 0.9]) {
      const kept = dropoutMask(123, n, p).reduce((s, v) => s + v, 0) / n;
      // 5 standard deviations of a binomial fraction.
      expect(Math.abs(kept - (1 - p))).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
    }
    const a = dropoutMask(1, 1000, 0.5);
    const b = dropoutMask(2, 1000, 0.5);
    const same = a.reduce((s, v, i) => s + (v === b[i] ? 1 : 0), 0);
    expect(same).toBeGreaterThan(400);
    expect(same).toBeLessThan(600);
  });

  it('backward agrees with central finite differences (the same mask, replayed)', () => {
    const rng = new Rng(31);
    const n = 64;
    const x = Float64Array.from(rng.fill(n, (r) => r.normal()));
    const dy = Float64Array.from(rng.fill(n, (r) => r.normal()));
    const [seed, p] = [99, 0.3];
    const loss = () => dropout(x, seed, p).reduce((s, v, i) => s + v * dy[i], 0);
    const g = centralDiff(x, loss);
    expect(relL2(dropoutBackward(dy, seed, p), g)).toBeLessThan(1e-8);
  });
});
