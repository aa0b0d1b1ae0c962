// Dispatcher of shaders/adamw.wgsl: the AdamW step of torch.optim.AdamW in place on f32 parameter
// and state tensors, and global gradient-norm clipping that stays on the GPU (Σg², then the clip
// coefficient the step multiplies gradients by). No readback here; the training loop reads the
// norm tensor asynchronously if it logs it. Schedules and state bookkeeping live in optim/.

import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Tensor, createTensor } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

const WG = 256;
/** At most this many first-level workgroups (partial sums) per buffer of a gradient in gradNormSquared. */
const MAX_PARTIALS = 256;
/** Elements each thread sums at least before another workgroup is added. */
const PER_THREAD = 4;

export interface AdamWOptions {
  lr: number;
  /** 1-based step count of this update (torch's state['step'] after its increment). */
  step: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, default 0.01 (torch's AdamW default). */
  weightDecay?: number;
}

/**
 * One AdamW step, as torch.optim.AdamW (amsgrad and maximize off), in place on param, m and v:
 * p ← p·(1 − lr·wd); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
 * p ← p − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps), with g = grad · coef[0].
 *
 * param, grad, m, v: f32 tensors of one shape (any; split tensors pair chunk by chunk). grad is
 * only read. coef: (1) f32, the clip coefficient from clipCoefficient, or 1 when not clipping.
 */
export function adamw(batch: Batch, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, coef: Tensor, opts: AdamWOptions): void {
  for (const t of [param, grad, m, v]) {
    if (t.dtype !== 'f32') throw new ShapeError(`adamw takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
    if (t.shape.length !== param.shape.length || t.shape.some((d, i) => d !== param.shape[i])) {
      throw new ShapeError(`adamw: param, grad, m and v must have one shape; got ${[param, grad, m, v].map((x) => x.describe()).join(', ')}.`);
    }
  }
  checkScalar('adamw', 'coef', coef);
  const beta1 = opts.beta1 ?? 0.9;
  const beta2 = opts.beta2 ?? 0.999;
  const eps = opts.eps ?? 1e-8;
  const wd = opts.weightDecay ?? 0.01;
  const { lr, step } = opts;
  if (!(lr >= 0)) throw new InvalidArgumentError(`adamw: invalid learning rate ${lr}.`);
  if (!(eps >= 0)) throw new InvalidArgumentError(`adamw: invalid eps ${eps}.`);
  if (!(beta1 >= 0 && beta1 < 1)) throw new InvalidArgumentError(`adamw: invalid beta1 ${beta1}; it must be in [0, 1).`);
  if (!(beta2 >= 0 && beta2 < 1)) throw new InvalidArgumentError(`adamw: invalid beta2 ${beta2}; it must be in [0, 1).`);
  if (!(wd >= 0)) throw new InvalidArgumentError(`adamw: invalid weight decay ${wd}.`);
  if (!Number.isInteger(step) || step < 1) throw new InvalidArgumentError(`adamw: step must be an integer ≥ 1 (the first update is step 1); got ${step}.`);

  // Scalars are formed in float64 and rounded once to f32, as torch does with Python floats.
  const params = new Uint32Array(12);
  const f = new Float32Array(params.buffer);
  f[1] = 1 - lr * wd;
  f[2] = beta1;
  f[3] = beta2;
  f[4] = 1 - beta1;
  f[5] = 1 - beta2;
  f[6] = lr / (1 - beta1 ** step);
  f[7] = Math.sqrt(1 - beta2 ** step);
  f[8] = eps;
  const rowElems = param.rowElems;
  for (let i = 0; i < param.chunks.length; i++) {
    const n = param.chunks[i].rows * rowElems;
    params[0] = n;
    batch.dispatch(
      SHADERS.adamw,
      'adamw_step',
      {},
      [param.binding(i), grad.binding(i), m.binding(i), v.binding(i), coef.binding(), batch.uniform(params)],
      Math.ceil(n / WG),
    );
  }
}

export interface GradNormOptions {
  /** Add to sumsq instead of overwriting it (gradients passed over several calls). */
  accumulate?: boolean;
}

/**
 * sumsq[0] ← Σ over all `grads` of Σ g² (or += with `accumulate`). grads: f32 tensors of any
 * shapes, split or not; sumsq: (1) f32. A deterministic two-level reduction: fixed per-workgroup
 * partial sums into a transient buffer, then one workgroup sums those.
 */
export function gradNormSquared(batch: Batch, grads: readonly Tensor[], sumsq: Tensor, opts: GradNormOptions = {}): void {
  checkScalar('gradNormSquared', 'sumsq', sumsq);
  // Partial sums are laid out so that no tensor chunk's run of partials straddles two buffers of
  // the partials tensor (whose buffers hold `cap` values each); used[j] counts buffer j's values.
  const cap = Math.floor(sumsq.gpu.maxBindingBytes / 4);
  const plan: { t: Tensor; chunk: number; n: number; groups: number; base: number }[] = [];
  const used: number[] = [];
  let pos = 0;
  for (const t of grads) {
    if (t.dtype !== 'f32') throw new ShapeError(`gradNormSquared takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
    for (let i = 0; i < t.chunks.length; i++) {
      const n = t.chunks[i].rows * t.rowElems;
      if (n === 0) continue;
      const groups = Math.min(MAX_PARTIALS, cap, Math.ceil(n / (WG * PER_THREAD)));
      if ((pos % cap) + groups > cap) pos = Math.ceil(pos / cap) * cap;
      plan.push({ t, chunk: i, n, groups, base: pos });
      pos += groups;
      used[Math.floor((pos - 1) / cap)] = ((pos - 1) % cap) + 1;
    }
  }
  const partials = createTensor(sumsq.gpu, [pos], 'f32', { transient: true, label: 'gradnorm.partials' }); // (pos)
  for (const p of plan) {
    const j = Math.floor(p.base / cap);
    const params = new Uint32Array([p.n, p.base - j * cap, 0, 0]);
    batch.dispatch(SHADERS.adamw, 'sumsq_partial', {}, [p.t.binding(p.chunk), partials.binding(j), batch.uniform(params)], [p.groups, 1, 1]);
  }
  if (used.length === 0) used.push(0);
  for (let j = 0; j < used.length; j++) {
    const accumulate = Boolean(opts.accumulate) || j > 0;
    const params = new Uint32Array([used[j], accumulate ? 1 : 0, 0, 0]);
    batch.dispatch(SHADERS.adamw, 'sumsq_final', {}, [partials.binding(j), sumsq.binding(), batch.uniform(params)], 1);
  }
  partials.release();
}

/**
 * norm[0] ← sqrt(sumsq[0]) and coef[0] ← min(1, maxNorm / (norm + 1e-6)): the total norm that
 * torch.nn.utils.clip_grad_norm_ returns and the factor it scales gradients by. All (1) f32,
 * three distinct tensors.
 */
export function clipCoefficient(batch: Batch, sumsq: Tensor, maxNorm: number, coef: Tensor, norm: Tensor): void {
  checkScalar('clipCoefficient', 'sumsq', sumsq);
  checkScalar('clipCoefficient', 'coef', coef);
  checkScalar('clipCoefficient', 'norm', norm);
  if (!(maxNorm > 0)) throw new InvalidArgumentError(`clipCoefficient: maxNorm must be positive; got ${maxNorm}.`);
  if (new Set([sumsq.buffer, coef.buffer, norm.buffer]).size !== 3) {
    throw new InvalidArgumentError('clipCoefficient: sumsq, coef and norm must be three different tensors.');
  }
  const params = new Float32Array([maxNorm, 0, 0, 0]);
  batch.dispatch(SHADERS.adamw, 'clip_coef', {}, [sumsq.binding(), coef.binding(), norm.binding(), batch.uniform(params)], 1);
}

function checkScalar(op: string, name: string, t: Tensor): void {
  if (t.dtype !== 'f32' || t.numel !== 1 || t.shape.length > 1) {
    throw new ShapeError(`${op}: ${name} must be a (1) f32 tensor; got ${t.describe()}.`);
  }
}
