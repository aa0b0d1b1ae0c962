import { beforeAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../errors.ts';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { type QuantOptions, dequantizeMatrix, quantizeMatrix } from '../quant/format.ts';
import { uploadQuantized } from '../quant/tensor.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/quant.ts';
import { fill } from './elementwise.ts';
import { dequantizeQuant, matmulQuant, matmulQuantBackward } from './quant.ts';

const TOL = 1e-6;

const FORMATS: (QuantOptions & { name: string })[] = [
  { name: 'nf4 b64', format: 'nf4', block: 64 },
  { name: 'fp4 b32', format: 'fp4', block: 32 },
  { name: 'nf4 b32 double-quant', format: 'nf4', block: 32, doubleQuant: true },
  { name: 'fp4 b64 double-quant', format: 'fp4', block: 64, doubleQuant: true },
  { name: 'int8', format: 'int8' },
  { name: 'int4 g32 symmetric', format: 'int4', block: 32 },
  { name: 'int4 g64 asymmetric', format: 'int4', block: 64, symmetric: false },
];

interface Case {
  M: number;
  N: number;
  K: number;
  q: QuantOptions;
  backward?: boolean;
  lead?: number[];
  alpha?: number;
  accumulate?: boolean;
  seed: number;
}

async function check(gpu: Gpu, o: Case): Promise<number> {
  const rng = new Rng(o.seed);
  const lead = o.lead ?? [o.M];
  const [inCols, outCols] = o.backward ? [o.N, o.K] : [o.K, o.N];
  const av = rng.fill(o.M * inCols, (r) => r.normal());
  const qm = quantizeMatrix(rng.fill(o.N * o.K, (r) => 0.5 * r.normal()), [o.N, o.K], o.q); // W (N, K)
  const a = tensorFromArray(gpu, av, [...lead, inCols]);
  const w = uploadQuantized(gpu, qm, 'w');
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
  run(gpu, (b) => (o.backward ? matmulQuantBackward(b, a, w, c, opts) : matmulQuant(b, a, w, c, opts)));
  const want = o.backward ? ref.matmulQuantBackward(av, qm, o.M, o.alpha) : ref.matmulQuant(av, qm, o.M, o.alpha);
  if (prior) for (let i = 0; i < want.length; i++) want[i] += prior[i];
  const got = await readTensor(c);
  for (const t of [a, w, c]) t.release();
  return relL2(got, want);
}

describe('quantized-weight kernels vs float64 reference on the CPU-decoded weights', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  for (const q of FORMATS) {
    it(`${q.name}: dequantize is bit-exact, y = x·Wᵀ and dx = dy·W on odd sizes`, async () => {
      const qm = quantizeMatrix(new Rng(3).fill(37 * 93, (r) => r.normal()), [37, 93], q);
      const w = uploadQuantized(gpu, qm);
      const out = createTensor(gpu, [37, 93]);
      run(gpu, (b) => {
        fill(b, out, NaN);
        dequantizeQuant(b, w, out);
      });
      const got = await readTensor(out);
      const want = dequantizeMatrix(qm);
      let mismatches = 0;
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) mismatches++;
      // f32 products are correctly rounded in WGSL; the double-quantized absmax (map · scale + offset)
      // may be fused into one fma by the compiler, which can move its last bit.
      if (q.doubleQuant) expect(relL2(got, want)).toBeLessThan(1e-7);
      else expect(mismatches).toBe(0);
      w.release();
      out.release();
      expect(await check(gpu, { M: 37, N: 45, K: 93, q, seed: 1 })).toBeLessThan(TOL);
      expect(await check(gpu, { M: 70, N: 33, K: 19, q, backward: true, seed: 2 })).toBeLessThan(TOL);
    });
  }

  it('3-D activations, alpha and accumulation; a single element', async () => {
    const q: QuantOptions = { format: 'nf4', block: 64, doubleQuant: true };
    expect(await check(gpu, { M: 10, N: 33, K: 21, lead: [2, 5], q, alpha: -0.7, accumulate: true, seed: 4 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 10, N: 33, K: 21, lead: [2, 5], q, backward: true, alpha: 1.3, accumulate: true, seed: 5 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 1, N: 1, K: 1, q: { format: 'int4', block: 32, symmetric: false }, seed: 6 })).toBeLessThan(TOL);
  });

  it('rejects mismatched shapes and plain weights', () => {
    const x = createTensor(gpu, [3, 4]);
    const w = uploadQuantized(gpu, quantizeMatrix(new Float32Array(20).fill(0.5), [5, 4], { format: 'nf4' }));
    const plain = createTensor(gpu, [5, 4]);
    const yBad = createTensor(gpu, [3, 6]);
    const xBad = createTensor(gpu, [3, 7]);
    expect(() => run(gpu, (b) => matmulQuant(b, x, plain, yBad))).toThrowError(/must be a quantized tensor/);
    expect(() => run(gpu, (b) => matmulQuant(b, x, w, yBad))).toThrowError(ShapeError);
    expect(() => run(gpu, (b) => matmulQuant(b, xBad, w, yBad))).toThrowError(/inner dimensions 7 and 4 differ/);
    expect(() => run(gpu, (b) => matmulQuantBackward(b, x, w, yBad))).toThrowError(ShapeError);
    for (const t of [x, w, plain, yBad, xBad]) t.release();
  });
});

describe('quantized-weight kernels over activations split across buffers', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu({ maxBindingBytes: 1024 });
  });

  it('nf4 and int8: forward and backward', async () => {
    // x (37, 61) f32 is split into 10 buffers of 4 rows at most (and y, dx too); the weights fit in one binding.
    expect(await check(gpu, { M: 37, N: 9, K: 61, q: { format: 'nf4', block: 32 }, seed: 21 })).toBeLessThan(TOL);
    expect(await check(gpu, { M: 37, N: 9, K: 61, q: { format: 'int8' }, backward: true, alpha: 0.5, accumulate: true, seed: 22 })).toBeLessThan(TOL);
  });
});
