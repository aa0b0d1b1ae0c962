import { describe, expect, it } from 'vitest';
import { ModelConfigError, UnsupportedModelError, WhetstoneError } from '../errors.ts';
import { type ModelConfig, SUPPORTED_ARCHITECTURES, expectedWeights, parameterCount, parseModelConfig } from './config.ts';

// config.json files as published on the Hugging Face Hub.
const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.42.3',
  use_cache: true,
  vocab_size: 49152,
};

const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const QWEN3_06B = {
  architectures: ['Qwen3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: 'silu',
  hidden_size: 1024,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: 'qwen3',
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.51.0',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const TINYLLAMA_11B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.35.0',
  use_cache: true,
  vocab_size: 32000,
};

const LLAMA32_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};

const MISTRAL_7B = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.34.0.dev0',
  use_cache: true,
  vocab_size: 32000,
};

function parseError(raw: unknown): WhetstoneError {
  try {
    parseModelConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(WhetstoneError);
    expect((e as WhetstoneError).file).toBe('config.json');
    return e as WhetstoneError;
  }
  throw new Error('expected parseModelConfig to throw');
}

const names = (c: ModelConfig) => expectedWeights(c).map((w) => w.name);

describe('parseModelConfig on published configs', () => {
  it('SmolLM2-135M', () => {
    const c = parseModelConfig(SMOLLM2_135M);
    expect(c).toMatchObject({
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      hiddenSize: 576,
      intermediateSize: 1536,
      numHiddenLayers: 30,
      numAttentionHeads: 9,
      numKeyValueHeads: 3,
      headDim: 64,
      vocabSize: 49152,
      rmsNormEps: 1e-5,
      ropeTheta: 100000,
      ropeScaling: null,
      maxPositionEmbeddings: 8192,
      tieWordEmbeddings: true,
      attentionBias: false,
      outputBias: false,
      qkNorm: false,
      bosTokenId: 0,
      eosTokenIds: [0],
      torchDtype: 'bfloat16',
      slidingWindow: null,
      quantization: null,
    });
    expect(parameterCount(c)).toBe(134_515_008);
    expect(names(c)).not.toContain('lm_head.weight');
    expect(expectedWeights(c)).toHaveLength(1 + 30 * 9 + 1);
  });

  it('Qwen2.5-0.5B: q/k/v biases, no o_proj bias', () => {
    const c = parseModelConfig(QWEN25_05B);
    expect(c).toMatchObject({ headDim: 64, numKeyValueHeads: 2, attentionBias: true, outputBias: false, ropeTheta: 1e6, slidingWindow: null });
    expect(parameterCount(c)).toBe(494_032_768);
    const w = expectedWeights(c);
    expect(w.find((x) => x.name === 'model.layers.0.self_attn.q_proj.bias')?.shape).toEqual([896]);
    expect(w.find((x) => x.name === 'model.layers.23.self_attn.k_proj.bias')?.shape).toEqual([128]);
    expect(w.find((x) => x.name === 'model.layers.23.self_attn.v_proj.bias')?.shape).toEqual([128]);
    expect(names(c)).not.toContain('model.layers.0.self_attn.o_proj.bias');
  });

  it('Qwen3-0.6B: explicit head_dim and per-head q/k norms', () => {
    const c = parseModelConfig(QWEN3_06B);
    expect(c).toMatchObject({ headDim: 128, qkNorm: true, attentionBias: false, eosTokenIds: [151645], maxPositionEmbeddings: 40960 });
    const w = expectedWeights(c);
    expect(w.find((x) => x.name === 'model.layers.0.self_attn.q_proj.weight')?.shape).toEqual([2048, 1024]);
    expect(w.find((x) => x.name === 'model.layers.0.self_attn.o_proj.weight')?.shape).toEqual([1024, 2048]);
    expect(w.find((x) => x.name === 'model.layers.27.self_attn.q_norm.weight')?.shape).toEqual([128]);
    expect(w.find((x) => x.name === 'model.layers.27.self_attn.k_norm.weight')?.shape).toEqual([128]);
    expect(parameterCount(c)).toBe(596_049_920);
  });

  it('TinyLlama-1.1B: untied lm_head', () => {
    const c = parseModelConfig(TINYLLAMA_11B);
    expect(c).toMatchObject({ headDim: 64, numKeyValueHeads: 4, tieWordEmbeddings: false, bosTokenId: 1, eosTokenIds: [2] });
    expect(names(c).at(-1)).toBe('lm_head.weight');
    expect(expectedWeights(c).at(-1)?.shape).toEqual([32000, 2048]);
    expect(parameterCount(c)).toBe(1_100_048_384);
  });

  it('Llama-3.2-1B: llama3 rope scaling and a list of eos ids', () => {
    const c = parseModelConfig(LLAMA32_1B);
    expect(c.ropeScaling).toEqual({ ropeType: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(c).toMatchObject({ ropeTheta: 500000, eosTokenIds: [128001, 128008, 128009], bosTokenId: 128000, tieWordEmbeddings: true });
    expect(parameterCount(c)).toBe(1_235_814_400);
  });

  it('Mistral-7B-v0.1: sliding window recorded', () => {
    const c = parseModelConfig(MISTRAL_7B);
    expect(c).toMatchObject({ architecture: 'MistralForCausalLM', slidingWindow: 4096, headDim: 128, attentionBias: false });
    expect(parameterCount(c)).toBe(7_241_732_096);
    expect(parseModelConfig({ ...MISTRAL_7B, sliding_window: null }).slidingWindow).toBeNull();
  });
});

describe('parseModelConfig defaults and variants', () => {
  it('num_key_value_heads defaults to the head count and head_dim to hidden / heads', () => {
    const { num_key_value_heads: _kv, ...rest } = TINYLLAMA_11B;
    const c = parseModelConfig(rest);
    expect(c.numKeyValueHeads).toBe(32);
    expect(c.headDim).toBe(64);
    expect(expectedWeights(c).find((w) => w.name.endsWith('0.self_attn.k_proj.weight'))?.shape).toEqual([2048, 2048]);
  });

  it('missing optional keys take the class defaults', () => {
    const minimal = { architectures: ['LlamaForCausalLM'], hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 };
    expect(parseModelConfig(minimal)).toMatchObject({
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      maxPositionEmbeddings: 2048,
      tieWordEmbeddings: false,
      bosTokenId: null,
      eosTokenIds: [],
      torchDtype: null,
      modelType: null,
    });
    expect(parseModelConfig({ ...minimal, architectures: ['Qwen3ForCausalLM'] }).headDim).toBe(128);
  });

  it('accepts the older `type` key, "default" scaling and transformers v5 rope_parameters', () => {
    const { rope_type: _t, ...scaling } = LLAMA32_1B.rope_scaling;
    expect(parseModelConfig({ ...LLAMA32_1B, rope_scaling: { ...scaling, type: 'llama3' } }).ropeScaling?.factor).toBe(32);
    expect(parseModelConfig({ ...TINYLLAMA_11B, rope_scaling: { rope_type: 'default' } }).ropeScaling).toBeNull();
    const { rope_scaling: _s, rope_theta: _th, ...v5 } = LLAMA32_1B;
    const c = parseModelConfig({ ...v5, dtype: 'bfloat16', rope_parameters: { ...LLAMA32_1B.rope_scaling, rope_theta: 500000 } });
    expect(c.ropeTheta).toBe(500000);
    expect(c.ropeScaling?.lowFreqFactor).toBe(1);
    expect(c.torchDtype).toBe('bfloat16');
  });

  it('Llama with attention_bias has biases on all four projections', () => {
    const c = parseModelConfig({ ...TINYLLAMA_11B, attention_bias: true });
    expect(names(c)).toContain('model.layers.0.self_attn.o_proj.bias');
    expect(names(c)).toContain('model.layers.0.self_attn.q_proj.bias');
  });

  it('records a pre-quantized checkpoint', () => {
    expect(parseModelConfig({ ...SMOLLM2_135M, quantization_config: { quant_method: 'bitsandbytes' } }).quantization).toBe('bitsandbytes');
  });
});

describe('parseModelConfig errors', () => {
  it('an unsupported architecture names it and lists the supported ones', () => {
    const e = parseError({ ...SMOLLM2_135M, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' });
    expect(e).toBeInstanceOf(UnsupportedModelError);
    expect(e.message).toMatch(/GPT2LMHeadModel is not supported/);
    for (const a of SUPPORTED_ARCHITECTURES) expect(e.message).toContain(a);
  });

  it('a missing architectures list', () => {
    const { architectures: _a, ...rest } = SMOLLM2_135M;
    const e = parseError(rest);
    expect(e).toBeInstanceOf(UnsupportedModelError);
    expect(e.message).toMatch(/no "architectures"/);
    expect(e.message).toContain('Qwen3ForCausalLM');
    expect(parseError({ ...SMOLLM2_135M, architectures: [] })).toBeInstanceOf(UnsupportedModelError);
    expect(parseError([1, 2])).toBeInstanceOf(ModelConfigError);
  });

  it('a missing or wrong-typed required key names the key', () => {
    const { hidden_size: _h, ...noHidden } = SMOLLM2_135M;
    let e = parseError(noHidden);
    expect(e).toBeInstanceOf(ModelConfigError);
    expect(e.message).toBe('config.json: Key "hidden_size" is missing; expected a positive integer.');
    e = parseError({ ...SMOLLM2_135M, vocab_size: '49152' });
    expect(e.message).toMatch(/Key "vocab_size" is "49152"; expected a positive integer/);
    expect(parseError({ ...SMOLLM2_135M, num_hidden_layers: 2.5 }).message).toMatch(/"num_hidden_layers"/);
    expect(parseError({ ...SMOLLM2_135M, intermediate_size: 0 }).message).toMatch(/"intermediate_size"/);
    expect(parseError({ ...SMOLLM2_135M, tie_word_embeddings: 'yes' }).message).toMatch(/"tie_word_embeddings" is "yes"; expected true or false/);
    expect(parseError({ ...SMOLLM2_135M, rms_norm_eps: -1 }).message).toMatch(/"rms_norm_eps"/);
    expect(parseError({ ...SMOLLM2_135M, eos_token_id: ['x'] }).message).toMatch(/"eos_token_id"/);
    expect(parseError({ ...SMOLLM2_135M, torch_dtype: 16 }).message).toMatch(/"torch_dtype"/);
  });

  it('inconsistent head counts', () => {
    expect(parseError({ ...SMOLLM2_135M, num_key_value_heads: 4 }).message).toMatch(/multiple of num_key_value_heads \(4\)/);
    expect(parseError({ ...SMOLLM2_135M, num_attention_heads: 7, num_key_value_heads: 7 }).message).toMatch(/head_dim is not given/);
  });

  it('unsupported features name the key', () => {
    expect(parseError({ ...SMOLLM2_135M, hidden_act: 'gelu' })).toBeInstanceOf(UnsupportedModelError);
    expect(parseError({ ...SMOLLM2_135M, hidden_act: 'gelu' }).message).toMatch(/hidden_act "gelu"/);
    expect(parseError({ ...SMOLLM2_135M, mlp_bias: true }).message).toMatch(/mlp_bias/);
    expect(parseError({ ...LLAMA32_1B, rope_scaling: { rope_type: 'yarn', factor: 4 } }).message).toMatch(/RoPE scaling type "yarn"/);
    expect(parseError({ ...QWEN25_05B, use_sliding_window: true }).message).toMatch(/use_sliding_window/);
    const { factor: _f, ...noFactor } = LLAMA32_1B.rope_scaling;
    expect(parseError({ ...LLAMA32_1B, rope_scaling: noFactor }).message).toMatch(/Key "rope_scaling.factor" is missing/);
  });
});
