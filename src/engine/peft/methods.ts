// The tuning-method registry: the one place that knows each method — its id, the label, one-line
// description and options the studio's method picker shows (with the CLI flag of each), how its
// option values become a config, how to create an adapter on a model, how to recognise and load
// its saved files, and which export formats it has. The CLI (train, eval, export) and the studio
// go through it, so adding a method is one entry here plus its folder.

import { AdapterConfigError, InvalidArgumentError } from '../errors.ts';
import { asFileSet, readAdapterConfigJson } from '../io/export-peft.ts';
import type { FileSet } from '../io/model-folder.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { PeftAdapter } from './adapter.ts';
import { createIa3, createIa3Config, loadIa3 } from './ia3/index.ts';
import { createLoraConfig } from './lora/config.ts';
import { createLora, loadLora } from './lora/model.ts';
import { createDora, loadDora } from './lora/dora.ts';
import { LoraMethodAdapter } from './lora/method.ts';
import { type BottleneckSettings, createBottleneck, createBottleneckConfig, isBottleneckConfig, loadBottleneck } from './bottleneck/index.ts';
import { type FullSource, createFullFineTune, loadFullFineTune } from './full/index.ts';
import { createPrefixTuning, createPrefixTuningConfig, loadPrefixTuning } from './prefix/index.ts';
import { MAX_VIRTUAL_TOKENS, PROMPT_TUNING_INITS, createPromptTuning, createPromptTuningConfig, loadPromptTuning } from './prompt/index.ts';

/** The type of an option's value, and how the CLI reads it. */
export type MethodOptionType = 'int' | 'number' | 'boolean' | 'modules' | 'choice' | 'text';

/** One setting of a method, as the method picker and the CLI show it. */
export interface MethodOption {
  /** The key in the method's option values (usually its config key). */
  key: string;
  /** The CLI flag without dashes, e.g. "rank" for --rank. */
  flag: string;
  label: string;
  type: MethodOptionType;
  /** The default value; null for "the method's default modules". */
  default: number | boolean | string | string[] | null;
  /** Bounds of a number (min inclusive; max exclusive when maxExclusive). */
  min?: number;
  max?: number;
  maxExclusive?: boolean;
  /** The values a 'choice' takes. */
  choices?: readonly string[];
  help: string;
}

/** Option values by key, as parseMethodOptions gives them. */
export type MethodOptionValues = Record<string, unknown>;

export interface CreateAdapterOptions {
  /** Seed of the initialization (and of dropout masks). */
  seed: number;
  /** Written as base_model_name_or_path. */
  baseModel?: string | null;
  /** The model's tokenizer (special tokens added as it adds them), for methods initialized from text. */
  encode?: (text: string) => number[];
  /** The folder the model was loaded from (config.json, tokenizer files), for methods saved as a model folder. */
  source?: FullSource;
}

/** A tuning method as the studio lists it and the CLI drives it. */
export interface TuningMethod {
  /** The id used in settings, stores and `--method`. */
  id: string;
  label: string;
  /** One line for the method picker. */
  description: string;
  /** adapter_config.json's peft_type, or null for a method PEFT does not have. */
  peftType: string | null;
  options: readonly MethodOption[];
  /** Export formats an adapter of this method can be written in (`whetstone export --format`; "peft" is the method's own saved files, PEFT's where PEFT has the method). */
  exports: readonly ('peft' | 'gguf' | 'merged')[];
  /** A new adapter on `model` from option values (parseMethodOptions's output). */
  create(model: LlamaModel, values: MethodOptionValues, options: CreateAdapterOptions): Promise<PeftAdapter>;
  /** Whether a saved config object (adapter_config.json, or config.json for a model folder) is this method's. */
  matches(config: Record<string, unknown>): boolean;
  /** Loads saved files onto `model` (training off). */
  load(model: LlamaModel, files: FileSet | Map<string, Uint8Array>): Promise<PeftAdapter>;
}

const TARGETS_HELP = 'Modules to adapt: all-linear, or names such as q_proj,v_proj.';

const LORA: TuningMethod = {
  id: 'lora',
  label: 'LoRA',
  description: 'Low-rank adapters: a trainable update scale · B · A beside each chosen projection; the base weights stay frozen.',
  peftType: 'LORA',
  options: [
    { key: 'r', flag: 'rank', label: 'Rank', type: 'int', default: 8, min: 1, max: 4096, help: 'Rank r of the low-rank update.' },
    { key: 'lora_alpha', flag: 'alpha', label: 'Alpha', type: 'number', default: 8, help: 'The update is scaled by alpha / r (alpha / √r with rsLoRA).' },
    { key: 'lora_dropout', flag: 'dropout', label: 'Dropout', type: 'number', default: 0, min: 0, max: 1, maxExclusive: true, help: 'Dropout on the adapter input while training.' },
    { key: 'target_modules', flag: 'targets', label: 'Target modules', type: 'modules', default: 'all-linear', help: TARGETS_HELP },
    { key: 'use_rslora', flag: 'rslora', label: 'rsLoRA', type: 'boolean', default: false, help: 'Scale by alpha / √r (rank-stabilised LoRA).' },
  ],
  exports: ['peft', 'gguf', 'merged'],
  async create(model, values, o) {
    const config = createLoraConfig({ ...(values as object), base_model_name_or_path: o.baseModel ?? null });
    return new LoraMethodAdapter(createLora(model, config, { seed: o.seed }), 'lora');
  },
  matches: (c) => c.peft_type === 'LORA' && c.use_dora !== true,
  async load(model, files) {
    return new LoraMethodAdapter(await loadLora(model, files), 'lora');
  },
};

const DORA: TuningMethod = {
  id: 'dora',
  label: 'DoRA',
  description: 'Weight-decomposed LoRA: a trainable magnitude per output row times the LoRA-updated direction; saved as PEFT LoRA with use_dora.',
  peftType: 'LORA',
  options: LORA.options,
  exports: ['peft'],
  async create(model, values, o) {
    return createDora(model, createLoraConfig({ ...(values as object), use_dora: true, base_model_name_or_path: o.baseModel ?? null }), { seed: o.seed });
  },
  matches: (c) => c.peft_type === 'LORA' && c.use_dora === true,
  load: (model, files) => loadDora(model, files),
};

const IA3: TuningMethod = {
  id: 'ia3',
  label: 'IA3',
  description: 'Learned scaling vectors on keys, values and the feed-forward input: the fewest trainable values, starting as the base model.',
  peftType: 'IA3',
  options: [
    { key: 'target_modules', flag: 'targets', label: 'Target modules', type: 'modules', default: null, help: 'Modules to scale; by default k_proj, v_proj and down_proj.' },
    { key: 'feedforward_modules', flag: 'feedforward', label: 'Feed-forward modules', type: 'modules', default: null, help: 'Targets whose input is scaled instead of their output; by default down_proj.' },
  ],
  exports: ['peft'],
  async create(model, values, o) {
    return createIa3(model, createIa3Config({ ...(values as object), base_model_name_or_path: o.baseModel ?? null }), { seed: o.seed });
  },
  matches: (c) => c.peft_type === 'IA3',
  load: (model, files) => loadIa3(model, files),
};

const PROMPT: TuningMethod = {
  id: 'prompt',
  label: 'Prompt tuning',
  description: 'Trainable virtual-token embeddings put before every input; the model itself stays frozen.',
  peftType: 'PROMPT_TUNING',
  options: [
    { key: 'num_virtual_tokens', flag: 'virtual-tokens', label: 'Virtual tokens', type: 'int', default: 20, min: 1, max: MAX_VIRTUAL_TOKENS, help: 'How many trained embeddings go before each input.' },
    { key: 'prompt_tuning_init', flag: 'prompt-init', label: 'Initialization', type: 'choice', choices: PROMPT_TUNING_INITS, default: 'RANDOM', help: 'RANDOM (normal), TEXT (the embeddings of a text) or SAMPLE_VOCAB (of random tokens).' },
    { key: 'prompt_tuning_init_text', flag: 'prompt-init-text', label: 'Initial text', type: 'text', default: null, help: 'The text whose token embeddings start the prompt (with TEXT), repeated or cut to the virtual tokens.' },
  ],
  exports: ['peft'],
  async create(model, values, o) {
    const config = createPromptTuningConfig({ ...(values as object), base_model_name_or_path: o.baseModel ?? null });
    return createPromptTuning(model, config, { seed: o.seed, encode: o.encode });
  },
  matches: (c) => c.peft_type === 'PROMPT_TUNING',
  load: (model, files) => loadPromptTuning(model, files),
};

const PREFIX: TuningMethod = {
  id: 'prefix',
  label: 'Prefix tuning',
  description: 'Trainable keys and values that every layer attends before the input; the model itself stays frozen.',
  peftType: 'PREFIX_TUNING',
  options: [PROMPT.options[0]],
  exports: ['peft'],
  async create(model, values, o) {
    return createPrefixTuning(model, createPrefixTuningConfig({ ...(values as object), base_model_name_or_path: o.baseModel ?? null }), { seed: o.seed });
  },
  matches: (c) => c.peft_type === 'PREFIX_TUNING',
  load: (model, files) => loadPrefixTuning(model, files),
};

const BOTTLENECK: TuningMethod = {
  id: 'adapter',
  label: 'Bottleneck adapters',
  description: 'Houlsby adapters: a small down-projection, swish and up-projection after attention and after the MLP of every layer, starting as the identity.',
  peftType: null,
  options: [
    { key: 'reduction_factor', flag: 'reduction-factor', label: 'Reduction factor', type: 'number', default: 16, min: 1, help: 'Bottleneck size = hidden size / this.' },
  ],
  exports: ['peft'],
  async create(model, values, o) {
    return createBottleneck(model, createBottleneckConfig(values as Partial<BottleneckSettings>, { model_name: o.baseModel ?? null }), { seed: o.seed });
  },
  matches: (c) => isBottleneckConfig(c),
  load: (model, files) => loadBottleneck(model, files),
};

const FULL: TuningMethod = {
  id: 'full',
  label: 'Full fine-tuning',
  description: 'Every weight trainable (f32 master copies, AdamW); for small models only, saved as a whole model folder.',
  peftType: null,
  options: [],
  exports: ['peft'],
  async create(model, _values, o) {
    return createFullFineTune(model, { source: o.source });
  },
  // A model folder: config.json with an architectures list and no adapter_config.json.
  matches: (c) => Array.isArray(c.architectures),
  load: (model, files) => loadFullFineTune(model, asFileSet(files)),
};

/** Every method, in the order the method picker lists them. */
export const METHODS: readonly TuningMethod[] = [LORA, DORA, IA3, PROMPT, PREFIX, BOTTLENECK, FULL];

/** The ids `--method` accepts. */
export function methodIds(): string[] {
  return METHODS.map((m) => m.id);
}

/** The method with id `id`; InvalidArgumentError listing the known ones otherwise. */
export function findMethod(id: string): TuningMethod {
  const m = METHODS.find((x) => x.id === id);
  if (!m) throw new InvalidArgumentError(`--method ${JSON.stringify(id)} is not available; use one of ${methodIds().join(', ')}.`);
  return m;
}

/** Every CLI flag some method declares, with its type (for the argument parser). */
export function methodFlags(): Map<string, MethodOptionType> {
  const out = new Map<string, MethodOptionType>();
  for (const m of METHODS) for (const o of m.options) out.set(o.flag, o.type);
  return out;
}

/** A module list flag: "all-linear", or a comma-separated list of module names. */
export function parseModules(flag: string, value: string): string[] | string {
  if (value.trim() === 'all-linear') return 'all-linear';
  const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0 || names.some((n) => !/^[A-Za-z0-9_.]+$/.test(n))) {
    throw new InvalidArgumentError(`--${flag} must be all-linear or a comma-separated list of module names such as q_proj,v_proj; got ${JSON.stringify(value)}.`);
  }
  return names;
}

/**
 * The option values of `method` from raw flag values (strings, booleans, or already typed values
 * from the studio), defaults for the absent ones. A flag of another method is refused, naming it.
 * Throws InvalidArgumentError naming the flag for a bad value.
 */
export function parseMethodOptions(method: TuningMethod, raw: Readonly<Record<string, unknown>>): MethodOptionValues {
  const own = new Set(method.options.map((o) => o.flag));
  for (const [flag, v] of Object.entries(raw)) {
    if (v === undefined || v === false || own.has(flag)) continue;
    const owner = METHODS.find((m) => m.options.some((o) => o.flag === flag));
    if (owner) throw new InvalidArgumentError(`--${flag} is an option of ${METHODS.filter((m) => m.options.some((o) => o.flag === flag)).map((m) => m.label).join(' and ')}; --method ${method.id} does not take it (its options: ${method.options.map((o) => `--${o.flag}`).join(', ') || 'none'}).`);
  }
  const out: MethodOptionValues = {};
  for (const o of method.options) {
    const v = raw[o.flag];
    if (v === undefined || v === null) {
      out[o.key] = Array.isArray(o.default) ? [...o.default] : o.default;
      continue;
    }
    if (o.type === 'boolean') {
      if (typeof v !== 'boolean') throw new InvalidArgumentError(`--${o.flag} is a switch (true or false); got ${JSON.stringify(v)}.`);
      out[o.key] = v;
    } else if (o.type === 'choice') {
      const x = typeof v === 'string' ? v.trim().toUpperCase() : v;
      if (typeof x !== 'string' || !(o.choices ?? []).includes(x)) throw new InvalidArgumentError(`--${o.flag} must be one of ${(o.choices ?? []).join(', ')}; got ${JSON.stringify(v)}.`);
      out[o.key] = x;
    } else if (o.type === 'text') {
      if (typeof v !== 'string') throw new InvalidArgumentError(`--${o.flag} must be text; got ${JSON.stringify(v)}.`);
      out[o.key] = v;
    } else if (o.type === 'modules') {
      if (Array.isArray(v) && v.every((s) => typeof s === 'string')) out[o.key] = [...v];
      else if (typeof v === 'string') out[o.key] = parseModules(o.flag, v);
      else throw new InvalidArgumentError(`--${o.flag} must be a list of module names; got ${JSON.stringify(v)}.`);
    } else {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      const range = `${o.min ?? '-∞'} ${o.maxExclusive ? 'and below' : 'to'} ${o.max ?? '∞'}`;
      if (!Number.isFinite(n) || (o.type === 'int' && !Number.isInteger(n))) {
        throw new InvalidArgumentError(`--${o.flag} must be ${o.type === 'int' ? 'an integer' : 'a number'}${o.min !== undefined || o.max !== undefined ? ` from ${range}` : ''}; got ${JSON.stringify(v)}.`);
      }
      if ((o.min !== undefined && n < o.min) || (o.max !== undefined && (o.maxExclusive ? n >= o.max : n > o.max))) {
        throw new InvalidArgumentError(`--${o.flag} must be ${o.type === 'int' ? 'an integer' : 'a number'} from ${range}; got ${JSON.stringify(v)}.`);
      }
      out[o.key] = n;
    }
  }
  return out;
}

/** The method whose saved files `files` are (from adapter_config.json; a model folder's config.json: full fine-tuning). Throws AdapterConfigError for a config no method reads. */
export async function detectMethod(files: FileSet | Map<string, Uint8Array>): Promise<TuningMethod> {
  const names = asFileSet(files).list();
  if (!names.includes('adapter_config.json') && names.includes('config.json')) {
    const model = await readAdapterConfigJson(files, 'config.json');
    if (FULL.matches(model)) return FULL;
  }
  const config = await readAdapterConfigJson(files);
  const m = METHODS.find((x) => x.matches(config));
  if (!m) {
    throw new AdapterConfigError(
      `adapter_config.json has "peft_type": ${JSON.stringify(config.peft_type)}${config.use_dora === true ? ' with "use_dora": true' : ''}, which no available method reads (methods: ${methodIds().join(', ')}).`,
      { file: 'adapter_config.json' },
    );
  }
  return m;
}

/** Loads saved adapter files of any method onto `model`, detecting the method (training off). */
export async function loadAdapter(model: LlamaModel, files: FileSet | Map<string, Uint8Array>): Promise<PeftAdapter> {
  return (await detectMethod(files)).load(model, files);
}
