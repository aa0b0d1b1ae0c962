// The distill kernel family against the float64 reference (reference/distill.ts) on fresh random
// inputs of odd sizes: loss, dhS (poisoned with NaN first) and dWS (accumulated onto random values),
// chunks that do not divide the tokens, teacher and student of different hidden sizes, tokens not
// counted, several temperatures and alphas, and tensors split across buffers.

import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import { IGNORE_INDEX, countLabels } from '../reference/cross_entropy.ts';
import * as ref from '../reference/distill.ts';
import { distill } from './distill.ts';
import { fill } from './elementwise.ts';

const TOL = 1e-5;

interface Case {
  N: number;
  Cs: number;
  Ct: number;
  V: number;
  chunkTokens: number;
  T: number;
  alpha: number;
  grads: boolean;
  seed: number;
}

async function check(gpu: Gpu, o: Case): Promise<Record<string, number>> {
  const rng = new Rng(o.seed);
  const hsv = rng.fill(o.N * o.Cs, (r) => r.normal()); // (N, Cs)
  const wsv = rng.fill(o.V * o.Cs, (r) => 0.5 * r.normal()); // (V, Cs)
  const htv = rng.fill(o.N * o.Ct, (r) => r.normal()); // (N, Ct)
  const wtv = rng.fill(o.V * o.Ct, (r) => 0.5 * r.normal()); // (V, Ct)
  const labelsv = Int32Array.from({ length: o.N }, (_, i) => (i % 4 === 1 ? IGNORE_INDEX : rng.int(o.V)));
  const count = countLabels(labelsv);
  const hS = tensorFromArray(gpu, hsv, [o.N, o.Cs]);
  const wS = tensorFromArray(gpu, wsv, [o.V, o.Cs]);
  const hT = tensorFromArray(gpu, htv, [o.N, o.Ct]);
  const wT = tensorFromArray(gpu, wtv, [o.V, o.Ct]);
  const labels = tensorFromArray(gpu, labelsv, [o.N], 'i32');
  const loss = createTensor(gpu, [1]);
  const dh = o.grads ? createTensor(gpu, [o.N, o.Cs]) : undefined;
  const prior = o.grads ? rng.fill(o.V * o.Cs, (r) => 1e-3 * r.normal()) : null;
  const dW = prior ? tensorFromArray(gpu, prior, [o.V, o.Cs]) : undefined;
  run(gpu, (b) => {
    fill(b, loss, NaN);
    if (dh) fill(b, dh, NaN);
  });
  run(gpu, (b) => distill(b, hS, wS, hT, wT, labels, count, { chunkTokens: o.chunkTokens, temperature: o.T, alpha: o.alpha, loss, dh, dW }));
  const want = ref.distill(hsv, wsv, htv, wtv, labelsv, { N: o.N, Cs: o.Cs, Ct: o.Ct, V: o.V }, count, o.T, o.alpha);
  const errs: Record<string, number> = { loss: relL2(await readTensor(loss), [want.loss]) };
  if (dh) errs.dh = relL2(await readTensor(dh), want.dh);
  if (dW && prior) errs.dW = relL2(await readTensor(dW), Float64Array.from(want.dW, (g, i) => g + prior[i]));
  for (const t of [hS, wS, hT, wT, labels, loss, dh, dW]) t?.release();
  return errs;
}

function expectAll(errs: Record<string, number>) {
  for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThan(TOL);
}

describe('distill kernel vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it('loss, dhS and dWS in chunks that do not divide N, different hidden sizes, V = 517', async () => {
    expectAll(await check(gpu, { N: 23, Cs: 13, Ct: 21, V: 517, chunkTokens: 7, T: 2, alpha: 0.5, grads: true, seed: 1 }));
  });

  it('pure KL at a low temperature in one chunk, and pure cross-entropy', async () => {
    expectAll(await check(gpu, { N: 11, Cs: 9, Ct: 9, V: 301, chunkTokens: 64, T: 0.7, alpha: 1, grads: true, seed: 2 }));
    expectAll(await check(gpu, { N: 11, Cs: 9, Ct: 5, V: 301, chunkTokens: 3, T: 4, alpha: 0, grads: true, seed: 3 }));
  });

  it('forward only', async () => {
    expectAll(await check(gpu, { N: 9, Cs: 7, Ct: 15, V: 1003, chunkTokens: 2, T: 3, alpha: 0.9, grads: false, seed: 4 }));
  });

  it('rejects mismatched teacher and student, and bad settings', () => {
    const hS = createTensor(gpu, [4, 6]);
    const wS = createTensor(gpu, [10, 6]);
    const hT = createTensor(gpu, [4, 8]);
    const wT = createTensor(gpu, [11, 8]);
    const wT10 = createTensor(gpu, [10, 8]);
    const labels = createTensor(gpu, [4], 'i32');
    const loss = createTensor(gpu, [1]);
    const o = { chunkTokens: 2, temperature: 2, alpha: 0.5, loss };
    expect(() => run(gpu, (b) => distill(b, hS, wS, hT, wT, labels, 4, o))).toThrowError(ShapeError);
    expect(() => run(gpu, (b) => distill(b, hS, wS, hT, wT10, labels, 4, { ...o, temperature: 0 }))).toThrowError(InvalidArgumentError);
    expect(() => run(gpu, (b) => distill(b, hS, wS, hT, wT10, labels, 4, { ...o, alpha: 1.5 }))).toThrowError(/alpha/);
    for (const t of [hS, wS, hT, wT, wT10, labels, loss]) t.release();
  });
});

describe('distill with tensors split across buffers', () => {
  it('loss, dhS and dWS', async () => {
    // 2 KiB per binding: the heads (211, 24) and (211, 16) and the (9, 211) logits chunks are split.
    const gpu = await testGpu({ maxBindingBytes: 2048 });
    expectAll(await check(gpu, { N: 37, Cs: 24, Ct: 16, V: 211, chunkTokens: 9, T: 2, alpha: 0.7, grads: true, seed: 8 }));
  });
});
