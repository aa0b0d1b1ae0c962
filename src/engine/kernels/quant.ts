// Dispatcher of shaders/quant.wgsl: products through a frozen quantized weight (NF4, FP4 with or
// without double quantization, INT8 per row, INT4 per group), decoded tile by tile inside the
// kernel: y = x · Wᵀ and, for backward through it, dx = dy · W; and dequantization to f32. The
// weight is one QuantizedTensor (never split); activations may be split across buffers. There is no
// weight gradient (the weight is frozen).

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Tensor, chunkBinding, rowPieces } from '../gpu/tensor.ts';
import { groupsPerRow } from '../quant/int4.ts';
import { QuantizedTensor } from '../quant/tensor.ts';
import { SHADERS } from './shaders.ts';

export interface MatmulQuantOptions {
  alpha?: number;
  /** Add into the output instead of overwriting it. */
  accumulate?: boolean;
}

const TILE = 64;
const FORMAT_ID = { nf4: 0, fp4: 1, int8: 2, int4: 3 } as const;

function constants(w: QuantizedTensor): Record<string, number> {
  return { FORMAT: FORMAT_ID[w.format], DOUBLE: w.doubleQuant ? 1 : 0, ZEROS: w.zeros ? 1 : 0 };
}

function weightBindings(w: QuantizedTensor): GPUBufferBinding[] {
  return [w.codes.binding(), w.scales.binding(), w.aux.binding(), w.dmap.binding()];
}

interface Dims {
  M: number;
  N: number;
  K: number;
  lda: number;
  ldc: number;
  offA: number;
  offC: number;
  accumulate: boolean;
  alpha: number;
  total?: number;
}

function packParams(w: QuantizedTensor, d: Dims): Uint32Array {
  const u = new Uint32Array(16);
  const f = new Float32Array(u.buffer);
  const cols = w.shape[1];
  u.set([d.M, d.N, d.K, d.lda, d.ldc, d.offA, d.offC, d.accumulate ? 1 : 0]);
  f[8] = d.alpha;
  u[9] = cols;
  u[10] = w.format === 'int8' ? cols : w.block;
  u[11] = w.format === 'int4' ? groupsPerRow(cols, w.block) : 0;
  f[12] = w.offset;
  u[13] = d.total ?? 0;
  return u;
}

function checkWeight(op: string, w: Tensor): asserts w is QuantizedTensor {
  if (!(w instanceof QuantizedTensor)) throw new ShapeError(`${op}: the weight must be a quantized tensor; got ${w.describe()}.`);
  w.assertLive();
}

function flatten(op: string, name: string, t: Tensor): { M: number; cols: number; lead: number[] } {
  if (t.shape.length < 2) throw new ShapeError(`${op}: ${name} must have at least 2 dimensions; got ${t.describe()}.`);
  if (t.dtype !== 'f32') throw new ShapeError(`${op}: activations must be f32; ${t.describe()} is ${t.dtype}.`);
  const lead = t.shape.slice(0, -1);
  return { M: lead.reduce((a, b) => a * b, 1), cols: t.shape[t.shape.length - 1], lead };
}

function checkOut(op: string, out: Tensor, want: number[], what: string): void {
  if (out.dtype !== 'f32') throw new ShapeError(`${op}: the output must be f32; ${out.describe()} is ${out.dtype}.`);
  if (out.shape.length !== want.length || out.shape.some((v, i) => v !== want[i])) {
    throw new ShapeError(`${op}: output is ${out.describe()} but ${what} is [${want.join(', ')}].`);
  }
}

/**
 * y ← alpha · x · Wᵀ (or y += … with `accumulate`). x (..., K) f32, W a QuantizedTensor (N, K)
 * (nn.Linear layout), y (..., N) f32 with the leading dimensions of x.
 */
export function matmulQuant(batch: Batch, x: Tensor, w: Tensor, y: Tensor, opts: MatmulQuantOptions = {}): void {
  checkWeight('matmulQuant', w);
  const { M, cols: K, lead } = flatten('matmulQuant', 'x', x);
  const [N, Kw] = w.shape;
  if (K !== Kw) throw new ShapeError(`matmulQuant: inner dimensions ${K} and ${Kw} differ (x ${x.describe()}, W ${w.describe()}).`);
  checkOut('matmulQuant', y, [...lead, N], `x · Wᵀ for x ${x.describe()} and W ${w.describe()}`);
  if (M === 0 || N === 0) return;
  for (const piece of rowPieces(M, [
    [x, K],
    [y, N],
  ])) {
    const [ax, ay] = piece.at;
    const params = packParams(w, { M: piece.count, N, K, lda: K, ldc: N, offA: ax.offset, offC: ay.offset, accumulate: Boolean(opts.accumulate), alpha: opts.alpha ?? 1 });
    batch.dispatch(
      SHADERS.quant,
      'forward',
      constants(w),
      [...weightBindings(w), chunkBinding(y.chunks[ay.chunk]), batch.uniform(params), chunkBinding(x.chunks[ax.chunk])],
      [Math.ceil(N / TILE), Math.ceil(piece.count / TILE), 1],
    );
  }
}

/**
 * dx ← alpha · dy · W (or dx += … with `accumulate`): the input gradient of y = x · Wᵀ through a
 * frozen quantized weight. dy (..., N) f32, W (N, K), dx (..., K) f32 with the leading dimensions of dy.
 */
export function matmulQuantBackward(batch: Batch, dy: Tensor, w: Tensor, dx: Tensor, opts: MatmulQuantOptions = {}): void {
  checkWeight('matmulQuantBackward', w);
  const { M, cols: N, lead } = flatten('matmulQuantBackward', 'dy', dy);
  const [Nw, K] = w.shape;
  if (N !== Nw) throw new ShapeError(`matmulQuantBackward: dy has ${N} columns but W ${w.describe()} has ${Nw} rows.`);
  checkOut('matmulQuantBackward', dx, [...lead, K], `dy · W for dy ${dy.describe()} and W ${w.describe()}`);
  if (M === 0 || K === 0) return;
  for (const piece of rowPieces(M, [
    [dy, N],
    [dx, K],
  ])) {
    const [ady, adx] = piece.at;
    // GEMM terms: C (M, K) = A (M, N) · W (N, K): the GEMM's inner dimension is N.
    const params = packParams(w, { M: piece.count, N: K, K: N, lda: N, ldc: K, offA: ady.offset, offC: adx.offset, accumulate: Boolean(opts.accumulate), alpha: opts.alpha ?? 1 });
    batch.dispatch(
      SHADERS.quant,
      'backward_input',
      constants(w),
      [...weightBindings(w), chunkBinding(dx.chunks[adx.chunk]), batch.uniform(params), chunkBinding(dy.chunks[ady.chunk])],
      [Math.ceil(K / TILE), Math.ceil(piece.count / TILE), 1],
    );
  }
}

/** out (R, C) f32 ← the decoded weight. */
export function dequantizeQuant(batch: Batch, w: Tensor, out: Tensor): void {
  checkWeight('dequantizeQuant', w);
  const [R, C] = w.shape;
  checkOut('dequantizeQuant', out, [R, C], `the weight ${w.describe()}`);
  if (R === 0 || C === 0) return;
  if (out.isSplit) throw new ShapeError(`dequantizeQuant: the output ${out.describe()} is split across buffers; dequantize into one buffer.`);
  const total = R * C;
  const params = packParams(w, { M: 0, N: 0, K: 0, lda: 0, ldc: 0, offA: 0, offC: 0, accumulate: false, alpha: 1, total });
  batch.dispatch(SHADERS.quant, 'dequantize', constants(w), [...weightBindings(w), out.binding(), batch.uniform(params)], Math.ceil(total / 256));
}
