// The prompt-tuning adapter config, mirroring PEFT's PromptTuningConfig as adapter_config.json holds
// it (PEFT's snake_case keys): num_virtual_tokens, the initialization (prompt_tuning_init "RANDOM",
// "TEXT" with prompt_tuning_init_text, or "SAMPLE_VOCAB"), and the model sizes PEFT fills in when it
// attaches the adapter (token_dim = hidden size, num_layers, num_attention_heads,
// num_transformer_submodules = 1 for a causal LM). No files, no GPU.

import { AdapterConfigError, AdapterMismatchError } from '../../errors.ts';
import type { ModelConfig } from '../../model/config.ts';
import { type JsonObject, TASK_TYPES } from '../lora/config.ts';

export const PROMPT_TUNING_INITS = ['RANDOM', 'TEXT', 'SAMPLE_VOCAB'] as const;
export type PromptTuningInit = (typeof PROMPT_TUNING_INITS)[number];

/** adapter_config.json of a prompt-tuning adapter (`peft_version` aside). */
export interface PromptTuningConfig {
  peft_type: 'PROMPT_TUNING';
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
  auto_mapping: JsonObject | null;
  num_virtual_tokens: number;
  token_dim: number | null;
  num_transformer_submodules: number | null;
  num_attention_heads: number | null;
  num_layers: number | null;
  modules_to_save: string[] | null;
  prompt_tuning_init: PromptTuningInit;
  prompt_tuning_init_text: string | null;
  tokenizer_name_or_path: string | null;
  tokenizer_kwargs: JsonObject | null;
}

export const PROMPT_TUNING_CONFIG_DEFAULTS: Readonly<PromptTuningConfig> = Object.freeze({
  peft_type: 'PROMPT_TUNING',
  task_type: 'CAUSAL_LM',
  base_model_name_or_path: null,
  revision: null,
  inference_mode: true,
  auto_mapping: null,
  num_virtual_tokens: 20,
  token_dim: null,
  num_transformer_submodules: null,
  num_attention_heads: null,
  num_layers: null,
  modules_to_save: null,
  prompt_tuning_init: 'RANDOM',
  prompt_tuning_init_text: null,
  tokenizer_name_or_path: null,
  tokenizer_kwargs: null,
});

/** Most virtual tokens accepted. */
export const MAX_VIRTUAL_TOKENS = 4096;

export function createPromptTuningConfig(options: Partial<PromptTuningConfig> = {}): PromptTuningConfig {
  return parsePromptTuningConfig({ ...PROMPT_TUNING_CONFIG_DEFAULTS, ...options });
}

/** Reads a prompt-tuning adapter_config.json object; unknown keys are dropped. Throws AdapterConfigError naming the key. */
export function parsePromptTuningConfig(json: unknown, file = 'adapter_config.json'): PromptTuningConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AdapterConfigError('The adapter config must be a JSON object.', { file });
  const c = json as Record<string, unknown>;
  const bad = (key: string, expected: string) => new AdapterConfigError(`Key "${key}" ${c[key] === undefined ? 'is missing' : `is ${JSON.stringify(c[key])}`}; expected ${expected}.`, { file });
  if (c.peft_type !== 'PROMPT_TUNING') throw bad('peft_type', '"PROMPT_TUNING"');
  const d = PROMPT_TUNING_CONFIG_DEFAULTS;
  const optInt = (key: 'token_dim' | 'num_transformer_submodules' | 'num_attention_heads' | 'num_layers'): number | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw bad(key, 'a positive integer or null');
    return v;
  };
  const optString = (key: 'base_model_name_or_path' | 'revision' | 'prompt_tuning_init_text' | 'tokenizer_name_or_path'): string | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw bad(key, 'a string or null');
    return v;
  };
  const nvt = c.num_virtual_tokens ?? d.num_virtual_tokens;
  if (typeof nvt !== 'number' || !Number.isSafeInteger(nvt) || nvt < 1 || nvt > MAX_VIRTUAL_TOKENS) throw bad('num_virtual_tokens', `an integer from 1 to ${MAX_VIRTUAL_TOKENS}`);
  const init = c.prompt_tuning_init ?? d.prompt_tuning_init;
  if (!(PROMPT_TUNING_INITS as readonly unknown[]).includes(init)) throw bad('prompt_tuning_init', `one of ${PROMPT_TUNING_INITS.map((x) => `"${x}"`).join(', ')}`);
  const text = optString('prompt_tuning_init_text');
  if (init === 'TEXT' && (text === null || text === '')) throw new AdapterConfigError('Key "prompt_tuning_init" is "TEXT", so "prompt_tuning_init_text" must hold the text.', { file });
  const taskType = c.task_type === undefined ? d.task_type : c.task_type;
  if (taskType !== null && !(TASK_TYPES as readonly unknown[]).includes(taskType)) throw bad('task_type', `one of ${TASK_TYPES.join(', ')}, or null`);
  if (taskType !== null && taskType !== 'CAUSAL_LM') throw new AdapterConfigError(`Key "task_type" is ${JSON.stringify(taskType)}; only causal language models ("CAUSAL_LM") are tuned here.`, { file });
  const subs = optInt('num_transformer_submodules');
  if (subs !== null && subs !== 1) throw bad('num_transformer_submodules', '1 (a causal LM)');
  const modulesToSave = c.modules_to_save ?? null;
  if (modulesToSave !== null && !(Array.isArray(modulesToSave) && modulesToSave.length === 0)) throw bad('modules_to_save', 'null (saved modules are not supported with prompt tuning here)');
  const obj = (key: 'auto_mapping' | 'tokenizer_kwargs'): JsonObject | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) throw bad(key, 'an object or null');
    return structuredClone(v) as JsonObject;
  };
  if (typeof (c.inference_mode ?? true) !== 'boolean') throw bad('inference_mode', 'true or false');
  return {
    peft_type: 'PROMPT_TUNING',
    task_type: taskType as string | null,
    base_model_name_or_path: optString('base_model_name_or_path'),
    revision: optString('revision'),
    inference_mode: (c.inference_mode ?? true) as boolean,
    auto_mapping: obj('auto_mapping'),
    num_virtual_tokens: nvt,
    token_dim: optInt('token_dim'),
    num_transformer_submodules: subs,
    num_attention_heads: optInt('num_attention_heads'),
    num_layers: optInt('num_layers'),
    modules_to_save: null,
    prompt_tuning_init: init as PromptTuningInit,
    prompt_tuning_init_text: text,
    tokenizer_name_or_path: optString('tokenizer_name_or_path'),
    tokenizer_kwargs: obj('tokenizer_kwargs'),
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
