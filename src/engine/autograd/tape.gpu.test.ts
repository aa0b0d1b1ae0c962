import { describe, expect, it } from 'vitest';
import { Batch, run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { fill } from '../kernels/elementwise.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import { linearBackward } from '../reference/matmul.ts';
import { add, linear, mul } from './ops.ts';
import { Tape } from './tape.ts';

describe('autograd tape', () => {
  it('backpropagates through linear, add and mul; frozen leaves get no gradient; intermediates are freed', async () => {
    const gpu = await testGpu();
    const rng = new Rng(5);
    const [N, K, M] = [7, 5, 6];
    const xv = rng.fill(N * K, (r) => r.normal());
    const w1v = rng.fill(M * K, (r) => r.normal());
    const w2v = rng.fill(M * K, (r) => r.normal());
    const gv = rng.fill(N * M, (r) => r.normal());
    const x = tensorFromArray(gpu, xv, [N, K]);
    const w1 = tensorFromArray(gpu, w1v, [M, K]);
    const w2 = tensorFromArray(gpu, w2v, [M, K]);
    const g = tensorFromArray(gpu, gv, [N, M]);
    const dw1 = createTensor(gpu, [M, K]);

    run(gpu, (bb) => fill(bb, dw1, 0)); // the uniform arena exists before counting
    const liveBefore = gpu.allocator.stats().inUseBytes;
    const tape = new Tape();
    const b = new Batch(gpu);
    fill(b, dw1, 0);
    const X = tape.leaf(x); // input: no gradient
    const W1 = tape.leaf(w1, { grad: dw1 }); // trainable, persistent gradient buffer
    const W2 = tape.leaf(w2); // frozen
    const G = tape.leaf(g);
    // z = (x·W1ᵀ + x·W2ᵀ) ⊙ g; seed dL/dz = 1 → dL/dW1 = (g)ᵀ · x.
    const y1 = linear(tape, b, X, W1);
    const y2 = linear(tape, b, X, W2);
    const s = add(tape, b, y1, y2);
    const z = mul(tape, b, s, G);
    expect(tape.size).toBe(3); // x·W2ᵀ has no input that needs a gradient: not recorded
    expect(y2.requiresGrad).toBe(false);
    const seed = createTensor(gpu, [N, M], 'f32', { transient: true });
    fill(b, seed, 1);
    tape.backward(b, z, seed);
    b.submit();

    expect(X.grad).toBeNull();
    expect(W2.grad).toBeNull();
    expect(W1.grad).toBe(dw1);
    const want = linearBackward(xv, w1v, gv, N, M, K).dw;
    expect(relL2(await readTensor(dw1), want)).toBeLessThan(1e-6);
    // Everything the step allocated went back to the pool.
    expect(gpu.allocator.stats().inUseBytes).toBe(liveBefore);
    for (const t of [x, w1, w2, g, dw1]) t.release();
  });

  it('records nothing when no input needs a gradient', async () => {
    const gpu = await testGpu();
    const tape = new Tape();
    const b = new Batch(gpu);
    const a = tape.leaf(tensorFromArray(gpu, [1, 2, 3, 4], [2, 2]));
    const w = tape.leaf(tensorFromArray(gpu, [1, 0, 0, 1], [2, 2]));
    const y = linear(tape, b, a, w);
    b.submit();
    expect(tape.size).toBe(0);
    expect(y.requiresGrad).toBe(false);
    expect([...(await readTensor(y.value))]).toEqual([1, 2, 3, 4]);
  });
});
