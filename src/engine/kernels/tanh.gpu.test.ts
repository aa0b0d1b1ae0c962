import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/tanh.ts';
import { fill } from './elementwise.ts';
import { tanh, tanhBackward } from './tanh.ts';

const TOL = 1e-6;

/** Forward and backward on fresh random inputs of an odd shape; x spread wide so tanh saturates at both ends and small near 0. */
async function check(gpu: Gpu, shape: number[], seed: number) {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const xv = rng.fill(n, (r) => (r.uniform(0, 1) < 0.3 ? 0.2 : 3) * r.normal());
  const dv = rng.fill(n, (r) => r.normal());
  const x = tensorFromArray(gpu, xv, shape);
  const dout = tensorFromArray(gpu, dv, shape);
  const out = createTensor(gpu, shape);
  const dx = createTensor(gpu, shape);
  run(gpu, (b) => {
    for (const t of [out, dx]) fill(b, t, NaN);
  });
  run(gpu, (b) => {
    tanh(b, x, out);
    tanhBackward(b, x, dout, dx);
  });
  const errs = {
    out: relL2(await readTensor(out), ref.tanh(xv)),
    dx: relL2(await readTensor(dx), ref.tanhBackward(xv, dv)),
  };
  for (const t of [x, dout, out, dx]) t.release();
  return errs;
}

function expectAll(errs: Record<string, number>) {
  for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThan(TOL);
}

describe('tanh kernels vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  for (const shape of [[1, 1], [17, 301], [3, 5, 131]]) {
    it(`shape [${shape.join(', ')}]`, async () => {
      expectAll(await check(gpu, shape, shape[1]));
    });
  }

  it('is accurate elementwise near 0, saturates to ±1 without NaN, and its gradient vanishes there', async () => {
    const xs = [-200, -12, -0.29, -1e-3, 0, 1e-6, 0.05, 0.31, 9, 200];
    const x = tensorFromArray(gpu, xs, [xs.length]);
    const ones = tensorFromArray(gpu, xs.map(() => 1), [xs.length]);
    const out = createTensor(gpu, [xs.length]);
    const dx = createTensor(gpu, [xs.length]);
    run(gpu, (b) => {
      tanh(b, x, out);
      tanhBackward(b, x, ones, dx);
    });
    const y = await readTensor(out);
    const d = await readTensor(dx);
    const want = ref.tanh(xs);
    const dwant = ref.tanhBackward(xs, xs.map(() => 1));
    xs.forEach((v, i) => {
      expect(Math.abs(y[i] - want[i]), `tanh(${v})`).toBeLessThanOrEqual(1e-6 * Math.abs(want[i]));
      expect(Math.abs(d[i] - dwant[i]), `tanh'(${v})`).toBeLessThanOrEqual(2e-6 * Math.abs(dwant[i]) + 1e-30);
    });
    expect([y[0], y[9]]).toEqual([-1, 1]);
    for (const t of [x, ones, out, dx]) t.release();
  });

  it('rejects mismatched shapes and aliased outputs with a ShapeError', () => {
    const a = createTensor(gpu, [4, 6]);
    const b = createTensor(gpu, [6, 4]);
    expect(() => run(gpu, (bt) => tanh(bt, a, b))).toThrowError(/shapes differ/);
    expect(() => run(gpu, (bt) => tanh(bt, a, a))).toThrowError(/also passed as another operand/);
    a.release();
    b.release();
  });
});

describe('tanh over tensors split across buffers', () => {
  it('pairs chunks one to one', async () => {
    const gpu = await testGpu({ maxBindingBytes: 512 });
    expectAll(await check(gpu, [41, 33], 9));
  });
});
