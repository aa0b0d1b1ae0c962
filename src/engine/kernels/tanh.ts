// Dispatcher of shaders/tanh.wgsl: out = tanh(x) and its backward dx = dout · (1 − tanh²(x)),
// elementwise over same-shaped f32 tensors, split ones included (same-shaped tensors are split the
// same way, so chunks pair one to one). Prefix tuning's projection uses it between its two Linears.

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

const WG = 256;

function check(op: string, inputs: Tensor[], outputs: Tensor[]): void {
  const all = [...inputs, ...outputs];
  const [first] = all;
  for (const t of all) {
    if (t.dtype !== 'f32') throw new ShapeError(`${op} takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
    if (t.shape.length !== first.shape.length || t.shape.some((d, i) => d !== first.shape[i]) || t.chunks.length !== first.chunks.length) {
      throw new ShapeError(`${op}: shapes differ: ${all.map((x) => x.describe()).join(' vs ')}.`);
    }
  }
  for (const o of outputs) {
    if (all.filter((t) => t === o).length > 1) throw new ShapeError(`${op}: output ${o.describe()} is also passed as another operand; give it its own tensor.`);
  }
}

function params(n: number): Uint32Array {
  return Uint32Array.of(n, 0, 0, 0);
}

/** Forward: out = tanh(x) over x and out of one shape. out is overwritten. */
export function tanh(batch: Batch, x: Tensor, out: Tensor): void {
  check('tanh', [x], [out]);
  const rowElems = x.rowElems;
  for (let i = 0; i < x.chunks.length; i++) {
    const n = x.chunks[i].rows * rowElems;
    batch.dispatch(SHADERS.tanh, 'forward', {}, [x.binding(i), out.binding(i), batch.uniform(params(n))], Math.ceil(n / WG));
  }
}

/** Backward given dout: dx = dout · (1 − tanh²(x)), overwritten; x, dout and dx share one shape. */
export function tanhBackward(batch: Batch, x: Tensor, dout: Tensor, dx: Tensor): void {
  check('tanhBackward', [x, dout], [dx]);
  const rowElems = x.rowElems;
  for (let i = 0; i < x.chunks.length; i++) {
    const n = x.chunks[i].rows * rowElems;
    batch.dispatch(SHADERS.tanh, 'backward', {}, [x.binding(i), dout.binding(i), dx.binding(i), batch.uniform(params(n))], Math.ceil(n / WG));
  }
}
