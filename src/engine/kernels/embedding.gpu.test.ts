import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/embedding.ts';
import { fill } from './elementwise.ts';
import { TokenGroups, embedding, embeddingBackward, groupTokens } from './embedding.ts';

const TOL = 1e-6;

/** N ids in [0, V), drawn from a few "frequent" ids half the time so that ids repeat. */
function randomIds(rng: Rng, N: number, V: number): Int32Array {
  const frequent = [rng.int(V), rng.int(V), rng.int(V)];
  return Int32Array.from({ length: N }, () => (rng.next() < 0.5 ? frequent[rng.int(3)] : rng.int(V)));
}

/** Forward and backward (into a random prior dtable) on a (V, C) table; returns relL2 of each. */
async function check(gpu: Gpu, V: number, C: number, idv: Int32Array, seed: number, idsShape = [idv.length]) {
  const rng = new Rng(seed);
  const N = idv.length;
  const tv = rng.fill(V * C, (r) => r.normal());
  const dyv = rng.fill(N * C, (r) => r.normal());
  const prior = rng.fill(V * C, (r) => r.normal());
  const table = tensorFromArray(gpu, tv, [V, C]); // (V, C)
  const ids = tensorFromArray(gpu, idv, idsShape, 'i32'); // (N)
  const out = createTensor(gpu, [...idsShape, C]); // (N, C)
  const dy = tensorFromArray(gpu, dyv, [...idsShape, C]); // (N, C)
  const dtable = tensorFromArray(gpu, prior, [V, C]); // (V, C)
  const groups = new TokenGroups(gpu, N + 3);
  run(gpu, (b) => fill(b, out, NaN));
  run(gpu, (b) => {
    embedding(b, table, ids, out, idv);
    embeddingBackward(b, idv, dy, dtable, groups);
  });
  const grad = ref.embeddingBackward(idv, dyv, V, C);
  const errs = {
    out: relL2(await readTensor(out), ref.embedding(tv, idv, V, C)),
    dtable: relL2(await readTensor(dtable), grad.map((g, i) => g + prior[i])),
  };
  for (const t of [table, ids, out, dy, dtable, groups]) t.release();
  return errs;
}

function expectAll(errs: Record<string, number>) {
  for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThan(TOL);
}

describe('groupTokens', () => {
  it('groups token positions by id, ids ascending, positions ascending', () => {
    const g = groupTokens(Int32Array.from([3, 1, 3, 0, 1, 3]), 4);
    expect([...g.unique]).toEqual([0, 1, 3]);
    expect([...g.starts]).toEqual([0, 1, 3, 6]);
    expect([...g.tokens]).toEqual([3, 1, 4, 0, 2, 5]);
    expect(() => groupTokens(Int32Array.from([0, 4]), 4)).toThrowError(/Token id 4 at position 1 is outside/);
  });
});

describe('embedding kernels vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it('V = 50, C = 37, 61 tokens with repeated ids', async () => {
    expectAll(await check(gpu, 50, 37, randomIds(new Rng(1), 61, 50), 2));
  });

  it('C = 300 (several columns per thread), ids shaped (B, T)', async () => {
    expectAll(await check(gpu, 13, 300, randomIds(new Rng(3), 2 * 9, 13), 4, [2, 9]));
  });

  it('writes zeros for ids outside the table, and refuses them when the ids are on the CPU', async () => {
    const rng = new Rng(5);
    const [V, C] = [7, 5];
    const tv = rng.fill(V * C, (r) => r.normal());
    const idv = Int32Array.from([2, -1, 7, 6, 1000, 0]);
    const table = tensorFromArray(gpu, tv, [V, C]);
    const ids = tensorFromArray(gpu, idv, [6], 'i32');
    const out = createTensor(gpu, [6, C]);
    run(gpu, (b) => fill(b, out, NaN));
    run(gpu, (b) => embedding(b, table, ids, out));
    expect(relL2(await readTensor(out), ref.embedding(tv, idv, V, C))).toBeLessThan(TOL);
    expect(() => run(gpu, (b) => embedding(b, table, ids, out, idv))).toThrowError(/Token id -1 at position 1 is outside the embedding table's 7 rows/);
    for (const t of [table, ids, out]) t.release();
  });

  it('the gradient is deterministic', async () => {
    const rng = new Rng(6);
    const [V, C, N] = [9, 70, 200];
    const idv = randomIds(rng, N, V);
    const dy = tensorFromArray(gpu, rng.fill(N * C, (r) => r.normal()), [N, C]);
    const groups = new TokenGroups(gpu, N);
    const results: Float32Array[] = [];
    for (let i = 0; i < 2; i++) {
      const dtable = createTensor(gpu, [V, C]);
      run(gpu, (b) => {
        fill(b, dtable, 0.25);
        embeddingBackward(b, idv, dy, dtable, groups);
      });
      results.push((await readTensor(dtable)) as Float32Array);
      dtable.release();
    }
    expect(results[1]).toEqual(results[0]);
    dy.release();
    groups.release();
  });

  it('rejects a wrong output shape and an undersized grouping', () => {
    const table = createTensor(gpu, [10, 4]);
    const ids = createTensor(gpu, [3], 'i32');
    const out = createTensor(gpu, [3, 5]);
    expect(() => run(gpu, (b) => embedding(b, table, ids, out))).toThrowError(/must be f32 \(\.\.\., 4\) holding 3 rows/);
    const dy = createTensor(gpu, [3, 4]);
    const groups = new TokenGroups(gpu, 2);
    expect(() => run(gpu, (b) => embeddingBackward(b, Int32Array.from([1, 2, 3]), dy, table, groups))).toThrowError(/got 3 tokens but its TokenGroups hold at most 2/);
    for (const t of [table, ids, out, dy, groups]) t.release();
  });
});

describe('embedding over tensors split across buffers', () => {
  it('gathers from and scatters into a table split into several buffers', async () => {
    // 512 bytes per binding: the (30, 20) table holds 6 rows per buffer (5 buffers); out and dy (70, 20)
    // are split the same way (12 buffers); ids (70) i32 fit in one.
    const gpu = await testGpu({ maxBindingBytes: 512 });
    const probe = createTensor(gpu, [30, 20]);
    expect(probe.chunks.length).toBe(5);
    probe.release();
    expectAll(await check(gpu, 30, 20, randomIds(new Rng(7), 70, 30), 8));
  });
});
