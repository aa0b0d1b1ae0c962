import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { IGNORE_INDEX, countLabels, crossEntropy, crossEntropyLogits } from './cross_entropy.ts';

describe('reference cross-entropy', () => {
  it('computes a hand-checked loss and gradient', () => {
    // Row 0: logits [0, ln 3] → softmax [1/4, 3/4]; label 1 → loss −ln(3/4). Row 1 is ignored.
    const logits = [0, Math.log(3), 5, -2];
    const r = crossEntropyLogits(logits, [1, IGNORE_INDEX], 2, 2, 1);
    expect(r.loss).toBeCloseTo(-Math.log(0.75), 14);
    expect(r.rowLoss[1]).toBe(0);
    expect(r.dlogits[0]).toBeCloseTo(0.25, 14);
    expect(r.dlogits[1]).toBeCloseTo(-0.25, 14);
    expect([r.dlogits[2], r.dlogits[3]]).toEqual([0, 0]);
  });

  it('is shift invariant and stable for large logits', () => {
    const r = crossEntropyLogits([1000, 1000, 1000], [2], 1, 3, 1);
    expect(r.loss).toBeCloseTo(Math.log(3), 12);
  });

  it('divides by the given count and gives loss 0 when nothing is counted', () => {
    const labels = [0, IGNORE_INDEX, 2];
    expect(countLabels(labels)).toBe(2);
    const logits = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, -0.3, 0.9, 0.0];
    const two = crossEntropyLogits(logits, labels, 3, 3, 2);
    const four = crossEntropyLogits(logits, labels, 3, 3, 4);
    expect(four.loss).toBeCloseTo(two.loss / 2, 14);
    expect(crossEntropyLogits(logits, [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX], 3, 3, 0).loss).toBe(0);
    expect(() => crossEntropyLogits(logits, [3, 0, 0], 3, 3, 3)).toThrow(RangeError);
  });

  it('dh and dW agree with central finite differences', () => {
    const rng = new Rng(7);
    const [N, C, V] = [5, 4, 7];
    const h = Float64Array.from(rng.fill(N * C, (r) => r.normal()));
    const w = Float64Array.from(rng.fill(V * C, (r) => r.normal()));
    const labels = [3, IGNORE_INDEX, 0, 6, 2];
    const count = countLabels(labels);
    const { dh, dW } = crossEntropy(h, w, labels, N, C, V, count);
    const loss = () => crossEntropy(h, w, labels, N, C, V, count).loss;
    const eps = 1e-5;
    const fd = (v: Float64Array) => {
      const g = new Float64Array(v.length);
      for (let i = 0; i < v.length; i++) {
        const old = v[i];
        v[i] = old + eps;
        const up = loss();
        v[i] = old - eps;
        const down = loss();
        v[i] = old;
        g[i] = (up - down) / (2 * eps);
      }
      return g;
    };
    expect(relL2(dh, fd(h))).toBeLessThan(1e-8);
    expect(relL2(dW, fd(w))).toBeLessThan(1e-8);
    // The ignored token gets no gradient.
    for (let c = 0; c < C; c++) expect(dh[1 * C + c]).toBe(0);
  });
});
