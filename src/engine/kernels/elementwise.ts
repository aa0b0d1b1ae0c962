// Dispatcher of shaders/elementwise.wgsl: axpby, mul, affine, fill, accumulate and addRows over f32 tensors of any size,
// split ones included (same-shaped tensors are split the same way, so chunks pair one to one).

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

const WG = 256;

function params(n: number, alpha: number, beta: number, m = 0): Uint32Array {
  const u = new Uint32Array(4);
  const f = new Float32Array(u.buffer);
  u[0] = n;
  f[1] = alpha;
  f[2] = beta;
  u[3] = m;
  return u;
}

function sameShape(op: string, ...ts: Tensor[]): void {
  const [first] = ts;
  for (const t of ts) {
    if (t.dtype !== 'f32') throw new ShapeError(`${op} takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
    if (t.numel !== first.numel || t.shape.length !== first.shape.length || t.shape.some((d, i) => d !== first.shape[i])) {
      throw new ShapeError(`${op}: shapes differ: ${ts.map((x) => x.describe()).join(' vs ')}.`);
    }
  }
}

function binary(batch: Batch, op: number, a: Tensor, b: Tensor, out: Tensor, alpha: number, beta: number, name: string): void {
  sameShape(name, a, b, out);
  const rowElems = a.rowElems;
  for (let i = 0; i < a.chunks.length; i++) {
    const n = a.chunks[i].rows * rowElems;
    batch.dispatch(SHADERS.elementwise, 'binary', { OP: op }, [a.binding(i), b.binding(i), out.binding(i), batch.uniform(params(n, alpha, beta))], Math.ceil(n / WG));
  }
}


/** out = alpha·a + beta·b. With alpha = beta = 1 it is the residual add; its backward passes dout to both. */
export function axpby(batch: Batch, a: Tensor, b: Tensor, out: Tensor, alpha = 1, beta = 1): void {
  binary(batch, 0, a, b, out, alpha, beta, 'axpby');
}

/** out = alpha·a·b. Backward: da = alpha·dout·b, db = alpha·dout·a, both calls of mul itself. */
export function mul(batch: Batch, a: Tensor, b: Tensor, out: Tensor, alpha = 1): void {
  binary(batch, 1, a, b, out, alpha, 0, 'mul');
}

/** y = alpha·x + beta. Backward: dx = alpha·dy. */
export function affine(batch: Batch, x: Tensor, y: Tensor, alpha: number, beta = 0): void {
  sameShape('affine', x, y);
  const rowElems = x.rowElems;
  for (let i = 0; i < x.chunks.length; i++) {
    const n = x.chunks[i].rows * rowElems;
    batch.dispatch(SHADERS.elementwise, 'unary', {}, [x.binding(i), y.binding(i), batch.uniform(params(n, alpha, beta))], Math.ceil(n / WG));
  }
}

/** Sets every element of t to `value` (NaN included: tests poison outputs this way). */
export function fill(batch: Batch, t: Tensor, value: number): void {
  sameShape('fill', t);
  const rowElems = t.rowElems;
  for (let i = 0; i < t.chunks.length; i++) {
    const n = t.chunks[i].rows * rowElems;
    batch.dispatch(SHADERS.elementwise, 'fill', {}, [t.binding(i), batch.uniform(params(n, value, 0))], Math.ceil(n / WG));
  }
}

/** acc ← beta·acc + alpha·src in place (gradient accumulation: alpha = beta = 1). */
export function accumulate(batch: Batch, acc: Tensor, src: Tensor, alpha = 1, beta = 1): void {
  sameShape('accumulate', acc, src);
  const rowElems = acc.rowElems;
  for (let i = 0; i < acc.chunks.length; i++) {
    const n = acc.chunks[i].rows * rowElems;
    batch.dispatch(SHADERS.elementwise, 'accumulate', {}, [acc.binding(i), src.binding(i), batch.uniform(params(n, alpha, beta))], Math.ceil(n / WG));
  }
}

/**
 * acc (..., m) += alpha·vec (m) on every row, in place: a linear layer's bias. Its backward for
 * the vector is a column sum of the gradient (a matmul with a row of ones).
 */
export function addRows(batch: Batch, acc: Tensor, vec: Tensor, alpha = 1): void {
  const m = vec.numel;
  if (acc.dtype !== 'f32' || vec.dtype !== 'f32') throw new ShapeError(`addRows takes f32 tensors; got ${acc.describe()} and ${vec.describe()}.`);
  if (acc.shape[acc.shape.length - 1] !== m || vec.isSplit) {
    throw new ShapeError(`addRows: the last dimension of ${acc.describe()} must equal the length of ${vec.describe()}, held in one buffer.`);
  }
  const rowElems = acc.rowElems;
  for (let i = 0; i < acc.chunks.length; i++) {
    const n = acc.chunks[i].rows * rowElems;
    if ((acc.chunks[i].rowStart * rowElems) % m !== 0) throw new ShapeError(`addRows: ${acc.describe()} is split inside a row of ${m}.`);
    batch.dispatch(SHADERS.elementwise, 'add_rows', {}, [acc.binding(i), vec.binding(), batch.uniform(params(n, alpha, 0, m))], Math.ceil(n / WG));
  }
}
