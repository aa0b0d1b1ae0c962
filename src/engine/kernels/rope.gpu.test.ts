import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/rope.ts';
import { fill } from './elementwise.ts';
import { rope, ropeBackward, ropeInvFreq } from './rope.ts';

const TOL = 1e-6;

interface Case {
  /** x's shape; its elements are N tokens × H heads × D. */
  shape: number[];
  positions: Int32Array;
  posShape?: number[];
  inv: Float32Array;
  inPlace?: boolean;
  seed: number;
}

/** Runs rope forward and backward on fresh random x and dy; returns the relL2 of each. */
async function check(gpu: Gpu, c: Case) {
  const rng = new Rng(c.seed);
  const n = c.shape.reduce((a, b) => a * b, 1);
  const N = c.positions.length;
  const H = n / (N * 2 * c.inv.length);
  const xv = rng.fill(n, (r) => r.normal());
  const dyv = rng.fill(n, (r) => r.normal());
  const x = tensorFromArray(gpu, xv, c.shape); // (N, H·D)
  const dy = tensorFromArray(gpu, dyv, c.shape); // (N, H·D)
  const pos = tensorFromArray(gpu, c.positions, c.posShape ?? [N], 'i32'); // (N)
  const inv = tensorFromArray(gpu, c.inv, [c.inv.length]); // (D/2)
  let y = x;
  let dx = dy;
  if (!c.inPlace) {
    y = createTensor(gpu, c.shape);
    dx = createTensor(gpu, c.shape);
    run(gpu, (b) => {
      fill(b, y, NaN);
      fill(b, dx, NaN);
    });
  }
  run(gpu, (b) => {
    rope(b, x, pos, inv, y);
    ropeBackward(b, dy, pos, inv, dx);
  });
  const errs = {
    y: relL2(await readTensor(y), ref.rope(xv, c.positions, c.inv, N, H)),
    dx: relL2(await readTensor(dx), ref.ropeBackward(dyv, c.positions, c.inv, N, H)),
  };
  for (const t of new Set([x, dy, pos, inv, y, dx])) t.release();
  return errs;
}

function randomPositions(rng: Rng, n: number, max: number): Int32Array {
  return Int32Array.from({ length: n }, () => rng.int(max));
}

function expectAll(errs: Record<string, number>) {
  for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThan(TOL);
}

describe('rope kernels vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it('out of place, packed sequences restarting at 0, D = 18', async () => {
    const positions = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5]);
    expectAll(await check(gpu, { shape: [13, 3 * 18], positions, inv: ropeInvFreq(18, 10000), seed: 1 }));
  });

  it('out of place, random positions below 8192, llama3 frequencies, (B, T, H·D) layout', async () => {
    const rng = new Rng(2);
    const inv = ropeInvFreq(64, 500000, { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expectAll(await check(gpu, { shape: [2, 7, 5 * 64], positions: randomPositions(rng, 14, 8192), posShape: [2, 7], inv, seed: 3 }));
  });

  it('in place with positions up to 300000 (angles far outside [−π, π])', async () => {
    const rng = new Rng(4);
    expectAll(await check(gpu, { shape: [23, 2 * 10], positions: randomPositions(rng, 23, 300000), inv: ropeInvFreq(10, 10000), inPlace: true, seed: 5 }));
  });

  it('rejects inputs that are not (N, H, D) with a ShapeError', () => {
    const x = createTensor(gpu, [4, 30]);
    const pos = createTensor(gpu, [4], 'i32');
    const inv = createTensor(gpu, [4]);
    expect(() => run(gpu, (b) => rope(b, x, pos, inv))).toThrowError(/input \[4, 30\] is not \(N, H, D\) for N = 4 positions and D = 8/);
    const posF = createTensor(gpu, [4]);
    expect(() => run(gpu, (b) => rope(b, x, posF, inv))).toThrowError(/i32 positions/);
    for (const t of [x, pos, inv, posF]) t.release();
  });
});

describe('rope over tensors split across buffers', () => {
  it('cuts tokens where x, out or positions change buffer', async () => {
    // 256 bytes per binding: x (100, 2·8) holds 4 tokens per buffer; positions (100) split at 64.
    const gpu = await testGpu({ maxBindingBytes: 256 });
    const rng = new Rng(6);
    const positions = randomPositions(rng, 100, 4096);
    const inv = ropeInvFreq(8, 10000);
    expectAll(await check(gpu, { shape: [100, 16], positions, inv, seed: 7 }));
    expectAll(await check(gpu, { shape: [100, 16], positions, inv, inPlace: true, seed: 8 }));
  });
});
