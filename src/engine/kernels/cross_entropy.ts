// Dispatcher of shaders/cross_entropy.wgsl: the mean cross-entropy of a language-model head and its
// gradients, computed a chunk of tokens at a time so that the (tokens × vocab) logits never sit in
// memory at once. The logits come from the matmul family (h · Wᵀ, W possibly split along the
// vocabulary); the row-wise softmax work is this family's shader. It does not read anything back:
// the loss stays on the GPU in a 1-element tensor.

import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Chunk, Tensor, chunkBinding, createTensor } from '../gpu/tensor.ts';
import { matmul } from './matmul.ts';
import { SHADERS } from './shaders.ts';

export interface CrossEntropyOptions {
  /** Tokens per chunk: the transient logits buffer is (chunkTokens, V) f32. */
  chunkTokens: number;
  /** (1) f32, overwritten with Σ per-token loss / count. */
  loss: Tensor;
  /** (N, C) f32, overwritten with dloss/dh. */
  dh?: Tensor;
  /** (V, C) f32, dloss/dW is added to it (gradient accumulation). */
  dW?: Tensor;
}

/**
 * Mean cross-entropy of logits = h · Wᵀ against `labels`.
 *
 * h (N, C) f32; W (V, C) f32 in nn.Linear layout, may be split across buffers along V; labels (N)
 * i32, where -100 (any value outside [0, V)) marks a token that is not counted: it adds nothing to
 * the loss and gets a zero gradient row. `count` divides the summed loss and the gradients; the
 * caller takes it from its CPU copy of the labels (it may be the count over several micro-batches
 * when gradients are accumulated). With count 0 the loss and gradients are 0.
 *
 * Writes opts.loss (overwrite), opts.dh (overwrite) and adds into opts.dW, when given. Without dh
 * and dW only the loss is computed.
 */
export function crossEntropy(batch: Batch, h: Tensor, w: Tensor, labels: Tensor, count: number, opts: CrossEntropyOptions): void {
  const { dh, dW, loss } = opts;
  if (h.shape.length !== 2 || w.shape.length !== 2) {
    throw new ShapeError(`crossEntropy needs h (N, C) and W (V, C); got h [${h.shape.join(', ')}] and W [${w.shape.join(', ')}].`);
  }
  const [N, C] = h.shape; // h: (N, C)
  const [V, Cw] = w.shape; // W: (V, C)
  if (Cw !== C) throw new ShapeError(`crossEntropy: h [${h.shape.join(', ')}] and W [${w.shape.join(', ')}] differ in the hidden size (${C} vs ${Cw}).`);
  if (V === 0) throw new ShapeError(`crossEntropy: W [${w.shape.join(', ')}] has an empty vocabulary.`);
  for (const t of [h, w, loss, ...(dh ? [dh] : []), ...(dW ? [dW] : [])]) {
    if (t.dtype !== 'f32') throw new ShapeError(`crossEntropy takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
  }
  if (labels.dtype !== 'i32' || labels.shape.length !== 1 || labels.shape[0] !== N) {
    throw new ShapeError(`crossEntropy: labels must be (${N}) i32 to match h [${h.shape.join(', ')}]; got ${labels.describe()}.`);
  }
  if (labels.isSplit) throw new ShapeError(`crossEntropy: labels ${labels.describe()} are split across buffers; at most ${Math.floor(h.gpu.maxBindingBytes / 4)} tokens per call.`);
  if (loss.numel !== 1 || loss.shape.length > 1) throw new ShapeError(`crossEntropy: loss must be a (1) tensor; got ${loss.describe()}.`);
  if (dh && !sameShape(dh.shape, h.shape)) throw new ShapeError(`crossEntropy: dh is ${dh.describe()} but h is [${h.shape.join(', ')}].`);
  if (dW && !sameShape(dW.shape, w.shape)) throw new ShapeError(`crossEntropy: dW is ${dW.describe()} but W is [${w.shape.join(', ')}].`);
  if (!Number.isInteger(count) || count < 0) throw new InvalidArgumentError(`crossEntropy: count must be a non-negative integer; got ${count}.`);
  const chunkTokens = opts.chunkTokens;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new InvalidArgumentError(`crossEntropy: chunkTokens must be a positive integer; got ${chunkTokens}.`);

  const gpu = h.gpu;
  const backward = Boolean(dh || dW);
  const invCount = count > 0 ? 1 / count : 0;
  const chunk = Math.min(chunkTokens, Math.max(N, 1));
  const whole = chunk >= N; // one chunk: h and dh are used in place, no row copies
  const rowLoss = createTensor(gpu, [N], 'f32', { transient: true, label: 'ce.rowLoss' }); // (N)
  const logitsAll = createTensor(gpu, [chunk, V], 'f32', { transient: true, label: 'ce.logits' }); // (chunk, V)
  const hAll = whole ? null : createTensor(gpu, [chunk, C], 'f32', { transient: true, label: 'ce.h' }); // (chunk, C)
  const dhAll = whole || !dh ? null : createTensor(gpu, [chunk, C], 'f32', { transient: true, label: 'ce.dh' }); // (chunk, C)

  for (let t0 = 0; t0 < N; t0 += chunk) {
    const n = Math.min(chunk, N - t0);
    let hc = h; // (n, C)
    if (hAll) {
      hc = headRows(hAll, n);
      copyRows(batch, h, t0, hc, 0, n);
    }
    const logits = headRows(logitsAll, n); // (n, V)
    matmul(batch, hc, w, logits, { transB: true });
    for (const ch of logits.chunks) {
      const params = new Uint32Array(4);
      params[0] = ch.rows;
      params[1] = V;
      params[2] = t0 + ch.rowStart;
      new Float32Array(params.buffer)[3] = invCount;
      batch.dispatch(
        SHADERS.cross_entropy,
        backward ? 'rows_backward' : 'rows_forward',
        {},
        [chunkBinding(ch), labels.binding(), rowLoss.binding(), batch.uniform(params)],
        ch.rows,
      );
    }
    if (!backward) continue;
    // logits now holds dlogits (n, V).
    if (dh) {
      const dhc = dhAll ? headRows(dhAll, n) : dh; // (n, C)
      matmul(batch, logits, w, dhc, { transB: false });
      if (dhAll) copyRows(batch, dhc, 0, dh, t0, n);
    }
    if (dW) matmul(batch, logits, hc, dW, { transA: true, transB: false, accumulate: true });
  }

  const sumParams = new Uint32Array(4);
  sumParams[0] = N;
  new Float32Array(sumParams.buffer)[1] = invCount;
  batch.dispatch(SHADERS.cross_entropy, 'sum_loss', {}, [rowLoss.binding(), loss.binding(), batch.uniform(sumParams)], 1);

  for (const t of [rowLoss, logitsAll, hAll, dhAll]) t?.release();
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A view of the first `rows` rows of `t` over the same buffers (never released itself). */
export function headRows(t: Tensor, rows: number): Tensor {
  if (rows === t.shape[0]) return t;
  const rowBytes = t.rowElems * 4;
  const chunks: Chunk[] = [];
  for (const c of t.chunks) {
    if (c.rowStart >= rows) break;
    const r = Math.min(c.rows, rows - c.rowStart);
    chunks.push({ ...c, rows: r, bytes: r * rowBytes });
  }
  return new Tensor(t.gpu, [rows, ...t.shape.slice(1)], t.dtype, chunks, t.transient, t.label);
}

/** Records copies of rows [srcRow, srcRow + rows) of `src` to rows starting at `dstRow` of `dst` (same row size, f32). */
export function copyRows(batch: Batch, src: Tensor, srcRow: number, dst: Tensor, dstRow: number, rows: number): void {
  const rowBytes = src.rowElems * 4;
  let done = 0;
  while (done < rows) {
    const sr = srcRow + done;
    const dr = dstRow + done;
    const sc = chunkAt(src, sr);
    const dc = chunkAt(dst, dr);
    const n = Math.min(rows - done, sc.rowStart + sc.rows - sr, dc.rowStart + dc.rows - dr);
    batch.encoder.copyBufferToBuffer(sc.buffer, sc.offset + (sr - sc.rowStart) * rowBytes, dc.buffer, dc.offset + (dr - dc.rowStart) * rowBytes, n * rowBytes);
    done += n;
  }
}

function chunkAt(t: Tensor, row: number): Chunk {
  for (const ch of t.chunks) if (row >= ch.rowStart && row < ch.rowStart + ch.rows) return ch;
  throw new ShapeError(`Row ${row} is outside tensor ${t.describe()}.`);
}
