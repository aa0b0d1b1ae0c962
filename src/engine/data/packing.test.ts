// Tests of best-fit-decreasing packing: a worked example with known bins, and random examples that
// must each come out whole, once, with per-token segments and positions, and a label of -100 on
// the first token of each packed example.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import { Rng } from '../random.ts';
import { packExamples } from './packing.ts';
import { IGNORE_INDEX, type TokenizedExample } from './tokenize.ts';

/** An example of `n` tokens whose ids encode its index (1000 * index + position) and whose labels count all but the first token. */
function example(index: number, n: number): TokenizedExample {
  const inputIds = Int32Array.from({ length: n }, (_, t) => 1000 * index + t);
  const labels = Int32Array.from(inputIds, (id, t) => (t === 0 ? IGNORE_INDEX : id));
  return { inputIds, labels };
}

describe('packExamples', () => {
  it('fills sequences best-fit decreasing', () => {
    const lengths = [3, 5, 2, 4, 1, 3];
    const packed = packExamples(
      lengths.map((n, i) => example(i, n)),
      8,
    );
    // 5 → new; 4 → new; 3 (index 0) → the 5 (room 3); 3 (index 5) → the 4 (room 4 → 1); 2 → new; 1 → the 4+3 (room 1).
    expect(packed.map((p) => p.examples)).toEqual([
      [1, 0],
      [3, 5, 4],
      [2],
    ]);
    const second = packed[1];
    expect(Array.from(second.segments)).toEqual([0, 0, 0, 0, 1, 1, 1, 2]);
    expect(Array.from(second.positions)).toEqual([0, 1, 2, 3, 0, 1, 2, 0]);
    expect(Array.from(second.inputIds)).toEqual([3000, 3001, 3002, 3003, 5000, 5001, 5002, 4000]);
    expect(Array.from(second.labels)).toEqual([-100, 3001, 3002, 3003, -100, 5001, 5002, -100]);
  });

  it('keeps every example whole and once, with segments, positions and boundary labels', () => {
    const rng = new Rng(3);
    const maxLength = 64;
    const examples = Array.from({ length: 500 }, (_, i) => example(i, 1 + rng.int(maxLength)));
    // Labels that count the first token too, to see packing clear it.
    examples.forEach((e) => (e.labels[0] = e.inputIds[0]));
    const packed = packExamples(examples, maxLength);
    const seen = new Set<number>();
    let tokens = 0;
    for (const p of packed) {
      expect(p.inputIds.length).toBeLessThanOrEqual(maxLength);
      expect(p.labels.length).toBe(p.inputIds.length);
      expect(p.segments.length).toBe(p.inputIds.length);
      expect(p.positions.length).toBe(p.inputIds.length);
      let at = 0;
      p.examples.forEach((index, s) => {
        expect(seen.has(index)).toBe(false);
        seen.add(index);
        const e = examples[index];
        expect(Array.from(p.inputIds.subarray(at, at + e.inputIds.length))).toEqual(Array.from(e.inputIds));
        expect(p.labels[at]).toBe(IGNORE_INDEX);
        expect(Array.from(p.labels.subarray(at + 1, at + e.inputIds.length))).toEqual(Array.from(e.labels.subarray(1)));
        for (let t = 0; t < e.inputIds.length; t++) {
          expect(p.segments[at + t]).toBe(s);
          expect(p.positions[at + t]).toBe(t);
        }
        at += e.inputIds.length;
      });
      expect(at).toBe(p.inputIds.length);
      tokens += at;
    }
    expect(seen.size).toBe(examples.length);
    // Any-fit packing leaves at most one sequence half full or less (a later one would have fitted in it),
    // and best-fit decreasing stays within 11/9 of the optimum's lower bound (plus one).
    expect(packed.filter((p) => p.inputIds.length <= maxLength / 2).length).toBeLessThanOrEqual(1);
    const big = examples.filter((e) => e.inputIds.length > maxLength / 2).length;
    const lowerBound = Math.max(Math.ceil(tokens / maxLength), big);
    expect(packed.length).toBeLessThanOrEqual(Math.ceil((11 / 9) * lowerBound) + 1);
  });

  it('refuses examples that do not fit', () => {
    expect(() => packExamples([example(0, 9)], 8)).toThrow(InvalidArgumentError);
    expect(() => packExamples([example(0, 0)], 8)).toThrow(/no tokens/);
    expect(packExamples([], 8)).toEqual([]);
  });
});
