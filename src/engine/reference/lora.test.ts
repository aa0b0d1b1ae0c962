import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { dropoutMask } from './dropout.ts';
import { centralDiff } from './finite-diff.ts';
import { type LoraDims, loraBackward, loraForward, mergeLoraWeight, mergedLlamaParams } from './lora.ts';
import { matmul } from './matmul.ts';

const normal = (rng: Rng, n: number, std = 1) => Float64Array.from(rng.fill(n, (r) => std * r.normal()));

describe('reference LoRA', () => {
  const d: LoraDims = { N: 5, inFeatures: 7, outFeatures: 6, r: 3 };
  const rng = new Rng(5);
  const x = normal(rng, d.N * d.inFeatures); // (N, in)
  const A = normal(rng, d.r * d.inFeatures); // (r, in)
  const B = normal(rng, d.outFeatures * d.r); // (out, r)
  const W = normal(rng, d.outFeatures * d.inFeatures); // (out, in)
  const dy = normal(rng, d.N * d.outFeatures); // (N, out)
  const scale = 1.75;

  it('adds what the merged weight adds: x·Wᵀ + scale·x·Aᵀ·Bᵀ = x·(W + scale·B·A)ᵀ', () => {
    const base = matmul(x, W, { M: d.N, N: d.outFeatures, K: d.inFeatures, transB: true });
    const { y } = loraForward(x, A, B, d, scale);
    const merged = matmul(x, mergeLoraWeight(W, A, B, d, scale), { M: d.N, N: d.outFeatures, K: d.inFeatures, transB: true });
    expect(relL2(base.map((v, i) => v + y[i]), merged)).toBeLessThan(1e-14);
    // Element (0, 0) written out: scale · Σ_j B[0, j] · Σ_k x[0, k] · A[j, k].
    let want = 0;
    for (let j = 0; j < d.r; j++) {
      let u = 0;
      for (let k = 0; k < d.inFeatures; k++) u += x[k] * A[j * d.inFeatures + k];
      want += B[j] * u;
    }
    expect(y[0]).toBeCloseTo(scale * want, 12);
  });

  for (const dropout of [null, { p: 0.4, seed: 77 }]) {
    it(`backward agrees with central differences ${dropout ? 'with dropout (mask replayed)' : 'without dropout'}`, () => {
      const loss = () => loraForward(x, A, B, d, scale, dropout).y.reduce((s, v, i) => s + v * dy[i], 0);
      const got = loraBackward(x, A, B, dy, d, scale, dropout);
      expect(relL2(got.dx, centralDiff(x, loss))).toBeLessThan(1e-8);
      expect(relL2(got.dA, centralDiff(A, loss))).toBeLessThan(1e-8);
      expect(relL2(got.dB, centralDiff(B, loss))).toBeLessThan(1e-8);
    });
  }

  it('applies dropout to x before A, with the shared mask and 1 / (1 − p)', () => {
    const drop = { p: 0.5, seed: 3 };
    const mask = dropoutMask(drop.seed, d.N * d.inFeatures, drop.p);
    expect(mask.some((m) => m === 0) && mask.some((m) => m === 1)).toBe(true);
    const xd = x.map((v, i) => (mask[i] ? v * 2 : 0));
    expect(relL2(loraForward(x, A, B, d, scale, drop).y, loraForward(xd, A, B, d, scale).y)).toBeLessThan(1e-14);
  });

  it('merges the named projections of a parameter set and leaves the rest alone', () => {
    const params = { 'model.layers.0.self_attn.q_proj.weight': W, 'model.norm.weight': normal(rng, 4) };
    const out = mergedLlamaParams(params, [{ path: 'model.layers.0.self_attn.q_proj', A, B, r: d.r, scale }]);
    expect(out['model.norm.weight']).toBe(params['model.norm.weight']);
    expect(relL2(out['model.layers.0.self_attn.q_proj.weight'], mergeLoraWeight(W, A, B, d, scale))).toBe(0);
    expect(params['model.layers.0.self_attn.q_proj.weight']).toBe(W);
    expect(() => mergedLlamaParams(params, [{ path: 'model.layers.0.self_attn.q_proj', A, B: B.subarray(1), r: d.r, scale }])).toThrow(/do not fit/);
  });
});
