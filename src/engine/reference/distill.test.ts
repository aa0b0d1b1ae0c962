import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { IGNORE_INDEX, countLabels, crossEntropyLogits } from './cross_entropy.ts';
import { distill, distillLogits } from './distill.ts';
import { centralDiff } from './finite-diff.ts';

describe('reference distillation loss', () => {
  it('is the KL divergence at alpha 1, the cross-entropy at alpha 0, and 0 for a student equal to the teacher', () => {
    // Student softmax [1/4, 3/4], teacher [1/2, 1/2] at T = 1: KL = ½ ln(½ / ¼) + ½ ln(½ / ¾).
    const s = [0, Math.log(3)];
    const t = [0.7, 0.7];
    const kl = 0.5 * Math.log(2) + 0.5 * Math.log(2 / 3);
    expect(distillLogits(s, t, [1], 1, 2, 1, 1, 1).loss).toBeCloseTo(kl, 14);
    expect(distillLogits(s, t, [1], 1, 2, 1, 1, 0).loss).toBeCloseTo(crossEntropyLogits(s, [1], 1, 2, 1).loss, 14);
    const same = distillLogits([0.3, -1, 2], [0.3, -1, 2], [0], 1, 3, 1, 2.5, 1);
    expect(same.loss).toBeCloseTo(0, 14);
    for (const g of same.dlogits) expect(Math.abs(g)).toBeLessThan(1e-15);
    // T² scaling: at temperature 2 the KL of the tempered distributions is multiplied by 4.
    const t2 = distillLogits(s, t, [1], 1, 2, 1, 2, 1).loss;
    const pS = [1 / (1 + Math.sqrt(3)), Math.sqrt(3) / (1 + Math.sqrt(3))];
    expect(t2).toBeCloseTo(4 * (0.5 * Math.log(0.5 / pS[0]) + 0.5 * Math.log(0.5 / pS[1])), 13);
  });

  it('ignores tokens labelled -100 and stays finite for large logits', () => {
    const r = distillLogits([1000, 999, 5, 5], [998, 1000, 1, 2], [0, IGNORE_INDEX], 2, 2, 1, 2, 0.5);
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(r.rowLoss[1]).toBe(0);
    expect([r.dlogits[2], r.dlogits[3]]).toEqual([0, 0]);
  });

  it('dhS and dWS agree with central finite differences', () => {
    const rng = new Rng(17);
    const [N, Cs, Ct, V] = [5, 3, 4, 7];
    const hS = Float64Array.from(rng.fill(N * Cs, (r) => r.normal()));
    const wS = Float64Array.from(rng.fill(V * Cs, (r) => r.normal()));
    const hT = Float64Array.from(rng.fill(N * Ct, (r) => r.normal()));
    const wT = Float64Array.from(rng.fill(V * Ct, (r) => r.normal()));
    const labels = [3, IGNORE_INDEX, 0, 6, 2];
    const count = countLabels(labels);
    for (const [T, alpha] of [[1, 0.5], [2.5, 0.9], [0.7, 1]]) {
      const run = () => distill(hS, wS, hT, wT, labels, { N, Cs, Ct, V }, count, T, alpha);
      const { dh, dW } = run();
      expect(relL2(dh, centralDiff(hS, () => run().loss, 1e-5))).toBeLessThan(1e-8);
      expect(relL2(dW, centralDiff(wS, () => run().loss, 1e-5))).toBeLessThan(1e-8);
      for (let c = 0; c < Cs; c++) expect(dh[1 * Cs + c]).toBe(0);
    }
  });
});
