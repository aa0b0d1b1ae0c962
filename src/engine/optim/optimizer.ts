// The AdamW optimizer object the training loop drives: it owns the first and second moments of a
// list of trainable f32 tensors, the step count, and the (1) scalars of global gradient-norm
// clipping, and records one update into a caller's Batch (Σg² → clip coefficient → AdamW per
// tensor) with no readback. Its state leaves and enters as plain Float32Arrays for checkpoints.
// The kernels are kernels/adamw.ts; the learning rate of each step comes from the caller
// (schedule.ts computes it). It does not compute gradients or read the loss.

import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Gpu } from '../gpu/device.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, writeTensor } from '../gpu/tensor.ts';
import { adamw, clipCoefficient, gradNormSquared } from '../kernels/adamw.ts';
import { fill } from '../kernels/elementwise.ts';

/** A trainable tensor and the gradient buffer backward accumulates into (same shape, f32). */
export interface OptimizerParam {
  name: string;
  value: Tensor;
  grad: Tensor;
  /** This tensor's weight decay instead of the optimizer's (e.g. 0 for biases and norms). */
  weightDecay?: number;
}

export interface AdamWConfig {
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay. Default 0 (the Hugging Face Trainer's default). */
  weightDecay?: number;
  /**
   * Global L2 norm the gradients are clipped to, as torch.nn.utils.clip_grad_norm_. Default 1
   * (the Trainer's max_grad_norm). 0 or Infinity turns clipping off; the norm is still measured.
   */
  maxGradNorm?: number;
}

/** Optimizer state as plain arrays: what a checkpoint holds. */
export interface OptimizerState {
  /** Updates taken so far (the next update is step + 1). */
  step: number;
  /** Moments per tensor, in the optimizer's parameter order. */
  tensors: { name: string; m: Float32Array; v: Float32Array }[];
}

export class AdamWOptimizer {
  readonly gpu: Gpu;
  readonly params: readonly OptimizerParam[];
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number;
  /** Updates recorded so far; the update being recorded next is `step + 1`. */
  step = 0;
  /** (1) Σ g² over every gradient, after the last recorded update. */
  readonly sumsq: Tensor;
  /** (1) the clip coefficient the last update multiplied gradients by (1 without clipping). */
  readonly coef: Tensor;
  /** (1) the global gradient norm before clipping, of the last recorded update. */
  readonly norm: Tensor;
  private readonly m: Tensor[] = [];
  private readonly v: Tensor[] = [];
  private released = false;

  constructor(gpu: Gpu, params: readonly OptimizerParam[], config: AdamWConfig = {}) {
    this.gpu = gpu;
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.999;
    this.eps = config.eps ?? 1e-8;
    this.weightDecay = config.weightDecay ?? 0;
    this.maxGradNorm = config.maxGradNorm ?? 1;
    if (!(this.beta1 >= 0 && this.beta1 < 1)) throw new InvalidArgumentError(`AdamW beta1 must be in [0, 1); got ${this.beta1}.`);
    if (!(this.beta2 >= 0 && this.beta2 < 1)) throw new InvalidArgumentError(`AdamW beta2 must be in [0, 1); got ${this.beta2}.`);
    if (!(this.eps >= 0)) throw new InvalidArgumentError(`AdamW eps must be ≥ 0; got ${this.eps}.`);
    if (!(this.weightDecay >= 0)) throw new InvalidArgumentError(`Weight decay must be ≥ 0; got ${this.weightDecay}.`);
    if (!(this.maxGradNorm >= 0)) throw new InvalidArgumentError(`maxGradNorm must be ≥ 0 (0 turns clipping off); got ${this.maxGradNorm}.`);
    if (params.length === 0) throw new InvalidArgumentError('The optimizer needs at least one trainable tensor.');
    const names = new Set<string>();
    for (const p of params) {
      if (names.has(p.name)) throw new InvalidArgumentError(`Two trainable tensors are named "${p.name}".`);
      names.add(p.name);
      if (p.value.dtype !== 'f32' || p.grad.dtype !== 'f32') throw new ShapeError(`Trainable tensors and their gradients are f32; "${p.name}" is ${p.value.dtype}/${p.grad.dtype}.`);
      if (p.value.shape.length !== p.grad.shape.length || p.value.shape.some((d, i) => d !== p.grad.shape[i])) {
        throw new ShapeError(`"${p.name}": gradient ${p.grad.describe()} does not match ${p.value.describe()}.`);
      }
      if (p.weightDecay !== undefined && !(p.weightDecay >= 0)) throw new InvalidArgumentError(`"${p.name}": weight decay must be ≥ 0; got ${p.weightDecay}.`);
    }
    this.params = [...params];
    const owned: Tensor[] = [];
    try {
      for (const p of this.params) {
        const m = createTensor(gpu, p.value.shape, 'f32', { label: `${p.name}.exp_avg` });
        owned.push(m);
        const v = createTensor(gpu, p.value.shape, 'f32', { label: `${p.name}.exp_avg_sq` });
        owned.push(v);
        writeTensor(m, new Float32Array(m.numel));
        writeTensor(v, new Float32Array(v.numel));
        this.m.push(m);
        this.v.push(v);
      }
      this.sumsq = createTensor(gpu, [1], 'f32', { label: 'optim.sumsq' });
      owned.push(this.sumsq);
      this.coef = createTensor(gpu, [1], 'f32', { label: 'optim.coef' });
      owned.push(this.coef);
      this.norm = createTensor(gpu, [1], 'f32', { label: 'optim.norm' });
      owned.push(this.norm);
    } catch (e) {
      for (const t of owned) t.release();
      throw e;
    }
  }

  /** Whether updates clip the global gradient norm. */
  get clipping(): boolean {
    return this.maxGradNorm > 0 && Number.isFinite(this.maxGradNorm);
  }

  /** Bytes of GPU memory the optimizer state takes (moments and scalars). */
  get stateBytes(): number {
    return [...this.m, ...this.v].reduce((n, t) => n + t.byteLength, 0) + 12;
  }

  /** Records gradients ← 0 for every parameter (before the first backward of a step). */
  zeroGrad(b: Batch): void {
    this.assertLive();
    for (const p of this.params) fill(b, p.grad, 0);
  }

  /**
   * Records one update at learning rate `lr` into `b`: the global norm of the gradients, the clip
   * coefficient, then AdamW on every tensor with the clipped gradient. Advances `step` and returns
   * the step number of this update (1-based). The gradients are only read.
   */
  record(b: Batch, lr: number): number {
    this.assertLive();
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new InvalidArgumentError(`The learning rate must be a finite number ≥ 0; got ${lr}.`);
    const step = this.step + 1;
    gradNormSquared(b, this.params.map((p) => p.grad), this.sumsq);
    // clip_coef always measures the norm; without clipping the coefficient is then set to 1.
    clipCoefficient(b, this.sumsq, this.clipping ? this.maxGradNorm : 1, this.coef, this.norm);
    if (!this.clipping) fill(b, this.coef, 1);
    this.params.forEach((p, i) => {
      adamw(b, p.value, p.grad, this.m[i], this.v[i], this.coef, {
        lr,
        step,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: p.weightDecay ?? this.weightDecay,
      });
    });
    this.step = step;
    return step;
  }

  /** Reads the moments back (after the GPU finishes what was submitted). */
  async exportState(): Promise<OptimizerState> {
    this.assertLive();
    const tensors: OptimizerState['tensors'] = [];
    for (let i = 0; i < this.params.length; i++) {
      tensors.push({
        name: this.params[i].name,
        m: await readTensor(this.m[i] as Tensor & { dtype: 'f32' }),
        v: await readTensor(this.v[i] as Tensor & { dtype: 'f32' }),
      });
    }
    return { step: this.step, tensors };
  }

  /**
   * Restores moments and step count saved by exportState. The tensors must be the same names, in
   * the same order, with the same element counts; anything else is an InvalidArgumentError.
   */
  importState(state: OptimizerState): void {
    this.assertLive();
    if (!Number.isInteger(state.step) || state.step < 0) throw new InvalidArgumentError(`Optimizer state has an invalid step ${state.step}.`);
    if (state.tensors.length !== this.params.length) {
      throw new InvalidArgumentError(`Optimizer state holds ${state.tensors.length} tensors; this optimizer trains ${this.params.length}.`, {
        hint: 'The checkpoint belongs to a different adapter configuration.',
      });
    }
    state.tensors.forEach((t, i) => {
      const p = this.params[i];
      if (t.name !== p.name) throw new InvalidArgumentError(`Optimizer state tensor ${i} is "${t.name}"; expected "${p.name}".`);
      if (t.m.length !== p.value.numel || t.v.length !== p.value.numel) {
        throw new InvalidArgumentError(`Optimizer state of "${p.name}" has ${t.m.length}/${t.v.length} values; the tensor has ${p.value.numel}.`);
      }
    });
    state.tensors.forEach((t, i) => {
      writeTensor(this.m[i], t.m);
      writeTensor(this.v[i], t.v);
    });
    this.step = state.step;
  }

  /** Frees the moments and scalars (not the parameters or gradients, which the caller owns). */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of [...this.m, ...this.v, this.sumsq, this.coef, this.norm]) t.release();
  }

  private assertLive(): void {
    if (this.released) throw new InvalidArgumentError('The optimizer was released.');
  }
}
