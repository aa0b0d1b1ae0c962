// Float64 reference of a Llama-family causal language model as Hugging Face transformers computes it
// (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM): q/k/v biases, an
// o_proj bias, Qwen3's per-head q/k RMSNorm before RoPE, llama3 RoPE scaling, GQA, a tied or untied
// lm_head, and the causal-LM loss (labels aligned with the input ids and shifted inside, -100
// ignored, mean over counted tokens). One sequence at a time, without padding or masks, so it is
// independent of how the GPU model batches rows. Forward only; the oracle GPU models are tested
// against, not a model the engine runs. Parameters are plain arrays keyed by their HF names.

import { Rng } from '../random.ts';
import { attentionForward } from './attention.ts';
import { IGNORE_INDEX, crossEntropyLogits } from './cross_entropy.ts';
import { embedding } from './embedding.ts';
import { bf16ToF32, f32ToBf16 } from './matmul_lowp.ts';
import { matmul } from './matmul.ts';
import { rmsnorm } from './rmsnorm.ts';
import { rope, ropeInvFreq } from './rope.ts';
import { swiglu } from './swiglu.ts';

/** The fields of the engine's ModelConfig (model/config.ts) the reference reads; a ModelConfig fits. */
export interface LlamaRefConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number } | null;
  tieWordEmbeddings: boolean;
  /** Biases on q_proj, k_proj, v_proj. */
  attentionBias: boolean;
  /** A bias on o_proj. */
  outputBias: boolean;
  /** Qwen3's q_norm and k_norm. */
  qkNorm: boolean;
}

export type LlamaRefParams = Record<string, Float64Array>;

export interface LlamaRefParamSpec {
  name: string;
  shape: number[];
  kind: 'embedding' | 'norm' | 'linear' | 'bias';
}

/** Every parameter of the model with its shape, in Hugging Face module order (no lm_head when tied). */
export function llamaParamSpecs(c: LlamaRefConfig): LlamaRefParamSpec[] {
  const C = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const F = c.intermediateSize;
  const specs: LlamaRefParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, C], kind: 'embedding' }];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    specs.push({ name: `${p}input_layernorm.weight`, shape: [C], kind: 'norm' });
    const proj = (n: string, rows: number, cols: number, bias: boolean) => {
      specs.push({ name: `${p}self_attn.${n}.weight`, shape: [rows, cols], kind: 'linear' });
      if (bias) specs.push({ name: `${p}self_attn.${n}.bias`, shape: [rows], kind: 'bias' });
    };
    proj('q_proj', q, C, c.attentionBias);
    proj('k_proj', kv, C, c.attentionBias);
    proj('v_proj', kv, C, c.attentionBias);
    proj('o_proj', C, q, c.outputBias);
    if (c.qkNorm) {
      specs.push({ name: `${p}self_attn.q_norm.weight`, shape: [c.headDim], kind: 'norm' });
      specs.push({ name: `${p}self_attn.k_norm.weight`, shape: [c.headDim], kind: 'norm' });
    }
    specs.push(
      { name: `${p}post_attention_layernorm.weight`, shape: [C], kind: 'norm' },
      { name: `${p}mlp.gate_proj.weight`, shape: [F, C], kind: 'linear' },
      { name: `${p}mlp.up_proj.weight`, shape: [F, C], kind: 'linear' },
      { name: `${p}mlp.down_proj.weight`, shape: [C, F], kind: 'linear' },
    );
  }
  specs.push({ name: 'model.norm.weight', shape: [C], kind: 'norm' });
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, C], kind: 'linear' });
  return specs;
}

/**
 * Seeded random parameters whose values are float32 (or, with `bf16: true`, bfloat16) numbers, so a
 * checkpoint written from them holds exactly these values: embeddings N(0, 1), norm weights
 * 1 + N(0, 0.1²), linear weights N(0, 1/fan_in), biases N(0, 0.1²).
 */
export function randomLlamaParams(c: LlamaRefConfig, seed: number, options: { bf16?: boolean } = {}): LlamaRefParams {
  const rng = new Rng(seed);
  const params: LlamaRefParams = {};
  for (const s of llamaParamSpecs(c)) {
    const n = s.shape.reduce((a, d) => a * d, 1);
    const std = s.kind === 'linear' ? 1 / Math.sqrt(s.shape[1]) : s.kind === 'embedding' ? 1 : 0.1;
    const mean = s.kind === 'norm' ? 1 : 0;
    const values = rng.fill(n, (r) => mean + std * r.normal());
    params[s.name] = Float64Array.from(values, (v) => (options.bf16 ? bf16ToF32(f32ToBf16(v)) : v));
  }
  return params;
}

/** The same parameters with every `*_proj.weight` rounded to bfloat16 (what a bf16-stored projection holds). */
export function roundProjectionsToBf16(p: LlamaRefParams): LlamaRefParams {
  const out: LlamaRefParams = {};
  for (const [name, v] of Object.entries(p)) out[name] = name.endsWith('_proj.weight') ? v.map((x) => bf16ToF32(f32ToBf16(x))) : v;
  return out;
}

/** x · Wᵀ (+ bias) for x (N, K), W (M, K). */
function linear(x: ArrayLike<number>, w: ArrayLike<number>, N: number, M: number, K: number, bias?: ArrayLike<number>): Float64Array {
  const y = matmul(x, w, { M: N, N: M, K, transB: true });
  if (bias) for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) y[n * M + m] += bias[m];
  return y;
}

const add = (a: Float64Array, b: Float64Array): Float64Array => a.map((v, i) => v + b[i]);

/** The llama3 scaling in the snake_case form ropeInvFreq reads. */
function ropeScaling(c: LlamaRefConfig) {
  const s = c.ropeScaling;
  if (!s) return null;
  return {
    rope_type: 'llama3',
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositionEmbeddings,
  };
}

/** The final hidden states (T, C) after model.norm for one sequence of token ids. */
export function llamaHidden(c: LlamaRefConfig, p: LlamaRefParams, ids: readonly number[]): Float64Array {
  const { vocabSize: V, hiddenSize: C, numAttentionHeads: Hq, numKeyValueHeads: Hkv, headDim: D, intermediateSize: F, rmsNormEps: eps } = c;
  const T = ids.length;
  const inv = ropeInvFreq(D, c.ropeTheta, ropeScaling(c)); // (D/2)
  const positions = Int32Array.from({ length: T }, (_, t) => t); // (T)
  const segments = new Int32Array(T); // (T) one sequence
  let x = embedding(p['model.embed_tokens.weight'], ids, V, C); // (T, C)
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const w = (n: string) => p[`model.layers.${l}.${n}`];
    const qkvBias = (n: string) => (c.attentionBias ? w(`self_attn.${n}.bias`) : undefined);
    const y1 = rmsnorm(x, w('input_layernorm.weight'), T, C, eps).y; // (T, C)
    let q = linear(y1, w('self_attn.q_proj.weight'), T, Hq * D, C, qkvBias('q_proj')); // (T, Hq·D)
    let k = linear(y1, w('self_attn.k_proj.weight'), T, Hkv * D, C, qkvBias('k_proj')); // (T, Hkv·D)
    const v = linear(y1, w('self_attn.v_proj.weight'), T, Hkv * D, C, qkvBias('v_proj')); // (T, Hkv·D)
    if (c.qkNorm) {
      q = rmsnorm(q, w('self_attn.q_norm.weight'), T * Hq, D, eps).y; // (T, Hq·D) per head
      k = rmsnorm(k, w('self_attn.k_norm.weight'), T * Hkv, D, eps).y; // (T, Hkv·D) per head
    }
    const qr = rope(q, positions, inv, T, Hq); // (T, Hq·D)
    const kr = rope(k, positions, inv, T, Hkv); // (T, Hkv·D)
    const att = attentionForward(qr, kr, v, segments, { B: 1, T, Hq, Hkv, D }).out; // (T, Hq·D)
    const x2 = add(x, linear(att, w('self_attn.o_proj.weight'), T, C, Hq * D, c.outputBias ? w('self_attn.o_proj.bias') : undefined)); // (T, C)
    const y2 = rmsnorm(x2, w('post_attention_layernorm.weight'), T, C, eps).y; // (T, C)
    const gate = linear(y2, w('mlp.gate_proj.weight'), T, F, C); // (T, F)
    const up = linear(y2, w('mlp.up_proj.weight'), T, F, C); // (T, F)
    x = add(x2, linear(swiglu(gate, up), w('mlp.down_proj.weight'), T, C, F)); // (T, C)
  }
  return rmsnorm(x, p['model.norm.weight'], T, C, eps).y; // (T, C)
}

/** The lm_head weight: lm_head.weight, or the embedding table when tied. */
export function llamaHeadWeight(c: LlamaRefConfig, p: LlamaRefParams): Float64Array {
  return c.tieWordEmbeddings ? p['model.embed_tokens.weight'] : p['lm_head.weight'];
}

/** Logits (T, V) of one sequence. */
export function llamaLogits(c: LlamaRefConfig, p: LlamaRefParams, ids: readonly number[]): Float64Array {
  const h = llamaHidden(c, p, ids); // (T, C)
  return linear(h, llamaHeadWeight(c, p), ids.length, c.vocabSize, c.hiddenSize); // (T, V)
}

export interface LlamaRefRow {
  inputIds: readonly number[];
  /** Aligned with inputIds (same length), -100 ignored; the input ids themselves when absent. */
  labels?: readonly number[] | null;
}

/** The targets of one row after the causal shift: target[t] = labels[t + 1], -100 at the last token. */
export function shiftedTargets(row: LlamaRefRow): Int32Array {
  const labels = row.labels ?? row.inputIds;
  const T = row.inputIds.length;
  const out = new Int32Array(T).fill(IGNORE_INDEX);
  for (let t = 0; t + 1 < T; t++) out[t] = labels[t + 1];
  return out;
}

export interface LlamaRefLoss {
  /** Σ over counted targets of all rows / their count (NaN when nothing is counted). */
  loss: number;
  /** Counted targets (after the shift). */
  tokens: number;
  /** Per row, logits (T_row, V). */
  logits: Float64Array[];
}

/** The causal-LM loss of several sequences taken together, with each row's logits. */
export function llamaLoss(c: LlamaRefConfig, p: LlamaRefParams, rows: readonly LlamaRefRow[]): LlamaRefLoss {
  let sum = 0;
  let tokens = 0;
  const logits: Float64Array[] = [];
  for (const row of rows) {
    const T = row.inputIds.length;
    const z = llamaLogits(c, p, row.inputIds); // (T, V)
    logits.push(z);
    const targets = shiftedTargets(row);
    let count = 0;
    for (const t of targets) if (t !== IGNORE_INDEX) count++;
    const r = crossEntropyLogits(z, targets, T, c.vocabSize, 1);
    sum += r.loss;
    tokens += count;
  }
  return { loss: tokens > 0 ? sum / tokens : NaN, tokens, logits };
}
