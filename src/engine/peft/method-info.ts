// What the studio's forms and the CLI's argument parser need to know of each tuning method, and
// nothing that computes: its id, label, one-line description, adapter_config.json peft_type, options
// (with the CLI flag, default and bounds of each), the export formats it has, and the parsing of
// option values. No GPU, kernel, model or file code is imported here (only errors and a few
// constants of the methods' config modules, which read no files and touch no GPU), so the studio's
// page bundle can list the methods without the engine. methods.ts adds create, detect and load to each entry for the engine's side.

import { InvalidArgumentError } from '../errors.ts';
import { MAX_VIRTUAL_TOKENS } from './prompt-learning.ts';
import { PROMPT_TUNING_INITS } from './prompt/config.ts';
import { MAX_ENCODER_HIDDEN_SIZE } from './prefix/config.ts';

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

/** A download format of an adapter: the method's own saved files, a llama.cpp GGUF adapter, or the base model with the adapter merged in. */
export type ExportFormat = 'peft' | 'gguf' | 'merged';

/** A tuning method as the studio lists it and the CLI parses its flags. */
export interface MethodInfo {
  /** The id used in settings, stores and `--method`. */
  id: string;
  label: string;
  /** One line for the method picker. */
  description: string;
  /** adapter_config.json's peft_type, or null for a method PEFT does not have. */
  peftType: string | null;
  options: readonly MethodOption[];
  /**
   * Export formats an adapter of this method can be written in (`whetstone export --format`, the
   * studio's downloads): "peft" is the method's own saved files (PEFT's where PEFT has the method);
   * "merged" is a Hugging Face model folder with the adapter folded into the weights (LoRA by
   * adding the update, DoRA and IA3 through their in-place merge); "gguf" is LoRA's alone.
   */
  exports: readonly ExportFormat[];
}

const TARGETS_HELP = 'Modules to adapt: all-linear, or names such as q_proj,v_proj.';

export const LORA_INFO: MethodInfo = {
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
};

export const DORA_INFO: MethodInfo = {
  id: 'dora',
  label: 'DoRA',
  description: 'Weight-decomposed LoRA: a trainable magnitude per output row times the LoRA-updated direction; saved as PEFT LoRA with use_dora.',
  peftType: 'LORA',
  options: LORA_INFO.options,
  exports: ['peft', 'merged'],
};

export const IA3_INFO: MethodInfo = {
  id: 'ia3',
  label: 'IA3',
  description: 'Learned scaling vectors on keys, values and the feed-forward input: the fewest trainable values, starting as the base model.',
  peftType: 'IA3',
  options: [
    { key: 'target_modules', flag: 'targets', label: 'Target modules', type: 'modules', default: null, help: 'Modules to scale; by default k_proj, v_proj and down_proj.' },
    { key: 'feedforward_modules', flag: 'feedforward', label: 'Feed-forward modules', type: 'modules', default: null, help: 'Targets whose input is scaled instead of their output; by default down_proj.' },
  ],
  exports: ['peft', 'merged'],
};

export const PROMPT_INFO: MethodInfo = {
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
};

export const PREFIX_INFO: MethodInfo = {
  id: 'prefix',
  label: 'Prefix tuning',
  description: 'Trainable keys and values that every layer attends before the input; the model itself stays frozen.',
  peftType: 'PREFIX_TUNING',
  options: [
    PROMPT_INFO.options[0],
    { key: 'prefix_projection', flag: 'prefix-projection', label: 'Projection (MLP)', type: 'boolean', default: false, help: 'Train an embedding through Linear, Tanh, Linear (PEFT’s prefix_projection) instead of the keys and values themselves; the saved files hold its output.' },
    { key: 'encoder_hidden_size', flag: 'encoder-hidden', label: 'Projection hidden size', type: 'int', default: 0, min: 0, max: MAX_ENCODER_HIDDEN_SIZE, help: 'Hidden width of the projection MLP; 0 uses the keys and values per token (head_dim × key/value heads), PEFT’s default.' },
  ],
  exports: ['peft'],
};

export const BOTTLENECK_INFO: MethodInfo = {
  id: 'adapter',
  label: 'Bottleneck adapters',
  description: 'Houlsby adapters: a small down-projection, swish and up-projection after attention and after the MLP of every layer, starting as the identity.',
  peftType: null,
  options: [
    { key: 'reduction_factor', flag: 'reduction-factor', label: 'Reduction factor', type: 'number', default: 16, min: 1, help: 'Bottleneck size = hidden size / this.' },
  ],
  exports: ['peft'],
};

export const FULL_INFO: MethodInfo = {
  id: 'full',
  label: 'Full fine-tuning',
  description: 'Every weight trainable (f32 master copies, AdamW); for small models only, saved as a whole model folder.',
  peftType: null,
  options: [],
  // Its own saved files are already the whole model folder: there is nothing to merge.
  exports: ['peft'],
};

/** Every method, in the order the method picker lists them. */
export const METHOD_INFOS: readonly MethodInfo[] = [LORA_INFO, DORA_INFO, IA3_INFO, PROMPT_INFO, PREFIX_INFO, BOTTLENECK_INFO, FULL_INFO];

/** The ids `--method` accepts. */
export function methodIds(): string[] {
  return METHOD_INFOS.map((m) => m.id);
}

/** Every CLI flag some method declares, with its type (for the argument parser). */
export function methodFlags(): Map<string, MethodOptionType> {
  const out = new Map<string, MethodOptionType>();
  for (const m of METHOD_INFOS) for (const o of m.options) out.set(o.flag, o.type);
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
export function parseMethodOptions(method: MethodInfo, raw: Readonly<Record<string, unknown>>): MethodOptionValues {
  const own = new Set(method.options.map((o) => o.flag));
  for (const [flag, v] of Object.entries(raw)) {
    if (v === undefined || v === false || own.has(flag)) continue;
    const owners = METHOD_INFOS.filter((m) => m.options.some((o) => o.flag === flag));
    if (owners.length > 0) throw new InvalidArgumentError(`--${flag} is an option of ${owners.map((m) => m.label).join(' and ')}; --method ${method.id} does not take it (its options: ${method.options.map((o) => `--${o.flag}`).join(', ') || 'none'}).`);
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
