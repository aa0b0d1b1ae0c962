// Dispatcher of shaders/swiglu.wgsl: the SwiGLU gate of the Llama MLP, out = silu(gate) · up, and its
// backward. Elementwise over same-shaped f32 tensors, split ones included (same-shaped tensors are
// split the same way, so chunks pair one to one).

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

/** Forward: out = silu(gate) · up over gate, up, out of one shape, e.g. (N, F). out is overwritten. */
export function swiglu(batch: Batch, gate: Tensor, up: Tensor, out: Tensor): void {
  check('swiglu', [gate, up], [out]);
  const rowElems = gate.rowElems;
  for (let i = 0; i < gate.chunks.length; i++) {
    const n = gate.chunks[i].rows * rowElems;
    batch.dispatch(SHADERS.swiglu, 'forward', {}, [gate.binding(i), up.binding(i), out.binding(i), batch.uniform(params(n))], Math.ceil(n / WG));
  }
}

/**
 * Backward given dout: dgate = dout · up · σ(gate)(1 + gate(1 − σ(gate))) and dup = dout · silu(gate),
 * both overwritten; all five tensors share one shape.
 */
export function swigluBackward(batch: Batch, gate: Tensor, up: Tensor, dout: Tensor, dgate: Tensor, dup: Tensor): void {
  check('swigluBackward', [gate, up, dout], [dgate, dup]);
  const rowElems = gate.rowElems;
  for (let i = 0; i < gate.chunks.length; i++) {
    const n = gate.chunks[i].rows * rowElems;
    batch.dispatch(
      SHADERS.swiglu,
      'backward',
      {},
      [gate.binding(i), up.binding(i), dout.binding(i), dgate.binding(i), dup.binding(i), batch.uniform(params(n))],
      Math.ceil(n / WG),
    );
  }
}
