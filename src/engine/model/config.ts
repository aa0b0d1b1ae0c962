// Maps a Hugging Face config.json object to the engine's ModelConfig for the Llama family
// (LlamaForCausalLM: Llama 2/3.x, TinyLlama, SmolLM/SmolLM2; MistralForCausalLM; Qwen2ForCausalLM;
// Qwen3ForCausalLM), and derives from it the tensor names and shapes a checkpoint must hold and the
// parameter count. Keys the checkpoint omits take the transformers class defaults of their
// architecture; structural sizes are required. This file reads no files and builds no model.

import { ModelConfigError, UnsupportedModelError } from '../errors.ts';

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

/** Llama 3.1/3.2 frequency-dependent RoPE scaling (transformers `_compute_llama3_parameters`). */
export interface Llama3RopeScaling {
  ropeType: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface ModelConfig {
  architecture: Architecture;
  /** config.json `model_type` ("llama", "mistral", "qwen2", "qwen3"), or null when absent. */
  modelType: string | null;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Key/value heads (GQA); equals numAttentionHeads when the config omits it. */
  numKeyValueHeads: number;
  /** Per-head dimension; hiddenSize / numAttentionHeads when the config omits it. */
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  maxPositionEmbeddings: number;
  /** lm_head shares model.embed_tokens.weight; the checkpoint then has no lm_head.weight. */
  tieWordEmbeddings: boolean;
  /** q_proj, k_proj and v_proj have biases (Qwen2 always; Llama and Qwen3 when attention_bias). */
  attentionBias: boolean;
  /** o_proj has a bias (Llama and Qwen3 when attention_bias; never Qwen2 or Mistral). */
  outputBias: boolean;
  /** Per-head RMSNorm on queries and keys before RoPE (Qwen3). */
  qkNorm: boolean;
  bosTokenId: number | null;
  /** End-of-sequence ids; config.json may give one number or a list. */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** `torch_dtype` (or `dtype`) as written, e.g. "bfloat16"; null when absent. */
  torchDtype: string | null;
  /** Mistral's attention window in tokens; null for full causal attention. */
  slidingWindow: number | null;
  hiddenAct: 'silu';
  /** `quantization_config.quant_method` of a pre-quantized checkpoint, or null. */
  quantization: string | null;
  /**
   * Blocks shared across depth (config.json `layer_weight_source`, docs/compression.md): entry l is
   * the layer whose weights layer l runs with; only layers that are their own source are stored.
   * Absent when every layer has its own weights.
   */
  layerWeightSource?: readonly number[];
}

/** transformers class defaults for keys a config.json may omit. */
const DEFAULTS: Record<Architecture, { maxPositionEmbeddings: number; headDim: number | null; slidingWindow: number | null }> = {
  LlamaForCausalLM: { maxPositionEmbeddings: 2048, headDim: null, slidingWindow: null },
  MistralForCausalLM: { maxPositionEmbeddings: 4096 * 32, headDim: null, slidingWindow: 4096 },
  Qwen2ForCausalLM: { maxPositionEmbeddings: 32768, headDim: null, slidingWindow: null },
  Qwen3ForCausalLM: { maxPositionEmbeddings: 32768, headDim: 128, slidingWindow: null },
};

type Json = Record<string, unknown>;

/** Reads a config.json object. `file` names the file in errors. */
export function parseModelConfig(raw: unknown, file = 'config.json'): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ModelConfigError('The model config must be a JSON object.', { file });
  }
  const c = raw as Json;
  const err = (key: string, expected: string) =>
    new ModelConfigError(`Key "${key}" ${c[key] === undefined ? 'is missing' : `is ${JSON.stringify(c[key])}`}; expected ${expected}.`, { file });

  const archs = c.architectures;
  if (!Array.isArray(archs) || archs.length === 0 || !archs.every((a) => typeof a === 'string')) {
    throw new UnsupportedModelError(
      `The config has no "architectures" list, so the model type is unknown. Supported architectures: ${SUPPORTED_ARCHITECTURES.join(', ')}.`,
      { file },
    );
  }
  const arch = archs[0] as string;
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new UnsupportedModelError(`Architecture ${arch} is not supported. Supported architectures: ${SUPPORTED_ARCHITECTURES.join(', ')}.`, {
      file,
    });
  }
  const architecture = arch as Architecture;
  const defaults = DEFAULTS[architecture];

  const posInt = (key: string, fallback?: number | null): number => {
    const v = c[key];
    if ((v === undefined || v === null) && fallback !== undefined && fallback !== null) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw err(key, 'a positive integer');
    return v;
  };
  const posNum = (key: string, fallback: number): number => {
    const v = c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw err(key, 'a positive number');
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw err(key, 'true or false');
    return v;
  };
  const tokenId = (key: string): number | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw err(key, 'a non-negative integer or null');
    return v;
  };
  const optString = (key: string): string | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw err(key, 'a string');
    return v;
  };

  const hiddenSize = posInt('hidden_size');
  const intermediateSize = posInt('intermediate_size');
  const numHiddenLayers = posInt('num_hidden_layers');
  const numAttentionHeads = posInt('num_attention_heads');
  const vocabSize = posInt('vocab_size');
  const numKeyValueHeads = posInt('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ModelConfigError(
      `num_attention_heads (${numAttentionHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads}).`,
      { file },
    );
  }
  let headDim: number;
  if (c.head_dim === undefined || c.head_dim === null) {
    if (defaults.headDim !== null) headDim = defaults.headDim;
    else if (hiddenSize % numAttentionHeads === 0) headDim = hiddenSize / numAttentionHeads;
    else {
      throw new ModelConfigError(
        `head_dim is not given and hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numAttentionHeads}).`,
        { file },
      );
    }
  } else headDim = posInt('head_dim');

  const hiddenAct = c.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') {
    throw new UnsupportedModelError(`hidden_act ${JSON.stringify(hiddenAct)} is not supported; the Llama family uses "silu".`, { file });
  }
  if (bool('mlp_bias', false)) {
    throw new UnsupportedModelError('mlp_bias true (biases on gate/up/down projections) is not supported.', { file });
  }
  const partial = c.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new UnsupportedModelError(`partial_rotary_factor ${JSON.stringify(partial)} is not supported; RoPE covers the whole head.`, { file });
  }

  // RoPE: transformers v4 writes rope_theta + rope_scaling, v5 writes rope_parameters.
  let ropeTheta = posNum('rope_theta', 10000);
  let ropeScaling: Llama3RopeScaling | null;
  const params = c.rope_parameters;
  if (params !== undefined && params !== null) {
    if (typeof params !== 'object' || Array.isArray(params)) throw err('rope_parameters', 'an object');
    const theta = (params as Json).rope_theta;
    if (theta !== undefined) {
      if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) {
        throw new ModelConfigError(`Key "rope_parameters.rope_theta" is ${JSON.stringify(theta)}; expected a positive number.`, { file });
      }
      ropeTheta = theta;
    }
    ropeScaling = parseRopeScaling(params, 'rope_parameters', file);
  } else {
    ropeScaling = parseRopeScaling(c.rope_scaling, 'rope_scaling', file);
  }

  let slidingWindow: number | null = null;
  if (architecture === 'MistralForCausalLM') {
    slidingWindow = c.sliding_window === null ? null : posInt('sliding_window', defaults.slidingWindow);
  } else if ((architecture === 'Qwen2ForCausalLM' || architecture === 'Qwen3ForCausalLM') && bool('use_sliding_window', false)) {
    throw new UnsupportedModelError('use_sliding_window true (sliding-window attention on some Qwen layers) is not supported.', { file });
  }

  let attentionBias: boolean;
  let outputBias: boolean;
  if (architecture === 'Qwen2ForCausalLM') {
    attentionBias = true;
    outputBias = false;
  } else if (architecture === 'MistralForCausalLM') {
    attentionBias = false;
    outputBias = false;
  } else {
    attentionBias = bool('attention_bias', false);
    outputBias = attentionBias;
  }

  let eosTokenIds: number[];
  const eos = c.eos_token_id;
  if (eos === undefined || eos === null) eosTokenIds = [];
  else if (typeof eos === 'number') eosTokenIds = [tokenId('eos_token_id') as number];
  else if (Array.isArray(eos) && eos.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) eosTokenIds = [...eos];
  else throw err('eos_token_id', 'a non-negative integer or a list of them');

  const quant = c.quantization_config;
  let quantization: string | null = null;
  if (quant !== undefined && quant !== null) {
    const method = typeof quant === 'object' ? (quant as Json).quant_method : undefined;
    quantization = typeof method === 'string' ? method : 'unknown';
  }

  const layerWeightSource = parseLayerWeightSource(c.layer_weight_source, numHiddenLayers, file);

  return {
    ...(layerWeightSource ? { layerWeightSource } : {}),
    architecture,
    modelType: optString('model_type'),
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    vocabSize,
    rmsNormEps: posNum('rms_norm_eps', 1e-6),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: posInt('max_position_embeddings', defaults.maxPositionEmbeddings),
    tieWordEmbeddings: bool('tie_word_embeddings', false),
    attentionBias,
    outputBias,
    qkNorm: architecture === 'Qwen3ForCausalLM',
    bosTokenId: tokenId('bos_token_id'),
    eosTokenIds,
    padTokenId: tokenId('pad_token_id'),
    torchDtype: optString('torch_dtype') ?? optString('dtype'),
    slidingWindow,
    hiddenAct: 'silu',
    quantization,
  };
}

/** `layer_weight_source`: null/absent, or one index per layer, each a layer at or before it that is its own source. */
function parseLayerWeightSource(v: unknown, layers: number, file: string): number[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.length !== layers) {
    throw new ModelConfigError(`Key "layer_weight_source" must list one layer index per layer (${layers}); got ${JSON.stringify(v)}.`, { file });
  }
  v.forEach((s, l) => {
    if (!Number.isInteger(s) || s < 0 || s > l || v[s] !== s) {
      throw new ModelConfigError(
        `Key "layer_weight_source" entry ${l} is ${JSON.stringify(s)}; expected a layer index at most ${l} whose own entry is itself (a layer that stores its weights).`,
        { file },
      );
    }
  });
  return v as number[];
}

/** rope_scaling / rope_parameters: null, a "default" type, or llama3 (type given as `rope_type` or `type`). */
function parseRopeScaling(v: unknown, key: string, file: string): Llama3RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new ModelConfigError(`Key "${key}" is ${JSON.stringify(v)}; expected null or an object.`, { file });
  }
  const s = v as Json;
  const type = s.rope_type ?? s.type;
  if (type === undefined || type === 'default') return null;
  if (type !== 'llama3') {
    throw new UnsupportedModelError(`RoPE scaling type ${JSON.stringify(type)} (${key}) is not supported; supported: llama3, or none.`, {
      file,
    });
  }
  const num = (k: string): number => {
    const x = s[k];
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) {
      throw new ModelConfigError(`Key "${key}.${k}" ${x === undefined ? 'is missing' : `is ${JSON.stringify(x)}`}; expected a positive number.`, {
        file,
      });
    }
    return x;
  };
  const scaling: Llama3RopeScaling = {
    ropeType: 'llama3',
    factor: num('factor'),
    lowFreqFactor: num('low_freq_factor'),
    highFreqFactor: num('high_freq_factor'),
    originalMaxPositionEmbeddings: num('original_max_position_embeddings'),
  };
  if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
    throw new ModelConfigError(
      `Key "${key}.high_freq_factor" (${scaling.highFreqFactor}) must be larger than low_freq_factor (${scaling.lowFreqFactor}).`,
      { file },
    );
  }
  return scaling;
}

export interface WeightSpec {
  /** Hugging Face tensor name, e.g. "model.layers.0.self_attn.q_proj.weight". */
  name: string;
  /** PyTorch shape: [out, in] for linear weights. */
  shape: number[];
}

/** Every tensor a checkpoint of `c` must hold, in Hugging Face module order. */
export function expectedWeights(c: ModelConfig): WeightSpec[] {
  const H = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const F = c.intermediateSize;
  const out: WeightSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, H] }];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    if (c.layerWeightSource && c.layerWeightSource[l] !== l) continue; // runs with another layer's weights
    const p = `model.layers.${l}.`;
    out.push({ name: `${p}input_layernorm.weight`, shape: [H] });
    const proj = (n: string, rows: number, cols: number, bias: boolean) => {
      out.push({ name: `${p}self_attn.${n}.weight`, shape: [rows, cols] });
      if (bias) out.push({ name: `${p}self_attn.${n}.bias`, shape: [rows] });
    };
    proj('q_proj', q, H, c.attentionBias);
    proj('k_proj', kv, H, c.attentionBias);
    proj('v_proj', kv, H, c.attentionBias);
    proj('o_proj', H, q, c.outputBias);
    if (c.qkNorm) {
      out.push({ name: `${p}self_attn.q_norm.weight`, shape: [c.headDim] }, { name: `${p}self_attn.k_norm.weight`, shape: [c.headDim] });
    }
    out.push(
      { name: `${p}post_attention_layernorm.weight`, shape: [H] },
      { name: `${p}mlp.gate_proj.weight`, shape: [F, H] },
      { name: `${p}mlp.up_proj.weight`, shape: [F, H] },
      { name: `${p}mlp.down_proj.weight`, shape: [H, F] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [H] });
  if (!c.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [c.vocabSize, H] });
  return out;
}

/** Number of parameters (tied embeddings counted once). */
export function parameterCount(c: ModelConfig): number {
  let n = 0;
  for (const w of expectedWeights(c)) n += w.shape.reduce((a, d) => a * d, 1);
  return n;
}
