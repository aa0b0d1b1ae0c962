import { describe, expect, it } from 'vitest';
import { adamwStep, clipCoefficient, clipGradNorm, gradNormSquared } from './adamw.ts';

describe('reference AdamW', () => {
  it('first step moves each weight by lr·sign(g) after the decay', () => {
    // Step 1: m̂ = g and v̂ = g², so the update is lr·g/(|g| + eps).
    const p = Float64Array.from([0.5, -2, 3]);
    const g = [0.25, -4, 1e-3];
    const m = new Float64Array(3);
    const v = new Float64Array(3);
    adamwStep(p, g, m, v, 1, { lr: 0.1, weightDecay: 0.5, eps: 1e-8 });
    const want = [0.5, -2, 3].map((x, i) => x * (1 - 0.05) - (0.1 * g[i]) / (Math.abs(g[i]) + 1e-8));
    for (let i = 0; i < 3; i++) expect(p[i]).toBeCloseTo(want[i], 14);
    for (let i = 0; i < 3; i++) expect(m[i]).toBeCloseTo(0.1 * g[i], 15);
    for (let i = 0; i < 3; i++) expect(v[i]).toBeCloseTo(0.001 * g[i] * g[i], 15);
  });

  it('with a constant gradient the bias-corrected update stays lr·g/(|g|+eps) at every step', () => {
    const p = Float64Array.from([1.5]);
    const m = new Float64Array(1);
    const v = new Float64Array(1);
    let want = 1.5;
    for (let t = 1; t <= 6; t++) {
      adamwStep(p, [0.3], m, v, t, { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 0, weightDecay: 0.2 });
      want = want * (1 - 0.01 * 0.2) - 0.01;
      expect(p[0]).toBeCloseTo(want, 13);
    }
  });

  it('matches torch.optim.AdamW with clip_grad_norm_ over four steps (float64)', () => {
    // Values printed by PyTorch 1.13 (float64) for:
    //   p = [sin(1.3 i) + 0.2 for i in range(7)], q = [cos(0.7 i) for i in range(3)]
    //   opt = AdamW([p, q], lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
    //   step s = 0..3: p.grad = [sin(0.37 i (s+1) + s) · (3 if s == 1 else 0.2)],
    //                  q.grad = [cos(0.91 i + s) · (2 if s == 1 else 0.1)],
    //                  norm = clip_grad_norm_([p, q], 1.0); opt.step()
    const torchP = [0.08360259948407667, 1.00704084145083, 0.5863440896092262, -0.552679209647335, -0.6924766524547131, 0.39761530231551095, 1.1629692367583597];
    const torchQ = [0.8501807126107579, 0.7860564332262961, 0.32321235875781845];
    const torchNorms = [0.4146048288767008, 6.526492993895893, 0.4057018278444454, 0.3796775214978209];
    const p = Float64Array.from({ length: 7 }, (_, i) => Math.sin(i * 1.3) + 0.2);
    const q = Float64Array.from({ length: 3 }, (_, i) => Math.cos(i * 0.7));
    const [mp, vp, mq, vq] = [new Float64Array(7), new Float64Array(7), new Float64Array(3), new Float64Array(3)];
    const hyper = { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 };
    for (let s = 0; s < 4; s++) {
      const gp = Float64Array.from({ length: 7 }, (_, i) => Math.sin(i * 0.37 * (s + 1) + s) * (s === 1 ? 3 : 0.2));
      const gq = Float64Array.from({ length: 3 }, (_, i) => Math.cos(i * 0.91 + s) * (s === 1 ? 2 : 0.1));
      const { norm } = clipGradNorm([gp, gq], 1.0);
      expect(norm).toBeCloseTo(torchNorms[s], 13);
      adamwStep(p, gp, mp, vp, s + 1, hyper);
      adamwStep(q, gq, mq, vq, s + 1, hyper);
    }
    for (let i = 0; i < 7; i++) expect(p[i]).toBeCloseTo(torchP[i], 13);
    for (let i = 0; i < 3; i++) expect(q[i]).toBeCloseTo(torchQ[i], 13);
  });

  it('a gradScale equals scaling the gradient beforehand', () => {
    const g = [0.7, -1.1, 0.05];
    const a = Float64Array.from([1, 2, 3]);
    const b = Float64Array.from([1, 2, 3]);
    const [ma, va, mb, vb] = [new Float64Array(3), new Float64Array(3), new Float64Array(3), new Float64Array(3)];
    adamwStep(a, g, ma, va, 3, { lr: 0.1 }, 0.25);
    adamwStep(b, g.map((x) => x * 0.25), mb, vb, 3, { lr: 0.1 });
    expect([...a]).toEqual([...b]);
    expect([...va]).toEqual([...vb]);
  });

  it('clips by the global norm of all gradients together', () => {
    const g1 = Float64Array.from([3, 0]);
    const g2 = Float64Array.from([4]);
    expect(gradNormSquared([g1, g2])).toBe(25);
    const { norm, coef } = clipGradNorm([g1, g2], 1);
    expect(norm).toBe(5);
    expect(coef).toBeCloseTo(1 / (5 + 1e-6), 15);
    expect(g1[0]).toBeCloseTo(3 / 5, 6);
    expect(g2[0]).toBeCloseTo(4 / 5, 6);
    // Below the threshold the gradients are left as they are.
    expect(clipCoefficient(0.5, 1)).toBe(1);
  });
});
