import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/swiglu.ts';
import { fill } from './elementwise.ts';
import { swiglu, swigluBackward } from './swiglu.ts';

const TOL = 1e-6;

/** Forward and backward on fresh random (N, F) inputs; gate spread wide so σ saturates at both ends. */
async function check(gpu: Gpu, shape: number[], seed: number) {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const gv = rng.fill(n, (r) => 4 * r.normal());
  const uv = rng.fill(n, (r) => r.normal());
  const dv = rng.fill(n, (r) => r.normal());
  const gate = tensorFromArray(gpu, gv, shape); // (N, F)
  const up = tensorFromArray(gpu, uv, shape); // (N, F)
  const dout = tensorFromArray(gpu, dv, shape); // (N, F)
  const out = createTensor(gpu, shape);
  const dgate = createTensor(gpu, shape);
  const dup = createTensor(gpu, shape);
  run(gpu, (b) => {
    for (const t of [out, dgate, dup]) fill(b, t, NaN);
  });
  run(gpu, (b) => {
    swiglu(b, gate, up, out);
    swigluBackward(b, gate, up, dout, dgate, dup);
  });
  const grads = ref.swigluBackward(gv, uv, dv);
  const errs = {
    out: relL2(await readTensor(out), ref.swiglu(gv, uv)),
    dgate: relL2(await readTensor(dgate), grads.dgate),
    dup: relL2(await readTensor(dup), grads.dup),
  };
  for (const t of [gate, up, dout, out, dgate, dup]) t.release();
  return errs;
}

function expectAll(errs: Record<string, number>) {
  for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThan(TOL);
}

describe('swiglu kernels vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  for (const shape of [[1, 1], [17, 301], [3, 5, 131]]) {
    it(`shape [${shape.join(', ')}]`, async () => {
      expectAll(await check(gpu, shape, shape[1]));
    });
  }

  it('saturates cleanly for large |gate| (no NaN from e^(−g) overflow)', async () => {
    const gate = tensorFromArray(gpu, [-200, -90, 90, 200], [4]);
    const up = tensorFromArray(gpu, [1.5, 1.5, 1.5, 1.5], [4]);
    const out = createTensor(gpu, [4]);
    run(gpu, (b) => swiglu(b, gate, up, out));
    const got = await readTensor(out);
    expect(Array.from(got, (v) => Math.abs(v))).toEqual([0, 0, 135, 300]);
    for (const t of [gate, up, out]) t.release();
  });

  it('rejects mismatched shapes and aliased outputs with a ShapeError', () => {
    const a = createTensor(gpu, [4, 6]);
    const b = createTensor(gpu, [6, 4]);
    expect(() => run(gpu, (bt) => swiglu(bt, a, b, a))).toThrowError(/shapes differ/);
    expect(() => run(gpu, (bt) => swiglu(bt, a, a, a))).toThrowError(/also passed as another operand/);
    a.release();
    b.release();
  });
});

describe('swiglu over tensors split across buffers', () => {
  it('pairs chunks one to one', async () => {
    const gpu = await testGpu({ maxBindingBytes: 512 });
    expectAll(await check(gpu, [41, 33], 9));
  });
});
