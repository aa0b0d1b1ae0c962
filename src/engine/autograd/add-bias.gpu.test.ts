// addBias's backward hands its bias gradient (M) to whatever op produced the bias, not only to a
// leaf's accumulation: here the bias is a ⊙ c, so mul's backward reads the gradient chunk by chunk
// and must see all M values (a chunk laid out as one row of M would give it one).

import { describe, expect, it } from 'vitest';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray, writeTensor } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { fill } from '../kernels/elementwise.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import { addBias, mul } from './ops.ts';
import { Tape } from './tape.ts';

describe('addBias backward', () => {
  it('gives a bias gradient laid out as its (M) shape, so a non-leaf bias backpropagates every value', async () => {
    const gpu = await testGpu();
    const rng = new Rng(21);
    const [N, M] = [5, 7];
    const xv = rng.fill(N * M, (r) => r.normal());
    const av = rng.fill(M, (r) => r.normal());
    const cv = rng.fill(M, (r) => r.normal());
    const gv = rng.fill(N * M, (r) => r.normal());
    const x = tensorFromArray(gpu, xv, [N, M]);
    const a = tensorFromArray(gpu, av, [M]);
    const c = tensorFromArray(gpu, cv, [M]);
    const da = createTensor(gpu, [M]);
    const dx = createTensor(gpu, [N, M]);
    const tape = new Tape();
    const b = new Batch(gpu);
    fill(b, dx, 0);
    fill(b, da, 0);
    const X = tape.leaf(x, { grad: dx });
    const A = tape.leaf(a, { grad: da });
    const bias = mul(tape, b, A, tape.leaf(c)); // (M), not a leaf
    const y = addBias(tape, b, X, bias); // (N, M)
    const seed = createTensor(gpu, [N, M], 'f32', { transient: true }); // backward takes it over
    writeTensor(seed, gv);
    tape.backward(b, y, seed);
    b.submit();

    // dL/da_m = c_m · Σ_n g[n, m]; dL/dx = g.
    const want = new Float64Array(M);
    for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) want[m] += gv[n * M + m];
    for (let m = 0; m < M; m++) want[m] *= cv[m];
    const got = await readTensor(da);
    expect(relL2(got, want)).toBeLessThan(1e-6);
    expect(relL2(await readTensor(dx), gv)).toBeLessThan(1e-6);
    for (const t of [x, a, c, da, dx]) t.release();
  });
});
