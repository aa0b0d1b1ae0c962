import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/rmsnorm.ts';
import { fill } from './elementwise.ts';
import { rmsnorm, rmsnormBackward } from './rmsnorm.ts';

const TOL = 1e-6;

/** Runs forward and backward on x of `shape` with a weight of C values; returns relL2 of every output. */
async function check(gpu: Gpu, shape: number[], C: number, seed: number, opts: { frozen?: boolean; eps?: number } = {}) {
  const rng = new Rng(seed);
  const eps = opts.eps ?? 1e-5;
  const n = shape.reduce((a, b) => a * b, 1);
  const rows = n / C;
  const xv = rng.fill(n, (r) => r.normal());
  const wv = rng.fill(C, (r) => r.uniform(0.5, 1.5));
  const dyv = rng.fill(n, (r) => r.normal());
  const prior = rng.fill(C, (r) => r.normal());
  const x = tensorFromArray(gpu, xv, shape); // (rows, C) view
  const w = tensorFromArray(gpu, wv, [C]); // (C)
  const dy = tensorFromArray(gpu, dyv, shape); // (rows, C) view
  const y = createTensor(gpu, shape);
  const rstd = createTensor(gpu, [rows]);
  const dx = createTensor(gpu, shape);
  const dw = opts.frozen ? null : tensorFromArray(gpu, prior, [C]);
  run(gpu, (b) => {
    fill(b, y, NaN);
    fill(b, rstd, NaN);
    fill(b, dx, NaN);
  });
  run(gpu, (b) => rmsnorm(b, x, w, y, rstd, eps));
  run(gpu, (b) => rmsnormBackward(b, x, w, rstd, dy, dx, dw));
  const want = ref.rmsnorm(xv, wv, rows, C, eps);
  const grads = ref.rmsnormBackward(xv, wv, dyv, rows, C, eps);
  const errs: Record<string, number> = {
    y: relL2(await readTensor(y), want.y),
    rstd: relL2(await readTensor(rstd), want.rstd),
    dx: relL2(await readTensor(dx), grads.dx),
  };
  if (dw) errs.dw = relL2(await readTensor(dw), grads.dw.map((g, i) => g + prior[i]));
  for (const t of [x, w, dy, y, rstd, dx, ...(dw ? [dw] : [])]) t.release();
  return errs;
}

function expectAll(errs: Record<string, number>) {
  for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThan(TOL);
}

describe('rmsnorm kernels vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it('rows of 77 (fewer than one workgroup of threads)', async () => {
    expectAll(await check(gpu, [37, 77], 77, 1));
  });

  it('rows of 300 (several elements per thread) with a large eps', async () => {
    expectAll(await check(gpu, [5, 300], 300, 2, { eps: 0.5 }));
  });

  it('Qwen3 per-head view: (T, H·D) normalised per head of D', async () => {
    expectAll(await check(gpu, [9, 3 * 50], 50, 3));
  });

  it('frozen weight: no dweight, dx still right', async () => {
    const errs = await check(gpu, [11, 19], 19, 4, { frozen: true });
    expect(Object.keys(errs)).not.toContain('dw');
    expectAll(errs);
  });

  it('dweight accumulation is deterministic', async () => {
    const rng = new Rng(5);
    const [rows, C] = [203, 45];
    const x = tensorFromArray(gpu, rng.fill(rows * C, (r) => r.normal()), [rows, C]);
    const w = tensorFromArray(gpu, rng.fill(C, (r) => r.normal()), [C]);
    const dy = tensorFromArray(gpu, rng.fill(rows * C, (r) => r.normal()), [rows, C]);
    const y = createTensor(gpu, [rows, C]);
    const rstd = createTensor(gpu, [rows]);
    const dx = createTensor(gpu, [rows, C]);
    const prior = rng.fill(C, (r) => r.normal());
    const results: Float32Array[] = [];
    for (let i = 0; i < 2; i++) {
      const dw = tensorFromArray(gpu, prior, [C]);
      run(gpu, (b) => {
        rmsnorm(b, x, w, y, rstd, 1e-6);
        rmsnormBackward(b, x, w, rstd, dy, dx, dw);
      });
      results.push((await readTensor(dw)) as Float32Array);
      dw.release();
    }
    expect(results[1]).toEqual(results[0]);
    for (const t of [x, w, dy, y, rstd, dx]) t.release();
  });

  it('rejects mismatched shapes with a ShapeError', () => {
    const x = createTensor(gpu, [4, 10]);
    const w = createTensor(gpu, [3]);
    const y = createTensor(gpu, [4, 10]);
    const rstd = createTensor(gpu, [4]);
    expect(() => run(gpu, (b) => rmsnorm(b, x, w, y, rstd, 1e-5))).toThrowError(/last dimension of x \[4, 10\] is not a multiple/);
    const w10 = createTensor(gpu, [10]);
    const y2 = createTensor(gpu, [4, 5, 2]);
    expect(() => run(gpu, (b) => rmsnorm(b, x, w10, y2, rstd, 1e-5))).toThrowError(/y is \[4, 5, 2\] but x is \[4, 10\]/);
    for (const t of [x, w, y, rstd, w10, y2]) t.release();
  });
});

describe('rmsnorm over tensors split across buffers', () => {
  it('cuts rows where x, dy, dx or rstd change buffer', async () => {
    // 256 bytes per binding: x (70, 20) f32 holds 3 rows per buffer, rstd (70) splits at row 64.
    const gpu = await testGpu({ maxBindingBytes: 256 });
    const probe = createTensor(gpu, [70]);
    expect(probe.chunks.length).toBe(2);
    probe.release();
    expectAll(await check(gpu, [70, 20], 20, 6));
  });
});
