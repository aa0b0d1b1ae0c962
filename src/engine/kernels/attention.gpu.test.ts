import { beforeAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../errors.ts';
import { run } from '../gpu/batch.ts';
import type { Gpu } from '../gpu/device.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import * as ref from '../reference/attention.ts';
import { relL2 } from '../reference/compare.ts';
import { attention, attentionBackward, attentionShape, attentionStatsShape, attentionTiling } from './attention.ts';
import { fill } from './elementwise.ts';

const TOL = 1e-6;

interface Case {
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
  P?: number;
  scale?: number;
  /** One segment id per token (B·T); negative for padding. */
  segments: number[];
  seed: number;
}

/** Segment ids of one batch row: runs of [id, length]. */
function row(...runs: [number, number][]): number[] {
  return runs.flatMap(([id, n]) => Array<number>(n).fill(id));
}

async function check(gpu: Gpu, c: Case) {
  const rng = new Rng(c.seed);
  const N = c.B * c.T;
  const P = c.P ?? 0;
  expect(c.segments.length).toBe(N);
  const qv = rng.fill(N * c.Hq * c.D, (r) => r.normal());
  const kv = rng.fill(N * c.Hkv * c.D, (r) => r.normal());
  const vv = rng.fill(N * c.Hkv * c.D, (r) => r.normal());
  const pkv = rng.fill(P * c.Hkv * c.D, (r) => r.normal());
  const pvv = rng.fill(P * c.Hkv * c.D, (r) => r.normal());
  const dov = rng.fill(N * c.Hq * c.D, (r) => r.normal());

  const live: Tensor[] = [];
  const keep = (t: Tensor) => (live.push(t), t);
  const x = {
    q: keep(tensorFromArray(gpu, qv, [N, c.Hq * c.D])), // (B·T, Hq·D)
    k: keep(tensorFromArray(gpu, kv, [N, c.Hkv * c.D])), // (B·T, Hkv·D)
    v: keep(tensorFromArray(gpu, vv, [N, c.Hkv * c.D])), // (B·T, Hkv·D)
    segments: keep(tensorFromArray(gpu, c.segments, [N], 'i32')), // (B·T)
    ...(P > 0 ? { prefixK: keep(tensorFromArray(gpu, pkv, [P, c.Hkv * c.D])), prefixV: keep(tensorFromArray(gpu, pvv, [P, c.Hkv * c.D])) } : {}), // (P, Hkv·D)
  };
  const o = { batchSize: c.B, numHeads: c.Hq, numKvHeads: c.Hkv, scale: c.scale };
  const s = attentionShape(x, o);
  const out = keep(createTensor(gpu, [N, c.Hq * c.D])); // (B·T, Hq·D)
  const lse = keep(createTensor(gpu, [c.B, c.Hq, c.T])); // (B, Hq, T)
  const dOut = keep(tensorFromArray(gpu, dov, [N, c.Hq * c.D])); // (B·T, Hq·D)
  const stats = keep(createTensor(gpu, attentionStatsShape(s))); // (B, Hq, T, 2)
  const grads = {
    dq: keep(createTensor(gpu, [N, c.Hq * c.D])), // (B·T, Hq·D)
    dk: keep(createTensor(gpu, [N, c.Hkv * c.D])), // (B·T, Hkv·D)
    dv: keep(createTensor(gpu, [N, c.Hkv * c.D])), // (B·T, Hkv·D)
    ...(P > 0 ? { dPrefixK: keep(createTensor(gpu, [P, c.Hkv * c.D])), dPrefixV: keep(createTensor(gpu, [P, c.Hkv * c.D])) } : {}), // (P, Hkv·D)
  };
  const gradTensors = [grads.dq, grads.dk, grads.dv, ...(grads.dPrefixK && grads.dPrefixV ? [grads.dPrefixK, grads.dPrefixV] : [])];

  // Poison every output (and the backward scratch) before each pass.
  run(gpu, (bt) => {
    for (const t of [out, lse, stats, ...gradTensors]) fill(bt, t, NaN);
    attention(bt, x, out, lse, o);
  });
  const gotOut = await readTensor(out);
  const gotLse = await readTensor(lse);
  run(gpu, (bt) => {
    for (const t of [stats, ...gradTensors]) fill(bt, t, NaN);
    attentionBackward(bt, x, out, lse, dOut, stats, grads, o);
  });
  const got = {
    dq: await readTensor(grads.dq),
    dk: await readTensor(grads.dk),
    dv: await readTensor(grads.dv),
    dPrefixK: grads.dPrefixK ? await readTensor(grads.dPrefixK) : new Float32Array(0),
    dPrefixV: grads.dPrefixV ? await readTensor(grads.dPrefixV) : new Float32Array(0),
  };

  const d: ref.AttentionDims = { B: c.B, T: c.T, Hq: c.Hq, Hkv: c.Hkv, D: c.D, P, scale: c.scale };
  const fwd = ref.attentionForward(qv, kv, vv, c.segments, d, pkv, pvv);
  const bwd = ref.attentionBackward(qv, kv, vv, c.segments, dov, d, pkv, pvv);
  const errors = {
    out: relL2(gotOut, fwd.out),
    lse: relL2(gotLse, fwd.lse),
    dq: relL2(got.dq, bwd.dq),
    dk: relL2(got.dk, bwd.dk),
    dv: relL2(got.dv, bwd.dv),
    dPrefixK: relL2(got.dPrefixK, bwd.dPrefixK),
    dPrefixV: relL2(got.dPrefixV, bwd.dPrefixV),
  };

  // Padding tokens: output and every gradient row exactly zero.
  let paddingNonZero = 0;
  c.segments.forEach((seg, n) => {
    if (seg >= 0) return;
    for (let j = 0; j < c.Hq * c.D; j++) if (gotOut[n * c.Hq * c.D + j] !== 0 || got.dq[n * c.Hq * c.D + j] !== 0) paddingNonZero++;
    for (let j = 0; j < c.Hkv * c.D; j++) if (got.dk[n * c.Hkv * c.D + j] !== 0 || got.dv[n * c.Hkv * c.D + j] !== 0) paddingNonZero++;
  });

  for (const t of live) t.release();
  return { errors, paddingNonZero, backward: got };
}

function expectClose(errors: Record<string, number>) {
  for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(TOL);
}

describe('attention kernels vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it('GQA ratio 1 (Hq = Hkv = 2), D=16, T=13, batch 2', async () => {
    const r = await check(gpu, { B: 2, T: 13, Hq: 2, Hkv: 2, D: 16, segments: row([0, 26]), seed: 1 });
    expectClose(r.errors);
  });

  it('GQA ratio 2 (Hq=4, Hkv=2), D=8, T=37, left and right padding', async () => {
    const segments = [...row([-1, 3], [0, 34]), ...row([0, 30], [-1, 7])];
    const r = await check(gpu, { B: 2, T: 37, Hq: 4, Hkv: 2, D: 8, segments, seed: 2 });
    expectClose(r.errors);
    expect(r.paddingNonZero).toBe(0);
  });

  it('GQA ratio 4 (Hq=4, Hkv=1), D=16, T=37, two packed sequences per row', async () => {
    const segments = [...row([1, 20], [2, 17]), ...row([5, 11], [6, 20], [-1, 6])];
    const r = await check(gpu, { B: 2, T: 37, Hq: 4, Hkv: 1, D: 16, segments, seed: 3 });
    expectClose(r.errors);
    expect(r.paddingNonZero).toBe(0);
  });

  it('prefix keys (P=5) with padding and packing, GQA ratio 2, D=8, custom scale', async () => {
    const segments = [...row([-1, 2], [3, 6], [4, 5]), ...row([9, 13])];
    const r = await check(gpu, { B: 2, T: 13, Hq: 4, Hkv: 2, D: 8, P: 5, scale: 0.3, segments, seed: 4 });
    expectClose(r.errors);
    expect(r.paddingNonZero).toBe(0);
  });

  it('prefix longer than a tile (P=21), GQA ratio 4, D=16, T=37', async () => {
    const segments = [...row([0, 37]), ...row([1, 16], [2, 15], [-1, 6])];
    const r = await check(gpu, { B: 2, T: 37, Hq: 4, Hkv: 1, D: 16, P: 21, segments, seed: 5 });
    expectClose(r.errors);
    expect(r.paddingNonZero).toBe(0);
  });

  it('a wider head uses another tiling: D=24 (tile stride 32, 4 threads per row)', async () => {
    expect(attentionTiling(gpu, 24)).toMatchObject({ DMAX: 32, LANES: 4 });
    const segments = [...row([0, 19]), ...row([0, 7], [1, 9], [-1, 3])];
    const r = await check(gpu, { B: 2, T: 19, Hq: 2, Hkv: 1, D: 24, P: 2, segments, seed: 7 });
    expectClose(r.errors);
    expect(r.paddingNonZero).toBe(0);
  });

  it('backward is deterministic: two runs agree bit for bit', async () => {
    const segments = [...row([0, 9], [1, 8]), ...row([2, 14], [-1, 3])];
    const c: Case = { B: 2, T: 17, Hq: 4, Hkv: 2, D: 16, P: 3, segments, seed: 6 };
    const a = await check(gpu, c);
    const b = await check(gpu, c);
    for (const name of ['dq', 'dk', 'dv', 'dPrefixK', 'dPrefixV'] as const) {
      expect(Array.from(a.backward[name]), name).toEqual(Array.from(b.backward[name]));
    }
  });

  it('rejects mismatched shapes and dtypes with a ShapeError', () => {
    const q = createTensor(gpu, [6, 8]);
    const k = createTensor(gpu, [6, 6]);
    const v = createTensor(gpu, [6, 4]);
    const segF32 = createTensor(gpu, [6]);
    const seg = createTensor(gpu, [6], 'i32');
    const out = createTensor(gpu, [6, 8]);
    const lse = createTensor(gpu, [2, 2, 3]);
    const o = { batchSize: 2, numHeads: 2, numKvHeads: 1 };
    const call = (x: Parameters<typeof attention>[1], opts = o) => () => run(gpu, (bt) => attention(bt, x, out, lse, opts));
    expect(call({ q, k, v, segments: seg })).toThrowError(ShapeError);
    expect(call({ q, k, v, segments: seg })).toThrowError(/k is \[6, 6\] but should be \[6, 4\]/);
    expect(call({ q, k: v, v, segments: segF32 })).toThrowError(/segments must be i32/);
    expect(call({ q, k: v, v, segments: seg }, { ...o, numKvHeads: 3 })).toThrowError(/numHeads 2 is not a multiple of numKvHeads 3/);
    expect(call({ q, k: v, v, segments: seg, prefixK: v })).toThrowError(/prefixK and prefixV must be given together/);
    for (const t of [q, k, v, segF32, seg, out, lse]) t.release();
  });
});
