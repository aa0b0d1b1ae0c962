// The LoRA adapter config, mirroring PEFT's adapter_config.json key for key (PEFT's own snake_case
// names, so a file reads and writes without renaming), with the values PEFT writes for a causal-LM
// LoRA adapter as defaults. Also: the scaling a config implies, the module paths its target_modules
// select in a Llama-family model (PEFT's matching rules: exact name or `.name` suffix for a list,
// full-match regex for a string, "all-linear" for every projection but lm_head), and the tensors
// an adapter for a config and a model must hold. This file reads no files and builds no layers.

import { AdapterConfigError, AdapterMismatchError } from '../../errors.ts';
import type { ModelConfig } from '../../model/config.ts';

/** Optional sub-configs of PEFT variants (LoftQ, EVA, CorDA, ...), kept as the JSON objects they are. */
export type JsonObject = { [key: string]: JsonValue };
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;

/** PEFT's TaskType values. */
export const TASK_TYPES = ['CAUSAL_LM', 'SEQ_2_SEQ_LM', 'SEQ_CLS', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'] as const;

/** adapter_config.json of a LoRA adapter: every key PEFT (0.20) writes for LoRA, `runtime_config` and `peft_version` aside. */
export interface LoraConfig {
  peft_type: 'LORA';
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
  auto_mapping: JsonObject | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Module names (exact path or last path segments), a regex the whole path must match, "all-linear", or null for PEFT's per-architecture default (q_proj, v_proj). */
  target_modules: string[] | string | null;
  exclude_modules: string[] | string | null;
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'lora_only';
  use_rslora: boolean;
  modules_to_save: string[] | null;
  init_lora_weights: boolean | string;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  /** Per-module ranks: a key matches a module path that ends with it (as a regex, after a `.`). */
  rank_pattern: Record<string, number>;
  /** Per-module alphas, matched like rank_pattern. */
  alpha_pattern: Record<string, number>;
  megatron_config: JsonObject | null;
  megatron_core: string | null;
  trainable_token_indices: number[] | Record<string, number[]> | null;
  loftq_config: JsonObject;
  eva_config: JsonObject | null;
  corda_config: JsonObject | null;
  lora_ga_config: JsonObject | null;
  use_dora: boolean;
  velora_config: JsonObject | null;
  alora_invocation_tokens: number[] | null;
  use_qalora: boolean;
  qalora_group_size: number;
  monteclora_config: JsonObject | null;
  layer_replication: [number, number][] | null;
  lora_bias: boolean;
  target_parameters: string[] | null;
  use_bdlora: JsonObject | null;
  arrow_config: JsonObject | null;
  ensure_weight_tying: boolean;
}

/** The values PEFT writes for a causal-LM LoRA adapter when nothing else is chosen. */
export const LORA_CONFIG_DEFAULTS: Readonly<LoraConfig> = Object.freeze({
  peft_type: 'LORA',
  task_type: 'CAUSAL_LM',
  base_model_name_or_path: null,
  revision: null,
  inference_mode: true,
  auto_mapping: null,
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  target_modules: null,
  exclude_modules: null,
  fan_in_fan_out: false,
  bias: 'none',
  use_rslora: false,
  modules_to_save: null,
  init_lora_weights: true,
  layers_to_transform: null,
  layers_pattern: null,
  rank_pattern: {},
  alpha_pattern: {},
  megatron_config: null,
  megatron_core: 'megatron.core',
  trainable_token_indices: null,
  loftq_config: {},
  eva_config: null,
  corda_config: null,
  lora_ga_config: null,
  use_dora: false,
  velora_config: null,
  alora_invocation_tokens: null,
  use_qalora: false,
  qalora_group_size: 16,
  monteclora_config: null,
  layer_replication: null,
  lora_bias: false,
  target_parameters: null,
  use_bdlora: null,
  arrow_config: null,
  ensure_weight_tying: false,
});

/** Every key of LoraConfig, sorted as PEFT's `json.dumps(..., sort_keys=True)` writes them. */
export const LORA_CONFIG_KEYS: readonly (keyof LoraConfig)[] = (Object.keys(LORA_CONFIG_DEFAULTS) as (keyof LoraConfig)[]).sort();

/** A validated config: the defaults overridden by `options`. */
export function createLoraConfig(options: Partial<LoraConfig> = {}): LoraConfig {
  return parseLoraConfig({ ...LORA_CONFIG_DEFAULTS, ...options });
}

/** LoRA's output scale: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA (PEFT `LoraLayer.update_layer`). */
export function scaling(config: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number {
  return config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
}

/** The rank and alpha of one module, after rank_pattern and alpha_pattern (PEFT `get_pattern_key`: first key that matches). */
export function moduleRankAlpha(config: LoraConfig, modulePath: string): { r: number; alpha: number } {
  const find = (pattern: Record<string, number>, key: string): number | undefined => {
    for (const [k, v] of Object.entries(pattern)) {
      if (patternRegex(k, key).test(modulePath)) return v;
    }
    return undefined;
  };
  return { r: find(config.rank_pattern, 'rank_pattern') ?? config.r, alpha: find(config.alpha_pattern, 'alpha_pattern') ?? config.lora_alpha };
}

/** The scale PEFT applies to one module's B·A (its rank and alpha after the patterns). */
export function moduleScaling(config: LoraConfig, modulePath: string): number {
  const { r, alpha } = moduleRankAlpha(config, modulePath);
  return scaling({ r, lora_alpha: alpha, use_rslora: config.use_rslora });
}

function patternRegex(pattern: string, key: string): RegExp {
  try {
    return new RegExp(`^(?:.*\\.)?(?:${pattern})$`);
  } catch (e) {
    throw new AdapterConfigError(`Key "${key}" holds ${JSON.stringify(pattern)}, which is not a valid regular expression.`, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing and serializing

/**
 * `json` (an adapter_config.json object, or its text) as an object, with the AdapterConfigError for
 * a key that holds something other than `expected`. Throws AdapterConfigError for text that is not
 * JSON and for anything but an object.
 */
export function configObject(json: unknown, file: string): { c: Record<string, unknown>; bad: (key: string, expected: string) => Error } {
  let raw = json;
  if (typeof raw === 'string') {
    try {
      raw = JSON.parse(raw);
    } catch (e) {
      throw new AdapterConfigError(`The file is not valid JSON: ${(e as Error).message}`, { file, cause: e });
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new AdapterConfigError('The adapter config must be a JSON object.', { file });
  }
  const c = raw as Record<string, unknown>;
  const bad = (key: string, expected: string) =>
    new AdapterConfigError(`Key "${key}" ${c[key] === undefined ? 'is missing' : `is ${JSON.stringify(c[key])}`}; expected ${expected}.`, { file });
  return { c, bad };
}

/**
 * Reads an adapter_config.json object (or its text). Keys it omits take LORA_CONFIG_DEFAULTS; keys
 * LoraConfig does not know are dropped, as PEFT drops them. Throws AdapterConfigError naming the key
 * for a value of the wrong type or range, and for a peft_type other than "LORA".
 */
export function parseLoraConfig(json: unknown, file = 'adapter_config.json'): LoraConfig {
  const { c, bad } = configObject(json, file);
  const has = (key: string) => c[key] !== undefined;

  if (c.peft_type !== 'LORA') {
    throw new AdapterConfigError(
      c.peft_type === undefined
        ? 'Key "peft_type" is missing; a LoRA adapter has "peft_type": "LORA".'
        : `Key "peft_type" is ${JSON.stringify(c.peft_type)}; this reader handles LoRA adapters ("LORA") only.`,
      { file },
    );
  }
  const d = LORA_CONFIG_DEFAULTS;
  const bool = (key: keyof LoraConfig): boolean => {
    if (!has(key)) return d[key] as boolean;
    if (typeof c[key] !== 'boolean') throw bad(key, 'true or false');
    return c[key] as boolean;
  };
  const optString = (key: keyof LoraConfig): string | null => {
    if (!has(key) || c[key] === null) return has(key) ? null : (d[key] as string | null);
    if (typeof c[key] !== 'string') throw bad(key, 'a string or null');
    return c[key] as string;
  };
  const isInt = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
  const posInt = (key: keyof LoraConfig): number => {
    if (!has(key)) return d[key] as number;
    if (!isInt(c[key], 1)) throw bad(key, 'a positive integer');
    return c[key] as number;
  };
  const posNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  const ints = (v: unknown, min: number): v is number[] => Array.isArray(v) && v.every((x) => isInt(x, min));
  const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v);
  const optObject = (key: keyof LoraConfig): JsonObject | null => {
    if (!has(key) || c[key] === null) return has(key) ? null : (d[key] as JsonObject | null);
    if (!isObject(c[key])) throw bad(key, 'an object or null');
    return structuredClone(c[key] as JsonObject);
  };
  const stringsOrString = (key: keyof LoraConfig): string[] | string | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (typeof v === 'string') return v;
    if (strings(v)) return [...v];
    throw bad(key, 'a list of module names, a regular-expression string, or null');
  };
  const numberMap = (key: 'rank_pattern' | 'alpha_pattern', check: (v: unknown) => boolean, what: string): Record<string, number> => {
    const v = c[key];
    if (v === undefined || v === null) return {};
    if (!isObject(v)) throw bad(key, `an object mapping module-name patterns to ${what}`);
    for (const [k, x] of Object.entries(v)) {
      if (!check(x)) throw new AdapterConfigError(`Key "${key}.${k}" is ${JSON.stringify(x)}; expected ${what}.`, { file });
      patternRegex(k, key);
    }
    return { ...(v as Record<string, number>) };
  };

  const taskType = c.task_type === undefined ? d.task_type : c.task_type;
  if (taskType !== null && !(TASK_TYPES as readonly unknown[]).includes(taskType)) throw bad('task_type', `one of ${TASK_TYPES.join(', ')}, or null`);

  if (has('lora_alpha') && !posNum(c.lora_alpha)) throw bad('lora_alpha', 'a positive number');
  const dropout = c.lora_dropout ?? d.lora_dropout;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw bad('lora_dropout', 'a number in [0, 1)');
  const bias = c.bias ?? d.bias;
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') throw bad('bias', '"none", "all" or "lora_only"');

  const init = c.init_lora_weights ?? d.init_lora_weights;
  if (typeof init !== 'boolean' && typeof init !== 'string') throw bad('init_lora_weights', 'true, false or the name of an initialization');

  const modulesToSave = c.modules_to_save ?? null;
  if (modulesToSave !== null && !strings(modulesToSave)) throw bad('modules_to_save', 'a list of module names or null');

  const layers = c.layers_to_transform ?? null;
  if (layers !== null && !isInt(layers, 0) && !ints(layers, 0)) throw bad('layers_to_transform', 'a layer index, a list of them, or null');

  const tti = c.trainable_token_indices ?? null;
  if (tti !== null && !ints(tti, 0) && !(isObject(tti) && Object.values(tti).every((v) => ints(v, 0)))) {
    throw bad('trainable_token_indices', 'a list of token ids, an object mapping module names to such lists, or null');
  }

  const loftq = c.loftq_config ?? {};
  if (!isObject(loftq)) throw bad('loftq_config', 'an object');

  const alora = c.alora_invocation_tokens ?? null;
  if (alora !== null && !ints(alora, 0)) throw bad('alora_invocation_tokens', 'a list of token ids or null');

  const replication = c.layer_replication ?? null;
  if (replication !== null && !(Array.isArray(replication) && replication.every((p) => ints(p, 0) && p.length === 2))) {
    throw bad('layer_replication', 'a list of [start, end] layer ranges or null');
  }

  const targetParameters = c.target_parameters ?? null;
  if (targetParameters !== null && !strings(targetParameters)) throw bad('target_parameters', 'a list of parameter names or null');

  const targets = stringsOrString('target_modules');
  if (typeof targets === 'string' && targets !== 'all-linear') fullMatchRegex(targets, 'target_modules', file);
  const excludes = stringsOrString('exclude_modules');
  if (typeof excludes === 'string') fullMatchRegex(excludes, 'exclude_modules', file);
  const layersPattern = stringsOrString('layers_pattern');
  if (typeof targets === 'string' && layers !== null) {
    throw new AdapterConfigError('Key "layers_to_transform" cannot be used when "target_modules" is a string (a regex or "all-linear").', { file });
  }
  if (typeof targets === 'string' && layersPattern !== null) {
    throw new AdapterConfigError('Key "layers_pattern" cannot be used when "target_modules" is a string (a regex or "all-linear").', { file });
  }
  if (layersPattern !== null && layersPattern.length > 0 && (layers === null || (Array.isArray(layers) && layers.length === 0))) {
    throw new AdapterConfigError('Key "layers_pattern" is set, so "layers_to_transform" must be set too.', { file });
  }

  return {
    peft_type: 'LORA',
    task_type: taskType as string | null,
    base_model_name_or_path: optString('base_model_name_or_path'),
    revision: optString('revision'),
    inference_mode: bool('inference_mode'),
    auto_mapping: optObject('auto_mapping'),
    r: posInt('r'),
    lora_alpha: (c.lora_alpha as number | undefined) ?? d.lora_alpha,
    lora_dropout: dropout,
    target_modules: targets,
    exclude_modules: excludes,
    fan_in_fan_out: bool('fan_in_fan_out'),
    bias,
    use_rslora: bool('use_rslora'),
    modules_to_save: modulesToSave === null ? null : [...modulesToSave],
    init_lora_weights: init,
    layers_to_transform: Array.isArray(layers) ? [...layers] : layers,
    layers_pattern: layersPattern,
    rank_pattern: numberMap('rank_pattern', (v) => isInt(v, 1), 'a positive integer rank'),
    alpha_pattern: numberMap('alpha_pattern', posNum, 'a positive number'),
    megatron_config: optObject('megatron_config'),
    megatron_core: optString('megatron_core'),
    trainable_token_indices: tti === null ? null : structuredClone(tti as number[] | Record<string, number[]>),
    loftq_config: structuredClone(loftq),
    eva_config: optObject('eva_config'),
    corda_config: optObject('corda_config'),
    lora_ga_config: optObject('lora_ga_config'),
    use_dora: bool('use_dora'),
    velora_config: optObject('velora_config'),
    alora_invocation_tokens: alora === null ? null : [...alora],
    use_qalora: bool('use_qalora'),
    qalora_group_size: posInt('qalora_group_size'),
    monteclora_config: optObject('monteclora_config'),
    layer_replication: replication === null ? null : (replication as [number, number][]).map(([a, b]) => [a, b]),
    lora_bias: bool('lora_bias'),
    target_parameters: targetParameters === null ? null : [...targetParameters],
    use_bdlora: optObject('use_bdlora'),
    arrow_config: optObject('arrow_config'),
    ensure_weight_tying: bool('ensure_weight_tying'),
  };
}

/** A regex that must match a whole module path; AdapterConfigError naming `key` when it does not compile. */
export function fullMatchRegex(pattern: string, key: string, file?: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new AdapterConfigError(`Key "${key}" holds ${JSON.stringify(pattern)}, which is not a valid regular expression.`, { file, cause: e });
  }
}

/** adapter_config.json text as PEFT writes it: every key, sorted (nested objects too), indented by 2. */
export function serializeLoraConfig(config: LoraConfig): string {
  const checked = parseLoraConfig(config as unknown as Record<string, unknown>);
  return JSON.stringify(sortKeys(checked), null, 2);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Target modules in a Llama-family model

/** The linear layers of a decoder block that LoRA can adapt, in module order, with their parent module. */
export const LLAMA_LINEAR_MODULES = [
  ['self_attn', 'q_proj'],
  ['self_attn', 'k_proj'],
  ['self_attn', 'v_proj'],
  ['self_attn', 'o_proj'],
  ['mlp', 'gate_proj'],
  ['mlp', 'up_proj'],
  ['mlp', 'down_proj'],
] as const;
export type LlamaLinearName = (typeof LLAMA_LINEAR_MODULES)[number][1];

/** PEFT's default targets for llama, mistral, qwen2 and qwen3 when target_modules is null. */
export const DEFAULT_TARGET_MODULES: readonly string[] = ['q_proj', 'v_proj'];

/** One adaptable linear layer: its path and its PyTorch weight shape [out, in]. */
export interface LinearModule {
  /** e.g. "model.layers.0.self_attn.q_proj". */
  path: string;
  layer: number;
  name: LlamaLinearName;
  inFeatures: number;
  outFeatures: number;
}

/** Every linear layer of the decoder blocks of `model`, layer by layer (lm_head is not among them). */
export function linearModules(model: ModelConfig): LinearModule[] {
  const H = model.hiddenSize;
  const q = model.numAttentionHeads * model.headDim;
  const kv = model.numKeyValueHeads * model.headDim;
  const F = model.intermediateSize;
  const shapes: Record<LlamaLinearName, [number, number]> = {
    q_proj: [q, H],
    k_proj: [kv, H],
    v_proj: [kv, H],
    o_proj: [H, q],
    gate_proj: [F, H],
    up_proj: [F, H],
    down_proj: [H, F],
  };
  const out: LinearModule[] = [];
  for (let layer = 0; layer < model.numHiddenLayers; layer++) {
    for (const [parent, name] of LLAMA_LINEAR_MODULES) {
      const [outFeatures, inFeatures] = shapes[name];
      out.push({ path: `model.layers.${layer}.${parent}.${name}`, layer, name, inFeatures, outFeatures });
    }
  }
  return out;
}

/** PEFT's list match: the whole path, or the path ending in `.entry`. */
function listMatches(entries: readonly string[], path: string): boolean {
  return entries.some((t) => path === t || path.endsWith(`.${t}`));
}

/** The layer index PEFT reads from a path for layers_to_transform (first numbered segment after the pattern). */
function layerIndexOf(path: string, layersPattern: string[] | string | null): number | null {
  const patterns = layersPattern === null || layersPattern.length === 0 ? null : typeof layersPattern === 'string' ? [layersPattern] : layersPattern;
  const regexes = patterns === null ? [/^.*?\.[^.]*\.(\d+)\./] : patterns.map((p) => fullMatchRegex(`.*?\\.${p}\\.(\\d+)\\..*`, 'layers_pattern'));
  for (const re of regexes) {
    const m = re.exec(path);
    if (m) return Number(m[1]);
  }
  return null;
}

/**
 * The linear modules of `model` that `config` adapts, in module order. Follows PEFT's
 * `check_target_module_exists`: exclude_modules first, then target_modules (a list entry matches the
 * whole path or a `.entry` suffix; a string other than "all-linear" must match the whole path), then,
 * for a list, layers_to_transform. Throws AdapterConfigError for a list entry or a regex that matches
 * no module, and when nothing at all is selected.
 */
export function targetModules(config: LoraConfig, model: ModelConfig): LinearModule[] {
  const all = linearModules(model);
  const available = () => `Available modules: ${LLAMA_LINEAR_MODULES.map(([, n]) => n).join(', ')} (as "q_proj", "self_attn.q_proj" or "model.layers.0.self_attn.q_proj").`;
  const targets = config.target_modules ?? DEFAULT_TARGET_MODULES;

  let excluded: (path: string) => boolean = () => false;
  if (typeof config.exclude_modules === 'string') {
    const re = fullMatchRegex(config.exclude_modules, 'exclude_modules');
    excluded = (p) => re.test(p);
  } else if (config.exclude_modules !== null) {
    const list = config.exclude_modules;
    excluded = (p) => listMatches(list, p);
  }

  let selected: LinearModule[];
  if (targets === 'all-linear') {
    selected = all;
  } else if (typeof targets === 'string') {
    const re = fullMatchRegex(targets, 'target_modules');
    selected = all.filter((m) => re.test(m.path));
    if (selected.length === 0) {
      throw new AdapterConfigError(`Key "target_modules" is the pattern ${JSON.stringify(targets)}, which matches no module of the model. ${available()}`);
    }
  } else {
    for (const t of targets) {
      if (!all.some((m) => listMatches([t], m.path))) {
        throw new AdapterConfigError(
          `Key "target_modules" names ${JSON.stringify(t)}, which matches no linear layer of the model` +
            `${t === 'lm_head' ? ' that LoRA can adapt here (lm_head is not adapted)' : ''}. ${available()}`,
        );
      }
    }
    selected = all.filter((m) => listMatches(targets, m.path));
    const layers = config.layers_to_transform;
    if (layers !== null && (!Array.isArray(layers) || layers.length > 0)) {
      const wanted = new Set(Array.isArray(layers) ? layers : [layers]);
      for (const l of wanted) {
        if (l >= model.numHiddenLayers) {
          throw new AdapterConfigError(`Key "layers_to_transform" names layer ${l}, but the model has layers 0 to ${model.numHiddenLayers - 1}.`);
        }
      }
      selected = selected.filter((m) => {
        const idx = layerIndexOf(m.path, config.layers_pattern);
        return idx !== null && wanted.has(idx);
      });
    }
  }
  selected = selected.filter((m) => !excluded(m.path));
  if (selected.length === 0) {
    throw new AdapterConfigError('Keys "target_modules", "layers_to_transform" and "exclude_modules" together select no module of the model.');
  }
  return selected;
}

/** The full module paths `config` adapts in `model` (e.g. "model.layers.0.self_attn.q_proj"), in module order. */
export function targetModuleNames(config: LoraConfig, model: ModelConfig): string[] {
  return targetModules(config, model).map((m) => m.path);
}

/**
 * target_modules as PEFT writes it once the adapter is attached: a list as a sorted set, a regex
 * unchanged, and "all-linear" or null (the architecture default) as the sorted leaf names of the
 * modules they select. Throws AdapterConfigError when the targets select nothing in `model`.
 */
export function savedTargetModules(config: LoraConfig, model: ModelConfig): string[] | string {
  const selected = targetModules(config, model);
  const t = config.target_modules;
  if (Array.isArray(t)) return [...new Set(t)].sort();
  if (typeof t === 'string' && t !== 'all-linear') return t;
  return [...new Set(selected.map((m) => m.name))].sort();
}

// ---------------------------------------------------------------------------------------------
// Adapter tensors

/** One module's LoRA factors, row-major: A is (r, in), B is (out, r). */
export interface LoraPair {
  A: Float32Array; // (r, in)
  B: Float32Array; // (out, r)
}

/** LoRA factors by module path ("model.layers.0.self_attn.q_proj"). */
export type LoraTensors = ReadonlyMap<string, LoraPair>;

/** What one module's adapter tensors must look like, and the scale PEFT applies to them. */
export interface LoraModuleSpec extends LinearModule {
  r: number;
  alpha: number;
  scaling: number;
}

/** The adapted modules of `config` in `model` with their rank, alpha and scale, in module order. */
export function expectedLoraModules(config: LoraConfig, model: ModelConfig): LoraModuleSpec[] {
  return targetModules(config, model).map((m) => {
    const { r, alpha } = moduleRankAlpha(config, m.path);
    return { ...m, r, alpha, scaling: scaling({ r, lora_alpha: alpha, use_rslora: config.use_rslora }) };
  });
}

/**
 * Checks `tensors` against `config` and `model`: one pair for every adapted module and none for
 * another module, each A of r × in values and each B of out × r. Returns the module specs in module
 * order. Throws AdapterMismatchError naming the module.
 */
export function checkLoraTensors(config: LoraConfig, model: ModelConfig, tensors: LoraTensors): LoraModuleSpec[] {
  const specs = expectedLoraModules(config, model);
  const byPath = new Map(specs.map((s) => [s.path, s]));
  for (const path of tensors.keys()) {
    if (!byPath.has(path)) {
      const known = linearModules(model).some((m) => m.path === path);
      throw new AdapterMismatchError(
        known
          ? `Tensors are given for module "${path}", which target_modules does not select (it selects ${specs.length} modules, e.g. "${specs[0].path}").`
          : `Tensors are given for module "${path}", which is not a linear layer of the model; expected paths like "${specs[0].path}".`,
      );
    }
  }
  for (const s of specs) {
    const pair = tensors.get(s.path);
    if (!pair) throw new AdapterMismatchError(`Module "${s.path}" is adapted by the config but no tensors are given for it.`);
    if (!(pair.A instanceof Float32Array) || !(pair.B instanceof Float32Array)) {
      throw new AdapterMismatchError(`Module "${s.path}": A and B must be Float32Arrays.`);
    }
    if (pair.A.length !== s.r * s.inFeatures) {
      throw new AdapterMismatchError(
        `Module "${s.path}": lora_A must be (r=${s.r}, in=${s.inFeatures}) = ${s.r * s.inFeatures} values; got ${pair.A.length}.`,
      );
    }
    if (pair.B.length !== s.outFeatures * s.r) {
      throw new AdapterMismatchError(
        `Module "${s.path}": lora_B must be (out=${s.outFeatures}, r=${s.r}) = ${s.outFeatures * s.r} values; got ${pair.B.length}.`,
      );
    }
  }
  return specs;
}

/**
 * Throws AdapterConfigError for config features whose tensors plain LoRA factors cannot carry:
 * DoRA magnitudes, LoRA or base biases, modules_to_save, trainable tokens, target_parameters,
 * layer replication.
 */
export function checkPlainLora(config: LoraConfig, what: string): void {
  const refuse = (key: string, why: string) => {
    throw new AdapterConfigError(`Key "${key}" is ${JSON.stringify((config as unknown as Record<string, unknown>)[key])}: ${why}, which ${what} does not write.`);
  };
  if (config.use_dora) refuse('use_dora', 'DoRA adds magnitude vectors');
  if (config.lora_bias) refuse('lora_bias', 'it adds a bias to lora_B');
  if (config.bias !== 'none') refuse('bias', 'trained biases are extra tensors');
  if (config.modules_to_save !== null && config.modules_to_save.length > 0) refuse('modules_to_save', 'it saves whole modules');
  if (config.trainable_token_indices !== null) refuse('trainable_token_indices', 'it trains embedding rows');
  if (config.target_parameters !== null && config.target_parameters.length > 0) refuse('target_parameters', 'it adapts parameters');
  if (config.layer_replication !== null) refuse('layer_replication', 'it changes the layer stack');
}
