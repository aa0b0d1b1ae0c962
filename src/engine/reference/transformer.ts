// Float64 reference of a small Llama-style decoder: token embedding, blocks of [RMSNorm → q/k/v
// projections → RoPE → causal GQA attention → o_proj → residual → RMSNorm → gate/up → SwiGLU →
// down_proj → residual], a final RMSNorm, the lm_head and the mean cross-entropy over counted labels.
// The backward pass is written out by hand from the reference ops' own backward functions. It is the
// oracle GPU models are tested against, not a model the engine runs: parameters are plain arrays
// keyed by their Hugging Face names, and nothing here is fast. trainStep adds
// global-norm clipping and the AdamW update of reference/adamw.ts, for loss-curve comparisons.

import { type AdamWHyper, adamwStep, clipCoefficient, gradNormSquared } from './adamw.ts';
import { attentionBackward, attentionForward, type AttentionDims } from './attention.ts';
import { IGNORE_INDEX, countLabels, crossEntropy } from './cross_entropy.ts';
import { embedding, embeddingBackward } from './embedding.ts';
import { linearBackward, matmul } from './matmul.ts';
import { rmsnorm, rmsnormBackward } from './rmsnorm.ts';
import { rope, ropeBackward, ropeInvFreq } from './rope.ts';
import { swiglu, swigluBackward } from './swiglu.ts';
import { Rng } from '../random.ts';

export interface TransformerConfig {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  rmsEps: number;
  ropeTheta: number;
}

/** One batch of token rows, all (B·T), row-major. */
export interface TokenBatch {
  B: number;
  T: number;
  ids: Int32Array;
  /** Next-token targets; -100 where a token is not counted (padding, masked prompt). */
  labels: Int32Array;
  /** Segment id per token; negative for padding (see reference/attention.ts). */
  segments: Int32Array;
  /** Rotary position per token, restarting at 0 for every sequence. */
  positions: Int32Array;
}

export type Params = Record<string, Float64Array>;

export interface ParamSpec {
  name: string;
  shape: number[];
  /** What kind of tensor it is, for init and for tests that sample every kind. */
  kind: 'embedding' | 'norm' | 'linear';
}

/** Parameter names (Hugging Face Llama keys) and shapes, in a fixed order. */
export function paramSpecs(c: TransformerConfig): ParamSpec[] {
  const specs: ParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocab, c.hidden], kind: 'embedding' }];
  const qDim = c.heads * c.headDim;
  const kvDim = c.kvHeads * c.headDim;
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    specs.push(
      { name: `${p}input_layernorm.weight`, shape: [c.hidden], kind: 'norm' },
      { name: `${p}self_attn.q_proj.weight`, shape: [qDim, c.hidden], kind: 'linear' },
      { name: `${p}self_attn.k_proj.weight`, shape: [kvDim, c.hidden], kind: 'linear' },
      { name: `${p}self_attn.v_proj.weight`, shape: [kvDim, c.hidden], kind: 'linear' },
      { name: `${p}self_attn.o_proj.weight`, shape: [c.hidden, qDim], kind: 'linear' },
      { name: `${p}post_attention_layernorm.weight`, shape: [c.hidden], kind: 'norm' },
      { name: `${p}mlp.gate_proj.weight`, shape: [c.intermediate, c.hidden], kind: 'linear' },
      { name: `${p}mlp.up_proj.weight`, shape: [c.intermediate, c.hidden], kind: 'linear' },
      { name: `${p}mlp.down_proj.weight`, shape: [c.hidden, c.intermediate], kind: 'linear' },
    );
  }
  specs.push({ name: 'model.norm.weight', shape: [c.hidden], kind: 'norm' }, { name: 'lm_head.weight', shape: [c.vocab, c.hidden], kind: 'linear' });
  return specs;
}

/**
 * Seeded random parameters, every value a float32 so that a GPU copy starts from exactly the same
 * point: embeddings N(0, 1), norm weights 1 + N(0, 0.1²), linear weights N(0, 1/fan_in).
 */
export function initParams(c: TransformerConfig, seed: number): Params {
  const rng = new Rng(seed);
  const params: Params = {};
  for (const s of paramSpecs(c)) {
    const n = s.shape.reduce((a, d) => a * d, 1);
    const std = s.kind === 'linear' ? 1 / Math.sqrt(s.shape[1]) : s.kind === 'norm' ? 0.1 : 1;
    const mean = s.kind === 'norm' ? 1 : 0;
    params[s.name] = Float64Array.from(rng.fill(n, (r) => mean + std * r.normal()));
  }
  return params;
}

/** What a block's forward keeps for its backward. */
interface BlockCache {
  x: Float64Array; // (N, C) block input
  y1: Float64Array; // (N, C) input_layernorm output
  qr: Float64Array; // (N, Hq·D) rotated queries
  kr: Float64Array; // (N, Hkv·D) rotated keys
  v: Float64Array; // (N, Hkv·D)
  att: Float64Array; // (N, Hq·D) attention output
  x2: Float64Array; // (N, C) after the attention residual
  y2: Float64Array; // (N, C) post_attention_layernorm output
  gate: Float64Array; // (N, F)
  up: Float64Array; // (N, F)
  act: Float64Array; // (N, F) silu(gate) · up
}

const add = (a: Float64Array, b: Float64Array): Float64Array => a.map((v, i) => v + b[i]);

/** x · Wᵀ for x (N, K) and W (M, K). */
const linear = (x: ArrayLike<number>, w: ArrayLike<number>, N: number, M: number, K: number) => matmul(x, w, { M: N, N: M, K, transB: true });

export interface LossAndGrads {
  loss: number;
  /** dloss/dparam for every parameter, keyed like the parameters. */
  grads: Params;
}

/**
 * A batch of right-padded rows: each row of token ids becomes one batch row of T tokens, padded with
 * `padId`. Labels are the next token of the same row (-100 at its last token and on padding),
 * segments 0 for tokens and -1 for padding, positions 0, 1, … along each row (0 on padding).
 */
export function batchFromRows(rows: readonly (readonly number[])[], T: number, padId: number): TokenBatch {
  const N = rows.length * T;
  const b: TokenBatch = {
    B: rows.length,
    T,
    ids: new Int32Array(N).fill(padId),
    labels: new Int32Array(N).fill(IGNORE_INDEX),
    segments: new Int32Array(N).fill(-1),
    positions: new Int32Array(N),
  };
  rows.forEach((row, r) => {
    if (row.length > T) throw new RangeError(`row ${r} has ${row.length} tokens, more than T = ${T}`);
    row.forEach((id, t) => {
      const n = r * T + t;
      b.ids[n] = id;
      b.segments[n] = 0;
      b.positions[n] = t;
      if (t + 1 < row.length) b.labels[n] = row[t + 1];
    });
  });
  return b;
}

/** The mean cross-entropy of the batch, without gradients. */
export function transformerLoss(c: TransformerConfig, p: Params, batch: TokenBatch): number {
  return run(c, p, batch, false).loss;
}

/** The mean cross-entropy of the batch and the gradient of every parameter. */
export function transformerLossAndGrads(c: TransformerConfig, p: Params, batch: TokenBatch): LossAndGrads {
  const { loss, grads } = run(c, p, batch, true);
  return { loss, grads: grads as Params };
}

function run(c: TransformerConfig, p: Params, batch: TokenBatch, backward: boolean): { loss: number; grads: Params | null } {
  const { vocab: V, hidden: C, heads: Hq, kvHeads: Hkv, headDim: D, intermediate: F, rmsEps: eps } = c;
  const N = batch.B * batch.T;
  const inv = ropeInvFreq(D, c.ropeTheta); // (D/2)
  const dims: AttentionDims = { B: batch.B, T: batch.T, Hq, Hkv, D };
  const { segments, positions } = batch;
  const count = countLabels(batch.labels);

  let x = embedding(p['model.embed_tokens.weight'], batch.ids, V, C); // (N, C)
  const caches: BlockCache[] = [];
  for (let l = 0; l < c.layers; l++) {
    const w = (n: string) => p[`model.layers.${l}.${n}.weight`];
    const y1 = rmsnorm(x, w('input_layernorm'), N, C, eps).y; // (N, C)
    const qr = rope(linear(y1, w('self_attn.q_proj'), N, Hq * D, C), positions, inv, N, Hq); // (N, Hq·D)
    const kr = rope(linear(y1, w('self_attn.k_proj'), N, Hkv * D, C), positions, inv, N, Hkv); // (N, Hkv·D)
    const v = linear(y1, w('self_attn.v_proj'), N, Hkv * D, C); // (N, Hkv·D)
    const att = attentionForward(qr, kr, v, segments, dims).out; // (N, Hq·D)
    const x2 = add(x, linear(att, w('self_attn.o_proj'), N, C, Hq * D)); // (N, C)
    const y2 = rmsnorm(x2, w('post_attention_layernorm'), N, C, eps).y; // (N, C)
    const gate = linear(y2, w('mlp.gate_proj'), N, F, C); // (N, F)
    const up = linear(y2, w('mlp.up_proj'), N, F, C); // (N, F)
    const act = swiglu(gate, up); // (N, F)
    caches.push({ x, y1, qr, kr, v, att, x2, y2, gate, up, act });
    x = add(x2, linear(act, w('mlp.down_proj'), N, C, F)); // (N, C)
  }
  const hf = rmsnorm(x, p['model.norm.weight'], N, C, eps).y; // (N, C)
  const head = crossEntropy(hf, p['lm_head.weight'], batch.labels, N, C, V, count);
  if (!backward) return { loss: head.loss, grads: null };

  const grads: Params = { 'lm_head.weight': head.dW };
  const fin = rmsnormBackward(x, p['model.norm.weight'], head.dh, N, C, eps);
  grads['model.norm.weight'] = fin.dw;
  let dx = fin.dx; // (N, C) gradient of the residual stream
  for (let l = c.layers - 1; l >= 0; l--) {
    const name = (n: string) => `model.layers.${l}.${n}.weight`;
    const w = (n: string) => p[name(n)];
    const k = caches[l];
    // MLP: x_out = x2 + down(swiglu(gate(y2), up(y2))), y2 = rmsnorm(x2).
    const down = linearBackward(k.act, w('mlp.down_proj'), dx, N, C, F);
    grads[name('mlp.down_proj')] = down.dw;
    const { dgate, dup } = swigluBackward(k.gate, k.up, down.dx);
    const g = linearBackward(k.y2, w('mlp.gate_proj'), dgate, N, F, C);
    const u = linearBackward(k.y2, w('mlp.up_proj'), dup, N, F, C);
    grads[name('mlp.gate_proj')] = g.dw;
    grads[name('mlp.up_proj')] = u.dw;
    const post = rmsnormBackward(k.x2, w('post_attention_layernorm'), add(g.dx, u.dx), N, C, eps);
    grads[name('post_attention_layernorm')] = post.dw;
    const dx2 = add(dx, post.dx); // (N, C)
    // Attention: x2 = x + o_proj(attn(rope(q(y1)), rope(k(y1)), v(y1))), y1 = rmsnorm(x).
    const o = linearBackward(k.att, w('self_attn.o_proj'), dx2, N, C, Hq * D);
    grads[name('self_attn.o_proj')] = o.dw;
    const a = attentionBackward(k.qr, k.kr, k.v, segments, o.dx, dims);
    const q = linearBackward(k.y1, w('self_attn.q_proj'), ropeBackward(a.dq, positions, inv, N, Hq), N, Hq * D, C);
    const kk = linearBackward(k.y1, w('self_attn.k_proj'), ropeBackward(a.dk, positions, inv, N, Hkv), N, Hkv * D, C);
    const vv = linearBackward(k.y1, w('self_attn.v_proj'), a.dv, N, Hkv * D, C);
    grads[name('self_attn.q_proj')] = q.dw;
    grads[name('self_attn.k_proj')] = kk.dw;
    grads[name('self_attn.v_proj')] = vv.dw;
    const inp = rmsnormBackward(k.x, w('input_layernorm'), add(add(q.dx, kk.dx), vv.dx), N, C, eps);
    grads[name('input_layernorm')] = inp.dw;
    dx = add(dx2, inp.dx);
  }
  grads['model.embed_tokens.weight'] = embeddingBackward(batch.ids, dx, V, C);
  return { loss: head.loss, grads };
}

/** AdamW's moments per parameter and the number of steps taken. */
export interface AdamWState {
  step: number;
  m: Params;
  v: Params;
}

export function adamwState(p: Params): AdamWState {
  const zeros = () => Object.fromEntries(Object.entries(p).map(([k, a]) => [k, new Float64Array(a.length)]));
  return { step: 0, m: zeros(), v: zeros() };
}

export interface TrainStepResult extends LossAndGrads {
  /** Global L2 norm of the gradients before clipping. */
  norm: number;
}

/**
 * One training step in place on `p` and `state`: loss and gradients at the current parameters,
 * clip_grad_norm_ to `maxNorm` over all gradients together, then AdamW. Returns the loss and the
 * unclipped gradients.
 */
export function trainStep(c: TransformerConfig, p: Params, state: AdamWState, batch: TokenBatch, hyper: AdamWHyper, maxNorm: number): TrainStepResult {
  const { loss, grads } = transformerLossAndGrads(c, p, batch);
  const norm = Math.sqrt(gradNormSquared(Object.values(grads)));
  const coef = clipCoefficient(norm, maxNorm);
  state.step++;
  for (const name of Object.keys(p)) adamwStep(p[name], grads[name], state.m[name], state.v[name], state.step, hyper, coef);
  return { loss, grads, norm };
}
