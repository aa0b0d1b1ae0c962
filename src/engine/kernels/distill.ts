// Dispatcher of shaders/distill.wgsl: the knowledge-distillation loss of a student language-model
// head against a teacher's, loss = mean over counted tokens of
//   alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · CE(student, label),
// and its gradients with respect to the student's hidden states and head weight. Both models'
// logits are computed here a chunk of tokens at a time (h · Wᵀ through the matmul family, W possibly
// split along the vocabulary), so the (tokens × vocab) logits never exist at once; the teacher's
// logits are never kept. Nothing is read back: the loss stays on the GPU in a (1) tensor.

import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Tensor, chunkBinding, createTensor } from '../gpu/tensor.ts';
import { copyRows, headRows } from './cross_entropy.ts';
import { matmul } from './matmul.ts';
import { SHADERS } from './shaders.ts';

export interface DistillOptions {
  /** Tokens per chunk: two transient (chunkTokens, V) f32 logits buffers. */
  chunkTokens: number;
  /** Softmax temperature T > 0 of the KL term. */
  temperature: number;
  /** Weight of the KL term in [0, 1]; 1 − alpha weighs the cross-entropy with the labels. */
  alpha: number;
  /** (1) f32, overwritten with the mean loss. */
  loss: Tensor;
  /** (N, Cs) f32, overwritten with dloss/dhS. */
  dh?: Tensor;
  /** (V, Cs) f32, dloss/dWS is added to it. */
  dW?: Tensor;
}

/**
 * Distillation loss of student logits hS · WSᵀ against teacher logits hT · WTᵀ.
 *
 * hS (N, Cs), WS (V, Cs), hT (N, Ct), WT (V, Ct), all f32 (W may be split along V); labels (N) i32,
 * -100 (any value outside [0, V)) marking a token that is not counted. `count` divides the summed
 * loss and the gradients (the CPU's count of counted labels). The teacher gets no gradient.
 */
export function distill(batch: Batch, hS: Tensor, wS: Tensor, hT: Tensor, wT: Tensor, labels: Tensor, count: number, opts: DistillOptions): void {
  const { dh, dW, loss } = opts;
  for (const [name, t] of [['hS', hS], ['WS', wS], ['hT', hT], ['WT', wT]] as const) {
    if (t.shape.length !== 2) throw new ShapeError(`distill: ${name} must be 2-D; got ${t.describe()}.`);
  }
  const [N, Cs] = hS.shape;
  const [V, Cw] = wS.shape;
  if (Cw !== Cs) throw new ShapeError(`distill: hS [${hS.shape.join(', ')}] and WS [${wS.shape.join(', ')}] differ in the hidden size.`);
  if (hT.shape[0] !== N) throw new ShapeError(`distill: teacher hidden states [${hT.shape.join(', ')}] do not have the student's ${N} tokens.`);
  if (wT.shape[0] !== V || wT.shape[1] !== hT.shape[1]) {
    throw new ShapeError(`distill: teacher head [${wT.shape.join(', ')}] must be (${V}, ${hT.shape[1]}): the same vocabulary as the student, the teacher's hidden size.`);
  }
  if (V === 0) throw new ShapeError('distill: empty vocabulary.');
  for (const t of [hS, wS, hT, wT, loss, ...(dh ? [dh] : []), ...(dW ? [dW] : [])]) {
    if (t.dtype !== 'f32') throw new ShapeError(`distill takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
  }
  if (labels.dtype !== 'i32' || labels.shape.length !== 1 || labels.shape[0] !== N || labels.isSplit) {
    throw new ShapeError(`distill: labels must be one (${N}) i32 buffer; got ${labels.describe()}.`);
  }
  if (loss.numel !== 1) throw new ShapeError(`distill: loss must be a (1) tensor; got ${loss.describe()}.`);
  if (dh && (dh.shape[0] !== N || dh.shape[1] !== Cs)) throw new ShapeError(`distill: dh is ${dh.describe()} but hS is [${hS.shape.join(', ')}].`);
  if (dW && (dW.shape[0] !== V || dW.shape[1] !== Cs)) throw new ShapeError(`distill: dW is ${dW.describe()} but WS is [${wS.shape.join(', ')}].`);
  if (!Number.isInteger(count) || count < 0) throw new InvalidArgumentError(`distill: count must be a non-negative integer; got ${count}.`);
  const { temperature: T, alpha } = opts;
  if (!(T > 0 && Number.isFinite(T))) throw new InvalidArgumentError(`distill: the temperature must be a positive number; got ${T}.`);
  if (!(alpha >= 0 && alpha <= 1)) throw new InvalidArgumentError(`distill: alpha must be in [0, 1]; got ${alpha}.`);
  const chunkTokens = opts.chunkTokens;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new InvalidArgumentError(`distill: chunkTokens must be a positive integer; got ${chunkTokens}.`);

  const gpu = hS.gpu;
  const backward = Boolean(dh || dW);
  const invCount = count > 0 ? 1 / count : 0;
  const chunk = Math.min(chunkTokens, Math.max(N, 1));
  const whole = chunk >= N;
  const Ct = hT.shape[1];
  const rowLoss = createTensor(gpu, [N], 'f32', { transient: true, label: 'distill.rowLoss' }); // (N)
  const sAll = createTensor(gpu, [chunk, V], 'f32', { transient: true, label: 'distill.student' }); // (chunk, V)
  const tAll = createTensor(gpu, [chunk, V], 'f32', { transient: true, label: 'distill.teacher' }); // (chunk, V)
  const hsAll = whole ? null : createTensor(gpu, [chunk, Cs], 'f32', { transient: true, label: 'distill.hS' }); // (chunk, Cs)
  const htAll = whole ? null : createTensor(gpu, [chunk, Ct], 'f32', { transient: true, label: 'distill.hT' }); // (chunk, Ct)
  const dhAll = whole || !dh ? null : createTensor(gpu, [chunk, Cs], 'f32', { transient: true, label: 'distill.dh' }); // (chunk, Cs)

  for (let t0 = 0; t0 < N; t0 += chunk) {
    const n = Math.min(chunk, N - t0);
    let hs = hS; // (n, Cs)
    let ht = hT; // (n, Ct)
    if (hsAll && htAll) {
      hs = headRows(hsAll, n);
      ht = headRows(htAll, n);
      copyRows(batch, hS, t0, hs, 0, n);
      copyRows(batch, hT, t0, ht, 0, n);
    }
    const zs = headRows(sAll, n); // (n, V)
    const zt = headRows(tAll, n); // (n, V)
    matmul(batch, hs, wS, zs, { transB: true });
    matmul(batch, ht, wT, zt, { transB: true });
    // Same-shaped tensors are split alike, so the student's and teacher's chunks pair one to one.
    zs.chunks.forEach((cs, i) => {
      const ct = zt.chunks[i];
      const params = new Uint32Array(8);
      const f = new Float32Array(params.buffer);
      params[0] = cs.rows;
      params[1] = V;
      params[2] = t0 + cs.rowStart;
      f[3] = invCount;
      f[4] = 1 / T;
      f[5] = alpha * T * T;
      f[6] = 1 - alpha;
      batch.dispatch(
        SHADERS.distill,
        backward ? 'rows_backward' : 'rows_forward',
        {},
        [chunkBinding(cs), chunkBinding(ct), labels.binding(), rowLoss.binding(), batch.uniform(params)],
        cs.rows,
      );
    });
    if (!backward) continue;
    // zs now holds dloss/dlogits (n, V).
    if (dh) {
      const dhc = dhAll ? headRows(dhAll, n) : dh; // (n, Cs)
      matmul(batch, zs, wS, dhc, { transB: false });
      if (dhAll) copyRows(batch, dhc, 0, dh, t0, n);
    }
    if (dW) matmul(batch, zs, hs, dW, { transA: true, transB: false, accumulate: true });
  }

  const sumParams = new Uint32Array(4);
  sumParams[0] = N;
  new Float32Array(sumParams.buffer)[1] = invCount;
  batch.dispatch(SHADERS.cross_entropy, 'sum_loss', {}, [rowLoss.binding(), loss.binding(), batch.uniform(sumParams)], 1);

  for (const t of [rowLoss, sAll, tAll, hsAll, htAll, dhAll]) t?.release();
}
