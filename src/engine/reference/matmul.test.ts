import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { centralDiff } from './finite-diff.ts';
import { linearBackward, matmul } from './matmul.ts';

function transpose(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

describe('reference matmul', () => {
  it('computes a known product', () => {
    // [[1,2,3],[4,5,6]] · [[7,8],[9,10],[11,12]] = [[58,64],[139,154]]
    const c = matmul([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], { M: 2, N: 2, K: 3 });
    expect([...c]).toEqual([58, 64, 139, 154]);
  });

  it('agrees across storage layouts (transposed operands)', () => {
    const rng = new Rng(1);
    const [M, N, K] = [5, 7, 3];
    const a = rng.fill(M * K);
    const b = rng.fill(K * N);
    const plain = matmul(a, b, { M, N, K });
    expect(relL2(matmul(transpose(a, M, K), b, { M, N, K, transA: true }), plain)).toBeLessThan(1e-15);
    expect(relL2(matmul(a, transpose(b, K, N), { M, N, K, transB: true }), plain)).toBeLessThan(1e-15);
  });

  it('batches with a shared B and scales by alpha', () => {
    const rng = new Rng(2);
    const a = rng.fill(2 * 3 * 4);
    const b = rng.fill(4 * 5);
    const c = matmul(a, b, { M: 3, N: 5, K: 4, batch: 2, batchB: 1, alpha: 2 });
    const second = matmul(a.subarray(12), b, { M: 3, N: 5, K: 4 });
    for (let i = 0; i < 15; i++) expect(c[15 + i]).toBeCloseTo(2 * second[i], 12);
  });

  it('linear backward agrees with central finite differences', () => {
    const rng = new Rng(3);
    const [M, N, K] = [3, 4, 5];
    const x = Float64Array.from(rng.fill(M * K));
    const w = Float64Array.from(rng.fill(N * K));
    const dy = Float64Array.from(rng.fill(M * N));
    // L = sum(dy ⊙ (x · Wᵀ)), so dL/dx and dL/dW are the backward outputs.
    const loss = () => {
      const y = matmul(x, w, { M, N, K, transB: true });
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * dy[i];
      return s;
    };
    const { dx, dw } = linearBackward(x, w, dy, M, N, K);
    const fd = (v: Float64Array) => centralDiff(v, loss);
    expect(relL2(dx, fd(x))).toBeLessThan(1e-8);
    expect(relL2(dw, fd(w))).toBeLessThan(1e-8);
  });
});
