import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/matmul.ts';
import { fill } from './elementwise.ts';
import { type MatmulVariant, matmul, matmulOutShape, matmulVariant, splitKSlices } from './matmul.ts';

const TOL = 1e-6;

async function check(
  gpu: Gpu,
  given: { M: number; N: number; K: number; transA?: boolean; transB?: boolean; batch?: number; shareB?: boolean; alpha?: number; accumulate?: boolean; variant?: Partial<MatmulVariant>; seed: number },
) {
  const o = { ...given, transA: given.transA ?? false, transB: given.transB ?? true };
  const rng = new Rng(o.seed);
  const batch = o.batch ?? 1;
  const batched = o.batch !== undefined;
  const aShape = o.transA ? [o.K, o.M] : [o.M, o.K];
  const bShape = o.transB ? [o.N, o.K] : [o.K, o.N];
  const av = rng.fill(batch * o.M * o.K, (r) => r.normal());
  const bCount = batched && !o.shareB ? batch : 1;
  const bv = rng.fill(bCount * o.K * o.N, (r) => r.normal());
  const a = tensorFromArray(gpu, av, batched ? [batch, ...aShape] : aShape);
  const b = tensorFromArray(gpu, bv, batched && !o.shareB ? [batch, ...bShape] : bShape);
  const outShape = matmulOutShape(a.shape, b.shape, o);
  let c: Tensor;
  let prior: Float32Array | null = null;
  if (o.accumulate) {
    prior = rng.fill(batch * o.M * o.N, (r) => r.normal());
    c = tensorFromArray(gpu, prior, outShape);
  } else {
    c = createTensor(gpu, outShape);
    run(gpu, (bt) => fill(bt, c, NaN));
  }
  run(gpu, (bt) => matmul(bt, a, b, c, o));
  const got = await readTensor(c);
  const want = ref.matmul(av, bv, { ...o, batch, batchB: bCount });
  if (prior) for (let i = 0; i < want.length; i++) want[i] += prior[i];
  a.release();
  b.release();
  c.release();
  return relL2(got, want);
}

describe('matmul kernel vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  const shapes = [
    { M: 1, N: 1, K: 1 },
    { M: 67, N: 45, K: 93 },
    { M: 130, N: 7, K: 65 },
    { M: 5, N: 129, K: 200 },
    { M: 64, N: 64, K: 16 },
  ];
  for (const s of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`M=${s.M} N=${s.N} K=${s.K} transA=${transA} transB=${transB}`, async () => {
          expect(await check(gpu, { ...s, transA, transB, seed: s.M * 7 + s.N })).toBeLessThan(TOL);
        });
      }
    }
  }

  it('scales by alpha and accumulates into C', async () => {
    expect(await check(gpu, { M: 33, N: 71, K: 19, alpha: -0.37, accumulate: true, seed: 3 })).toBeLessThan(TOL);
  });

  it('batched with per-batch B and with a shared B', async () => {
    expect(await check(gpu, { M: 17, N: 23, K: 41, batch: 3, seed: 4 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 17, N: 23, K: 41, batch: 3, shareB: true, transB: false, seed: 5 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 9, N: 70, K: 12, batch: 2, transA: true, seed: 6 })).toBeLessThan(TOL);
  });

  it('splits a long K across workgroups when the output has few tiles (split-K)', async () => {
    expect(splitKSlices(5, 70, 3001, 16)).toBeGreaterThan(1);
    for (const [transA, transB] of [[false, true], [false, false], [true, false], [true, true]]) {
      expect(await check(gpu, { M: 5, N: 70, K: 3001, transA, transB, seed: 13 })).toBeLessThan(TOL);
    }
    expect(await check(gpu, { M: 19, N: 33, K: 2100, alpha: 0.25, accumulate: true, seed: 14 })).toBeLessThan(TOL);
  });

  it('picks the tile by the number of rows, a short K step for a short K, and split-K for few tiles over a long K', () => {
    const pick = (M: number, N: number, K: number, batch = 1) => {
      const v = matmulVariant(M, N, K, batch);
      return [v.tm * v.wgY, v.bk, v.slices];
    };
    expect(pick(1, 576, 576)).toEqual([4, 32, 1]);
    expect(pick(7, 576, 576)).toEqual([8, 32, 1]);
    expect(pick(16, 576, 576)).toEqual([16, 32, 1]);
    expect(pick(32, 576, 576)).toEqual([32, 32, 1]);
    expect(pick(512, 576, 576)).toEqual([64, 32, 1]);
    expect(pick(576, 1536, 16)).toEqual([64, 16, 1]);
    expect(pick(16, 256, 2048)).toEqual([16, 32, 4]);
    expect(pick(16, 256, 2048, 3)).toEqual([16, 32, 1]);
    // LoRA's bottleneck (N = rank) gets 16-column tiles; wider products keep 64.
    expect(matmulVariant(512, 8, 576).wgX).toBe(4);
    expect(matmulVariant(576, 16, 512).wgX).toBe(4);
    expect(matmulVariant(512, 17, 576).wgX).toBe(16);
    expect(matmulVariant(512, 576, 8).wgX).toBe(16);
    // Split-K counts the narrow tiles: 2 row tiles of 16 columns over K = 4096.
    expect(matmulVariant(128, 8, 4096).slices).toBe(8);
  });

  // Every tile shape the selection uses, with both K steps, forced onto one small odd shape (edges
  // in M, N and K, several K steps); the transposes rotate so each appears with several variants.
  const variants: Partial<MatmulVariant>[] = [];
  for (const [tm, wgY] of [[1, 4], [2, 4], [4, 4], [4, 8], [4, 16]] as const) for (const bk of [16, 32] as const) variants.push({ tm, wgY, bk, slices: 1 });
  for (const [tm, wgY] of [[1, 4], [2, 4], [4, 4], [4, 8], [4, 16]] as const) variants.push({ tm, wgY, bk: 32, wgX: 4, slices: 1 });
  variants.forEach((variant, i) => {
    const transA = (i & 1) === 1;
    const transB = (i & 2) === 0;
    it(`forced variant ${JSON.stringify(variant)} transA=${transA} transB=${transB}`, async () => {
      expect(await check(gpu, { M: 37, N: 70, K: 45, transA, transB, variant, seed: 20 + i })).toBeLessThan(TOL);
      // Narrow tiles also on a narrow product (one partial 16-column tile), as LoRA's rank-r bottleneck runs them.
      if (variant.wgX === 4) expect(await check(gpu, { M: 37, N: 13, K: 45, transA, transB: !transB, variant, seed: 60 + i })).toBeLessThan(TOL);
    });
  });

  it('forced variants batched and with a forced split-K', async () => {
    expect(await check(gpu, { M: 11, N: 66, K: 35, batch: 2, transB: false, variant: { tm: 2, wgY: 4, bk: 16 }, seed: 40 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 21, N: 67, K: 37, batch: 2, transA: true, variant: { tm: 4, wgY: 8, bk: 32 }, seed: 41 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 6, N: 65, K: 101, transB: false, variant: { tm: 1, wgY: 4, bk: 16, slices: 3 }, seed: 42 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 13, N: 9, K: 37, batch: 3, transA: true, variant: { tm: 4, wgY: 4, wgX: 4, bk: 16 }, seed: 43 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 33, N: 8, K: 1500, transB: false, variant: { tm: 4, wgY: 8, wgX: 4, bk: 32, slices: 4 }, seed: 44 })).toBeLessThan(TOL);
  });

  it('rejects mismatched shapes with a ShapeError', async () => {
    const a = createTensor(gpu, [3, 4]);
    const b = createTensor(gpu, [5, 6]);
    const c = createTensor(gpu, [3, 5]);
    expect(() => run(gpu, (bt) => matmul(bt, a, b, c))).toThrowError(/inner dimensions 4 and 6 differ/);
    for (const t of [a, b, c]) t.release();
  });
});

describe('matmul over tensors split across buffers', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    // 2 KiB per binding: a [67, 45] f32 tensor (12 KiB) is split into 7 buffers.
    gpu = await testGpu({ maxBindingBytes: 2048 });
  });

  it('splits the tensors it was asked to', () => {
    const t = createTensor(gpu, [67, 45]);
    expect(t.chunks.length).toBeGreaterThan(5);
    expect(t.chunks.reduce((n, c) => n + c.rows, 0)).toBe(67);
    t.release();
  });

  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      it(`transA=${transA} transB=${transB}`, async () => {
        expect(await check(gpu, { M: 67, N: 45, K: 93, transA, transB, seed: 11 })).toBeLessThan(TOL);
        expect(await check(gpu, { M: 70, N: 100, K: 9, transA, transB, alpha: 0.5, accumulate: true, seed: 12 })).toBeLessThan(TOL);
      });
    }
  }
});
