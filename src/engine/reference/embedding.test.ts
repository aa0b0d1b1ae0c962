import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { centralDiff } from './finite-diff.ts';
import { embedding, embeddingBackward } from './embedding.ts';

describe('reference embedding', () => {
  it('gathers rows and zeroes out-of-range ids', () => {
    const table = [1, 2, 3, 4, 5, 6]; // (3, 2)
    expect([...embedding(table, [2, 0, 2], 3, 2)]).toEqual([5, 6, 1, 2, 5, 6]);
    expect([...embedding(table, [-1, 3, 1], 3, 2)]).toEqual([0, 0, 0, 0, 3, 4]);
  });

  it('sums the gradient of repeated ids', () => {
    // ids [1, 0, 1]: row 1 gets dy[0] + dy[2], row 0 gets dy[1], row 2 nothing.
    expect([...embeddingBackward([1, 0, 1], [1, 2, 10, 20, 100, 200], 3, 2)]).toEqual([10, 20, 101, 202, 0, 0]);
  });

  it('backward agrees with central finite differences', () => {
    const rng = new Rng(41);
    const [V, C] = [6, 5];
    const ids = [3, 1, 3, 3, 0, 5, 1];
    const table = Float64Array.from(rng.fill(V * C, (r) => r.normal()));
    const dy = Float64Array.from(rng.fill(ids.length * C, (r) => r.normal()));
    const loss = () => embedding(table, ids, V, C).reduce((s, v, i) => s + v * dy[i], 0);
    const g = centralDiff(table, loss);
    expect(relL2(embeddingBackward(ids, dy, V, C), g)).toBeLessThan(1e-8);
  });
});
