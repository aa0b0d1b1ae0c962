// The training set as the loop consumes it: checking and cutting examples, the seeded order of each
// epoch, micro-batches by rows and by padded tokens, steps per epoch, the data fingerprint, and the
// right-padded host arrays of a micro-batch (packed sequences included).

import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import { epochOrder, fingerprintRows, hostBatch, planEpoch, prepareRows, stepsInEpoch } from './batches.ts';

const V = 50;

describe('prepareRows', () => {
  it('checks ids and labels, cuts to seqLen, counts targets and leaves out rows with none', () => {
    const { rows, truncated, skipped } = prepareRows(
      [
        { inputIds: [1, 2, 3, 4, 5, 6], labels: [-100, -100, 3, 4, 5, 6] }, // cut to 4: targets 3, 4
        { inputIds: [7, 8, 9] }, // labels = ids: targets 8, 9
        { inputIds: [1, 2, 3, 4, 5], labels: [-100, -100, -100, -100, 5] }, // only the cut-off token counts
        { inputIds: [4] }, // one token: nothing predicts anything
      ],
      V,
      4,
    );
    expect(truncated).toBe(2);
    expect(skipped).toBe(2);
    expect(rows.map((r) => Array.from(r.ids))).toEqual([[1, 2, 3, 4], [7, 8, 9]]);
    expect(rows.map((r) => r.count)).toEqual([2, 2]);
    expect(Array.from(rows[1].labels)).toEqual([7, 8, 9]);
    expect(Array.from(rows[0].positions)).toEqual([0, 1, 2, 3]);
    expect(Array.from(rows[0].segments)).toEqual([0, 0, 0, 0]);
  });

  it('does not count a target across a packed segment boundary', () => {
    const { rows } = prepareRows([{ inputIds: [1, 2, 3, 4, 5], labels: [1, 2, 3, 4, 5], segments: [0, 0, 0, 1, 1], positions: [0, 1, 2, 0, 1] }], V, 8);
    expect(rows[0].count).toBe(3); // 2, 3 and 5; not 4 (the next example's first token)
  });

  it('names the example and the position of what is wrong', () => {
    expect(() => prepareRows([{ inputIds: [1, 2] }, { inputIds: [1, 99] }], V, 8)).toThrow(/example 1: token id 99 at position 1 is outside the vocabulary \(0\.\.49\)/);
    expect(() => prepareRows([{ inputIds: [1, 2], labels: [1, 70] }], V, 8)).toThrow(/label 70 at position 1/);
    expect(() => prepareRows([{ inputIds: [1, 2], labels: [1] }], V, 8)).toThrow(/labels has 1 entries for 2 input ids/);
    expect(() => prepareRows([{ inputIds: [] }], V, 8)).toThrow(/no input ids/);
    expect(() => prepareRows([{ inputIds: [1, 2], segments: [0, -1] }], V, 8)).toThrow(/segment -1/);
    expect(() => prepareRows([{ inputIds: [1, 2] }], V, 1)).toThrow(InvalidArgumentError);
  });
});

describe('epoch plans', () => {
  it('shuffles with the seed and the epoch: the same pair repeats, another differs', () => {
    const a = epochOrder(20, 7, 0);
    expect(epochOrder(20, 7, 0)).toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(epochOrder(20, 7, 1)).not.toEqual(a);
    expect(epochOrder(20, 8, 0)).not.toEqual(a);
  });

  it('cuts the order into micro-batches of a row count, the last one shorter', () => {
    const plan = planEpoch(new Array(10).fill(5), { batchSize: 4 }, 3, 0);
    expect(plan.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(plan.flat()).toEqual(epochOrder(10, 3, 0));
    expect(stepsInEpoch(plan.length, 2)).toBe(2);
    expect(stepsInEpoch(plan.length, 1)).toBe(3);
  });

  it('cuts the order into runs of at most batchTokens padded tokens; a longer row goes alone', () => {
    const lengths = [3, 9, 4, 4, 20, 2, 6, 6];
    const plan = planEpoch(lengths, { batchTokens: 16 }, 5, 2);
    expect(plan.flat()).toEqual(epochOrder(lengths.length, 5, 2));
    for (const b of plan) {
      const padded = b.length * Math.max(...b.map((i) => lengths[i]));
      if (b.length > 1) expect(padded).toBeLessThanOrEqual(16);
    }
    expect(plan.find((b) => b.includes(4))).toEqual([4]);
    // Greedy: no micro-batch could have taken the next row within the budget.
    for (let k = 0; k + 1 < plan.length; k++) {
      const grown = [...plan[k], plan[k + 1][0]];
      expect(grown.length * Math.max(...grown.map((i) => lengths[i]))).toBeGreaterThan(16);
    }
  });
});

describe('hostBatch', () => {
  it('right-pads rows with segment -1 and shifts the labels into next-token targets', () => {
    const { rows } = prepareRows(
      [
        { inputIds: [5, 6, 7], labels: [-100, 6, 7] },
        { inputIds: [1, 2, 3, 4, 8], labels: [1, 2, 3, 4, 8], segments: [0, 0, 1, 1, 1], positions: [0, 1, 0, 1, 2] },
      ],
      V,
      8,
    );
    const h = hostBatch(rows, [0, 1]);
    expect([h.B, h.T]).toEqual([2, 5]);
    expect(Array.from(h.ids)).toEqual([5, 6, 7, 0, 0, 1, 2, 3, 4, 8]);
    expect(Array.from(h.segments)).toEqual([0, 0, 0, -1, -1, 0, 0, 1, 1, 1]);
    expect(Array.from(h.positions)).toEqual([0, 1, 2, 0, 0, 0, 1, 0, 1, 2]);
    expect(Array.from(h.targets)).toEqual([6, 7, -100, -100, -100, 2, -100, 4, 8, -100]);
    expect(h.count).toBe(rows[0].count + rows[1].count);
    expect(() => hostBatch(rows, [])).toThrow(InvalidArgumentError);
  });
});

describe('fingerprintRows', () => {
  it('changes with any token, label, segment or position, and with the row count', () => {
    const make = (extra: Partial<{ labels: number[]; segments: number[]; positions: number[] }> = {}) =>
      fingerprintRows(prepareRows([{ inputIds: [1, 2, 3] }, { inputIds: [4, 5, 6], ...extra }], V, 8).rows);
    const base = make();
    expect(make()).toBe(base);
    expect(base).toMatch(/^2:[0-9a-f]{8}$/);
    expect(make({ labels: [-100, 5, 6] })).not.toBe(base);
    expect(make({ segments: [0, 0, 1] })).not.toBe(base);
    expect(make({ positions: [0, 1, 0] })).not.toBe(base);
    expect(fingerprintRows(prepareRows([{ inputIds: [1, 2, 3] }], V, 8).rows)).not.toBe(base);
  });
});
