import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { centralDiff } from './finite-diff.ts';
import { rmsnorm, rmsnormBackward } from './rmsnorm.ts';

const fd = centralDiff;

describe('reference rmsnorm', () => {
  it('normalises a known row', () => {
    // mean(3², 4²) = 12.5, rstd = 1/√12.5; y = [3, 4] · rstd · [1, 2].
    const { y, rstd } = rmsnorm([3, 4], [1, 2], 1, 2, 0);
    expect(rstd[0]).toBeCloseTo(0.282842712474619, 14);
    expect(y[0]).toBeCloseTo(0.848528137423857, 14);
    expect(y[1]).toBeCloseTo(2.262741699796952, 14);
    // eps enters under the square root: mean(1², 1²) + 3 = 4.
    expect(rmsnorm([1, -1], [1, 1], 1, 2, 3).y[1]).toBeCloseTo(-0.5, 15);
  });

  it('backward agrees with central finite differences', () => {
    const rng = new Rng(7);
    const [rows, C, eps] = [4, 7, 1e-5];
    const x = Float64Array.from(rng.fill(rows * C, (r) => r.normal()));
    const w = Float64Array.from(rng.fill(C, (r) => r.normal()));
    const dy = Float64Array.from(rng.fill(rows * C, (r) => r.normal()));
    const loss = () => {
      const { y } = rmsnorm(x, w, rows, C, eps);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * dy[i];
      return s;
    };
    const { dx, dw } = rmsnormBackward(x, w, dy, rows, C, eps);
    expect(relL2(dx, fd(x, loss))).toBeLessThan(1e-7);
    expect(relL2(dw, fd(w, loss))).toBeLessThan(1e-7);
  });
});
