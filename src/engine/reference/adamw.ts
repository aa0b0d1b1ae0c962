// Float64 reference of the adamw family (shaders/adamw.wgsl): one step of torch.optim.AdamW
// (amsgrad and maximize off) and global gradient-norm clipping with the semantics of
// torch.nn.utils.clip_grad_norm_ (L2 norm). The oracle its kernels are tested against; not the
// optimizer the training loop runs.

export interface AdamWHyper {
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0.01 (torch's AdamW default). */
  weightDecay?: number;
}

/** torch.optim.AdamW's defaults (lr has none here: the caller always sets it). */
export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } as const;

/**
 * One AdamW step at `step` (1-based: the first update is step 1), in place on param, m and v,
 * with the gradient multiplied by `gradScale` first (the clip coefficient):
 *   p ← p · (1 − lr·wd)
 *   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
 */
export function adamwStep(
  param: Float64Array,
  grad: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  step: number,
  hyper: AdamWHyper,
  gradScale = 1,
): void {
  const { lr } = hyper;
  const beta1 = hyper.beta1 ?? ADAMW_DEFAULTS.beta1;
  const beta2 = hyper.beta2 ?? ADAMW_DEFAULTS.beta2;
  const eps = hyper.eps ?? ADAMW_DEFAULTS.eps;
  const wd = hyper.weightDecay ?? ADAMW_DEFAULTS.weightDecay;
  const stepSize = lr / (1 - beta1 ** step);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i] * gradScale;
    param[i] *= 1 - lr * wd;
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    param[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
  }
}

/** Σ g² over every element of every gradient. */
export function gradNormSquared(grads: readonly ArrayLike<number>[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return s;
}

/** The factor clip_grad_norm_ multiplies gradients by: min(1, maxNorm / (norm + 1e-6)). */
export function clipCoefficient(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/**
 * torch.nn.utils.clip_grad_norm_(grads, maxNorm): scales every gradient in place by the clip
 * coefficient and returns the total L2 norm from before the scaling, with the coefficient.
 */
export function clipGradNorm(grads: Float64Array[], maxNorm: number): { norm: number; coef: number } {
  const norm = Math.sqrt(gradNormSquared(grads));
  const coef = clipCoefficient(norm, maxNorm);
  for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
  return { norm, coef };
}
