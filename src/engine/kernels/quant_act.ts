// Dispatcher of shaders/quant_act.wgsl: INT8 fake quantization of activations, per row (dynamic,
// per token) or with one static scale, and the per-row scales themselves (max |row| / 127).
// Tensors are (rows, cols) f32 in one buffer each (activations of a micro-batch).

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

function dims(op: string, x: Tensor): [number, number] {
  if (x.dtype !== 'f32' || x.shape.length !== 2) throw new ShapeError(`${op}: x must be a (rows, cols) f32 tensor; got ${x.describe()}.`);
  if (x.isSplit) throw new ShapeError(`${op}: ${x.describe()} is split across buffers.`);
  return [x.shape[0], x.shape[1]];
}

function params(rows: number, cols: number, mode: number, scale: number): Uint32Array {
  const u = new Uint32Array(4);
  u.set([rows, cols, mode]);
  new Float32Array(u.buffer)[3] = scale;
  return u;
}

/** scales (rows) ← max |x[row, :]| / 127. */
export function rowScales(b: Batch, x: Tensor, scales: Tensor): void {
  const [rows, cols] = dims('rowScales', x);
  if (scales.dtype !== 'f32' || scales.numel !== rows) throw new ShapeError(`rowScales: scales must hold ${rows} f32 values; got ${scales.describe()}.`);
  if (rows === 0) return;
  b.dispatch(SHADERS.quant_act, 'row_scale', {}, [x.binding(), scales.binding(), b.uniform(params(rows, cols, 0, 0))], rows);
}

/**
 * y ← x on the INT8 grid: per row with `scales` (from rowScales) when `staticScale` is undefined,
 * else with the one step `staticScale`. y has x's shape.
 */
export function fakeQuantInt8(b: Batch, x: Tensor, y: Tensor, scales: Tensor, staticScale?: number): void {
  const [rows, cols] = dims('fakeQuantInt8', x);
  if (y.dtype !== 'f32' || y.shape.length !== 2 || y.shape[0] !== rows || y.shape[1] !== cols) throw new ShapeError(`fakeQuantInt8: y must be like x ${x.describe()}; got ${y.describe()}.`);
  if (rows * cols === 0) return;
  const p = params(rows, cols, staticScale === undefined ? 0 : 1, staticScale ?? 0);
  b.dispatch(SHADERS.quant_act, 'fake_quant', {}, [x.binding(), scales.binding(), b.uniform(p), y.binding()], Math.ceil((rows * cols) / 256));
}
