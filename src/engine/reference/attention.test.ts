import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { type AttentionDims, attentionBackward, attentionForward } from './attention.ts';
import { relL2 } from './compare.ts';
import { centralDiff } from './finite-diff.ts';

describe('reference attention forward', () => {
  it('computes a hand-checked causal case', () => {
    // B=1, T=2, one head, D=1, scale 1. Query 0 sees key 0 only: out0 = v0 = 4, lse0 = q0·k0 = 0.
    // Query 1 scores [1·0, 1·ln 3] → weights [1/4, 3/4]: out1 = 4/4 + 3·8/4 = 7, lse1 = ln 4.
    const d: AttentionDims = { B: 1, T: 2, Hq: 1, Hkv: 1, D: 1 };
    const { out, lse } = attentionForward([2, 1], [0, Math.log(3)], [4, 8], [0, 0], d);
    expect(out[0]).toBeCloseTo(4, 14);
    expect(out[1]).toBeCloseTo(7, 14);
    expect(lse[0]).toBeCloseTo(0, 14);
    expect(lse[1]).toBeCloseTo(Math.log(4), 14);
  });

  it('masks padding, packed sequences and adds prefix keys', () => {
    // T=4 with segments [5, 5, 9, -1]: token 2 starts a new sequence and sees only itself,
    // token 3 is padding. One prefix key with score 0 and value 10 joins every softmax.
    const d: AttentionDims = { B: 1, T: 4, Hq: 1, Hkv: 1, D: 1, scale: 1 };
    const q = [1, 1, 1, 1];
    const k = [0, 0, 0, 0];
    const v = [2, 4, 6, 8];
    const plain = attentionForward(q, k, v, [5, 5, 9, -1], d);
    expect([...plain.out]).toEqual([2, 3, 6, 0]);
    expect(plain.lse[2]).toBeCloseTo(0, 14);
    expect(plain.lse[3]).toBe(0);
    const prefixed = attentionForward(q, k, v, [5, 5, 9, -1], { ...d, P: 1 }, [0], [10]);
    expect(prefixed.out[0]).toBeCloseTo(6, 14); // (10 + 2) / 2
    expect(prefixed.out[1]).toBeCloseTo(16 / 3, 14); // (10 + 2 + 4) / 3
    expect(prefixed.out[2]).toBeCloseTo(8, 14); // (10 + 6) / 2
    expect(prefixed.out[3]).toBe(0);
    expect(prefixed.lse[1]).toBeCloseTo(Math.log(3), 14);
  });

  it('maps query heads to kv heads in groups', () => {
    // Hq=4, Hkv=2: heads 0, 1 read kv head 0 and heads 2, 3 read kv head 1.
    const rng = new Rng(7);
    const d: AttentionDims = { B: 1, T: 3, Hq: 4, Hkv: 2, D: 2 };
    const q = rng.fill(3 * 4 * 2);
    const k = rng.fill(3 * 2 * 2);
    const v = rng.fill(3 * 2 * 2);
    const { out } = attentionForward(q, k, v, [0, 0, 0], d);
    for (let h = 0; h < 4; h++) {
      const pick = (a: ArrayLike<number>, stride: number, off: number) => Array.from({ length: 3 * 2 }, (_, i) => a[Math.floor(i / 2) * stride + off + (i % 2)]);
      const single = attentionForward(pick(q, 8, h * 2), pick(k, 4, Math.floor(h / 2) * 2), pick(v, 4, Math.floor(h / 2) * 2), [0, 0, 0], { ...d, Hq: 1, Hkv: 1 });
      expect(relL2(pick(out, 8, h * 2), single.out)).toBeLessThan(1e-15);
    }
  });
});

describe('reference attention backward', () => {
  function finiteDifferences(d: AttentionDims, segments: number[], seed: number) {
    const rng = new Rng(seed);
    const P = d.P ?? 0;
    const N = d.B * d.T;
    const q = Float64Array.from(rng.fill(N * d.Hq * d.D));
    const k = Float64Array.from(rng.fill(N * d.Hkv * d.D));
    const v = Float64Array.from(rng.fill(N * d.Hkv * d.D));
    const pk = Float64Array.from(rng.fill(P * d.Hkv * d.D));
    const pv = Float64Array.from(rng.fill(P * d.Hkv * d.D));
    const dOut = Float64Array.from(rng.fill(N * d.Hq * d.D));
    // L = Σ dOut ⊙ out, so dL/dx is the backward output for x.
    const loss = () => {
      const { out } = attentionForward(q, k, v, segments, d, pk, pv);
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i] * dOut[i];
      return s;
    };
    const fd = (x: Float64Array) => centralDiff(x, loss);
    const got = attentionBackward(q, k, v, segments, dOut, d, pk, pv);
    return {
      got,
      errors: {
        dq: relL2(got.dq, fd(q)),
        dk: relL2(got.dk, fd(k)),
        dv: relL2(got.dv, fd(v)),
        dPrefixK: P > 0 ? relL2(got.dPrefixK, fd(pk)) : 0,
        dPrefixV: P > 0 ? relL2(got.dPrefixV, fd(pv)) : 0,
      },
    };
  }

  it('agrees with finite differences (GQA, batch 2)', () => {
    const { errors } = finiteDifferences({ B: 2, T: 5, Hq: 4, Hkv: 2, D: 3 }, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1], 11);
    for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(1e-7);
  });

  it('agrees with finite differences with padding, packing and a prefix', () => {
    // Row 0: left padding then one sequence; row 1: two packed sequences then right padding.
    const segments = [-1, -1, 4, 4, 4, 4, 2, 2, 2, 7, 7, -1];
    const d: AttentionDims = { B: 2, T: 6, Hq: 4, Hkv: 1, D: 3, P: 2, scale: 0.8 };
    const { got, errors } = finiteDifferences(d, segments, 12);
    for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(1e-7);
    // Padding tokens get no gradient at all.
    for (const n of [0, 1, 11]) {
      for (let c = 0; c < d.Hq * d.D; c++) expect(got.dq[n * d.Hq * d.D + c]).toBe(0);
      for (let c = 0; c < d.Hkv * d.D; c++) expect(got.dk[n * d.Hkv * d.D + c]).toBe(0);
    }
  });
});
