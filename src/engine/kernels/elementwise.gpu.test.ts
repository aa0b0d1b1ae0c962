import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { type Batch, run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/elementwise.ts';
import { accumulate, addRows, affine, axpby, fill, mul } from './elementwise.ts';

async function cases(gpu: Gpu, shape: number[], seed: number) {
  const rng = new Rng(seed);
  const n = shape.reduce((x, y) => x * y, 1);
  const av = rng.fill(n, (r) => r.normal());
  const bv = rng.fill(n, (r) => r.normal());
  const a = tensorFromArray(gpu, av, shape);
  const b = tensorFromArray(gpu, bv, shape);
  const out = createTensor(gpu, shape);
  const results: Record<string, number> = {};
  const poisonThen = async (name: string, op: (bt: Batch) => void, want: Float64Array) => {
    run(gpu, (bt) => fill(bt, out, NaN));
    run(gpu, op);
    results[name] = relL2(await readTensor(out), want);
  };
  await poisonThen('axpby', (bt) => axpby(bt, a, b, out, 0.75, -1.5), ref.axpby(av, bv, 0.75, -1.5));
  await poisonThen('mul', (bt) => mul(bt, a, b, out, 2.5), ref.mul(av, bv, 2.5));
  {
    // In place: out starts as a, then out = 0.5·out + 3·b.
    run(gpu, (bt) => affine(bt, a, out, 1, 0));
    run(gpu, (bt) => accumulate(bt, out, b, 3, 0.5));
    results.accumulate = relL2(await readTensor(out), ref.axpby(av, bv, 0.5, 3));
  }
  await poisonThen('affine', (bt) => affine(bt, a, out, -0.3, 0.9), ref.affine(av, -0.3, 0.9));
  a.release();
  b.release();
  out.release();
  return results;
}

describe('elementwise kernels vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  for (const shape of [[1], [255], [257], [13, 77], [3, 5, 129]]) {
    it(`shape [${shape.join(', ')}]`, async () => {
      const r = await cases(gpu, shape, shape.length * 100 + shape[0]);
      for (const [name, err] of Object.entries(r)) expect(err, name).toBeLessThan(1e-6);
    });
  }

  it('fill covers more workgroups than one grid dimension allows (folded 2-D grid)', async () => {
    const n = gpu.summary.limits.maxComputeWorkgroupsPerDimension * 256 + 1000;
    const t = createTensor(gpu, [n]);
    run(gpu, (bt) => fill(bt, t, 1.25));
    const got = await readTensor(t);
    expect(got[0]).toBe(1.25);
    expect(got[n - 1]).toBe(1.25);
    expect(got.every((v) => v === 1.25)).toBe(true);
    t.release();
  });
});

describe('elementwise over split tensors', () => {
  it('pairs chunks one to one', async () => {
    const gpu = await testGpu({ maxBindingBytes: 512 });
    const r = await cases(gpu, [41, 33], 9);
    for (const [name, err] of Object.entries(r)) expect(err, name).toBeLessThan(1e-6);
  });
});

describe('addRows', () => {
  it('adds a vector to every row, split tensors included', async () => {
    for (const gpu of [await testGpu(), await testGpu({ maxBindingBytes: 512 })]) {
      const rng = new Rng(21);
      const [N, M] = [37, 13];
      const xv = rng.fill(N * M, (r) => r.normal());
      const bv = rng.fill(M, (r) => r.normal());
      const x = tensorFromArray(gpu, xv, [N, M]);
      const bias = tensorFromArray(gpu, bv, [M]);
      run(gpu, (bt) => addRows(bt, x, bias, 0.5));
      const want = new Float64Array(N * M).map((_, i) => xv[i] + 0.5 * bv[i % M]);
      expect(relL2(await readTensor(x), want)).toBeLessThan(1e-6);
      x.release();
      bias.release();
    }
  });
});
