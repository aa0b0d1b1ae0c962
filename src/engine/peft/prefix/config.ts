// The prefix-tuning adapter config, mirroring PEFT's PrefixTuningConfig as adapter_config.json holds
// it, and the layout of its one tensor. PEFT fills the model sizes in when it attaches the adapter,
// grouped-query aware: token_dim = head_dim · num_key_value_heads, num_attention_heads =
// num_key_value_heads, num_layers, encoder_hidden_size = token_dim when unset. The saved
// `prompt_embeddings` is [num_virtual_tokens, num_layers · 2 · token_dim]; column
// ((layer · 2 + kv) · Hkv + head) · D + d holds the key (kv = 0) or value (kv = 1) of that layer and
// head (PEFT's get_prompt: view(nvt, L·2, Hkv, D)). With prefix_projection that table is the output
// of PEFT's reparameterisation MLP (model.ts), whose hidden size is encoder_hidden_size. No files, no GPU.

import { AdapterMismatchError } from '../../errors.ts';
import type { ModelConfig } from '../../model/config.ts';
import { PROMPT_LEARNING_DEFAULTS, type PromptLearningFields, readPromptLearningConfig } from '../prompt-learning.ts';

/** Largest encoder_hidden_size accepted (the projection's hidden width). */
export const MAX_ENCODER_HIDDEN_SIZE = 65536;

/** adapter_config.json of a prefix-tuning adapter (`peft_version` aside). */
export interface PrefixTuningConfig extends PromptLearningFields {
  peft_type: 'PREFIX_TUNING';
  encoder_hidden_size: number | null;
  prefix_projection: boolean;
}

export const PREFIX_TUNING_CONFIG_DEFAULTS: Readonly<PrefixTuningConfig> = Object.freeze({
  peft_type: 'PREFIX_TUNING',
  ...PROMPT_LEARNING_DEFAULTS,
  encoder_hidden_size: null,
  prefix_projection: false,
});

export function createPrefixTuningConfig(options: Partial<PrefixTuningConfig> = {}): PrefixTuningConfig {
  return parsePrefixTuningConfig({ ...PREFIX_TUNING_CONFIG_DEFAULTS, ...options });
}

/** Reads a prefix-tuning adapter_config.json object; unknown keys are dropped. Throws AdapterConfigError naming the key. */
export function parsePrefixTuningConfig(json: unknown, file = 'adapter_config.json'): PrefixTuningConfig {
  const { fields, keys } = readPromptLearningConfig(json, file, 'PREFIX_TUNING', 'prefix tuning', PREFIX_TUNING_CONFIG_DEFAULTS);
  const projection = keys.c.prefix_projection ?? false;
  if (typeof projection !== 'boolean') throw keys.bad('prefix_projection', 'true or false');
  const hidden = keys.optInt('encoder_hidden_size');
  if (hidden !== null && hidden > MAX_ENCODER_HIDDEN_SIZE) throw keys.bad('encoder_hidden_size', `a positive integer up to ${MAX_ENCODER_HIDDEN_SIZE}, or null`);
  return {
    peft_type: 'PREFIX_TUNING',
    ...fields,
    encoder_hidden_size: hidden,
    prefix_projection: projection,
  };
}

/** Hkv · D: one layer's keys (or values) per virtual token, PEFT's grouped-query token_dim. */
export function prefixTokenDim(model: ModelConfig): number {
  return model.headDim * model.numKeyValueHeads;
}

/** The hidden size of the projection's first Linear: encoder_hidden_size, or token_dim when unset (PEFT's default). */
export function prefixEncoderHiddenSize(config: PrefixTuningConfig, model: ModelConfig): number {
  return config.encoder_hidden_size ?? prefixTokenDim(model);
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
