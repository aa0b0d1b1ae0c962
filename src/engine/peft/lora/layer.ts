// The LoRA op on the autograd tape: the term scale · dropout(x) · Aᵀ · Bᵀ that LoRA adds to a
// frozen projection's output (PEFT's `lora_B(lora_A(dropout(x))) * scaling`), as two thin matmuls
// through the rank-r bottleneck, so B · A (out, in) is never formed. Dropout is the tape's seeded
// dropout op: its backward, and any recomputation of the forward, replay the mask from the seed.
// Which modules are adapted, and the parameters, live in model.ts.

import { dropout, linear } from '../../autograd/ops.ts';
import type { Tape, Var } from '../../autograd/tape.ts';
import { ShapeError } from '../../errors.ts';
import type { Batch } from '../../gpu/batch.ts';

export interface LoraTermOptions {
  /** The output scale (lora_alpha / r, or / sqrt(r) with rsLoRA, times any strength). */
  scale: number;
  /** Drop probability of the dropout on x; 0 (the default) applies none. */
  dropout?: number;
  /** Seed of the dropout mask (a u32); unused without dropout. */
  seed?: number;
}

/**
 * scale · dropout(x) · Aᵀ · Bᵀ for x (N, in), A (r, in), B (out, r) → (N, out). Gradients reach
 * x, A and B as the tape needs them: dA = (scale · dY · B)ᵀ · dropout(x), dB = scale · dYᵀ · (dropout(x) · Aᵀ).
 */
export function loraTerm(tape: Tape, b: Batch, x: Var, A: Var, B: Var, options: LoraTermOptions): Var {
  const inFeatures = x.value.shape[1];
  const [r, inA] = A.value.shape;
  const rB = B.value.shape[1];
  if (x.value.shape.length !== 2 || A.value.shape.length !== 2 || B.value.shape.length !== 2 || inA !== inFeatures || rB !== r) {
    throw new ShapeError(`LoRA: x ${x.value.describe()}, A ${A.value.describe()} and B ${B.value.describe()} must be (N, in), (r, in) and (out, r).`);
  }
  const p = options.dropout ?? 0;
  const xd = dropout(tape, b, x, p, options.seed ?? 0); // (N, in)
  const u = linear(tape, b, xd, A); // (N, r)
  return linear(tape, b, u, B, options.scale); // (N, out)
}
