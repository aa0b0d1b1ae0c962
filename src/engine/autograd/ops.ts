// Differentiable ops and their backward rules, side by side: every rule the tape runs is in this
// file. Each op runs its forward kernels into fresh transient tensors, and records a rule that
// computes the gradients of the inputs that need one (frozen inputs get none). Integer inputs
// (token ids, positions, segments, labels) and constants (rope's inv_freq) are plain tensors, not
// Vars: nothing is differentiated with respect to them.

import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Chunk, Tensor, createTensor, rowLayout } from '../gpu/tensor.ts';
import { type AttentionOptions, attention as attentionKernel, attentionBackward, attentionLseShape, attentionShape, attentionStatsShape } from '../kernels/attention.ts';
import { crossEntropy } from '../kernels/cross_entropy.ts';
import { distill as distillKernel } from '../kernels/distill.ts';
import { dropout as dropoutKernel, dropoutBackward } from '../kernels/dropout.ts';
import { addRows, affine, axpby, fill, mul as mulKernel } from '../kernels/elementwise.ts';
import { type TokenGroups, embedding as embeddingKernel, embeddingBackward } from '../kernels/embedding.ts';
import { matmul, matmulOutShape } from '../kernels/matmul.ts';
import { matmulLowp, matmulLowpBackward } from '../kernels/matmul_lowp.ts';
import { matmulQuant, matmulQuantBackward } from '../kernels/quant.ts';
import { rmsnorm as rmsnormKernel, rmsnormBackward } from '../kernels/rmsnorm.ts';
import { rope as ropeKernel, ropeBackward } from '../kernels/rope.ts';
import { swiglu as swigluKernel, swigluBackward } from '../kernels/swiglu.ts';
import { tanh as tanhKernel, tanhBackward } from '../kernels/tanh.ts';
import type { Tape, Var } from './tape.ts';

/** A transient f32 tensor from the pool. */
export function scratch(b: Batch, shape: readonly number[], label?: string): Tensor {
  return createTensor(b.gpu, shape, 'f32', { transient: true, label });
}

/** y = x · Wᵀ (+ scale folded in): x (N, K), W (M, K) in nn.Linear layout → y (N, M). */
export function linear(tape: Tape, b: Batch, x: Var, w: Var, scale = 1): Var {
  const y = scratch(b, matmulOutShape(x.value.shape, w.value.shape, { transB: true }), 'linear'); // (N, M)
  matmul(b, x.value, w.value, y, { transB: true, alpha: scale });
  return tape.record('linear', [x, w], [y], [], (bb, [dy], needs) => {
    const [N, K] = x.value.shape;
    const M = w.value.shape[0];
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    if (needs[0]) {
      dx = scratch(bb, [N, K], 'linear.dx'); // dX = dY · W
      matmul(bb, dy!, w.value, dx, { transB: false, alpha: scale });
    }
    if (needs[1]) {
      dw = scratch(bb, [M, K], 'linear.dw'); // dW = dYᵀ · X
      matmul(bb, dy!, x.value, dw, { transA: true, transB: false, alpha: scale });
    }
    return [dx, dw];
  })[0];
}

/** a + b (the residual add): both gradients are dout. */
export function add(tape: Tape, b: Batch, x: Var, y: Var): Var {
  const out = scratch(b, x.value.shape, 'add');
  axpby(b, x.value, y.value, out);
  return tape.record('add', [x, y], [out], [], (bb, [d], needs) => needs.map((n) => (n ? copy(bb, d!) : null)))[0];
}

/** a ⊙ b elementwise. */
export function mul(tape: Tape, b: Batch, x: Var, y: Var): Var {
  const out = scratch(b, x.value.shape, 'mul');
  mulKernel(b, x.value, y.value, out);
  return tape.record('mul', [x, y], [out], [], (bb, [d], needs) => {
    const dx = needs[0] ? scratch(bb, x.value.shape) : null;
    const dy = needs[1] ? scratch(bb, y.value.shape) : null;
    if (dx) mulKernel(bb, d!, y.value, dx);
    if (dy) mulKernel(bb, d!, x.value, dy);
    return [dx, dy];
  })[0];
}

/** y = x · rstd · weight per row of C = weight's length (Llama's RMSNorm); a frozen weight gets no gradient. */
export function rmsnorm(tape: Tape, b: Batch, x: Var, weight: Var, eps: number): Var {
  const C = weight.value.shape[0];
  const y = scratch(b, x.value.shape, 'rmsnorm'); // (..., C)
  const rstd = scratch(b, [x.value.numel / C], 'rmsnorm.rstd'); // (rows)
  rmsnormKernel(b, x.value, weight.value, y, rstd, eps);
  return tape.record('rmsnorm', [x, weight], [y], [rstd], (bb, [dy], needs) => {
    const dx = scratch(bb, x.value.shape, 'rmsnorm.dx'); // (..., C), written even when x needs none
    let dw: Tensor | null = null;
    if (needs[1]) {
      dw = scratch(bb, [C], 'rmsnorm.dw'); // (C), accumulated by the kernel
      fill(bb, dw, 0);
    }
    rmsnormBackward(bb, x.value, weight.value, rstd, dy!, dx, dw);
    return [dx, dw];
  })[0];
}

/** Rotary embedding of x (N, H·D) at i32 positions (N) with inv_freq (D/2); neither is differentiated. */
export function rope(tape: Tape, b: Batch, x: Var, positions: Tensor, invFreq: Tensor): Var {
  const out = scratch(b, x.value.shape, 'rope'); // (N, H·D)
  ropeKernel(b, x.value, positions, invFreq, out);
  return tape.record('rope', [x], [out], [], (bb, [dy]) => {
    const dx = scratch(bb, dy!.shape, 'rope.dx'); // (N, H·D)
    ropeBackward(bb, dy!, positions, invFreq, dx);
    return [dx];
  })[0];
}

/** silu(gate) · up, elementwise over (N, F). */
export function swiglu(tape: Tape, b: Batch, gate: Var, up: Var): Var {
  const out = scratch(b, gate.value.shape, 'swiglu'); // (N, F)
  swigluKernel(b, gate.value, up.value, out);
  return tape.record('swiglu', [gate, up], [out], [], (bb, [dy]) => {
    const dgate = scratch(bb, gate.value.shape, 'swiglu.dgate'); // (N, F)
    const dup = scratch(bb, up.value.shape, 'swiglu.dup'); // (N, F)
    swigluBackward(bb, gate.value, up.value, dy!, dgate, dup);
    return [dgate, dup];
  })[0];
}

/** tanh(x) elementwise over any shape (prefix tuning's projection). Backward: dx = dy · (1 − tanh²(x)), from x. */
export function tanh(tape: Tape, b: Batch, x: Var): Var {
  const out = scratch(b, x.value.shape, 'tanh'); // same shape as x
  tanhKernel(b, x.value, out);
  return tape.record('tanh', [x], [out], [], (bb, [dy]) => {
    const dx = scratch(bb, x.value.shape, 'tanh.dx'); // same shape as x
    tanhBackward(bb, x.value, dy!, dx);
    return [dx];
  })[0];
}

/**
 * Rows of table (V, C) gathered by i32 ids (N) → (N, C). `hostIds` are the same ids on the CPU
 * (validated here, and used by backward to group tokens by id into `groups`); they must stay
 * unchanged until backward has run.
 */
export function embedding(tape: Tape, b: Batch, table: Var, ids: Tensor, hostIds: Int32Array, groups: TokenGroups): Var {
  const [V, C] = table.value.shape;
  const out = scratch(b, [ids.numel, C], 'embedding'); // (N, C)
  embeddingKernel(b, table.value, ids, out, hostIds);
  return tape.record('embedding', [table], [out], [], (bb, [dy]) => {
    const dtable = scratch(bb, [V, C], 'embedding.dtable'); // (V, C), rows of absent ids stay 0
    fill(bb, dtable, 0);
    embeddingBackward(bb, hostIds, dy!, dtable, groups);
    return [dtable];
  })[0];
}

export interface AttentionOpOptions extends AttentionOptions {
  /** Prefix keys and values (P, Hkv·D) shared over the batch (prefix tuning): both or neither. */
  prefixK?: Var;
  prefixV?: Var;
}

/**
 * Causal grouped-query attention of q (B·T, Hq·D) over k, v (B·T, Hkv·D) within segments (B·T)
 * i32 (negative: padding), plus the prefix keys and values when given → (B·T, Hq·D).
 */
export function attention(tape: Tape, b: Batch, q: Var, k: Var, v: Var, segments: Tensor, opts: AttentionOpOptions): Var {
  const { prefixK, prefixV, ...o } = opts;
  const x = { q: q.value, k: k.value, v: v.value, segments, prefixK: prefixK?.value, prefixV: prefixV?.value };
  const s = attentionShape(x, o);
  const out = scratch(b, q.value.shape, 'attention'); // (B·T, Hq·D)
  const lse = scratch(b, attentionLseShape(s), 'attention.lse'); // (B, Hq, T)
  attentionKernel(b, x, out, lse, o);
  const inputs = prefixK && prefixV ? [q, k, v, prefixK, prefixV] : [q, k, v];
  return tape.record('attention', inputs, [out], [lse], (bb, [dOut], needs) => {
    const stats = scratch(bb, attentionStatsShape(s), 'attention.stats'); // (B, Hq, T, 2)
    const grads = {
      dq: scratch(bb, q.value.shape, 'attention.dq'), // (B·T, Hq·D)
      dk: scratch(bb, k.value.shape, 'attention.dk'), // (B·T, Hkv·D)
      dv: scratch(bb, v.value.shape, 'attention.dv'), // (B·T, Hkv·D)
      dPrefixK: prefixK ? scratch(bb, prefixK.value.shape, 'attention.dPrefixK') : undefined, // (P, Hkv·D)
      dPrefixV: prefixV ? scratch(bb, prefixV.value.shape, 'attention.dPrefixV') : undefined, // (P, Hkv·D)
    };
    attentionBackward(bb, x, out, lse, dOut!, stats, grads, o);
    stats.release();
    const all = [grads.dq, grads.dk, grads.dv, grads.dPrefixK, grads.dPrefixV].slice(0, inputs.length) as Tensor[];
    return all.map((g, i) => {
      if (needs[i]) return g;
      g.release();
      return null;
    });
  })[0];
}

export interface CrossEntropyLossOptions {
  /** Tokens per chunk of the (chunkTokens, V) logits buffer. */
  chunkTokens: number;
}

/**
 * The mean cross-entropy (1) of logits = h (N, C) · lmHeadᵀ (V, C) against i32 labels (N), -100
 * ignored; `hostCount` (the counted labels, from the CPU copy) divides the sum. The kernel computes
 * dh and dW in the same pass as the loss, so they are computed here when recording needs them, and
 * the rule hands them over multiplied by the incoming gradient of the loss.
 */
export function crossEntropyLoss(tape: Tape, b: Batch, h: Var, lmHead: Var, labels: Tensor, hostCount: number, opts: CrossEntropyLossOptions): Var {
  const loss = scratch(b, [1], 'crossEntropy.loss'); // (1)
  const dh = tape.recording && h.requiresGrad ? scratch(b, h.value.shape, 'crossEntropy.dh') : undefined; // (N, C)
  const dW = tape.recording && lmHead.requiresGrad ? scratch(b, lmHead.value.shape, 'crossEntropy.dW') : undefined; // (V, C)
  if (dW) fill(b, dW, 0);
  crossEntropy(b, h.value, lmHead.value, labels, hostCount, { chunkTokens: opts.chunkTokens, loss, dh, dW });
  const saved = [dh, dW].filter((t) => t !== undefined);
  return tape.record('crossEntropyLoss', [h, lmHead], [loss], saved, (bb, [dl], needs) => [
    needs[0] && dh ? scaleByScalar(bb, dh, dl!) : null,
    needs[1] && dW ? scaleByScalar(bb, dW, dl!) : null,
  ])[0];
}

/** Rows of a column view per matmul call: 65535 (WebGPU's least per-dimension workgroup limit) tiles of 64 rows. */
const SCALE_SLICE = 65535 * 64;

/**
 * t · s for a (1) tensor s that lives on the GPU, as a new transient of t's shape: a K = 1 matmul of
 * t viewed as one column (numel, 1) by s viewed as (1, 1), slice by slice so that no dispatch has
 * more workgroups than a dimension allows. Same-shaped tensors are split alike, so the chunks of t
 * and of the result pair one to one.
 */
function scaleByScalar(b: Batch, t: Tensor, s: Tensor): Tensor {
  const out = scratch(b, t.shape, 'scaled');
  const column = (src: Tensor, c: Chunk, start: number, rows: number) =>
    new Tensor(src.gpu, [rows, 1], 'f32', [{ buffer: c.buffer, offset: c.offset + start * 4, rowStart: 0, rows, bytes: rows * 4 }], src.transient);
  const scalar = new Tensor(s.gpu, [1, 1], 'f32', [...s.chunks], s.transient);
  t.chunks.forEach((c, i) => {
    const n = c.rows * t.rowElems;
    for (let start = 0; start < n; start += SCALE_SLICE) {
      const rows = Math.min(SCALE_SLICE, n - start);
      matmul(b, column(t, c, start, rows), scalar, column(out, out.chunks[i], start, rows), { transB: true });
    }
  });
  return out;
}

function copy(b: Batch, t: Tensor): Tensor {
  const out = scratch(b, t.shape);
  affine(b, t, out, 1, 0);
  return out;
}

/**
 * y = x · Wᵀ through a frozen weight stored in 16 bits (bf16, or f16): x (N, K) f32, W (M, K) of
 * dtype 'bf16' or 'f16' in nn.Linear layout → y (N, M) f32. The weight gets no gradient (a W that
 * requires one is refused); backward gives x its gradient dX = dY · W.
 */
export function linearLowp(tape: Tape, b: Batch, x: Var, w: Var, scale = 1): Var {
  if (w.requiresGrad) {
    throw new InvalidArgumentError(`linearLowp: weight ${w.value.describe()} is stored in 16 bits and cannot be trained; load it as f32 to train it.`);
  }
  const y = scratch(b, [...x.value.shape.slice(0, -1), w.value.shape[0]], 'linearLowp'); // (N, M)
  matmulLowp(b, x.value, w.value, y, { alpha: scale });
  return tape.record('linearLowp', [x, w], [y], [], (bb, [dy], needs) => {
    if (!needs[0]) return [null, null];
    const dx = scratch(bb, x.value.shape, 'linearLowp.dx'); // (N, K) dX = dY · W
    matmulLowpBackward(bb, dy!, w.value, dx, { alpha: scale });
    return [dx, null];
  })[0];
}

/**
 * x (N, M) + bias (M) on every row (a linear layer's bias). Backward: dx = dy, and dbias is the
 * column sum of dy, computed as a (1, N) row of ones times dy.
 */
export function addBias(tape: Tape, b: Batch, x: Var, bias: Var): Var {
  const M = bias.value.numel;
  if (x.value.shape.length !== 2 || x.value.shape[1] !== M) {
    throw new ShapeError(`addBias: x must be (N, ${M}) for a bias of ${M} values; got ${x.value.describe()}.`);
  }
  const out = scratch(b, x.value.shape, 'addBias'); // (N, M)
  affine(b, x.value, out, 1, 0);
  addRows(b, out, bias.value);
  return tape.record('addBias', [x, bias], [out], [], (bb, [dy], needs) => {
    const dx = needs[0] ? copy(bb, dy!) : null;
    let dbias: Tensor | null = null;
    if (needs[1]) {
      const N = x.value.shape[0];
      const ones = scratch(bb, [1, N], 'addBias.ones'); // (1, N)
      fill(bb, ones, 1);
      const sum = scratch(bb, [1, M], 'addBias.dbias'); // (1, M) = ones · dy
      matmul(bb, ones, dy!, sum, { transB: false });
      ones.release();
      // (M), takes over sum's buffer: the same bytes, as one chunk of M one-element rows.
      const c = sum.chunks[0];
      dbias = new Tensor(sum.gpu, bias.value.shape, 'f32', [{ ...c, rowStart: 0, rows: M }], true, 'addBias.dbias');
    }
    return [dx, dbias];
  })[0];
}

/**
 * Inverted dropout of x (any shape) with drop probability p in [0, 1): kept elements are scaled by
 * 1 / (1 − p). The keep mask is a stateless hash of (seed, element index), so backward replays it
 * from the seed and no mask is stored; the same seed gives the same mask in a recomputed forward
 * (gradient checkpointing). p = 0 returns x itself.
 */
export function dropout(tape: Tape, b: Batch, x: Var, p: number, seed: number): Var {
  if (p === 0) return x;
  const y = scratch(b, x.value.shape, 'dropout'); // same shape as x
  dropoutKernel(b, x.value, y, p, seed);
  return tape.record('dropout', [x], [y], [], (bb, [dy]) => {
    const dx = scratch(bb, x.value.shape, 'dropout.dx'); // same shape as x
    dropoutBackward(bb, dy!, dx, p, seed);
    return [dx];
  })[0];
}

/**
 * x (N, M) with column j multiplied by l[j] (a vector of M values, e.g. IA3's scaling). The vector
 * is spread over N rows with addRows and multiplied elementwise. Backward: dx = dy ⊙ l on every
 * row, dl = the column sum of dy ⊙ x (a (1, N) row of ones times it).
 */
export function scaleColumns(tape: Tape, b: Batch, x: Var, l: Var): Var {
  const M = l.value.numel;
  if (x.value.shape.length !== 2 || x.value.shape[1] !== M) {
    throw new ShapeError(`scaleColumns: x must be (N, ${M}) for a vector of ${M} values; got ${x.value.describe()}.`);
  }
  const N = x.value.shape[0];
  const spread = scratch(b, [N, M], 'scaleColumns.l'); // (N, M), every row = l
  fill(b, spread, 0);
  addRows(b, spread, l.value);
  const out = scratch(b, [N, M], 'scaleColumns'); // (N, M)
  mulKernel(b, x.value, spread, out);
  return tape.record('scaleColumns', [x, l], [out], [spread], (bb, [dy], needs) => {
    let dx: Tensor | null = null;
    let dl: Tensor | null = null;
    if (needs[0]) {
      dx = scratch(bb, [N, M], 'scaleColumns.dx'); // (N, M)
      mulKernel(bb, dy!, spread, dx);
    }
    if (needs[1]) {
      const prod = scratch(bb, [N, M], 'scaleColumns.dyx'); // (N, M) = dy ⊙ x
      mulKernel(bb, dy!, x.value, prod);
      const ones = scratch(bb, [1, N], 'scaleColumns.ones'); // (1, N)
      fill(bb, ones, 1);
      const sum = scratch(bb, [1, M], 'scaleColumns.dl'); // (1, M) = ones · (dy ⊙ x)
      matmul(bb, ones, prod, sum, { transB: false });
      ones.release();
      prod.release();
      // l's shape over sum's buffer, with the chunk's row count of l's layout (M rows of one value for a vector).
      const c = sum.chunks[0];
      const rows = rowLayout(l.value.shape).rows;
      dl = new Tensor(sum.gpu, l.value.shape, 'f32', [{ buffer: c.buffer, offset: c.offset, rowStart: 0, rows, bytes: c.bytes }], true, 'scaleColumns.dl');
    }
    return [dx, dl];
  })[0];
}

/**
 * y = x · Wᵀ through a frozen quantized weight (a QuantizedTensor: NF4, FP4, INT8 or INT4), decoded
 * inside the kernel tile by tile. Backward gives dx = dY · W (the weight gets no gradient).
 */
export function linearQuant(tape: Tape, b: Batch, x: Var, w: Var, scale = 1): Var {
  if (w.requiresGrad) {
    throw new InvalidArgumentError(`linearQuant: weight ${w.value.describe()} is quantized and cannot be trained; train an adapter over it (QLoRA).`);
  }
  const y = scratch(b, [...x.value.shape.slice(0, -1), w.value.shape[0]], 'linearQuant'); // (N, M)
  matmulQuant(b, x.value, w.value, y, { alpha: scale });
  return tape.record('linearQuant', [x, w], [y], [], (bb, [dy], needs) => {
    if (!needs[0]) return [null, null];
    const dx = scratch(bb, x.value.shape, 'linearQuant.dx'); // (N, K) dX = dY · W
    matmulQuantBackward(bb, dy!, w.value, dx, { alpha: scale });
    return [dx, null];
  })[0];
}

export interface DistillLossOptions {
  /** Tokens per chunk of the two (chunkTokens, V) logits buffers. */
  chunkTokens: number;
  /** Softmax temperature of the KL term. */
  temperature: number;
  /** Weight of the KL term; 1 − alpha weighs the cross-entropy with the labels. */
  alpha: number;
}

/**
 * The knowledge-distillation loss (1) of a student's hidden states h (N, C) and head lmHead (V, C)
 * against a teacher's hidden states (N, Ct) and head (V, Ct), plain tensors that get no gradient:
 * mean over the counted labels (N) of alpha·T²·KL(teacher‖student at temperature T) +
 * (1 − alpha)·cross-entropy. Like crossEntropyLoss, the kernel computes dh and dW with the loss.
 */
export function distillLoss(
  tape: Tape,
  b: Batch,
  h: Var,
  lmHead: Var,
  teacherH: Tensor,
  teacherHead: Tensor,
  labels: Tensor,
  hostCount: number,
  opts: DistillLossOptions,
): Var {
  const loss = scratch(b, [1], 'distill.loss'); // (1)
  const dh = tape.recording && h.requiresGrad ? scratch(b, h.value.shape, 'distill.dh') : undefined; // (N, C)
  const dW = tape.recording && lmHead.requiresGrad ? scratch(b, lmHead.value.shape, 'distill.dW') : undefined; // (V, C)
  if (dW) fill(b, dW, 0);
  distillKernel(b, h.value, lmHead.value, teacherH, teacherHead, labels, hostCount, { ...opts, loss, dh, dW });
  const saved = [dh, dW].filter((t) => t !== undefined);
  return tape.record('distillLoss', [h, lmHead], [loss], saved, (bb, [dl], needs) => [
    needs[0] && dh ? scaleByScalar(bb, dh, dl!) : null,
    needs[1] && dW ? scaleByScalar(bb, dW, dl!) : null,
  ])[0];
}
