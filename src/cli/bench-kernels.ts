// Model-shaped benchmark cases for the kernels other than matmul, measured in GB/s (memory-bound
// ops: bytes read and written once) or GFLOP/s (attention). Each case allocates its tensors,
// records its dispatches into a Batch, and frees everything afterwards.

import type { Batch } from '../engine/gpu/batch.ts';
import type { Gpu } from '../engine/gpu/device.ts';
import { type Tensor, createTensor, tensorFromArray } from '../engine/gpu/tensor.ts';
import { adamw } from '../engine/kernels/adamw.ts';
import { attention, attentionBackward, attentionLseShape, attentionStatsShape } from '../engine/kernels/attention.ts';
import { crossEntropy } from '../engine/kernels/cross_entropy.ts';
import { dropout } from '../engine/kernels/dropout.ts';
import { axpby } from '../engine/kernels/elementwise.ts';
import { embedding, embeddingBackward, TokenGroups } from '../engine/kernels/embedding.ts';
import { rmsnorm, rmsnormBackward } from '../engine/kernels/rmsnorm.ts';
import { rope, ropeBackward, ropeInvFreq } from '../engine/kernels/rope.ts';
import { swiglu, swigluBackward } from '../engine/kernels/swiglu.ts';
import { matmulQuant, matmulQuantBackward } from '../engine/kernels/quant.ts';
import { quantizeMatrix } from '../engine/quant/format.ts';
import { uploadQuantized } from '../engine/quant/tensor.ts';
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

/**
 * The cases for one model shape and token count, and a function that frees their tensors. On a slow
 * adapter the cross-entropy runs over the first `ceVocab` rows of the vocabulary (the case's name
 * says so), since the full head costs seconds per token there.
 */
export function kernelCases(gpu: Gpu, s: ModelShape, T: number, rng: Rng, ceVocab = s.vocab): { cases: KernelCase[]; release: () => void } {
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
  // Attention over one sequence of T tokens.
  const D = s.headDim;
  const k = rand([T, s.kvHeads * D]); // (T, Hkv·D)
  const v = rand([T, s.kvHeads * D]);
  const segments = tensorFromArray(gpu, new Int32Array(T), [T], 'i32');
  owned.push(segments);
  const attnIn = { q, k, v, segments };
  const attnOpts = { batchSize: 1, numHeads: s.heads, numKvHeads: s.kvHeads };
  const shape = { B: 1, T, Hq: s.heads, Hkv: s.kvHeads, D, P: 0, scale: 1 / Math.sqrt(D) };
  const attnOut = empty([T, s.heads * D]);
  const lse = empty(attentionLseShape(shape));
  const stats = empty(attentionStatsShape(shape));
  const dq = empty([T, s.heads * D]);
  const dk = empty([T, s.kvHeads * D]);
  const dv = empty([T, s.kvHeads * D]);
  // Causal attention: QKᵀ and PV over the lower triangle, 2·D flops per multiply-add pair each.
  const attnFlops = 2 * 2 * s.heads * D * ((T * (T + 1)) / 2);
  // The LM head with the loss and dh (the hidden-state gradient LoRA training needs).
  const head = rand([ceVocab, H]); // (V, H)
  const labels = tensorFromArray(gpu, Int32Array.from({ length: T }, () => rng.int(ceVocab)), [T], 'i32');
  owned.push(labels);
  const loss = empty([1]);
  const ceName = ceVocab === s.vocab ? `cross-entropy + dh (V=${s.vocab})` : `cross-entropy + dh (V=${ceVocab} of ${s.vocab})`;
  // AdamW over one MLP weight matrix.
  const param = rand([F, H]);
  const grad = rand([F, H]);
  const m = empty([F, H]);
  const vv = empty([F, H]);
  const coef = tensorFromArray(gpu, [1], [1]);
  owned.push(coef);
  // The gate projection stored quantized (QLoRA's base), decoded inside the product.
  const gateValues = rng.fill(F * H, (r) => 0.02 * r.normal());
  const gateNf4 = uploadQuantized(gpu, quantizeMatrix(gateValues, [F, H], { format: 'nf4', block: 64, doubleQuant: true }), 'bench.gate.nf4');
  const gateInt8 = uploadQuantized(gpu, quantizeMatrix(gateValues, [F, H], { format: 'int8' }), 'bench.gate.int8');
  owned.push(gateNf4, gateInt8);
  const f = 4;
  const cases: KernelCase[] = [
    { kernel: 'nf4+dq matmul y = x·Wᵀ (gate_proj)', work: 2 * T * F * H, unit: 'GFLOP/s', run: (b) => matmulQuant(b, x, gateNf4, gate) },
    { kernel: 'nf4+dq matmul dx = dy·W (gate_proj)', work: 2 * T * F * H, unit: 'GFLOP/s', run: (b) => matmulQuantBackward(b, gate, gateNf4, dx) },
    { kernel: 'int8 matmul y = x·Wᵀ (gate_proj)', work: 2 * T * F * H, unit: 'GFLOP/s', run: (b) => matmulQuant(b, x, gateInt8, gate) },
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
    { kernel: 'attention forward', work: attnFlops, unit: 'GFLOP/s', run: (b) => attention(b, attnIn, attnOut, lse, attnOpts) },
    {
      kernel: 'attention backward',
      work: 2.5 * attnFlops,
      unit: 'GFLOP/s',
      run: (b) => attentionBackward(b, attnIn, attnOut, lse, attnOut, stats, { dq, dk, dv }, attnOpts),
    },
    { kernel: ceName, work: 4 * T * ceVocab * H, unit: 'GFLOP/s', run: (b) => crossEntropy(b, x, head, labels, T, { chunkTokens: T, loss, dh: dx }) },
    { kernel: 'adamw step (one MLP matrix)', work: 7 * F * H * f, unit: 'GB/s', run: (b) => adamw(b, param, grad, m, vv, coef, { lr: 1e-4, step: 1 }) },
  ];
  const release = () => {
    for (const t of owned) t.release();
    groups.release();
  };
  return { cases, release };
}
