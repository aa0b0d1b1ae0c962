// Tiny model generator: builds, deterministically, small random checkpoints in the Hugging Face
// folder layout (config.json, generation_config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json) for the Llama family: LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM and Qwen3ForCausalLM. The same spec gives the same bytes on every run; the
// PyTorch reference (scripts/torch_reference.py) reads these folders and writes the fixtures under
// fixtures/models/, which record the hash of every file generated here. TINY_MODELS lists the test
// models and DEMO_MODEL the studio's built-in demo model (public/models/demo/).
// It writes no files (scripts/tiny/write-models.ts does) and the weights are random, not trained.
import { f32ToBf16 } from '../../src/engine/io/half.ts';
import { type TensorToWrite, writeSafetensors } from '../../src/engine/io/safetensors.ts';
import { type Architecture, expectedWeights, parseModelConfig } from '../../src/engine/model/config.ts';
import { Rng } from '../../src/engine/random.ts';
import { makeTinyTokenizer } from './tokenizer.ts';

/** llama3 RoPE scaling as config.json writes it. */
export interface TinyRopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface TinyModelSpec {
  /** Folder name, and the fixture's name. */
  name: string;
  architecture: Architecture;
  /** Storage dtype of every weight in model.safetensors. */
  dtype: 'F32' | 'BF16';
  /** Seed of the weights. */
  seed: number;
  /** Vocabulary of the tokenizer and of the embedding (makeTinyTokenizer's vocabSize). */
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** Written to config.json as head_dim; hiddenSize / numAttentionHeads when absent. */
  headDim?: number;
  tieWordEmbeddings: boolean;
  ropeTheta: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  /** llama3 frequency-dependent RoPE scaling (Llama only). */
  ropeScaling?: TinyRopeScaling;
}

export interface TinyFile {
  name: string;
  bytes: Uint8Array;
}

const shared = { vocabSize: 384, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 };

/**
 * The test models: every architecture, tied and untied output embeddings, BF16 and F32 storage,
 * llama3 RoPE scaling, Qwen2's q/k/v biases and Qwen3's q/k norms with a head_dim other than
 * hidden/heads. All use grouped-query attention (4 query heads on 2 key/value heads).
 */
export const TINY_MODELS: readonly TinyModelSpec[] = [
  {
    name: 'llama-tied-bf16',
    architecture: 'LlamaForCausalLM',
    dtype: 'BF16',
    seed: 101,
    ...shared,
    tieWordEmbeddings: true,
    ropeTheta: 100000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 2048,
  },
  {
    // The small original context puts the RoPE frequencies in all three llama3 bands (kept,
    // smoothed, divided by factor) and makes the scaling visible within a few dozen positions.
    name: 'llama3-untied-f32',
    architecture: 'LlamaForCausalLM',
    dtype: 'F32',
    seed: 102,
    ...shared,
    headDim: 16,
    tieWordEmbeddings: false,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 512,
    ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
  },
  {
    name: 'mistral-untied-f32',
    architecture: 'MistralForCausalLM',
    dtype: 'F32',
    seed: 103,
    ...shared,
    tieWordEmbeddings: false,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 4096,
  },
  {
    name: 'qwen2-tied-bf16',
    architecture: 'Qwen2ForCausalLM',
    dtype: 'BF16',
    seed: 104,
    ...shared,
    tieWordEmbeddings: true,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
    maxPositionEmbeddings: 4096,
  },
  {
    name: 'qwen2-tied-f32',
    architecture: 'Qwen2ForCausalLM',
    dtype: 'F32',
    seed: 105,
    ...shared,
    tieWordEmbeddings: true,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    maxPositionEmbeddings: 4096,
  },
  {
    name: 'qwen3-tied-bf16',
    architecture: 'Qwen3ForCausalLM',
    dtype: 'BF16',
    seed: 106,
    ...shared,
    headDim: 24,
    tieWordEmbeddings: true,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
    maxPositionEmbeddings: 4096,
  },
  {
    name: 'qwen3-untied-f32',
    architecture: 'Qwen3ForCausalLM',
    dtype: 'F32',
    seed: 107,
    ...shared,
    headDim: 32,
    tieWordEmbeddings: false,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    maxPositionEmbeddings: 4096,
  },
];

/** The studio's built-in demo model: Llama layout, tied embeddings, BF16, about 0.85 M parameters. */
export const DEMO_MODEL: TinyModelSpec = {
  name: 'demo',
  architecture: 'LlamaForCausalLM',
  dtype: 'BF16',
  seed: 2024,
  vocabSize: 512,
  hiddenSize: 128,
  intermediateSize: 384,
  numHiddenLayers: 4,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  tieWordEmbeddings: true,
  ropeTheta: 100000,
  rmsNormEps: 1e-5,
  maxPositionEmbeddings: 2048,
};

/** The transformers version the generated configs name. */
const TRANSFORMERS_VERSION = '4.46.0';

const MODEL_TYPE: Record<Architecture, string> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};

/** The special token ids of makeTinyTokenizer: the last three ids of the vocabulary. */
function specialIds(vocabSize: number): { endOfText: number; imStart: number; imEnd: number } {
  return { endOfText: vocabSize - 3, imStart: vocabSize - 2, imEnd: vocabSize - 1 };
}

/**
 * config.json with the keys the real checkpoints of the architecture ship (Llama 3.2 / SmolLM2,
 * Mistral 7B, Qwen2.5, Qwen3), keys sorted as transformers writes them.
 */
export function tinyConfig(spec: TinyModelSpec): Record<string, unknown> {
  const { endOfText, imEnd } = specialIds(spec.vocabSize);
  const c: Record<string, unknown> = {
    architectures: [spec.architecture],
    bos_token_id: endOfText,
    eos_token_id: imEnd,
    hidden_act: 'silu',
    hidden_size: spec.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: spec.intermediateSize,
    max_position_embeddings: spec.maxPositionEmbeddings,
    model_type: MODEL_TYPE[spec.architecture],
    num_attention_heads: spec.numAttentionHeads,
    num_hidden_layers: spec.numHiddenLayers,
    num_key_value_heads: spec.numKeyValueHeads,
    rms_norm_eps: spec.rmsNormEps,
    rope_theta: spec.ropeTheta,
    tie_word_embeddings: spec.tieWordEmbeddings,
    torch_dtype: spec.dtype === 'BF16' ? 'bfloat16' : 'float32',
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: spec.vocabSize,
  };
  if (spec.headDim !== undefined) c.head_dim = spec.headDim;
  switch (spec.architecture) {
    case 'LlamaForCausalLM':
      Object.assign(c, { attention_bias: false, attention_dropout: 0.0, mlp_bias: false, pad_token_id: endOfText, pretraining_tp: 1 });
      c.rope_scaling = spec.ropeScaling
        ? {
            factor: spec.ropeScaling.factor,
            high_freq_factor: spec.ropeScaling.highFreqFactor,
            low_freq_factor: spec.ropeScaling.lowFreqFactor,
            original_max_position_embeddings: spec.ropeScaling.originalMaxPositionEmbeddings,
            rope_type: 'llama3',
          }
        : null;
      break;
    case 'MistralForCausalLM':
      Object.assign(c, { attention_dropout: 0.0, sliding_window: 4096 });
      break;
    case 'Qwen2ForCausalLM':
      Object.assign(c, { attention_dropout: 0.0, max_window_layers: spec.numHiddenLayers, sliding_window: spec.maxPositionEmbeddings, use_sliding_window: false });
      break;
    case 'Qwen3ForCausalLM':
      Object.assign(c, {
        attention_bias: false,
        attention_dropout: 0.0,
        max_window_layers: spec.numHiddenLayers,
        rope_scaling: null,
        sliding_window: null,
        use_sliding_window: false,
      });
      break;
  }
  return sortKeys(c);
}

/** generation_config.json: the stop ids as the real checkpoints list them (Qwen: a list). */
export function tinyGenerationConfig(spec: TinyModelSpec): Record<string, unknown> {
  const { endOfText, imEnd } = specialIds(spec.vocabSize);
  const qwen = spec.architecture === 'Qwen2ForCausalLM' || spec.architecture === 'Qwen3ForCausalLM';
  return sortKeys({
    _from_model_config: !qwen,
    bos_token_id: endOfText,
    eos_token_id: qwen ? [imEnd, endOfText] : imEnd,
    ...(qwen ? { pad_token_id: endOfText } : {}),
    transformers_version: TRANSFORMERS_VERSION,
  });
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

/**
 * Random weights in expectedWeights order from one seeded generator. Scales keep every stage
 * informative: linear weights N(0, 1/fan_in) so activations stay near unit size and attention
 * scores spread; embeddings and lm_head N(0, 4/hidden) so logits have a standard deviation near 2;
 * norm weights (input, post-attention, final, q/k) uniform in [0.9, 1.1]; q/k/v biases N(0, 0.25²).
 */
export function tinyWeights(spec: TinyModelSpec): { name: string; shape: number[]; values: Float32Array }[] {
  const config = parseModelConfig(tinyConfig(spec));
  const rng = new Rng(spec.seed);
  return expectedWeights(config).map(({ name, shape }) => {
    const n = shape.reduce((a, d) => a * d, 1);
    let values: Float32Array;
    if (name.endsWith('norm.weight')) values = rng.fill(n, (r) => r.uniform(0.9, 1.1));
    else if (name.endsWith('.bias')) values = rng.fill(n, (r) => 0.25 * r.normal());
    else if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') {
      const std = 2 / Math.sqrt(spec.hiddenSize);
      values = rng.fill(n, (r) => std * r.normal());
    } else {
      const std = 1 / Math.sqrt(shape[1]);
      values = rng.fill(n, (r) => std * r.normal());
    }
    return { name, shape, values };
  });
}

const encoder = new TextEncoder();
const jsonBytes = (v: unknown) => encoder.encode(JSON.stringify(v, null, 2) + '\n');

/** The files of the model folder of `spec`, sorted by name. */
export function makeTinyModel(spec: TinyModelSpec): TinyFile[] {
  const tensors: TensorToWrite[] = tinyWeights(spec).map(({ name, shape, values }) => ({
    name,
    shape,
    dtype: spec.dtype,
    data: spec.dtype === 'BF16' ? f32ToBf16(values) : values,
  }));
  const tokenizer = makeTinyTokenizer({ vocabSize: spec.vocabSize });
  return [
    { name: 'config.json', bytes: jsonBytes(tinyConfig(spec)) },
    { name: 'generation_config.json', bytes: jsonBytes(tinyGenerationConfig(spec)) },
    { name: 'model.safetensors', bytes: writeSafetensors(tensors, { format: 'pt' }) },
    { name: 'tokenizer.json', bytes: jsonBytes(tokenizer.tokenizerJson) },
    { name: 'tokenizer_config.json', bytes: jsonBytes(tokenizer.tokenizerConfig) },
  ];
}
