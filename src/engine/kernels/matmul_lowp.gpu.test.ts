import { beforeAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../errors.ts';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/matmul_lowp.ts';
import { fill } from './elementwise.ts';
import { matmulLowp, matmulLowpBackward } from './matmul_lowp.ts';

const TOL = 1e-6;

interface Case {
  M: number;
  N: number;
  K: number;
  format: ref.LowpFormat;
  backward?: boolean;
  /** Leading dimensions of the activations (their product must be M); default [M]. */
  lead?: number[];
  alpha?: number;
  accumulate?: boolean;
  seed: number;
}

/** Runs the forward (y = x·Wᵀ) or backward (dx = dy·W) product and returns its relL2 error. */
async function check(gpu: Gpu, o: Case): Promise<number> {
  const rng = new Rng(o.seed);
  const lead = o.lead ?? [o.M];
  const [inCols, outCols] = o.backward ? [o.N, o.K] : [o.K, o.N];
  const av = rng.fill(o.M * inCols, (r) => r.normal()); // x (M, K) or dy (M, N)
  const bits = ref.encode(rng.fill(o.N * o.K, (r) => 0.5 * r.normal()), o.format); // W (N, K)
  const a = tensorFromArray(gpu, av, [...lead, inCols]);
  const w = tensorFromArray(gpu, bits, [o.N, o.K], o.format);
  let c: Tensor;
  let prior: Float32Array | null = null;
  if (o.accumulate) {
    prior = rng.fill(o.M * outCols, (r) => r.normal());
    c = tensorFromArray(gpu, prior, [...lead, outCols]);
  } else {
    c = createTensor(gpu, [...lead, outCols]);
    run(gpu, (b) => fill(b, c, NaN));
  }
  const opts = { alpha: o.alpha, accumulate: o.accumulate };
  run(gpu, (b) => (o.backward ? matmulLowpBackward(b, a, w, c, opts) : matmulLowp(b, a, w, c, opts)));
  const want = o.backward ? ref.matmulLowpBackward(av, bits, o.format, o.M, o.N, o.K, o.alpha) : ref.matmulLowp(av, bits, o.format, o.M, o.N, o.K, o.alpha);
  if (prior) for (let i = 0; i < want.length; i++) want[i] += prior[i];
  const got = await readTensor(c);
  for (const t of [a, w, c]) t.release();
  return relL2(got, want);
}

describe('low-precision weight matmul vs float64 reference on the decoded weights', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  const shapes = [
    { M: 1, N: 1, K: 1 },
    { M: 37, N: 45, K: 93 },
    { M: 70, N: 130, K: 19 },
  ];
  for (const format of ['bf16', 'f16'] as const) {
    for (const s of shapes) {
      it(`${format} M=${s.M} N=${s.N} K=${s.K}: y = x·Wᵀ and dx = dy·W`, async () => {
        expect(await check(gpu, { ...s, format, seed: s.M + s.K })).toBeLessThan(TOL);
        expect(await check(gpu, { ...s, format, backward: true, seed: s.N + 3 })).toBeLessThan(TOL);
      });
    }
  }

  it('f16 works through unpack2x16float, whether or not the device has shader-f16', async () => {
    // The f16 path never enables the feature, so it runs on SwiftShader (which lacks it) too.
    expect(typeof gpu.f16).toBe('boolean');
    expect(await check(gpu, { M: 5, N: 7, K: 3, format: 'f16', seed: 9 })).toBeLessThan(TOL);
  });

  it('3-D activations, alpha and accumulation', async () => {
    for (const format of ['bf16', 'f16'] as const) {
      expect(await check(gpu, { M: 10, N: 33, K: 21, lead: [2, 5], format, alpha: -0.7, accumulate: true, seed: 4 })).toBeLessThan(TOL);
      expect(await check(gpu, { M: 10, N: 33, K: 21, lead: [2, 5], format, backward: true, alpha: 1.3, accumulate: true, seed: 5 })).toBeLessThan(TOL);
    }
  });

  it('rejects mismatched shapes and dtypes', () => {
    const x = createTensor(gpu, [3, 4]);
    const w = createTensor(gpu, [5, 4], 'bf16');
    const wf32 = createTensor(gpu, [5, 4]);
    const wBad = createTensor(gpu, [5, 6], 'f16');
    const y = createTensor(gpu, [3, 5]);
    const yBad = createTensor(gpu, [3, 6]);
    expect(() => run(gpu, (b) => matmulLowp(b, x, wBad, y))).toThrowError(/inner dimensions 4 and 6 differ/);
    expect(() => run(gpu, (b) => matmulLowp(b, x, wf32, y))).toThrowError(/must be bf16 or f16/);
    expect(() => run(gpu, (b) => matmulLowp(b, x, w, yBad))).toThrowError(ShapeError);
    expect(() => run(gpu, (b) => matmulLowpBackward(b, x, w, y))).toThrowError(ShapeError);
    for (const t of [x, w, wf32, wBad, y, yBad]) t.release();
  });
});

describe('low-precision weight matmul over tensors split across buffers', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    // 1 KiB per binding: W (45, 93) bf16 is split into 12 buffers of 4 rows (rows of 186 bytes:
    // every buffer starts on a word, odd rows inside it start mid-word), x (37, 93) f32 into 19,
    // y (37, 45) into 8.
    gpu = await testGpu({ maxBindingBytes: 1024 });
  });

  it('splits the tensors it was asked to', () => {
    const w = createTensor(gpu, [45, 93], 'bf16');
    const x = createTensor(gpu, [37, 93]);
    expect(w.chunks.length).toBe(12);
    expect(x.chunks.length).toBe(19);
    w.release();
    x.release();
  });

  for (const format of ['bf16', 'f16'] as const) {
    it(`${format}: forward and backward`, async () => {
      expect(await check(gpu, { M: 37, N: 45, K: 93, format, seed: 21 })).toBeLessThan(TOL);
      expect(await check(gpu, { M: 37, N: 45, K: 93, format, backward: true, alpha: 0.5, accumulate: true, seed: 22 })).toBeLessThan(TOL);
    });
  }
});
