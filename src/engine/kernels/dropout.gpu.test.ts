import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/dropout.ts';
import { dropout, dropoutBackward } from './dropout.ts';
import { fill } from './elementwise.ts';

/**
 * Runs dropout forward on x and backward on dy (never zero, so a zero output means dropped); returns
 * how many elements differ from the reference mask and the relL2 of the values.
 */
async function check(gpu: Gpu, shape: number[], p: number, seed: number) {
  const rng = new Rng(seed ^ 0x5bd1e995);
  const n = shape.reduce((a, b) => a * b, 1);
  const nonzero = (r: Rng) => (r.next() < 0.5 ? -1 : 1) * r.uniform(0.1, 3);
  const xv = rng.fill(n, nonzero);
  const dyv = rng.fill(n, nonzero);
  const x = tensorFromArray(gpu, xv, shape);
  const dy = tensorFromArray(gpu, dyv, shape);
  const y = createTensor(gpu, shape);
  const dx = createTensor(gpu, shape);
  run(gpu, (b) => {
    fill(b, y, NaN);
    fill(b, dx, NaN);
  });
  run(gpu, (b) => {
    dropout(b, x, y, p, seed);
    dropoutBackward(b, dy, dx, p, seed);
  });
  const yg = (await readTensor(y)) as Float32Array;
  const dxg = (await readTensor(dx)) as Float32Array;
  const mask = ref.dropoutMask(seed, n, p);
  const scale = Math.fround(1 / (1 - p));
  let maskDiff = 0;
  let bitDiff = 0;
  for (let i = 0; i < n; i++) {
    if ((yg[i] !== 0 ? 1 : 0) !== mask[i] || (dxg[i] !== 0 ? 1 : 0) !== mask[i]) maskDiff++;
    const wantY = mask[i] ? Math.fround(xv[i] * scale) : 0;
    const wantDx = mask[i] ? Math.fround(dyv[i] * scale) : 0;
    if (yg[i] !== wantY || dxg[i] !== wantDx) bitDiff++;
  }
  const res = {
    maskDiff,
    bitDiff,
    kept: mask.reduce((s, v) => s + v, 0) / n,
    keptGpu: yg.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0) / n,
    errY: relL2(yg, ref.dropout(xv, seed, p)),
    errDx: relL2(dxg, ref.dropoutBackward(dyv, seed, p)),
  };
  for (const t of [x, dy, y, dx]) t.release();
  return res;
}

describe('dropout kernel vs the TypeScript hash', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  for (const [shape, p, seed] of [
    [[37, 1001], 0.1, 1],
    [[20011], 0.5, 0xdeadbeef],
    [[3, 7, 333], 0.9, 77],
  ] as const) {
    it(`shape [${shape.join(', ')}], p = ${p}: the same mask bit for bit, forward and backward`, async () => {
      const r = await check(gpu, [...shape], p, seed);
      expect(r.maskDiff).toBe(0);
      expect(r.bitDiff).toBe(0);
      expect(r.keptGpu).toBe(r.kept);
      const n = shape.reduce((a, b) => a * b, 1);
      expect(Math.abs(r.kept - (1 - p))).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
      expect(r.errY).toBeLessThan(1e-6);
      expect(r.errDx).toBeLessThan(1e-6);
    });
  }

  it('p = 0 passes x through; a new seed gives a new mask', async () => {
    expect((await check(gpu, [513], 0, 5)).keptGpu).toBe(1);
    const x = tensorFromArray(gpu, new Float32Array(4096).fill(1.5), [4096]);
    const a = createTensor(gpu, [4096]);
    const b = createTensor(gpu, [4096]);
    run(gpu, (bt) => {
      dropout(bt, x, a, 0.5, 10);
      dropout(bt, x, b, 0.5, 11);
    });
    const [ga, gb] = [(await readTensor(a)) as Float32Array, (await readTensor(b)) as Float32Array];
    const same = ga.reduce((s, v, i) => s + (v === gb[i] ? 1 : 0), 0);
    expect(same).toBeGreaterThan(1800);
    expect(same).toBeLessThan(2300);
    for (const t of [x, a, b]) t.release();
  });

  it('rejects p outside [0, 1) and a non-u32 seed', () => {
    const x = createTensor(gpu, [8]);
    const y = createTensor(gpu, [8]);
    expect(() => run(gpu, (b) => dropout(b, x, y, 1, 0))).toThrowError(/probability must be in \[0, 1\)/);
    expect(() => run(gpu, (b) => dropout(b, x, y, 0.1, -1))).toThrowError(/seed must be an integer/);
    x.release();
    y.release();
  });
});

describe('dropout over tensors split across buffers', () => {
  it('hashes each element by its global index', async () => {
    // 512 bytes per binding: a (1000) f32 tensor is split into 8 buffers of 128 elements.
    const gpu = await testGpu({ maxBindingBytes: 512 });
    const r = await check(gpu, [1000], 0.4, 1234);
    expect(r.maskDiff).toBe(0);
    expect(r.bitDiff).toBe(0);
  });
});
