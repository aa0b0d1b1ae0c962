// Dispatcher of shaders/dropout.wgsl: seeded inverted dropout on a flat f32 tensor (any shape, split
// ones included). No mask is stored: backward replays the mask from the same seed, so a training
// step keeps only (seed, p) per dropout site. The hash and threshold are shared with the reference.

import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { dropoutThreshold } from '../reference/dropout.ts';
import { SHADERS } from './shaders.ts';

const WG = 256;

function apply(batch: Batch, x: Tensor, y: Tensor, p: number, seed: number, op: string): void {
  for (const t of [x, y]) if (t.dtype !== 'f32') throw new ShapeError(`${op} takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
  if (x.shape.length !== y.shape.length || x.shape.some((d, i) => d !== y.shape[i]) || x.chunks.length !== y.chunks.length) {
    throw new ShapeError(`${op}: output ${y.describe()} differs in shape from input ${x.describe()}.`);
  }
  if (y === x) throw new ShapeError(`${op} cannot write over its input; give it a separate output tensor.`);
  if (!(p >= 0 && p < 1)) throw new InvalidArgumentError(`Dropout probability must be in [0, 1); got ${p}.`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new InvalidArgumentError(`Dropout seed must be an integer in [0, 2³²); got ${seed}.`);
  if (x.numel > 0xffffffff) throw new ShapeError(`${op}: ${x.describe()} has more than 2³² − 1 elements.`);
  const threshold = dropoutThreshold(p);
  const scale = Math.fround(1 / (1 - p));
  const rowElems = x.rowElems;
  for (let i = 0; i < x.chunks.length; i++) {
    const n = x.chunks[i].rows * rowElems;
    const u = new Uint32Array(8);
    u.set([n, x.chunks[i].rowStart * rowElems, seed, threshold]);
    new Float32Array(u.buffer)[4] = scale;
    batch.dispatch(SHADERS.dropout, 'main', {}, [x.binding(i), y.binding(i), batch.uniform(u)], Math.ceil(n / WG));
  }
}

/**
 * Forward: y = x / (1 − p) where element i (its flat index in x) is kept, 0 where dropped; the keep
 * mask is a stateless hash of (seed, i), so equal seeds give equal masks. y (same shape) is overwritten.
 * p in [0, 1); seed a u32.
 */
export function dropout(batch: Batch, x: Tensor, y: Tensor, p: number, seed: number): void {
  apply(batch, x, y, p, seed, 'dropout');
}

/** Backward: dx = dy / (1 − p) on the elements the forward with the same (p, seed) kept, 0 elsewhere. dx is overwritten. */
export function dropoutBackward(batch: Batch, dy: Tensor, dx: Tensor, p: number, seed: number): void {
  apply(batch, dy, dx, p, seed, 'dropoutBackward');
}
