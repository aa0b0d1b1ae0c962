// The shared compression steps that need no GPU: the seeded held-out split and the median.

import { describe, expect, it } from 'vitest';
import { median, splitHeldOut } from './pipeline.ts';

describe('splitHeldOut', () => {
  it('holds out round(fraction · n) rows of a seeded shuffle, at least one, and keeps one to train', () => {
    const rows = Array.from({ length: 10 }, (_, i) => i);
    const s = splitHeldOut(rows, 0.2, 0);
    expect(s.held).toHaveLength(2);
    expect(s.train).toHaveLength(8);
    expect([...s.held, ...s.train].sort((a, b) => a - b)).toEqual(rows);
    expect(splitHeldOut(rows, 0.2, 0)).toEqual(s);
    expect(splitHeldOut(rows, 0.2, 1)).not.toEqual(s);
    expect(splitHeldOut(rows, 0.01, 0).held).toHaveLength(1);
    expect(splitHeldOut(rows, 0, 0).held).toHaveLength(0);
    expect(splitHeldOut(rows, 0.9, 0, 3).held).toHaveLength(3);
    expect(splitHeldOut([1, 2], 0.9, 0)).toMatchObject({ held: [expect.any(Number)], train: [expect.any(Number)] });
    expect(splitHeldOut([1], 0.5, 0)).toEqual({ held: [], train: [1] });
    expect(() => splitHeldOut(rows, 1, 0)).toThrow(/below 1/);
  });
});

describe('median', () => {
  it('is the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(() => median([])).toThrow(/no values/);
  });
});
