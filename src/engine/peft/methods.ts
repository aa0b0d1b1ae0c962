// The tuning-method registry's engine side: each method of method-info.ts (id, label, description,
// options, export formats: the metadata the studio's forms use without the engine) with how its
// option values become an adapter on a model, how to recognise its saved files and how to load them.
// The CLI (train, eval, export) and the worker go through it, so adding a method is one entry in
// method-info.ts, one here, and its folder.

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
import { METHOD_INFOS, type MethodInfo, type MethodOptionValues, methodIds } from './method-info.ts';
import { createPrefixTuning, createPrefixTuningConfig, loadPrefixTuning } from './prefix/index.ts';
import { createPromptTuning, createPromptTuningConfig, loadPromptTuning } from './prompt/index.ts';

export type { ExportFormat, MethodInfo, MethodOption, MethodOptionType, MethodOptionValues } from './method-info.ts';
export { methodFlags, methodIds, parseMethodOptions, parseModules } from './method-info.ts';

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

/** A tuning method as the CLI and the worker drive it: its metadata and the engine's functions. */
export interface TuningMethod extends MethodInfo {
  /** A new adapter on `model` from option values (parseMethodOptions's output). */
  create(model: LlamaModel, values: MethodOptionValues, options: CreateAdapterOptions): Promise<PeftAdapter>;
  /** Whether a saved config object (adapter_config.json, or config.json for a model folder) is this method's. */
  matches(config: Record<string, unknown>): boolean;
  /** Loads saved files onto `model` (training off). */
  load(model: LlamaModel, files: FileSet | Map<string, Uint8Array>): Promise<PeftAdapter>;
}

/** The engine side of a method: what method-info.ts leaves out. */
type EngineSide = Pick<TuningMethod, 'create' | 'matches' | 'load'>;

/** Each method's engine side, by id. */
const ENGINE: Readonly<Record<string, EngineSide>> = {
  lora: {
    async create(model, values, o) {
      const config = createLoraConfig({ ...(values as object), base_model_name_or_path: o.baseModel ?? null });
      return new LoraMethodAdapter(createLora(model, config, { seed: o.seed }), 'lora');
    },
    matches: (c) => c.peft_type === 'LORA' && c.use_dora !== true,
    async load(model, files) {
      return new LoraMethodAdapter(await loadLora(model, files), 'lora');
    },
  },
  dora: {
    async create(model, values, o) {
      return createDora(model, createLoraConfig({ ...(values as object), use_dora: true, base_model_name_or_path: o.baseModel ?? null }), { seed: o.seed });
    },
    matches: (c) => c.peft_type === 'LORA' && c.use_dora === true,
    load: (model, files) => loadDora(model, files),
  },
  ia3: {
    async create(model, values, o) {
      return createIa3(model, createIa3Config({ ...(values as object), base_model_name_or_path: o.baseModel ?? null }), { seed: o.seed });
    },
    matches: (c) => c.peft_type === 'IA3',
    load: (model, files) => loadIa3(model, files),
  },
  prompt: {
    async create(model, values, o) {
      const config = createPromptTuningConfig({ ...(values as object), base_model_name_or_path: o.baseModel ?? null });
      return createPromptTuning(model, config, { seed: o.seed, encode: o.encode });
    },
    matches: (c) => c.peft_type === 'PROMPT_TUNING',
    load: (model, files) => loadPromptTuning(model, files),
  },
  prefix: {
    async create(model, values, o) {
      const { encoder_hidden_size: hidden, ...rest } = values as { encoder_hidden_size?: number; prefix_projection?: boolean };
      if (hidden && !rest.prefix_projection) throw new InvalidArgumentError('--encoder-hidden sets the width of the projection MLP; add --prefix-projection to train with the projection.');
      const config = createPrefixTuningConfig({ ...rest, encoder_hidden_size: hidden || null, base_model_name_or_path: o.baseModel ?? null });
      return createPrefixTuning(model, config, { seed: o.seed });
    },
    matches: (c) => c.peft_type === 'PREFIX_TUNING',
    load: (model, files) => loadPrefixTuning(model, files),
  },
  adapter: {
    async create(model, values, o) {
      return createBottleneck(model, createBottleneckConfig(values as Partial<BottleneckSettings>, { model_name: o.baseModel ?? null }), { seed: o.seed });
    },
    matches: (c) => isBottleneckConfig(c),
    load: (model, files) => loadBottleneck(model, files),
  },
  full: {
    async create(model, _values, o) {
      return createFullFineTune(model, { source: o.source });
    },
    // A model folder: config.json with an architectures list and no adapter_config.json.
    matches: (c) => Array.isArray(c.architectures),
    load: (model, files) => loadFullFineTune(model, asFileSet(files)),
  },
};

/** Every method, in the order the method picker lists them (method-info.ts's METHOD_INFOS). */
export const METHODS: readonly TuningMethod[] = METHOD_INFOS.map((info) => {
  const side = ENGINE[info.id];
  if (!side) throw new Error(`The method ${info.id} has metadata in method-info.ts but no engine side in methods.ts.`);
  return { ...info, ...side };
});

const FULL = findMethod('full');

/** The method with id `id`; InvalidArgumentError listing the known ones otherwise. */
export function findMethod(id: string): TuningMethod {
  const m = METHODS.find((x) => x.id === id);
  if (!m) throw new InvalidArgumentError(`--method ${JSON.stringify(id)} is not available; use one of ${methodIds().join(', ')}.`);
  return m;
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
