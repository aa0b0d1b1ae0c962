// The bottleneck (Houlsby) adapter config and file layout. PEFT has no such method; the files follow
// the AdapterHub `adapters` library's naming for a Llama model with a double sequential bottleneck
// ("houlsby": an adapter after attention, `attention_adapters`, and one after the MLP,
// `output_adapters`), in safetensors:
//   model.layers.N.attention_adapters.adapters.<name>.adapter_down.0.weight  [r, hidden]
//   model.layers.N.attention_adapters.adapters.<name>.adapter_down.0.bias    [r]
//   model.layers.N.attention_adapters.adapters.<name>.adapter_up.weight      [hidden, r]
//   model.layers.N.attention_adapters.adapters.<name>.adapter_up.bias        [hidden]
// (and output_adapters likewise), with r = hidden / reduction_factor, beside an adapter_config.json
// of AdapterHub's shape ({"config": {"architecture": "bottleneck", ...}, "name", "hidden_size", ...}).
// docs/methods.md describes it. No files, no GPU.

import { AdapterConfigError, AdapterMismatchError } from '../../errors.ts';
import type { ModelConfig } from '../../model/config.ts';

/** The weights file of a bottleneck adapter folder. */
export const BOTTLENECK_WEIGHTS_NAME = 'pytorch_adapter.safetensors';

/** The settings of the adapters (AdapterHub's bottleneck config keys that apply here). */
export interface BottleneckSettings {
  architecture: 'bottleneck';
  /** An adapter on the attention output (after o_proj). */
  mh_adapter: boolean;
  /** An adapter on the MLP output (after down_proj). */
  output_adapter: boolean;
  /** hidden / bottleneck size. */
  reduction_factor: number;
  non_linearity: 'swish';
  /** Multiplies the adapter's output; 1 is the only value supported. */
  scaling: number;
  residual_before_ln: boolean;
  original_ln_before: boolean;
  original_ln_after: boolean;
  ln_before: boolean;
  ln_after: boolean;
}

/** adapter_config.json of a bottleneck adapter. */
export interface BottleneckConfig {
  config: BottleneckSettings;
  name: string;
  hidden_size: number | null;
  model_type: string | null;
  model_name: string | null;
  version: string;
}

export const BOTTLENECK_DEFAULTS: Readonly<BottleneckSettings> = Object.freeze({
  architecture: 'bottleneck',
  mh_adapter: true,
  output_adapter: true,
  reduction_factor: 16,
  non_linearity: 'swish',
  scaling: 1,
  residual_before_ln: true,
  original_ln_before: false,
  original_ln_after: false,
  ln_before: false,
  ln_after: false,
});

export function createBottleneckConfig(settings: Partial<BottleneckSettings> = {}, extra: Partial<Omit<BottleneckConfig, 'config'>> = {}): BottleneckConfig {
  return parseBottleneckConfig({ config: { ...BOTTLENECK_DEFAULTS, ...settings }, name: 'default', hidden_size: null, model_type: null, model_name: null, version: 'whetstone', ...extra });
}

/** Whether a parsed adapter_config.json object is a bottleneck adapter's. */
export function isBottleneckConfig(c: Record<string, unknown>): boolean {
  const inner = c.config as Record<string, unknown> | undefined;
  return inner !== null && typeof inner === 'object' && inner.architecture === 'bottleneck';
}

/** Reads a bottleneck adapter_config.json object. Throws AdapterConfigError naming the key for what these adapters do not compute. */
export function parseBottleneckConfig(json: unknown, file = 'adapter_config.json'): BottleneckConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AdapterConfigError('The adapter config must be a JSON object.', { file });
  const c = json as Record<string, unknown>;
  if (!isBottleneckConfig(c)) throw new AdapterConfigError('Key "config.architecture" must be "bottleneck".', { file });
  const s = c.config as Record<string, unknown>;
  const bad = (key: string, expected: string) => new AdapterConfigError(`Key "config.${key}" is ${JSON.stringify(s[key])}; expected ${expected}.`, { file });
  const bool = (key: keyof BottleneckSettings) => {
    const v = s[key] ?? BOTTLENECK_DEFAULTS[key];
    if (typeof v !== 'boolean') throw bad(key, 'true or false');
    return v;
  };
  const rf = s.reduction_factor ?? BOTTLENECK_DEFAULTS.reduction_factor;
  if (typeof rf !== 'number' || !(rf >= 1) || !Number.isFinite(rf)) throw bad('reduction_factor', 'a number ≥ 1');
  const act = s.non_linearity ?? 'swish';
  if (act !== 'swish' && act !== 'silu') throw bad('non_linearity', '"swish" (SiLU; other activations are not supported)');
  const scaling = s.scaling ?? 1;
  if (scaling !== 1) throw bad('scaling', '1 (scaled adapter outputs are not supported)');
  const settings: BottleneckSettings = {
    architecture: 'bottleneck',
    mh_adapter: bool('mh_adapter'),
    output_adapter: bool('output_adapter'),
    reduction_factor: rf,
    non_linearity: 'swish',
    scaling,
    residual_before_ln: bool('residual_before_ln'),
    original_ln_before: bool('original_ln_before'),
    original_ln_after: bool('original_ln_after'),
    ln_before: bool('ln_before'),
    ln_after: bool('ln_after'),
  };
  if (!settings.mh_adapter && !settings.output_adapter) throw new AdapterConfigError('Keys "config.mh_adapter" and "config.output_adapter" are both false: the adapter would have no layer.', { file });
  for (const key of ['original_ln_before', 'original_ln_after', 'ln_before', 'ln_after'] as const) {
    if (settings[key]) throw bad(key, 'false (layer norms around the adapter are not supported; Llama blocks are pre-norm)');
  }
  if (!settings.residual_before_ln) throw bad('residual_before_ln', 'true');
  const str = (key: 'name' | 'model_type' | 'model_name' | 'version', fallback: string | null) => {
    const v = c[key] ?? fallback;
    if (v !== null && typeof v !== 'string') throw new AdapterConfigError(`Key "${key}" is ${JSON.stringify(v)}; expected a string.`, { file });
    return v as string | null;
  };
  const name = str('name', 'default') as string;
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new AdapterConfigError(`Key "name" is ${JSON.stringify(name)}; expected letters, digits, "_" or "-".`, { file });
  const hidden = c.hidden_size ?? null;
  if (hidden !== null && (typeof hidden !== 'number' || !Number.isSafeInteger(hidden) || hidden < 1)) throw new AdapterConfigError(`Key "hidden_size" is ${JSON.stringify(hidden)}; expected a positive integer.`, { file });
  return { config: settings, name, hidden_size: hidden as number | null, model_type: str('model_type', null), model_name: str('model_name', null), version: str('version', 'whetstone') as string };
}

/** The bottleneck size for `model`: hidden / reduction_factor, at least 1 (AdapterHub rounds down). */
export function bottleneckSize(config: BottleneckConfig, model: ModelConfig): number {
  if (config.hidden_size !== null && config.hidden_size !== model.hiddenSize) {
    throw new AdapterMismatchError(`The adapter was made for hidden size ${config.hidden_size}; the model's is ${model.hiddenSize}.`);
  }
  return Math.max(1, Math.floor(model.hiddenSize / config.config.reduction_factor));
}

/** One adapter position of one layer. */
export interface BottleneckSite {
  layer: number;
  /** "attention_adapters" (after o_proj) or "output_adapters" (after down_proj). */
  kind: 'attention_adapters' | 'output_adapters';
  /** The projection whose output it adapts. */
  module: string;
  /** Key prefix of its four tensors. */
  prefix: string;
}

export function bottleneckSites(config: BottleneckConfig, model: ModelConfig): BottleneckSite[] {
  const out: BottleneckSite[] = [];
  for (let l = 0; l < model.numHiddenLayers; l++) {
    if (config.config.mh_adapter) out.push({ layer: l, kind: 'attention_adapters', module: `model.layers.${l}.self_attn.o_proj`, prefix: `model.layers.${l}.attention_adapters.adapters.${config.name}` });
    if (config.config.output_adapter) out.push({ layer: l, kind: 'output_adapters', module: `model.layers.${l}.mlp.down_proj`, prefix: `model.layers.${l}.output_adapters.adapters.${config.name}` });
  }
  return out;
}

/** adapter_config.json text: keys sorted, indented by 2, hidden size and model type filled in. */
export function serializeBottleneckConfig(config: BottleneckConfig, model: ModelConfig): string {
  const filled = { ...config, hidden_size: model.hiddenSize, model_type: config.model_type ?? model.modelType ?? null };
  const sortObj = (o: Record<string, unknown>) => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
  return JSON.stringify(sortObj({ ...filled, config: sortObj(filled.config as unknown as Record<string, unknown>) }), null, 2);
}
