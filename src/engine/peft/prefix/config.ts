// The prefix-tuning adapter config, mirroring PEFT's PrefixTuningConfig as adapter_config.json holds
// it, and the layout of its one tensor. PEFT fills the model sizes in when it attaches the adapter,
// grouped-query aware: token_dim = head_dim · num_key_value_heads, num_attention_heads =
// num_key_value_heads, num_layers, encoder_hidden_size = token_dim when unset. The saved
// `prompt_embeddings` is [num_virtual_tokens, num_layers · 2 · token_dim]; column
// ((layer · 2 + kv) · Hkv + head) · D + d holds the key (kv = 0) or value (kv = 1) of that layer and
// head (PEFT's get_prompt: view(nvt, L·2, Hkv, D)). No files, no GPU.

import { AdapterConfigError, AdapterMismatchError } from '../../errors.ts';
import type { ModelConfig } from '../../model/config.ts';
import { type JsonObject, TASK_TYPES } from '../lora/config.ts';
import { MAX_VIRTUAL_TOKENS } from '../prompt/config.ts';

/** adapter_config.json of a prefix-tuning adapter (`peft_version` aside). */
export interface PrefixTuningConfig {
  peft_type: 'PREFIX_TUNING';
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
  encoder_hidden_size: number | null;
  prefix_projection: boolean;
}

export const PREFIX_TUNING_CONFIG_DEFAULTS: Readonly<PrefixTuningConfig> = Object.freeze({
  peft_type: 'PREFIX_TUNING',
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
  encoder_hidden_size: null,
  prefix_projection: false,
});

export function createPrefixTuningConfig(options: Partial<PrefixTuningConfig> = {}): PrefixTuningConfig {
  return parsePrefixTuningConfig({ ...PREFIX_TUNING_CONFIG_DEFAULTS, ...options });
}

/** Reads a prefix-tuning adapter_config.json object; unknown keys are dropped. Throws AdapterConfigError naming the key. */
export function parsePrefixTuningConfig(json: unknown, file = 'adapter_config.json'): PrefixTuningConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AdapterConfigError('The adapter config must be a JSON object.', { file });
  const c = json as Record<string, unknown>;
  const bad = (key: string, expected: string) => new AdapterConfigError(`Key "${key}" ${c[key] === undefined ? 'is missing' : `is ${JSON.stringify(c[key])}`}; expected ${expected}.`, { file });
  if (c.peft_type !== 'PREFIX_TUNING') throw bad('peft_type', '"PREFIX_TUNING"');
  const optInt = (key: 'token_dim' | 'num_transformer_submodules' | 'num_attention_heads' | 'num_layers' | 'encoder_hidden_size'): number | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw bad(key, 'a positive integer or null');
    return v;
  };
  const optString = (key: 'base_model_name_or_path' | 'revision'): string | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw bad(key, 'a string or null');
    return v;
  };
  const nvt = c.num_virtual_tokens ?? PREFIX_TUNING_CONFIG_DEFAULTS.num_virtual_tokens;
  if (typeof nvt !== 'number' || !Number.isSafeInteger(nvt) || nvt < 1 || nvt > MAX_VIRTUAL_TOKENS) throw bad('num_virtual_tokens', `an integer from 1 to ${MAX_VIRTUAL_TOKENS}`);
  const taskType = c.task_type === undefined ? 'CAUSAL_LM' : c.task_type;
  if (taskType !== null && !(TASK_TYPES as readonly unknown[]).includes(taskType)) throw bad('task_type', `one of ${TASK_TYPES.join(', ')}, or null`);
  if (taskType !== null && taskType !== 'CAUSAL_LM') throw new AdapterConfigError(`Key "task_type" is ${JSON.stringify(taskType)}; only causal language models ("CAUSAL_LM") are tuned here.`, { file });
  const projection = c.prefix_projection ?? false;
  if (typeof projection !== 'boolean') throw bad('prefix_projection', 'true or false');
  const subs = optInt('num_transformer_submodules');
  if (subs !== null && subs !== 1) throw bad('num_transformer_submodules', '1 (a causal LM)');
  const modulesToSave = c.modules_to_save ?? null;
  if (modulesToSave !== null && !(Array.isArray(modulesToSave) && modulesToSave.length === 0)) throw bad('modules_to_save', 'null (saved modules are not supported with prefix tuning here)');
  const autoMapping = c.auto_mapping ?? null;
  if (autoMapping !== null && (typeof autoMapping !== 'object' || Array.isArray(autoMapping))) throw bad('auto_mapping', 'an object or null');
  if (typeof (c.inference_mode ?? true) !== 'boolean') throw bad('inference_mode', 'true or false');
  return {
    peft_type: 'PREFIX_TUNING',
    task_type: taskType as string | null,
    base_model_name_or_path: optString('base_model_name_or_path'),
    revision: optString('revision'),
    inference_mode: (c.inference_mode ?? true) as boolean,
    auto_mapping: autoMapping as JsonObject | null,
    num_virtual_tokens: nvt,
    token_dim: optInt('token_dim'),
    num_transformer_submodules: subs,
    num_attention_heads: optInt('num_attention_heads'),
    num_layers: optInt('num_layers'),
    modules_to_save: null,
    encoder_hidden_size: optInt('encoder_hidden_size'),
    prefix_projection: projection,
  };
}

/** Hkv · D: one layer's keys (or values) per virtual token, PEFT's grouped-query token_dim. */
export function prefixTokenDim(model: ModelConfig): number {
  return model.headDim * model.numKeyValueHeads;
}

/** Throws AdapterMismatchError when the config's sizes are not the model's. */
export function checkPrefixModel(config: PrefixTuningConfig, model: ModelConfig): void {
  const dim = prefixTokenDim(model);
  if (config.token_dim !== null && config.token_dim !== dim) {
    throw new AdapterMismatchError(`The adapter's token_dim is ${config.token_dim} but the model's keys per token are ${dim} (head_dim ${model.headDim} × ${model.numKeyValueHeads} key/value heads): it was made for another model.`);
  }
  if (config.num_layers !== null && config.num_layers !== model.numHiddenLayers) {
    throw new AdapterMismatchError(`The adapter's num_layers is ${config.num_layers} but the model has ${model.numHiddenLayers} layers: it was made for another model.`);
  }
  if (config.num_attention_heads !== null && config.num_attention_heads !== model.numKeyValueHeads) {
    throw new AdapterMismatchError(`The adapter's num_attention_heads is ${config.num_attention_heads}; PEFT stores the model's key/value heads there (${model.numKeyValueHeads}).`);
  }
}

/** The config as PEFT saves it once attached (sizes filled in, grouped-query aware). */
export function savedPrefixTuningConfig(config: PrefixTuningConfig, model: ModelConfig): PrefixTuningConfig {
  checkPrefixModel(config, model);
  const dim = prefixTokenDim(model);
  return {
    ...config,
    inference_mode: true,
    token_dim: dim,
    num_transformer_submodules: 1,
    num_attention_heads: model.numKeyValueHeads,
    num_layers: model.numHiddenLayers,
    encoder_hidden_size: config.encoder_hidden_size ?? dim,
  };
}

export function serializePrefixTuningConfig(config: PrefixTuningConfig): string {
  const checked = parsePrefixTuningConfig(config);
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(checked).sort()) sorted[k] = checked[k as keyof PrefixTuningConfig];
  return JSON.stringify(sorted, null, 2);
}

/**
 * Splits PEFT's table (nvt, L·2·Hkv·D) into per-layer keys and values (nvt, Hkv·D) each, or joins
 * them back: layer l's keys are columns [2l·Hkv·D, (2l+1)·Hkv·D), its values the next Hkv·D.
 */
export function splitPrefixTable(table: Float32Array, nvt: number, layers: number, dim: number): { k: Float32Array; v: Float32Array }[] {
  const width = layers * 2 * dim;
  if (table.length !== nvt * width) throw new AdapterMismatchError(`prompt_embeddings must hold ${nvt} × ${width} values; got ${table.length}.`);
  return Array.from({ length: layers }, (_, l) => {
    const k = new Float32Array(nvt * dim);
    const v = new Float32Array(nvt * dim);
    for (let t = 0; t < nvt; t++) {
      k.set(table.subarray(t * width + 2 * l * dim, t * width + (2 * l + 1) * dim), t * dim);
      v.set(table.subarray(t * width + (2 * l + 1) * dim, t * width + (2 * l + 2) * dim), t * dim);
    }
    return { k, v };
  });
}

export function joinPrefixTable(parts: readonly { k: Float32Array; v: Float32Array }[], nvt: number, dim: number): Float32Array {
  const layers = parts.length;
  const width = layers * 2 * dim;
  const table = new Float32Array(nvt * width);
  parts.forEach(({ k, v }, l) => {
    for (let t = 0; t < nvt; t++) {
      table.set(k.subarray(t * dim, (t + 1) * dim), t * width + 2 * l * dim);
      table.set(v.subarray(t * dim, (t + 1) * dim), t * width + (2 * l + 1) * dim);
    }
  });
  return table;
}
