// The prompt-tuning adapter config, mirroring PEFT's PromptTuningConfig as adapter_config.json holds
// it (PEFT's snake_case keys): num_virtual_tokens, the initialization (prompt_tuning_init "RANDOM",
// "TEXT" with prompt_tuning_init_text, or "SAMPLE_VOCAB"), and the model sizes PEFT fills in when it
// attaches the adapter (token_dim = hidden size, num_layers, num_attention_heads,
// num_transformer_submodules = 1 for a causal LM). No files, no GPU.

import { AdapterConfigError, AdapterMismatchError } from '../../errors.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { JsonObject } from '../lora/config.ts';
import { MAX_VIRTUAL_TOKENS, PROMPT_LEARNING_DEFAULTS, type PromptLearningFields, readPromptLearningConfig } from '../prompt-learning.ts';

export const PROMPT_TUNING_INITS = ['RANDOM', 'TEXT', 'SAMPLE_VOCAB'] as const;
export type PromptTuningInit = (typeof PROMPT_TUNING_INITS)[number];

/** adapter_config.json of a prompt-tuning adapter (`peft_version` aside). */
export interface PromptTuningConfig extends PromptLearningFields {
  peft_type: 'PROMPT_TUNING';
  prompt_tuning_init: PromptTuningInit;
  prompt_tuning_init_text: string | null;
  tokenizer_name_or_path: string | null;
  tokenizer_kwargs: JsonObject | null;
}

export const PROMPT_TUNING_CONFIG_DEFAULTS: Readonly<PromptTuningConfig> = Object.freeze({
  peft_type: 'PROMPT_TUNING',
  ...PROMPT_LEARNING_DEFAULTS,
  prompt_tuning_init: 'RANDOM',
  prompt_tuning_init_text: null,
  tokenizer_name_or_path: null,
  tokenizer_kwargs: null,
});

export { MAX_VIRTUAL_TOKENS };

export function createPromptTuningConfig(options: Partial<PromptTuningConfig> = {}): PromptTuningConfig {
  return parsePromptTuningConfig({ ...PROMPT_TUNING_CONFIG_DEFAULTS, ...options });
}

/** Reads a prompt-tuning adapter_config.json object; unknown keys are dropped. Throws AdapterConfigError naming the key. */
export function parsePromptTuningConfig(json: unknown, file = 'adapter_config.json'): PromptTuningConfig {
  const d = PROMPT_TUNING_CONFIG_DEFAULTS;
  const { fields, keys } = readPromptLearningConfig(json, file, 'PROMPT_TUNING', 'prompt tuning', d);
  const init = keys.c.prompt_tuning_init ?? d.prompt_tuning_init;
  if (!(PROMPT_TUNING_INITS as readonly unknown[]).includes(init)) throw keys.bad('prompt_tuning_init', `one of ${PROMPT_TUNING_INITS.map((x) => `"${x}"`).join(', ')}`);
  const text = keys.optString('prompt_tuning_init_text');
  if (init === 'TEXT' && (text === null || text === '')) throw new AdapterConfigError('Key "prompt_tuning_init" is "TEXT", so "prompt_tuning_init_text" must hold the text.', { file });
  return {
    peft_type: 'PROMPT_TUNING',
    ...fields,
    prompt_tuning_init: init as PromptTuningInit,
    prompt_tuning_init_text: text,
    tokenizer_name_or_path: keys.optString('tokenizer_name_or_path'),
    tokenizer_kwargs: keys.optObject('tokenizer_kwargs'),
  };
}

/** The config as PEFT saves it once attached: the model sizes filled in, inference_mode true. Throws AdapterMismatchError when given sizes disagree with the model. */
export function savedPromptTuningConfig(config: PromptTuningConfig, model: ModelConfig): PromptTuningConfig {
  checkPromptTuningModel(config, model);
  return {
    ...config,
    inference_mode: true,
    token_dim: model.hiddenSize,
    num_transformer_submodules: 1,
    num_attention_heads: model.numAttentionHeads,
    num_layers: model.numHiddenLayers,
  };
}

/** Throws AdapterMismatchError when the config's token_dim (or layers) are not the model's. */
export function checkPromptTuningModel(config: PromptTuningConfig, model: ModelConfig): void {
  if (config.token_dim !== null && config.token_dim !== model.hiddenSize) {
    throw new AdapterMismatchError(`The adapter's token_dim is ${config.token_dim} but the model's hidden size is ${model.hiddenSize}: it was made for another model.`);
  }
  if (config.num_layers !== null && config.num_layers !== model.numHiddenLayers) {
    throw new AdapterMismatchError(`The adapter's num_layers is ${config.num_layers} but the model has ${model.numHiddenLayers} layers: it was made for another model.`);
  }
}

/** adapter_config.json text as PEFT writes it: keys sorted, indented by 2. */
export function serializePromptTuningConfig(config: PromptTuningConfig): string {
  const checked = parsePromptTuningConfig(config);
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(checked).sort()) sorted[k] = checked[k as keyof PromptTuningConfig];
  return JSON.stringify(sorted, null, 2);
}

/**
 * The token ids PEFT initializes the prompt from with prompt_tuning_init "TEXT": the text's ids,
 * cut to `count`, or repeated whole (ceil(count / length) times) and then cut to `count`.
 */
export function textInitIds(ids: readonly number[], count: number): number[] {
  if (ids.length === 0) throw new AdapterConfigError('Key "prompt_tuning_init_text" encodes to no tokens.');
  if (ids.length >= count) return ids.slice(0, count);
  const reps = Math.ceil(count / ids.length);
  return Array.from({ length: reps }, () => ids).flat().slice(0, count);
}
