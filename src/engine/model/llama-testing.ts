// Test support: tiny Hugging Face model folders of the four supported architectures, written to disk
// from seeded random weights (config.json, model.safetensors, tokenizer files), together with the
// exact parameter values the checkpoint holds, for tests that compare the GPU model with the float64
// reference (reference/llama.ts). The tokenizer is passed in (tests use scripts/tiny/tokenizer.ts).
// Not a checkpoint generator for users, and not used by the engine itself.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { f32ToBf16 } from '../io/half.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import { type LlamaRefParams, llamaParamSpecs, randomLlamaParams } from '../reference/llama.ts';
import { type ModelConfig, parseModelConfig } from './config.ts';

export type TinyArchitecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export interface TinyModelSpec {
  architecture: TinyArchitecture;
  tied: boolean;
  /** How the checkpoint stores the weights. */
  fileDtype: 'F32' | 'BF16';
  seed: number;
  layers?: number;
}

export interface TinyTokenizerFiles {
  tokenizerJson: { added_tokens: { id: number; content: string }[]; model: { vocab: Record<string, number> } };
  tokenizerConfig: Record<string, unknown>;
}

export interface TinyModel {
  dir: string;
  config: ModelConfig;
  /** The values the checkpoint holds, widened to float64. */
  params: LlamaRefParams;
}

/**
 * config.json for a tiny model: hidden 32, 4 query heads over 2 kv heads, head_dim 8 (Qwen3: 16,
 * explicit and unequal to hidden / heads), intermediate 48. Llama uses llama3 RoPE scaling with an
 * original context short enough that it changes the frequencies, and attention_bias (q/k/v and o
 * biases); Qwen2 has q/k/v biases; Qwen3 q/k norms.
 */
export function tinyConfigJson(spec: TinyModelSpec, vocabSize: number, eosTokenId: number): Record<string, unknown> {
  const base: Record<string, unknown> = {
    vocab_size: vocabSize,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: spec.layers ?? 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-6,
    hidden_act: 'silu',
    tie_word_embeddings: spec.tied,
    eos_token_id: eosTokenId,
    bos_token_id: null,
    torch_dtype: spec.fileDtype === 'BF16' ? 'bfloat16' : 'float32',
  };
  switch (spec.architecture) {
    case 'llama':
      return {
        ...base,
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        rms_norm_eps: 1e-5,
        rope_theta: 500000,
        rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 },
        attention_bias: true,
      };
    case 'mistral':
      return { ...base, architectures: ['MistralForCausalLM'], model_type: 'mistral', rope_theta: 10000, sliding_window: 4096 };
    case 'qwen2':
      return { ...base, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', rope_theta: 1000000, use_sliding_window: false };
    case 'qwen3':
      return { ...base, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', head_dim: 16, rope_theta: 1000000, attention_bias: false };
  }
}

/** Writes a tiny model folder into `dir` (created if needed) and returns its config and exact weights. */
export async function writeTinyModel(dir: string, spec: TinyModelSpec, tokenizer: TinyTokenizerFiles): Promise<TinyModel> {
  const added = tokenizer.tokenizerJson.added_tokens;
  const vocabSize = Math.max(...Object.values(tokenizer.tokenizerJson.model.vocab), ...added.map((t) => t.id)) + 1;
  const eos = added.find((t) => t.content === '<|im_end|>')?.id ?? vocabSize - 1;
  const json = tinyConfigJson(spec, vocabSize, eos);
  const config = parseModelConfig(json);
  const bf16 = spec.fileDtype === 'BF16';
  const params = randomLlamaParams(config, spec.seed, { bf16 });
  const tensors = llamaParamSpecs(config).map((s) => {
    const f32 = Float32Array.from(params[s.name]);
    return { name: s.name, dtype: spec.fileDtype, shape: s.shape, data: bf16 ? f32ToBf16(f32) : f32 };
  });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(json, null, 2));
  await writeFile(join(dir, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer.tokenizerJson));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizer.tokenizerConfig));
  await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: eos, do_sample: false }));
  return { dir, config, params };
}
