import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { centralDiff } from './finite-diff.ts';
import { swiglu, swigluBackward } from './swiglu.ts';

describe('reference swiglu', () => {
  it('computes silu(gate) · up on known values', () => {
    // silu(0) = 0; silu(2) = 2 / (1 + e⁻²) = 1.7615941559557649; silu(−1) = −1 / (1 + e) = −0.2689414213699951.
    const out = swiglu([0, 2, -1], [5, 3, -2]);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(3 * 1.7615941559557649, 14);
    expect(out[2]).toBeCloseTo(2 * 0.2689414213699951, 14);
  });

  it('backward agrees with central finite differences', () => {
    const rng = new Rng(21);
    const n = 40;
    const gate = Float64Array.from(rng.fill(n, (r) => 3 * r.normal()));
    const up = Float64Array.from(rng.fill(n, (r) => r.normal()));
    const dout = Float64Array.from(rng.fill(n, (r) => r.normal()));
    const loss = () => swiglu(gate, up).reduce((s, v, i) => s + v * dout[i], 0);
    const fd = (v: Float64Array) => centralDiff(v, loss);
    const { dgate, dup } = swigluBackward(gate, up, dout);
    expect(relL2(dgate, fd(gate))).toBeLessThan(1e-8);
    expect(relL2(dup, fd(up))).toBeLessThan(1e-8);
  });
});
