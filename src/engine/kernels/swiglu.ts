// Dispatcher of shaders/swiglu.wgsl: the SwiGLU gate of the Llama MLP, out = silu(gate) · up, and its
// backward. Elementwise over same-shaped f32 tensors, split ones included (same-shaped tensors are
// split the same way, so chunks pair one to one).

import type { Batch } from '../gpu/batch.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { dispatchPointwise } from './pointwise.ts';
import { SHADERS } from './shaders.ts';

/** Forward: out = silu(gate) · up over gate, up, out of one shape, e.g. (N, F). out is overwritten. */
export function swiglu(batch: Batch, gate: Tensor, up: Tensor, out: Tensor): void {
  dispatchPointwise(batch, SHADERS.swiglu, 'forward', 'swiglu', [gate, up], [out]);
}

/**
 * Backward given dout: dgate = dout · up · σ(gate)(1 + gate(1 − σ(gate))) and dup = dout · silu(gate),
 * both overwritten; all five tensors share one shape.
 */
export function swigluBackward(batch: Batch, gate: Tensor, up: Tensor, dout: Tensor, dgate: Tensor, dup: Tensor): void {
  dispatchPointwise(batch, SHADERS.swiglu, 'backward', 'swigluBackward', [gate, up, dout], [dgate, dup]);
}
