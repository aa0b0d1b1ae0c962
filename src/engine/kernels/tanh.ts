// Dispatcher of shaders/tanh.wgsl: out = tanh(x) and its backward dx = dout · (1 − tanh²(x)),
// elementwise over same-shaped f32 tensors, split ones included (same-shaped tensors are split the
// same way, so chunks pair one to one). Prefix tuning's projection uses it between its two Linears.

import type { Batch } from '../gpu/batch.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { dispatchPointwise } from './pointwise.ts';
import { SHADERS } from './shaders.ts';

/** Forward: out = tanh(x) over x and out of one shape. out is overwritten. */
export function tanh(batch: Batch, x: Tensor, out: Tensor): void {
  dispatchPointwise(batch, SHADERS.tanh, 'forward', 'tanh', [x], [out]);
}

/** Backward given dout: dx = dout · (1 − tanh²(x)), overwritten; x, dout and dx share one shape. */
export function tanhBackward(batch: Batch, x: Tensor, dout: Tensor, dx: Tensor): void {
  dispatchPointwise(batch, SHADERS.tanh, 'backward', 'tanhBackward', [x, dout], [dx]);
}
