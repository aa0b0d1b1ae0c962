import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/cross_entropy.ts';
import { crossEntropy } from './cross_entropy.ts';
import { fill } from './elementwise.ts';

const TOL = 1e-6;

interface Case {
  N: number;
  C: number;
  V: number;
  chunkTokens: number;
  /** Which gradients to compute (dW accumulates onto random values). */
  grads: 'none' | 'dW' | 'both';
  seed: number;
  /** Count passed to the kernel, when not the number of counted labels. */
  count?: number;
}

async function check(gpu: Gpu, o: Case) {
  const rng = new Rng(o.seed);
  const hv = rng.fill(o.N * o.C, (r) => r.normal()); // (N, C)
  const wv = rng.fill(o.V * o.C, (r) => 0.4 * r.normal()); // (V, C)
  const labelsv = Int32Array.from({ length: o.N }, (_, i) => (i % 5 === 2 || rng.next() < 0.15 ? ref.IGNORE_INDEX : rng.int(o.V)));
  const count = o.count ?? ref.countLabels(labelsv);
  const h = tensorFromArray(gpu, hv, [o.N, o.C]);
  const w = tensorFromArray(gpu, wv, [o.V, o.C]);
  const labels = tensorFromArray(gpu, labelsv, [o.N], 'i32');
  const loss = createTensor(gpu, [1]);
  const dh = o.grads === 'both' ? createTensor(gpu, [o.N, o.C]) : undefined;
  // A prior on the scale of the gradient itself, so that accumulation errors are not hidden.
  const prior = o.grads !== 'none' ? rng.fill(o.V * o.C, (r) => 1e-3 * r.normal()) : null;
  const dW = prior ? tensorFromArray(gpu, prior, [o.V, o.C]) : undefined;
  run(gpu, (b) => {
    fill(b, loss, NaN);
    if (dh) fill(b, dh, NaN);
  });
  run(gpu, (b) => crossEntropy(b, h, w, labels, count, { chunkTokens: o.chunkTokens, loss, dh, dW }));
  const want = ref.crossEntropy(hv, wv, labelsv, o.N, o.C, o.V, count);
  const errs: Record<string, number> = { loss: relL2(await readTensor(loss), [want.loss]) };
  if (dh) errs.dh = relL2(await readTensor(dh), want.dh);
  if (dW && prior) {
    const wantDW = Float64Array.from(want.dW, (g, i) => g + prior[i]);
    errs.dW = relL2(await readTensor(dW), wantDW);
  }
  for (const t of [h, w, labels, loss, dh, dW]) t?.release();
  return errs;
}

function expectAll(errs: Record<string, number>, tol: number) {
  for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThan(tol);
}

describe('cross-entropy kernel vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it('loss, dh and dW (accumulated) in chunks that do not divide N, V = 1003', async () => {
    expectAll(await check(gpu, { N: 37, C: 19, V: 1003, chunkTokens: 10, grads: 'both', seed: 1 }), TOL);
  });

  it('one chunk covering all tokens', async () => {
    expectAll(await check(gpu, { N: 13, C: 33, V: 257, chunkTokens: 64, grads: 'both', seed: 2 }), TOL);
  });

  it('forward only, one token per chunk, count over a larger accumulation window', async () => {
    expectAll(await check(gpu, { N: 9, C: 17, V: 1003, chunkTokens: 1, grads: 'none', seed: 3, count: 20 }), TOL);
    expectAll(await check(gpu, { N: 9, C: 17, V: 1003, chunkTokens: 4, grads: 'both', seed: 4, count: 20 }), TOL);
  });

  it('a 150k vocabulary (loss and dW)', async () => {
    // dh is left out at this size: its matmul reduces over K = V in a single 64×64 tile, which the
    // CPU driver runs serially; the dh path is covered by the other cases.
    expectAll(await check(gpu, { N: 3, C: 8, V: 150_000, chunkTokens: 3, grads: 'dW', seed: 5 }), TOL);
  });

  it('gives loss 0 and zero dh when no token is counted', async () => {
    const h = tensorFromArray(gpu, new Rng(6).fill(3 * 5, (r) => r.normal()), [3, 5]);
    const w = tensorFromArray(gpu, new Rng(7).fill(11 * 5, (r) => r.normal()), [11, 5]);
    const labels = tensorFromArray(gpu, [-100, -100, -100], [3], 'i32');
    const loss = createTensor(gpu, [1]);
    const dh = createTensor(gpu, [3, 5]);
    run(gpu, (b) => {
      fill(b, loss, NaN);
      fill(b, dh, NaN);
    });
    run(gpu, (b) => crossEntropy(b, h, w, labels, 0, { chunkTokens: 2, loss, dh }));
    expect([...(await readTensor(loss))]).toEqual([0]);
    expect([...(await readTensor(dh))].every((v) => v === 0)).toBe(true);
    for (const t of [h, w, labels, loss, dh]) t.release();
  });

  it('rejects bad shapes, dtypes and arguments', () => {
    const h = createTensor(gpu, [4, 6]);
    const w = createTensor(gpu, [10, 7]);
    const w6 = createTensor(gpu, [10, 6]);
    const labels = createTensor(gpu, [4], 'i32');
    const labelsF = createTensor(gpu, [4], 'f32');
    const loss = createTensor(gpu, [1]);
    const dW = createTensor(gpu, [10, 5]);
    expect(() => run(gpu, (b) => crossEntropy(b, h, w, labels, 4, { chunkTokens: 2, loss }))).toThrowError(/hidden size \(6 vs 7\)/);
    expect(() => run(gpu, (b) => crossEntropy(b, h, w6, labelsF, 4, { chunkTokens: 2, loss }))).toThrowError(ShapeError);
    expect(() => run(gpu, (b) => crossEntropy(b, h, w6, labels, 4, { chunkTokens: 2, loss, dW }))).toThrowError(/dW is \[10, 5\] f32 but W is \[10, 6\]/);
    expect(() => run(gpu, (b) => crossEntropy(b, h, w6, labels, 4, { chunkTokens: 0, loss }))).toThrowError(InvalidArgumentError);
    expect(() => run(gpu, (b) => crossEntropy(b, h, w6, labels, -1, { chunkTokens: 2, loss }))).toThrowError(InvalidArgumentError);
    for (const t of [h, w, w6, labels, labelsF, loss, dW]) t.release();
  });
});

describe('cross-entropy with tensors split across buffers', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    // 2 KiB per binding: W and dW (211, 24) are split into 11 buffers, h and dh (37, 24) into 2,
    // and a (9, 211) logits chunk into 5.
    gpu = await testGpu({ maxBindingBytes: 2048 });
  });

  it('splits W, h and the logits chunk', () => {
    const w = createTensor(gpu, [211, 24]);
    const h = createTensor(gpu, [37, 24]);
    const logits = createTensor(gpu, [9, 211]);
    expect(w.chunks.length).toBe(11);
    expect(h.chunks.length).toBe(2);
    expect(logits.chunks.length).toBe(5);
    for (const t of [w, h, logits]) t.release();
  });

  it('loss, dh and dW', async () => {
    expectAll(await check(gpu, { N: 37, C: 24, V: 211, chunkTokens: 9, grads: 'both', seed: 8 }), TOL);
  });
});
