// The adapter_config.json keys prompt tuning and prefix tuning share (PEFT's PromptLearningConfig:
// num_virtual_tokens and the model sizes PEFT fills in, plus the keys every PEFT config has), read
// and checked in one place. Each method's config.ts adds and checks its own keys. No files, no GPU.

import { AdapterConfigError } from '../errors.ts';
import { type JsonObject, TASK_TYPES } from './lora/config.ts';

/** Most virtual tokens accepted. */
export const MAX_VIRTUAL_TOKENS = 4096;

/** The keys of PEFT's PromptLearningConfig (and its PeftConfig base) that prompt and prefix tuning share, in PEFT's order. */
export interface PromptLearningFields {
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
}

/** PEFT's defaults of the shared keys (20 virtual tokens, a causal LM, sizes unset). */
export const PROMPT_LEARNING_DEFAULTS: Readonly<PromptLearningFields> = Object.freeze({
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
});

/** Typed access to one config object's keys; every accessor throws AdapterConfigError naming the key and the file. */
export interface ConfigKeys {
  /** The raw object. */
  readonly c: Record<string, unknown>;
  /** The error for `key` holding something other than `expected`. */
  bad(key: string, expected: string): Error;
  /** A positive integer, or null when absent or null. */
  optInt(key: string): number | null;
  /** A string, or null when absent or null. */
  optString(key: string): string | null;
  /** A copy of a JSON object, or null when absent or null. */
  optObject(key: string): JsonObject | null;
}

/**
 * Reads the shared keys of a `peftType` adapter config (`method` names it in messages, e.g. "prompt
 * tuning"; `defaults` gives num_virtual_tokens and task_type when absent). Returns the fields and
 * the accessors for the method's own keys. Throws AdapterConfigError naming the key.
 */
export function readPromptLearningConfig(
  json: unknown,
  file: string,
  peftType: string,
  method: string,
  defaults: Pick<PromptLearningFields, 'num_virtual_tokens' | 'task_type'>,
): { fields: PromptLearningFields; keys: ConfigKeys } {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AdapterConfigError('The adapter config must be a JSON object.', { file });
  const c = json as Record<string, unknown>;
  const bad = (key: string, expected: string) => new AdapterConfigError(`Key "${key}" ${c[key] === undefined ? 'is missing' : `is ${JSON.stringify(c[key])}`}; expected ${expected}.`, { file });
  const optInt = (key: string): number | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw bad(key, 'a positive integer or null');
    return v;
  };
  const optString = (key: string): string | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw bad(key, 'a string or null');
    return v;
  };
  const optObject = (key: string): JsonObject | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) throw bad(key, 'an object or null');
    return structuredClone(v) as JsonObject;
  };
  if (c.peft_type !== peftType) throw bad('peft_type', `"${peftType}"`);
  const nvt = c.num_virtual_tokens ?? defaults.num_virtual_tokens;
  if (typeof nvt !== 'number' || !Number.isSafeInteger(nvt) || nvt < 1 || nvt > MAX_VIRTUAL_TOKENS) throw bad('num_virtual_tokens', `an integer from 1 to ${MAX_VIRTUAL_TOKENS}`);
  const taskType = c.task_type === undefined ? defaults.task_type : c.task_type;
  if (taskType !== null && !(TASK_TYPES as readonly unknown[]).includes(taskType)) throw bad('task_type', `one of ${TASK_TYPES.join(', ')}, or null`);
  if (taskType !== null && taskType !== 'CAUSAL_LM') throw new AdapterConfigError(`Key "task_type" is ${JSON.stringify(taskType)}; only causal language models ("CAUSAL_LM") are tuned here.`, { file });
  const subs = optInt('num_transformer_submodules');
  if (subs !== null && subs !== 1) throw bad('num_transformer_submodules', '1 (a causal LM)');
  const modulesToSave = c.modules_to_save ?? null;
  if (modulesToSave !== null && !(Array.isArray(modulesToSave) && modulesToSave.length === 0)) throw bad('modules_to_save', `null (saved modules are not supported with ${method} here)`);
  const autoMapping = optObject('auto_mapping');
  if (typeof (c.inference_mode ?? true) !== 'boolean') throw bad('inference_mode', 'true or false');
  const fields: PromptLearningFields = {
    task_type: taskType as string | null,
    base_model_name_or_path: optString('base_model_name_or_path'),
    revision: optString('revision'),
    inference_mode: (c.inference_mode ?? true) as boolean,
    auto_mapping: autoMapping,
    num_virtual_tokens: nvt,
    token_dim: optInt('token_dim'),
    num_transformer_submodules: subs,
    num_attention_heads: optInt('num_attention_heads'),
    num_layers: optInt('num_layers'),
    modules_to_save: null,
  };
  return { fields, keys: { c, bad, optInt, optString, optObject } };
}
