// Dispatch of pointwise kernels (swiglu, tanh) over same-shaped f32 tensors, split ones included:
// same-shaped tensors are split the same way, so chunks pair one to one and each chunk pair is one
// dispatch of one thread per element (workgroups of 256) with the element count as its uniform.

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { ShaderSource } from '../gpu/pipelines.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 256;

/** Throws a ShapeError unless every tensor is f32 of one shape and one split, and no output is also another operand. */
export function checkPointwise(op: string, inputs: Tensor[], outputs: Tensor[]): void {
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

/**
 * Checks the operands, then runs `entry` of `shader` once per chunk with the bindings inputs, then
 * outputs, then the uniform (n, 0, 0, 0), n being the chunk's element count.
 */
export function dispatchPointwise(batch: Batch, shader: ShaderSource, entry: string, op: string, inputs: Tensor[], outputs: Tensor[]): void {
  checkPointwise(op, inputs, outputs);
  const [first] = inputs;
  for (let i = 0; i < first.chunks.length; i++) {
    const n = first.chunks[i].rows * first.rowElems;
    const bindings = [...inputs, ...outputs].map((t) => t.binding(i));
    batch.dispatch(shader, entry, {}, [...bindings, batch.uniform(Uint32Array.of(n, 0, 0, 0))], Math.ceil(n / WG));
  }
}
