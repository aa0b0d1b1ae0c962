// Model-shaped benchmark cases for the kernels other than matmul, measured in GB/s (memory-bound
// ops: bytes read and written once) or GFLOP/s (attention). Each case allocates its tensors,
// records its dispatches into a Batch, and frees everything afterwards.

import type { Batch } from '../engine/gpu/batch.ts';
import type { Gpu } from '../engine/gpu/device.ts';
import { type Tensor, createTensor, tensorFromArray } from '../engine/gpu/tensor.ts';
import { dropout } from '../engine/kernels/dropout.ts';
import { axpby } from '../engine/kernels/elementwise.ts';
import { embedding, embeddingBackward, TokenGroups } from '../engine/kernels/embedding.ts';
import { rmsnorm, rmsnormBackward } from '../engine/kernels/rmsnorm.ts';
import { rope, ropeBackward, ropeInvFreq } from '../engine/kernels/rope.ts';
import { swiglu, swigluBackward } from '../engine/kernels/swiglu.ts';
import { Rng } from '../engine/random.ts';

export interface ModelShape {
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
}

export interface KernelCase {
  kernel: string;
  /** Bytes moved (for GB/s) or floating-point operations (for GFLOP/s) per run. */
  work: number;
  unit: 'GB/s' | 'GFLOP/s';
  run: (b: Batch) => void;
}

/** The cases for one model shape and token count, and a function that frees their tensors. */
export function kernelCases(gpu: Gpu, s: ModelShape, T: number, rng: Rng): { cases: KernelCase[]; release: () => void } {
  const owned: Tensor[] = [];
  const rand = (shape: number[]) => {
    const t = tensorFromArray(gpu, rng.fill(shape.reduce((a, b) => a * b, 1), (r) => r.normal()), shape);
    owned.push(t);
    return t;
  };
  const empty = (shape: number[], dtype: 'f32' | 'i32' = 'f32') => {
    const t = createTensor(gpu, shape, dtype);
    owned.push(t);
    return t;
  };
  const H = s.hidden;
  const F = s.intermediate;
  const x = rand([T, H]); // (T, H)
  const y = empty([T, H]);
  const dx = empty([T, H]);
  const w = rand([H]);
  const dw = empty([H]);
  const rstd = empty([T]);
  const gate = rand([T, F]); // (T, F)
  const up = rand([T, F]);
  const act = empty([T, F]);
  const dgate = empty([T, F]);
  const dup = empty([T, F]);
  const q = rand([T, s.heads * s.headDim]); // (T, Hq·D)
  const positions = tensorFromArray(gpu, Int32Array.from({ length: T }, (_, i) => i), [T], 'i32');
  owned.push(positions);
  const invFreq = tensorFromArray(gpu, ropeInvFreq(s.headDim, 10000), [s.headDim / 2]);
  owned.push(invFreq);
  // The embedding table of a large vocabulary is the biggest tensor of a small model.
  const table = rand([s.vocab, H]); // (V, H)
  const dtable = empty([s.vocab, H]);
  const hostIds = Int32Array.from({ length: T }, () => rng.int(s.vocab));
  const ids = tensorFromArray(gpu, hostIds, [T], 'i32');
  owned.push(ids);
  const groups = new TokenGroups(gpu, T);
  const f = 4;
  const cases: KernelCase[] = [
    { kernel: 'residual add (axpby)', work: 3 * T * H * f, unit: 'GB/s', run: (b) => axpby(b, x, dx, y) },
    { kernel: 'rmsnorm forward', work: (2 * T * H + H + T) * f, unit: 'GB/s', run: (b) => rmsnorm(b, x, w, y, rstd, 1e-5) },
    { kernel: 'rmsnorm backward', work: (3 * T * H + 2 * H + T) * f, unit: 'GB/s', run: (b) => rmsnormBackward(b, x, w, rstd, y, dx, dw) },
    { kernel: 'rope forward (q, in place)', work: 2 * T * s.heads * s.headDim * f, unit: 'GB/s', run: (b) => rope(b, q, positions, invFreq) },
    { kernel: 'rope backward (q, in place)', work: 2 * T * s.heads * s.headDim * f, unit: 'GB/s', run: (b) => ropeBackward(b, q, positions, invFreq) },
    { kernel: 'swiglu forward', work: 3 * T * F * f, unit: 'GB/s', run: (b) => swiglu(b, gate, up, act) },
    { kernel: 'swiglu backward', work: 5 * T * F * f, unit: 'GB/s', run: (b) => swigluBackward(b, gate, up, act, dgate, dup) },
    { kernel: 'dropout p=0.1', work: 2 * T * F * f, unit: 'GB/s', run: (b) => dropout(b, gate, act, 0.1, 7) },
    { kernel: 'embedding gather', work: (2 * T * H + T) * f, unit: 'GB/s', run: (b) => embedding(b, table, ids, y) },
    { kernel: 'embedding scatter-add', work: 3 * T * H * f, unit: 'GB/s', run: (b) => embeddingBackward(b, hostIds, x, dtable, groups) },
  ];
  const release = () => {
    for (const t of owned) t.release();
    groups.release();
  };
  return { cases, release };
}
