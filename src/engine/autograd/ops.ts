// Differentiable ops and their backward rules, side by side: every rule the tape runs is in this
// file. Each op runs its forward kernels into fresh transient tensors, and records a rule that
// computes the gradients of the inputs that need one (frozen inputs get none).

import type { Batch } from '../gpu/batch.ts';
import { type Tensor, createTensor } from '../gpu/tensor.ts';
import { affine, axpby, mul as mulKernel } from '../kernels/elementwise.ts';
import { matmul, matmulOutShape } from '../kernels/matmul.ts';
import type { Tape, Var } from './tape.ts';

/** A transient f32 tensor from the pool. */
export function scratch(b: Batch, shape: readonly number[], label?: string): Tensor {
  return createTensor(b.gpu, shape, 'f32', { transient: true, label });
}

/** y = x · Wᵀ (+ scale folded in): x (N, K), W (M, K) in nn.Linear layout → y (N, M). */
export function linear(tape: Tape, b: Batch, x: Var, w: Var, scale = 1): Var {
  const y = scratch(b, matmulOutShape(x.value.shape, w.value.shape, { transB: true }), 'linear'); // (N, M)
  matmul(b, x.value, w.value, y, { transB: true, alpha: scale });
  return tape.record('linear', [x, w], [y], [], (bb, [dy], needs) => {
    const [N, K] = x.value.shape;
    const M = w.value.shape[0];
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    if (needs[0]) {
      dx = scratch(bb, [N, K], 'linear.dx'); // dX = dY · W
      matmul(bb, dy!, w.value, dx, { transB: false, alpha: scale });
    }
    if (needs[1]) {
      dw = scratch(bb, [M, K], 'linear.dw'); // dW = dYᵀ · X
      matmul(bb, dy!, x.value, dw, { transA: true, transB: false, alpha: scale });
    }
    return [dx, dw];
  })[0];
}

/** a + b (the residual add): both gradients are dout. */
export function add(tape: Tape, b: Batch, x: Var, y: Var): Var {
  const out = scratch(b, x.value.shape, 'add');
  axpby(b, x.value, y.value, out);
  return tape.record('add', [x, y], [out], [], (bb, [d], needs) => needs.map((n) => (n ? copy(bb, d!) : null)))[0];
}

/** a ⊙ b elementwise. */
export function mul(tape: Tape, b: Batch, x: Var, y: Var): Var {
  const out = scratch(b, x.value.shape, 'mul');
  mulKernel(b, x.value, y.value, out);
  return tape.record('mul', [x, y], [out], [], (bb, [d], needs) => {
    const dx = needs[0] ? scratch(bb, x.value.shape) : null;
    const dy = needs[1] ? scratch(bb, y.value.shape) : null;
    if (dx) mulKernel(bb, d!, y.value, dx);
    if (dy) mulKernel(bb, d!, x.value, dy);
    return [dx, dy];
  })[0];
}

function copy(b: Batch, t: Tensor): Tensor {
  const out = scratch(b, t.shape);
  affine(b, t, out, 1, 0);
  return out;
}
