// The IA3 adapter config, mirroring PEFT's IA3Config as adapter_config.json holds it (PEFT's own
// snake_case keys), with PEFT's Llama-family defaults: target_modules k_proj, v_proj, down_proj and
// feedforward_modules down_proj. Also: which modules a config adapts in a Llama-family model (the
// target rules are LoRA's, shared through lora/config.ts), which of them are feed-forward (PEFT's
// `_check_target_module_feedforward`: a list entry matches when the path ends with it, a string
// must match the whole path), and the shape of each scaling vector: [out, 1] for a module whose
// output is scaled, [1, in] for a feed-forward module whose input is scaled. No files, no GPU.

import { AdapterConfigError, AdapterMismatchError } from '../../errors.ts';
import type { ModelConfig } from '../../model/config.ts';
import { LORA_CONFIG_DEFAULTS, type LinearModule, TASK_TYPES, type JsonObject, configObject, fullMatchRegex, targetModules } from '../lora/config.ts';

/** adapter_config.json of an IA3 adapter: the keys PEFT writes for IA3 (`peft_version` aside). */
export interface Ia3Config {
  peft_type: 'IA3';
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
  auto_mapping: JsonObject | null;
  /** Module names (exact path or last path segments), a full-match regex, "all-linear", or null for PEFT's Llama default. */
  target_modules: string[] | string | null;
  exclude_modules: string[] | string | null;
  /** Modules whose input is scaled (a list: paths ending with an entry; a string: full-match regex); null for PEFT's Llama default. */
  feedforward_modules: string[] | string | null;
  fan_in_fan_out: boolean;
  modules_to_save: string[] | null;
  init_ia3_weights: boolean;
}

/** PEFT's defaults for llama, mistral, qwen2 and qwen3 (TRANSFORMERS_MODELS_TO_IA3_*_MAPPING). */
export const IA3_DEFAULT_TARGET_MODULES: readonly string[] = ['k_proj', 'v_proj', 'down_proj'];
export const IA3_DEFAULT_FEEDFORWARD_MODULES: readonly string[] = ['down_proj'];

export const IA3_CONFIG_DEFAULTS: Readonly<Ia3Config> = Object.freeze({
  peft_type: 'IA3',
  task_type: 'CAUSAL_LM',
  base_model_name_or_path: null,
  revision: null,
  inference_mode: true,
  auto_mapping: null,
  target_modules: null,
  exclude_modules: null,
  feedforward_modules: null,
  fan_in_fan_out: false,
  modules_to_save: null,
  init_ia3_weights: true,
});

/** A validated config: the defaults overridden by `options`. */
export function createIa3Config(options: Partial<Ia3Config> = {}): Ia3Config {
  return parseIa3Config({ ...IA3_CONFIG_DEFAULTS, ...options });
}

/**
 * Reads an IA3 adapter_config.json object (or its text). Missing keys take IA3_CONFIG_DEFAULTS;
 * unknown keys are dropped, as PEFT drops them. Throws AdapterConfigError naming the key.
 */
export function parseIa3Config(json: unknown, file = 'adapter_config.json'): Ia3Config {
  const { c, bad } = configObject(json, file);
  if (c.peft_type !== 'IA3') {
    throw new AdapterConfigError(`Key "peft_type" is ${JSON.stringify(c.peft_type)}; an IA3 adapter has "peft_type": "IA3".`, { file });
  }
  const d = IA3_CONFIG_DEFAULTS;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  const modules = (key: 'target_modules' | 'exclude_modules' | 'feedforward_modules'): string[] | string | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v === 'string') {
      if (v !== 'all-linear') fullMatchRegex(v, key, file);
      return v;
    }
    if (strings(v)) return [...v];
    throw bad(key, 'a list of module names, a regular-expression string, or null');
  };
  const bool = (key: 'inference_mode' | 'fan_in_fan_out' | 'init_ia3_weights'): boolean => {
    if (c[key] === undefined) return d[key];
    if (typeof c[key] !== 'boolean') throw bad(key, 'true or false');
    return c[key] as boolean;
  };
  const optString = (key: 'base_model_name_or_path' | 'revision'): string | null => {
    if (c[key] === undefined || c[key] === null) return null;
    if (typeof c[key] !== 'string') throw bad(key, 'a string or null');
    return c[key] as string;
  };
  const taskType = c.task_type === undefined ? d.task_type : c.task_type;
  if (taskType !== null && !(TASK_TYPES as readonly unknown[]).includes(taskType)) throw bad('task_type', `one of ${TASK_TYPES.join(', ')}, or null`);
  const autoMapping = c.auto_mapping ?? null;
  if (autoMapping !== null && (typeof autoMapping !== 'object' || Array.isArray(autoMapping))) throw bad('auto_mapping', 'an object or null');
  const modulesToSave = c.modules_to_save ?? null;
  if (modulesToSave !== null && !strings(modulesToSave)) throw bad('modules_to_save', 'a list of module names or null');
  const target = modules('target_modules');
  const feedforward = modules('feedforward_modules');
  // PEFT's IA3Config.__post_init__: feed-forward modules must be among the targets when both are lists.
  if (Array.isArray(target) && Array.isArray(feedforward)) {
    const outside = feedforward.filter((f) => !target.includes(f));
    if (outside.length > 0) {
      throw new AdapterConfigError(`Key "feedforward_modules" names ${outside.map((f) => JSON.stringify(f)).join(', ')}, which "target_modules" does not list; feed-forward modules must be a subset of the targets.`, { file });
    }
  }
  return {
    peft_type: 'IA3',
    task_type: taskType as string | null,
    base_model_name_or_path: optString('base_model_name_or_path'),
    revision: optString('revision'),
    inference_mode: bool('inference_mode'),
    auto_mapping: autoMapping as JsonObject | null,
    target_modules: target,
    exclude_modules: modules('exclude_modules'),
    feedforward_modules: feedforward,
    fan_in_fan_out: bool('fan_in_fan_out'),
    modules_to_save: modulesToSave as string[] | null,
    init_ia3_weights: bool('init_ia3_weights'),
  };
}

/** adapter_config.json text as PEFT writes it: keys sorted, indented by 2. */
export function serializeIa3Config(config: Ia3Config): string {
  const checked = parseIa3Config(config);
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(checked).sort()) sorted[k] = checked[k as keyof Ia3Config];
  return JSON.stringify(sorted, null, 2);
}

/** One adapted module: its linear layer, whether it is feed-forward, and its vector's saved shape. */
export interface Ia3ModuleSpec extends LinearModule {
  feedforward: boolean;
  /** [out, 1] (output scaled) or [1, in] (feed-forward: input scaled), as PEFT stores ia3_l. */
  shape: [number, number];
  /** Values of the vector: out or in. */
  size: number;
}

/** Whether PEFT treats `path` as feed-forward under `feedforward` (a list: the path ends with an entry; a string: full match). */
export function isFeedforward(feedforward: readonly string[] | string, path: string): boolean {
  if (typeof feedforward === 'string') return fullMatchRegex(feedforward, 'feedforward_modules').test(path);
  return feedforward.some((f) => path.endsWith(f));
}

/** The modules `config` adapts in `model`, in module order, with their vector shapes. Throws AdapterConfigError when none is selected. */
export function expectedIa3Modules(config: Ia3Config, model: ModelConfig): Ia3ModuleSpec[] {
  if (config.fan_in_fan_out) throw new AdapterConfigError('Key "fan_in_fan_out" is true: that is for Conv1D layers (GPT-2), which Llama-family models do not have.');
  if (config.modules_to_save !== null && config.modules_to_save.length > 0) {
    throw new AdapterConfigError(`Key "modules_to_save" is ${JSON.stringify(config.modules_to_save)}: saved whole modules are not supported with IA3 here.`);
  }
  const targets = config.target_modules ?? IA3_DEFAULT_TARGET_MODULES;
  const feedforward = config.feedforward_modules ?? IA3_DEFAULT_FEEDFORWARD_MODULES;
  const selected = targetModules({ ...LORA_CONFIG_DEFAULTS, target_modules: typeof targets === 'string' ? targets : [...targets], exclude_modules: config.exclude_modules }, model);
  return selected.map((m) => {
    const ff = isFeedforward(feedforward, m.path);
    return { ...m, feedforward: ff, shape: ff ? [1, m.inFeatures] : [m.outFeatures, 1], size: ff ? m.inFeatures : m.outFeatures };
  });
}

/** target_modules and feedforward_modules as PEFT saves them once attached: lists as sorted sets, regexes unchanged, defaults resolved. */
export function savedIa3Config(config: Ia3Config, model: ModelConfig): Ia3Config {
  const specs = expectedIa3Modules(config, model);
  const listOrRegex = (v: string[] | string | null, resolved: string[]): string[] | string => {
    if (Array.isArray(v)) return [...new Set(v)].sort();
    if (typeof v === 'string' && v !== 'all-linear') return v;
    return [...new Set(resolved)].sort();
  };
  return {
    ...config,
    inference_mode: true,
    target_modules: listOrRegex(config.target_modules ?? [...IA3_DEFAULT_TARGET_MODULES], specs.map((s) => s.name)),
    feedforward_modules: listOrRegex(config.feedforward_modules ?? [...IA3_DEFAULT_FEEDFORWARD_MODULES], specs.filter((s) => s.feedforward).map((s) => s.name)),
  };
}

/** IA3 vectors by module path; each of the module's `size` values. */
export type Ia3Tensors = ReadonlyMap<string, Float32Array>;

/** Checks one vector per adapted module and none other, each of the right length. Throws AdapterMismatchError naming the module. */
export function checkIa3Tensors(config: Ia3Config, model: ModelConfig, tensors: Ia3Tensors): Ia3ModuleSpec[] {
  const specs = expectedIa3Modules(config, model);
  const byPath = new Map(specs.map((s) => [s.path, s]));
  for (const path of tensors.keys()) {
    if (!byPath.has(path)) throw new AdapterMismatchError(`An ia3_l vector is given for module "${path}", which the config does not adapt (it adapts e.g. "${specs[0].path}").`);
  }
  for (const s of specs) {
    const v = tensors.get(s.path);
    if (!v) throw new AdapterMismatchError(`Module "${s.path}" is adapted by the config but no ia3_l vector is given for it.`);
    if (v.length !== s.size) {
      throw new AdapterMismatchError(`Module "${s.path}": ia3_l must be [${s.shape.join(', ')}] (${s.size} values, ${s.feedforward ? 'feed-forward: one per input' : 'one per output'}); got ${v.length}.`);
    }
  }
  return specs;
}
