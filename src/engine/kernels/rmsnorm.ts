// Dispatcher of shaders/rmsnorm.wgsl: RMSNorm forward (y and the rstd that backward needs) and
// backward (dx overwritten, dweight accumulated). Any (..., k·C) tensor is viewed as (rows, C), which
// is how Qwen3's q_norm/k_norm normalise (T, H·D) per head. Tensors split across buffers are cut into
// pieces of whole rows (rowPieces from gpu/tensor.ts).

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Tensor, rowPieces } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

const DW_COLS = 32;

function params(rows: number, C: number, offX: number, offY: number, offR: number, offDy: number, eps: number): Uint32Array {
  const u = new Uint32Array(8);
  u.set([rows, C, offX, offY, offR, offDy]);
  new Float32Array(u.buffer)[6] = eps;
  return u;
}

function sameShape(what: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`rmsnorm: ${what} is [${b.shape.join(', ')}] but x is [${a.shape.join(', ')}].`);
  }
}

/** Checks dtypes and shapes and returns (rows, C) of the row view of x. */
function rowView(x: Tensor, weight: Tensor, rstd: Tensor, ...more: Tensor[]): { rows: number; C: number } {
  for (const t of [x, weight, rstd, ...more]) {
    if (t.dtype !== 'f32') throw new ShapeError(`rmsnorm takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
  }
  if (weight.shape.length !== 1 || weight.shape[0] === 0) throw new ShapeError(`rmsnorm weight must be 1-D (C); got [${weight.shape.join(', ')}].`);
  if (weight.isSplit) throw new ShapeError(`rmsnorm weight ${weight.describe()} must fit in one buffer.`);
  const C = weight.shape[0];
  const last = x.shape.length === 0 ? 1 : x.shape[x.shape.length - 1];
  if (last % C !== 0) {
    throw new ShapeError(`rmsnorm: the last dimension of x [${x.shape.join(', ')}] is not a multiple of the weight's ${C} elements.`);
  }
  const rows = x.numel / C;
  if (rstd.numel !== rows) throw new ShapeError(`rmsnorm: rstd ${rstd.describe()} must hold ${rows} values, one per row of x [${x.shape.join(', ')}] viewed as (${rows}, ${C}).`);
  return { rows, C };
}

/**
 * Forward: y = x · rstd · weight per row, with rstd = 1 / sqrt(mean(x²) + eps).
 * x and y (..., k·C), viewed as (rows, C) with C = weight's length; weight (C); rstd (rows) written
 * for the backward pass. y and rstd are overwritten; y must not be x.
 */
export function rmsnorm(batch: Batch, x: Tensor, weight: Tensor, y: Tensor, rstd: Tensor, eps: number): void {
  const { rows, C } = rowView(x, weight, rstd, y);
  sameShape('y', x, y);
  if (y === x) throw new ShapeError('rmsnorm cannot write y over x; give it a separate output tensor.');
  for (const p of rowPieces(rows, [[x, C], [y, C], [rstd, 1]])) {
    const [ax, ay, ar] = p.at;
    batch.dispatch(
      SHADERS.rmsnorm,
      'forward',
      {},
      [x.binding(ax.chunk), weight.binding(), y.binding(ay.chunk), rstd.binding(ar.chunk), batch.uniform(params(p.count, C, ax.offset, ay.offset, ar.offset, 0, eps))],
      p.count,
    );
  }
}

/**
 * Backward of rmsnorm given dy and the forward's rstd: dx (same shape as x) is overwritten;
 * dweight (C) is accumulated (+= Σ over rows of dy · x · rstd) when given, and skipped when null
 * (a frozen weight). The dweight sum runs in a fixed order, so repeated runs agree bit for bit.
 */
export function rmsnormBackward(batch: Batch, x: Tensor, weight: Tensor, rstd: Tensor, dy: Tensor, dx: Tensor, dweight: Tensor | null): void {
  const { rows, C } = rowView(x, weight, rstd, dy, dx, ...(dweight ? [dweight] : []));
  sameShape('dy', x, dy);
  sameShape('dx', x, dx);
  if (dx === dy || dx === x) throw new ShapeError('rmsnormBackward cannot write dx over dy or x; give it a separate output tensor.');
  if (dweight && (dweight.numel !== C || dweight.isSplit)) {
    throw new ShapeError(`rmsnormBackward: dweight ${dweight.describe()} must be one buffer of ${C} values, like weight ${weight.describe()}.`);
  }
  for (const p of rowPieces(rows, [[x, C], [dy, C], [dx, C], [rstd, 1]])) {
    const [ax, ady, adx, ar] = p.at;
    batch.dispatch(
      SHADERS.rmsnorm,
      'backward_dx',
      {},
      [x.binding(ax.chunk), weight.binding(), dy.binding(ady.chunk), rstd.binding(ar.chunk), dx.binding(adx.chunk), batch.uniform(params(p.count, C, ax.offset, adx.offset, ar.offset, ady.offset, 0))],
      p.count,
    );
    if (dweight) {
      batch.dispatch(
        SHADERS.rmsnorm,
        'backward_dw',
        {},
        [x.binding(ax.chunk), dy.binding(ady.chunk), rstd.binding(ar.chunk), dweight.binding(), batch.uniform(params(p.count, C, ax.offset, 0, ar.offset, ady.offset, 0))],
        Math.ceil(C / DW_COLS),
      );
    }
  }
}
