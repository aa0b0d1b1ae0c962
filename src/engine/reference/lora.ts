// Float64 reference of LoRA as PEFT computes it (peft/tuners/lora/layer.py): the adapter term
// scale · dropout(x) · Aᵀ · Bᵀ added to a projection's output, its backward (dx, dA, dB) with the
// dropout mask replayed from the seed (the same hash as shaders/dropout.wgsl), and merging,
// W + scale · B · A, for whole-model checks through reference/llama.ts. Not used by the engine.

import { dropoutMask } from './dropout.ts';
import type { LlamaRefParams } from './llama.ts';
import { matmul } from './matmul.ts';

/** Sizes of one adapted projection: N rows of x, in and out features, rank r. */
export interface LoraDims {
  N: number;
  inFeatures: number;
  outFeatures: number;
  r: number;
}

/** Inverted dropout on x before A: drop probability p and the seed of its keep mask. */
export interface LoraDropout {
  p: number;
  seed: number;
}

/** x (N, in) after dropout: x / (1 − p) where the mask keeps an element, 0 elsewhere; x itself without dropout. */
function dropped(x: ArrayLike<number>, n: number, dropout: LoraDropout | null): Float64Array {
  if (!dropout || dropout.p === 0) return Float64Array.from(x);
  const mask = dropoutMask(dropout.seed, n, dropout.p);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mask[i] ? x[i] / (1 - dropout.p) : 0;
  return out;
}

/**
 * The LoRA term of one projection: y = scale · dropout(x) · Aᵀ · Bᵀ for x (N, in), A (r, in),
 * B (out, r) → y (N, out). Also returns dropout(x) (N, in) and u = dropout(x) · Aᵀ (N, r).
 */
export function loraForward(
  x: ArrayLike<number>,
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  d: LoraDims,
  scale: number,
  dropout: LoraDropout | null = null,
): { y: Float64Array; xd: Float64Array; u: Float64Array } {
  const xd = dropped(x, d.N * d.inFeatures, dropout); // (N, in)
  const u = matmul(xd, A, { M: d.N, N: d.r, K: d.inFeatures, transB: true }); // (N, r)
  const y = matmul(u, B, { M: d.N, N: d.outFeatures, K: d.r, transB: true, alpha: scale }); // (N, out)
  return { y, xd, u };
}

/**
 * Backward of loraForward for the gradient dy (N, out) of y: du = scale · dy · B (N, r),
 * dB = scale · dyᵀ · u (out, r), dA = duᵀ · dropout(x) (r, in), dx = dropout'(du · A) (N, in)
 * (the same mask, the same 1 / (1 − p)).
 */
export function loraBackward(
  x: ArrayLike<number>,
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  dy: ArrayLike<number>,
  d: LoraDims,
  scale: number,
  dropout: LoraDropout | null = null,
): { dx: Float64Array; dA: Float64Array; dB: Float64Array } {
  const { xd, u } = loraForward(x, A, B, d, scale, dropout);
  const du = matmul(dy, B, { M: d.N, N: d.r, K: d.outFeatures, transB: false, alpha: scale }); // (N, r)
  const dB = matmul(dy, u, { M: d.outFeatures, N: d.r, K: d.N, transA: true, transB: false, alpha: scale }); // (out, r)
  const dA = matmul(du, xd, { M: d.r, N: d.inFeatures, K: d.N, transA: true, transB: false }); // (r, in)
  const dxd = matmul(du, A, { M: d.N, N: d.inFeatures, K: d.r, transB: false }); // (N, in)
  const dx = dropped(dxd, d.N * d.inFeatures, dropout); // (N, in)
  return { dx, dA, dB };
}

/** W + scale · B · A for W (out, in), B (out, r), A (r, in): PEFT's merge. */
export function mergeLoraWeight(W: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, d: Omit<LoraDims, 'N'>, scale: number): Float64Array {
  const delta = matmul(B, A, { M: d.outFeatures, N: d.inFeatures, K: d.r, transB: false, alpha: scale }); // (out, in)
  return delta.map((v, i) => W[i] + v);
}

/** One adapted module for mergedLlamaParams: its path, factors and scale. */
export interface LoraRefModule {
  /** e.g. "model.layers.0.self_attn.q_proj". */
  path: string;
  A: ArrayLike<number>; // (r, in)
  B: ArrayLike<number>; // (out, r)
  r: number;
  scale: number;
}

/**
 * The model's parameters with every adapted projection merged (`<path>.weight` + scale · B · A):
 * without dropout, reference/llama.ts on these gives what the base model plus the adapter computes.
 */
export function mergedLlamaParams(params: LlamaRefParams, modules: readonly LoraRefModule[]): LlamaRefParams {
  const out: LlamaRefParams = { ...params };
  for (const m of modules) {
    const name = `${m.path}.weight`;
    const W = params[name];
    if (!W) throw new Error(`mergedLlamaParams: no parameter ${name}`);
    const inFeatures = m.A.length / m.r;
    const outFeatures = m.B.length / m.r;
    if (!Number.isInteger(inFeatures) || !Number.isInteger(outFeatures) || inFeatures * outFeatures !== W.length) {
      throw new Error(`mergedLlamaParams: ${m.path}: A (${m.A.length}) and B (${m.B.length}) do not fit r=${m.r} and W (${W.length})`);
    }
    out[name] = mergeLoraWeight(W, m.A, m.B, { inFeatures, outFeatures, r: m.r }, m.scale);
  }
  return out;
}
