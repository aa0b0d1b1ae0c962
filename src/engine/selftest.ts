// The GPU self-test: runs the matmul and elementwise kernels on fresh random inputs and compares
// them with the float64 reference. The studio runs it in its worker and `whetstone gpu` in Node;
// it proves the adapter computes correctly, it is not a benchmark.

import { run } from './gpu/batch.ts';
import type { Gpu } from './gpu/device.ts';
import { readTensor } from './gpu/readback.ts';
import { createTensor, tensorFromArray } from './gpu/tensor.ts';
import { axpby, fill } from './kernels/elementwise.ts';
import { matmul } from './kernels/matmul.ts';
import { Rng } from './random.ts';
import { relL2 } from './reference/compare.ts';
import * as refElementwise from './reference/elementwise.ts';
import * as refMatmul from './reference/matmul.ts';

export interface SelfTestCase {
  name: string;
  /** What was computed, e.g. "(67×93)·(45×93)ᵀ". */
  problem: string;
  relL2: number;
  tolerance: number;
  passed: boolean;
  /** Wall time of the GPU work including readback, in milliseconds. */
  ms: number;
}

export interface SelfTestReport {
  passed: boolean;
  cases: SelfTestCase[];
}

const TOLERANCE = 1e-5;

export async function runSelfTest(gpu: Gpu, seed = Date.now() >>> 0): Promise<SelfTestReport> {
  const rng = new Rng(seed);
  const cases: SelfTestCase[] = [];

  // y = x · Wᵀ and the two backward products, on sizes that are not multiples of the 64×64 tile.
  const [M, N, K] = [67, 45, 93];
  const x = rng.fill(M * K, (r) => r.normal()); // (M, K)
  const w = rng.fill(N * K, (r) => r.normal()); // (N, K)
  const dy = rng.fill(M * N, (r) => r.normal()); // (M, N)
  const products = [
    { name: 'matmul forward', problem: `(${M}×${K})·(${N}×${K})ᵀ`, a: x, aShape: [M, K], b: w, bShape: [N, K], opts: { transB: true }, out: [M, N], want: () => refMatmul.matmul(x, w, { M, N, K, transB: true }) },
    { name: 'matmul input gradient', problem: `(${M}×${N})·(${N}×${K})`, a: dy, aShape: [M, N], b: w, bShape: [N, K], opts: { transB: false }, out: [M, K], want: () => refMatmul.linearBackward(x, w, dy, M, N, K).dx },
    { name: 'matmul weight gradient', problem: `(${M}×${N})ᵀ·(${M}×${K})`, a: dy, aShape: [M, N], b: x, bShape: [M, K], opts: { transA: true, transB: false }, out: [N, K], want: () => refMatmul.linearBackward(x, w, dy, M, N, K).dw },
  ];
  for (const p of products) {
    const t0 = performance.now();
    const a = tensorFromArray(gpu, p.a, p.aShape);
    const b = tensorFromArray(gpu, p.b, p.bShape);
    const c = createTensor(gpu, p.out);
    run(gpu, (bt) => {
      fill(bt, c, NaN);
      matmul(bt, a, b, c, p.opts);
    });
    const got = await readTensor(c);
    const ms = performance.now() - t0;
    for (const t of [a, b, c]) t.release();
    const err = relL2(got, p.want());
    cases.push({ name: p.name, problem: p.problem, relL2: err, tolerance: TOLERANCE, passed: err < TOLERANCE, ms });
  }

  {
    const n = 10_007;
    const av = rng.fill(n, (r) => r.normal());
    const bv = rng.fill(n, (r) => r.normal());
    const t0 = performance.now();
    const a = tensorFromArray(gpu, av, [n]);
    const b = tensorFromArray(gpu, bv, [n]);
    const c = createTensor(gpu, [n]);
    run(gpu, (bt) => {
      fill(bt, c, NaN);
      axpby(bt, a, b, c, 0.5, -2);
    });
    const got = await readTensor(c);
    const ms = performance.now() - t0;
    for (const t of [a, b, c]) t.release();
    const err = relL2(got, refElementwise.axpby(av, bv, 0.5, -2));
    cases.push({ name: 'elementwise axpby', problem: `${n} elements`, relL2: err, tolerance: TOLERANCE, passed: err < TOLERANCE, ms });
  }

  return { passed: cases.every((c) => c.passed), cases };
}
