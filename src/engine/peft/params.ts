// The trainable-parameter bookkeeping every tuning method's adapter shares: a list of named f32
// values with a gradient buffer each, their counts and bytes, tape leaves, zeroing the gradients,
// releasing the buffers once, and refusing use after release. It knows nothing of what the
// parameters mean; each method's model.ts builds them and applies them to the model.

import type { Tape, Var } from '../autograd/tape.ts';
import { Batch } from '../gpu/batch.ts';
import type { Gpu } from '../gpu/device.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { InvalidArgumentError } from '../errors.ts';
import { fill } from '../kernels/elementwise.ts';

/** One trainable tensor of an adapter: its name in the saved files, its value and its gradient (same shape, f32). */
export interface TrainableParam {
  name: string;
  value: Tensor;
  grad: Tensor;
}

/** A trainable parameter named `name`, its value uploaded from `data` (f32, `shape`), its gradient buffer allocated (not zeroed). */
export function uploadParam(gpu: Gpu, name: string, data: Float32Array, shape: number[]): TrainableParam {
  const value = tensorFromArray(gpu, data, shape, 'f32', { label: name });
  try {
    return { name, value, grad: createTensor(gpu, shape, 'f32', { label: `${name}.grad` }) };
  } catch (e) {
    value.release();
    throw e;
  }
}

/** Parameters with gradient buffers, owned by one adapter, and what every adapter does with them. */
export abstract class AdapterParams<P extends TrainableParam = TrainableParam> {
  /** The trainable parameters, in the order the method lists them. */
  readonly params: P[] = [];
  /** leaves() gives gradient buffers by default when true. */
  abstract training: boolean;
  /** How released-use errors name the adapter, e.g. "The LoRA adapter". */
  private readonly what: string;
  private released = false;

  constructor(what: string) {
    this.what = what;
  }

  /** Trainable values in all. */
  get parameterCount(): number {
    return this.params.reduce((n, p) => n + p.value.numel, 0);
  }

  /** Bytes of GPU memory the parameters and their gradients take. */
  get parameterBytes(): number {
    return this.params.reduce((n, p) => n + p.value.byteLength + p.grad.byteLength, 0);
  }

  /**
   * A leaf for every parameter, by name: with its gradient buffer (gradients accumulate into it)
   * when `requiresGrad`, which defaults to `training`; plain leaves otherwise.
   */
  leaves(tape: Tape, requiresGrad = this.training): Map<string, Var> {
    this.assertLive();
    return new Map(this.params.map((p) => [p.name, requiresGrad ? tape.leaf(p.value, { grad: p.grad, name: p.name }) : tape.leaf(p.value, { name: p.name })]));
  }

  /** Sets every gradient buffer to 0 (recorded in `b`). */
  zeroGrads(b: Batch): void {
    this.assertLive();
    for (const p of this.params) fill(b, p.grad, 0);
  }

  /** Frees the values and gradients (and what releaseOthers() frees). The adapter cannot be used afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const p of this.params) {
      p.value.release();
      p.grad.release();
    }
    this.releaseOthers();
  }

  assertLive(): void {
    if (this.released) throw new InvalidArgumentError(`${this.what} was released.`);
  }

  /** GPU buffers the adapter owns besides its parameters, freed once by release(). */
  protected releaseOthers(): void {}

  /**
   * Runs `build` (which pushes the parameters and may record work in `b`), zeroes the gradients in
   * the same batch `b` (labelled `label`) and submits it; on failure releases everything and rethrows.
   */
  protected buildParams(gpu: Gpu, label: string, build: (b: Batch) => void): void {
    const b = new Batch(gpu, label);
    try {
      build(b);
      this.zeroGrads(b);
      b.submit();
    } catch (e) {
      this.release();
      throw e;
    }
  }
}
