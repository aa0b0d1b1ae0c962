import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { centralDiff } from './finite-diff.ts';
import { tanh, tanhBackward } from './tanh.ts';

describe('reference tanh', () => {
  it('computes tanh on known values', () => {
    // tanh(0.5) = (e − 1) / (e + 1) = 0.46211715726000974; tanh is odd.
    const out = tanh([0, 0.5, -0.5, 40]);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(0.46211715726000974, 15);
    expect(out[2]).toBeCloseTo(-0.46211715726000974, 15);
    expect(out[3]).toBe(1);
  });

  it('backward agrees with central finite differences', () => {
    const rng = new Rng(23);
    const n = 40;
    const x = Float64Array.from(rng.fill(n, (r) => 2 * r.normal()));
    const dout = Float64Array.from(rng.fill(n, (r) => r.normal()));
    const loss = () => tanh(x).reduce((s, v, i) => s + v * dout[i], 0);
    expect(relL2(tanhBackward(x, dout), centralDiff(x, loss))).toBeLessThan(1e-8);
  });
});
