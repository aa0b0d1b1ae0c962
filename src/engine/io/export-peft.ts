// PEFT LoRA adapter files: writes `adapter_config.json` and `adapter_model.safetensors` as PEFT's
// save_pretrained does (keys `base_model.model.<module>.lora_A.weight` of shape [r, in] and
// `.lora_B.weight` of shape [out, r], metadata {"format": "pt"}, config keys sorted and indented by
// 2, inference_mode true, target_modules resolved to module names), and reads such a folder back
// into a config and f32 tensors. The reader accepts keys with or without the `base_model.model.`
// prefix and with or without an adapter-name segment (`lora_A.default.weight`), in F32, F16 or BF16.
// Everything happens in memory on Float32Arrays; this file does not touch the GPU.

import {
  AdapterConfigError,
  AdapterMismatchError,
  MissingFileError,
  SafetensorsFormatError,
  UnsafeWeightsError,
} from '../errors.ts';
import type { ModelConfig } from '../model/config.ts';
import {
  type LoraConfig,
  type LoraPair,
  type LoraTensors,
  checkLoraTensors,
  checkPlainLora,
  LLAMA_LINEAR_MODULES,
  linearModules,
  moduleRankAlpha,
  parseLoraConfig,
  savedTargetModules,
  serializeLoraConfig,
} from '../peft/lora/config.ts';
import {
  type Ia3Config,
  type Ia3Tensors,
  checkIa3Tensors,
  expectedIa3Modules,
  parseIa3Config,
  savedIa3Config,
  serializeIa3Config,
} from '../peft/ia3/config.ts';
import {
  type PromptTuningConfig,
  checkPromptTuningModel,
  parsePromptTuningConfig,
  savedPromptTuningConfig,
  serializePromptTuningConfig,
} from '../peft/prompt/config.ts';
import {
  type PrefixTuningConfig,
  checkPrefixModel,
  parsePrefixTuningConfig,
  prefixTokenDim,
  savedPrefixTuningConfig,
  serializePrefixTuningConfig,
} from '../peft/prefix/config.ts';
import type { FileSet } from './model-folder.ts';
import { type SafetensorsDType, type TensorToWrite, f32ToBf16, f32ToF16, readSafetensorsIndex, readTensorF32, writeSafetensors } from './safetensors.ts';
import { type ByteSource, memorySource, readText } from './source.ts';

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';
/** PEFT's legacy pickled weights; refused, never parsed. */
export const ADAPTER_PICKLE_NAME = 'adapter_model.bin';

/** The prefix PEFT gives every key: PeftModel.base_model (LoraModel) .model (the transformers model). */
export const PEFT_KEY_PREFIX = 'base_model.model.';

/** Element type of the written tensors. */
export type AdapterDType = 'f32' | 'f16' | 'bf16';

/** Files by name, as bytes. */
export type AdapterFiles = Map<string, Uint8Array>;

export interface ExportPeftOptions {
  config: LoraConfig;
  /** LoRA factors by module path ("model.layers.0.self_attn.q_proj"). */
  tensors: LoraTensors;
  modelConfig: ModelConfig;
  /** 'f32' by default. */
  dtype?: AdapterDType;
}

/** The safetensors key of a module's lora_A or lora_B weight. */
export function peftKey(modulePath: string, which: 'A' | 'B'): string {
  return `${PEFT_KEY_PREFIX}${modulePath}.lora_${which}.weight`;
}

/** Bytes of `values` in a safetensors dtype, rounded to nearest even for the 16-bit types. */
export function encodeFloats(values: Float32Array, dtype: AdapterDType): { dtype: SafetensorsDType; data: ArrayBufferView } {
  if (dtype === 'f32') return { dtype: 'F32', data: values };
  if (dtype === 'f16') return { dtype: 'F16', data: f32ToF16(values) };
  return { dtype: 'BF16', data: f32ToBf16(values) };
}

/** The config as written next to the weights: inference_mode true and target_modules resolved, as PEFT saves it. */
export function savedLoraConfig(config: LoraConfig, modelConfig: ModelConfig): LoraConfig {
  return { ...config, inference_mode: true, target_modules: savedTargetModules(config, modelConfig) };
}

/**
 * `adapter_config.json` and `adapter_model.safetensors` of a PEFT LoRA adapter. Throws
 * AdapterConfigError for a config whose extra tensors (DoRA, biases, modules_to_save) are not
 * given, and AdapterMismatchError for a missing, unknown or wrongly sized module.
 */
export function exportPeftLora(options: ExportPeftOptions): AdapterFiles {
  const { config, tensors, modelConfig } = options;
  const dtype = checkDType(options.dtype ?? 'f32');
  const parsed = parseLoraConfig(config as unknown as Record<string, unknown>);
  checkPlainLora(parsed, 'the PEFT export');
  const specs = checkLoraTensors(parsed, modelConfig, tensors);
  const out: TensorToWrite[] = [];
  for (const s of specs) {
    const pair = tensors.get(s.path) as LoraPair;
    out.push({ name: peftKey(s.path, 'A'), shape: [s.r, s.inFeatures], ...encodeFloats(pair.A, dtype) });
    out.push({ name: peftKey(s.path, 'B'), shape: [s.outFeatures, s.r], ...encodeFloats(pair.B, dtype) });
  }
  const json = serializeLoraConfig(savedLoraConfig(parsed, modelConfig));
  return new Map([
    [ADAPTER_CONFIG_NAME, new TextEncoder().encode(json)],
    [ADAPTER_WEIGHTS_NAME, writeSafetensors(out, { format: 'pt' })],
  ]);
}

function checkDType(dtype: string): AdapterDType {
  if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16') {
    throw new AdapterConfigError(`dtype ${JSON.stringify(dtype)} is not one of "f32", "f16", "bf16".`);
  }
  return dtype;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** One module's factors as read back, with the shape they were stored in. */
export interface ImportedLoraPair extends LoraPair {
  r: number;
  inFeatures: number;
  outFeatures: number;
}

export interface ImportedPeftLora {
  config: LoraConfig;
  /** By module path, in the order of the file's keys sorted by module. */
  tensors: Map<string, ImportedLoraPair>;
  /** The dtype of the stored tensors (all of them share it). */
  dtype: SafetensorsDType;
  /** `__metadata__` of the safetensors file, or null. */
  metadata: Record<string, string> | null;
}

/** The largest adapter_config.json accepted. */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** A key's module path and factor, or null when it is not a lora_A/lora_B weight. */
export function parsePeftKey(key: string): { modulePath: string; which: 'A' | 'B' } | null {
  const m = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(key);
  if (!m) return null;
  return { modulePath: m[1], which: m[2] as 'A' | 'B' };
}

/**
 * Reads a PEFT LoRA adapter: `adapter_config.json` plus `adapter_model.safetensors`, from a FileSet
 * or from bytes by file name. With `modelConfig`, every module must be a linear layer of that model
 * with the right in/out sizes. Throws MissingFileError for a missing file, UnsafeWeightsError when
 * only `adapter_model.bin` is there, AdapterConfigError for a non-LoRA or malformed config, and
 * AdapterMismatchError for tensors that do not pair up or whose shapes disagree with r.
 */
export async function importPeftLora(
  files: FileSet | ReadonlyMap<string, Uint8Array>,
  modelConfig?: ModelConfig,
): Promise<ImportedPeftLora> {
  const set = typeof (files as FileSet).list === 'function' ? (files as FileSet) : mapFileSet(files as ReadonlyMap<string, Uint8Array>);
  const names = new Set(set.list());
  if (!names.has(ADAPTER_CONFIG_NAME)) {
    throw new MissingFileError(`${ADAPTER_CONFIG_NAME} is missing; a PEFT adapter folder holds it next to ${ADAPTER_WEIGHTS_NAME}.`, {
      file: ADAPTER_CONFIG_NAME,
    });
  }
  if (!names.has(ADAPTER_WEIGHTS_NAME)) {
    if (names.has(ADAPTER_PICKLE_NAME)) {
      throw new UnsafeWeightsError(`Only ${ADAPTER_PICKLE_NAME} (a pickled PyTorch file) is there; it is never loaded.`, { file: ADAPTER_PICKLE_NAME });
    }
    throw new MissingFileError(`${ADAPTER_WEIGHTS_NAME} is missing; a PEFT adapter folder holds it next to ${ADAPTER_CONFIG_NAME}.`, {
      file: ADAPTER_WEIGHTS_NAME,
    });
  }
  const configSource = await set.open(ADAPTER_CONFIG_NAME);
  let config: LoraConfig;
  try {
    config = parseLoraConfig(await readText(configSource, MAX_CONFIG_BYTES), ADAPTER_CONFIG_NAME);
  } finally {
    await configSource.close?.();
  }
  const source = await set.open(ADAPTER_WEIGHTS_NAME);
  try {
    return await readAdapterWeights(source, config, modelConfig);
  } finally {
    await source.close?.();
  }
}

async function readAdapterWeights(
  source: ByteSource,
  config: LoraConfig,
  modelConfig: ModelConfig | undefined,
  skip: (key: string) => boolean = () => false,
): Promise<ImportedPeftLora> {
  const file = ADAPTER_WEIGHTS_NAME;
  const index = await readSafetensorsIndex(source);
  const found = new Map<string, { A?: string; B?: string }>();
  let dtype: SafetensorsDType | null = null;
  for (const [key, entry] of index.tensors) {
    if (skip(key)) continue;
    const parsed = parsePeftKey(key);
    if (!parsed) {
      throw new AdapterMismatchError(
        `Tensor "${key}" is not a lora_A or lora_B weight (DoRA magnitudes, biases, embeddings and saved modules are not read).`,
        { file },
      );
    }
    if (entry.dtype !== 'F32' && entry.dtype !== 'F16' && entry.dtype !== 'BF16') {
      throw new AdapterMismatchError(`Tensor "${key}" is ${entry.dtype}; expected F32, F16 or BF16.`, { file });
    }
    if (dtype !== null && entry.dtype !== dtype) {
      throw new AdapterMismatchError(`Tensor "${key}" is ${entry.dtype} while others are ${dtype}; expected one dtype for all.`, { file });
    }
    dtype = entry.dtype;
    const slot = found.get(parsed.modulePath) ?? {};
    if (slot[parsed.which] !== undefined) {
      throw new AdapterMismatchError(`Module "${parsed.modulePath}" has two lora_${parsed.which} tensors: "${slot[parsed.which]}" and "${key}".`, { file });
    }
    slot[parsed.which] = key;
    found.set(parsed.modulePath, slot);
  }
  if (found.size === 0) throw new AdapterMismatchError('The file holds no lora_A/lora_B tensors.', { file });

  const modules = modelConfig ? new Map(linearModules(modelConfig).map((m) => [m.path, m])) : null;
  const tensors = new Map<string, ImportedLoraPair>();
  for (const modulePath of [...found.keys()].sort(compareModulePaths)) {
    const { A: keyA, B: keyB } = found.get(modulePath) as { A?: string; B?: string };
    if (keyA === undefined || keyB === undefined) {
      throw new AdapterMismatchError(`Module "${modulePath}" has lora_${keyA === undefined ? 'B' : 'A'} but no lora_${keyA === undefined ? 'A' : 'B'}.`, {
        file,
      });
    }
    const a = index.tensors.get(keyA);
    const b = index.tensors.get(keyB);
    if (!a || !b) throw new SafetensorsFormatError(`Tensors of module "${modulePath}" vanished from the index.`, { file });
    const { r } = moduleRankAlpha(config, modulePath);
    if (a.shape.length !== 2 || b.shape.length !== 2) {
      throw new AdapterMismatchError(
        `Module "${modulePath}": lora_A [${a.shape.join(', ')}] and lora_B [${b.shape.join(', ')}] must both be 2-D.`,
        { file, byteOffset: a.offset },
      );
    }
    const [rA, inFeatures] = a.shape;
    const [outFeatures, rB] = b.shape;
    if (rA !== r || rB !== r) {
      throw new AdapterMismatchError(
        `Module "${modulePath}": lora_A [${a.shape.join(', ')}] and lora_B [${b.shape.join(', ')}] disagree with r=${r} of the config; ` +
          `expected lora_A [${r}, in] and lora_B [out, ${r}].`,
        { file, byteOffset: a.offset },
      );
    }
    if (modules) {
      const m = modules.get(modulePath);
      if (!m) {
        throw new AdapterMismatchError(`Module "${modulePath}" is not a linear layer of the base model; expected paths like "model.layers.0.self_attn.q_proj".`, {
          file,
        });
      }
      if (m.inFeatures !== inFeatures || m.outFeatures !== outFeatures) {
        throw new AdapterMismatchError(
          `Module "${modulePath}" is (out=${outFeatures}, in=${inFeatures}) in the adapter but (out=${m.outFeatures}, in=${m.inFeatures}) in the base model.`,
          { file },
        );
      }
    }
    tensors.set(modulePath, { A: await readTensorF32(source, a), B: await readTensorF32(source, b), r, inFeatures, outFeatures });
  }
  return { config, tensors, dtype: dtype as SafetensorsDType, metadata: index.metadata };
}

/** Orders module paths by layer number, then q, k, v, o, gate, up, down, then by the rest of the path. */
function compareModulePaths(x: string, y: string): number {
  const lx = /\.layers\.(\d+)\./.exec(x);
  const ly = /\.layers\.(\d+)\./.exec(y);
  if (lx && ly && lx[1] !== ly[1]) return Number(lx[1]) - Number(ly[1]);
  const rank = (p: string) => {
    const i = MODULE_ORDER.indexOf(p.slice(p.lastIndexOf('.') + 1));
    return i < 0 ? MODULE_ORDER.length : i;
  };
  return rank(x) - rank(y) || (x < y ? -1 : x > y ? 1 : 0);
}

const MODULE_ORDER: readonly string[] = LLAMA_LINEAR_MODULES.map(([, name]) => name);

function mapFileSet(files: ReadonlyMap<string, Uint8Array>): FileSet {
  return {
    name: 'adapter files',
    list: () => [...files.keys()].sort(),
    open(name) {
      const bytes = files.get(name);
      if (!bytes) throw new MissingFileError(`${name} is not among the adapter files.`, { file: name });
      return memorySource(bytes, name);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Any method: the config's peft_type

/** Reads a PEFT folder's adapter_config.json as a JSON object (for telling methods apart). Throws MissingFileError or AdapterConfigError. */
export async function readAdapterConfigJson(files: FileSet | ReadonlyMap<string, Uint8Array>, name = ADAPTER_CONFIG_NAME): Promise<Record<string, unknown>> {
  const set = asFileSet(files);
  if (!set.list().includes(name)) {
    throw new MissingFileError(`${name} is missing; an adapter folder holds it next to its weights.`, { file: name });
  }
  const source = await set.open(name);
  let text: string;
  try {
    text = await readText(source, MAX_CONFIG_BYTES);
  } finally {
    await source.close?.();
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new AdapterConfigError(`The file is not valid JSON: ${(e as Error).message}`, { file: name, cause: e });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new AdapterConfigError('The adapter config must be a JSON object.', { file: name });
  return value as Record<string, unknown>;
}

/** A FileSet over `files` (a FileSet already, or bytes by name). */
export function asFileSet(files: FileSet | ReadonlyMap<string, Uint8Array>): FileSet {
  return typeof (files as FileSet).list === 'function' ? (files as FileSet) : mapFileSet(files as ReadonlyMap<string, Uint8Array>);
}

/** The safetensors file of a PEFT folder, opened after the checks importPeftLora makes (pickles refused). */
async function openAdapterWeights(set: FileSet): Promise<ByteSource> {
  const names = new Set(set.list());
  if (!names.has(ADAPTER_WEIGHTS_NAME)) {
    if (names.has(ADAPTER_PICKLE_NAME)) {
      throw new UnsafeWeightsError(`Only ${ADAPTER_PICKLE_NAME} (a pickled PyTorch file) is there; it is never loaded.`, { file: ADAPTER_PICKLE_NAME });
    }
    throw new MissingFileError(`${ADAPTER_WEIGHTS_NAME} is missing; a PEFT adapter folder holds it next to ${ADAPTER_CONFIG_NAME}.`, { file: ADAPTER_WEIGHTS_NAME });
  }
  return set.open(ADAPTER_WEIGHTS_NAME);
}

// ---------------------------------------------------------------------------------------------
// IA3

export interface ExportPeftIa3Options {
  config: Ia3Config;
  /** ia3_l vectors by module path. */
  tensors: Ia3Tensors;
  modelConfig: ModelConfig;
  dtype?: AdapterDType;
}

/** The safetensors key of a module's IA3 vector (an nn.Parameter, so no `.weight`). */
export function peftIa3Key(modulePath: string): string {
  return `${PEFT_KEY_PREFIX}${modulePath}.ia3_l`;
}

/**
 * `adapter_config.json` and `adapter_model.safetensors` of a PEFT IA3 adapter: one `ia3_l` per
 * adapted module, [out, 1] where the output is scaled and [1, in] for feed-forward modules.
 */
export function exportPeftIa3(options: ExportPeftIa3Options): AdapterFiles {
  const dtype = checkDType(options.dtype ?? 'f32');
  const config = parseIa3Config(options.config);
  const specs = checkIa3Tensors(config, options.modelConfig, options.tensors);
  const out: TensorToWrite[] = specs.map((s) => ({ name: peftIa3Key(s.path), shape: s.shape, ...encodeFloats(options.tensors.get(s.path) as Float32Array, dtype) }));
  return new Map([
    [ADAPTER_CONFIG_NAME, new TextEncoder().encode(serializeIa3Config(savedIa3Config(config, options.modelConfig)))],
    [ADAPTER_WEIGHTS_NAME, writeSafetensors(out, { format: 'pt' })],
  ]);
}

export interface ImportedPeftIa3 {
  config: Ia3Config;
  tensors: Map<string, Float32Array>;
  dtype: SafetensorsDType;
}

/**
 * Reads a PEFT IA3 adapter folder. Keys may carry the `base_model.model.` prefix or not, and an
 * adapter-name segment (`ia3_l.default`) or not. With `modelConfig` the vectors are checked against
 * the modules the config adapts (shape [out, 1] or [1, in]). Throws MissingFileError,
 * UnsafeWeightsError, AdapterConfigError or AdapterMismatchError naming the file and tensor.
 */
export async function importPeftIa3(files: FileSet | ReadonlyMap<string, Uint8Array>, modelConfig?: ModelConfig): Promise<ImportedPeftIa3> {
  const set = asFileSet(files);
  const config = parseIa3Config(await readAdapterConfigJson(set), ADAPTER_CONFIG_NAME);
  const file = ADAPTER_WEIGHTS_NAME;
  const source = await openAdapterWeights(set);
  try {
    const index = await readSafetensorsIndex(source);
    const specs = modelConfig ? new Map(expectedIa3Modules(config, modelConfig).map((s) => [s.path, s])) : null;
    const tensors = new Map<string, Float32Array>();
    let dtype: SafetensorsDType | null = null;
    for (const [key, entry] of index.tensors) {
      const m = /^(?:base_model\.model\.)?(.+)\.ia3_l(?:\.[^.]+)?$/.exec(key);
      if (!m) throw new AdapterMismatchError(`Tensor "${key}" is not an ia3_l vector.`, { file });
      if (entry.dtype !== 'F32' && entry.dtype !== 'F16' && entry.dtype !== 'BF16') throw new AdapterMismatchError(`Tensor "${key}" is ${entry.dtype}; expected F32, F16 or BF16.`, { file });
      dtype = entry.dtype;
      const path = m[1];
      if (tensors.has(path)) throw new AdapterMismatchError(`Module "${path}" has two ia3_l tensors.`, { file });
      if (entry.shape.length !== 2 || (entry.shape[0] !== 1 && entry.shape[1] !== 1)) {
        throw new AdapterMismatchError(`Tensor "${key}" is [${entry.shape.join(', ')}]; an ia3_l vector is [out, 1] or [1, in].`, { file, byteOffset: entry.offset });
      }
      if (specs) {
        const s = specs.get(path);
        if (!s) throw new AdapterMismatchError(`Tensor "${key}" is for module "${path}", which the config does not adapt in this model.`, { file });
        if (entry.shape[0] !== s.shape[0] || entry.shape[1] !== s.shape[1]) {
          throw new AdapterMismatchError(`Tensor "${key}" is [${entry.shape.join(', ')}]; module "${path}" needs [${s.shape.join(', ')}]${s.feedforward ? ' (feed-forward: input scaled)' : ' (output scaled)'}.`, { file, byteOffset: entry.offset });
        }
      }
      tensors.set(path, await readTensorF32(source, entry));
    }
    if (tensors.size === 0) throw new AdapterMismatchError('The file holds no ia3_l tensors.', { file });
    const sorted = new Map([...tensors.entries()].sort(([a], [b]) => compareModulePaths(a, b)));
    return { config, tensors: sorted, dtype: dtype as SafetensorsDType };
  } finally {
    await source.close?.();
  }
}

// ---------------------------------------------------------------------------------------------
// DoRA (LoRA with use_dora: true)

/** One module's DoRA tensors: the LoRA factors and the magnitude vector m (out). */
export interface DoraModuleTensors extends LoraPair {
  m: Float32Array; // (out)
}

/** The safetensors key of a module's DoRA magnitude (PEFT drops the `.weight` of the DoraLinearLayer). */
export function peftMagnitudeKey(modulePath: string): string {
  return `${PEFT_KEY_PREFIX}${modulePath}.lora_magnitude_vector`;
}

/** `adapter_config.json` (use_dora true) and `adapter_model.safetensors` with lora_A, lora_B and lora_magnitude_vector [out] per module. */
export function exportPeftDora(options: { config: LoraConfig; tensors: ReadonlyMap<string, DoraModuleTensors>; modelConfig: ModelConfig; dtype?: AdapterDType }): AdapterFiles {
  const { config, tensors, modelConfig } = options;
  const dtype = checkDType(options.dtype ?? 'f32');
  const parsed = parseLoraConfig(config as unknown as Record<string, unknown>);
  if (!parsed.use_dora) throw new AdapterConfigError('Key "use_dora" is false; a DoRA export needs "use_dora": true.');
  checkPlainLora({ ...parsed, use_dora: false }, 'the PEFT DoRA export');
  const specs = checkLoraTensors(parsed, modelConfig, tensors);
  const out: TensorToWrite[] = [];
  for (const s of specs) {
    const t = tensors.get(s.path) as DoraModuleTensors;
    if (t.m.length !== s.outFeatures) throw new AdapterMismatchError(`Module "${s.path}": lora_magnitude_vector must hold ${s.outFeatures} values (one per output); got ${t.m.length}.`);
    out.push({ name: peftKey(s.path, 'A'), shape: [s.r, s.inFeatures], ...encodeFloats(t.A, dtype) });
    out.push({ name: peftKey(s.path, 'B'), shape: [s.outFeatures, s.r], ...encodeFloats(t.B, dtype) });
    out.push({ name: peftMagnitudeKey(s.path), shape: [s.outFeatures], ...encodeFloats(t.m, dtype) });
  }
  return new Map([
    [ADAPTER_CONFIG_NAME, new TextEncoder().encode(serializeLoraConfig(savedLoraConfig(parsed, modelConfig)))],
    [ADAPTER_WEIGHTS_NAME, writeSafetensors(out, { format: 'pt' })],
  ]);
}

const MAGNITUDE_KEY = /^(?:base_model\.model\.)?(.+)\.lora_magnitude_vector(?:\.[^.]+)?(?:\.weight)?$/;

/**
 * Reads a PEFT DoRA adapter folder: the LoRA factors as importPeftLora reads them, plus one
 * lora_magnitude_vector of `out` values per module. Throws AdapterConfigError when use_dora is not
 * true, AdapterMismatchError for a missing or misshapen magnitude.
 */
export async function importPeftDora(
  files: FileSet | ReadonlyMap<string, Uint8Array>,
  modelConfig?: ModelConfig,
): Promise<{ config: LoraConfig; tensors: Map<string, DoraModuleTensors & { r: number; inFeatures: number; outFeatures: number }>; dtype: SafetensorsDType }> {
  const set = asFileSet(files);
  const config = parseLoraConfig(await readAdapterConfigJson(set), ADAPTER_CONFIG_NAME);
  if (!config.use_dora) throw new AdapterConfigError('Key "use_dora" is not true: this is a plain LoRA adapter, not a DoRA one.', { file: ADAPTER_CONFIG_NAME });
  const source = await openAdapterWeights(set);
  try {
    const lora = await readAdapterWeights(source, config, modelConfig, (key) => MAGNITUDE_KEY.test(key));
    const index = await readSafetensorsIndex(source);
    const mags = new Map<string, Float32Array>();
    for (const [key, entry] of index.tensors) {
      const m = MAGNITUDE_KEY.exec(key);
      if (!m) continue;
      const pair = lora.tensors.get(m[1]);
      if (!pair) throw new AdapterMismatchError(`Tensor "${key}" is a magnitude for module "${m[1]}", which has no lora_A/lora_B.`, { file: ADAPTER_WEIGHTS_NAME });
      if (entry.shape.reduce((a, d) => a * d, 1) !== pair.outFeatures) {
        throw new AdapterMismatchError(`Tensor "${key}" is [${entry.shape.join(', ')}]; module "${m[1]}" needs [${pair.outFeatures}] (one per output).`, { file: ADAPTER_WEIGHTS_NAME, byteOffset: entry.offset });
      }
      mags.set(m[1], await readTensorF32(source, entry));
    }
    const tensors = new Map<string, DoraModuleTensors & { r: number; inFeatures: number; outFeatures: number }>();
    for (const [path, pair] of lora.tensors) {
      const m = mags.get(path);
      if (!m) throw new AdapterMismatchError(`Module "${path}" has lora_A and lora_B but no lora_magnitude_vector, which a DoRA adapter holds for every module.`, { file: ADAPTER_WEIGHTS_NAME });
      tensors.set(path, { ...pair, m });
    }
    return { config, tensors, dtype: lora.dtype };
  } finally {
    await source.close?.();
  }
}

// ---------------------------------------------------------------------------------------------
// Prompt tuning

/** The one tensor of a prompt-learning adapter (PEFT saves it without the base_model.model. prefix). */
export const PROMPT_EMBEDDINGS_KEY = 'prompt_embeddings';

/** `adapter_config.json` and `adapter_model.safetensors` holding `prompt_embeddings` [num_virtual_tokens, hidden]. */
export function exportPeftPromptTuning(options: { config: PromptTuningConfig; embeddings: Float32Array; modelConfig: ModelConfig; dtype?: AdapterDType }): AdapterFiles {
  const dtype = checkDType(options.dtype ?? 'f32');
  const config = savedPromptTuningConfig(parsePromptTuningConfig(options.config), options.modelConfig);
  const shape = [config.num_virtual_tokens, options.modelConfig.hiddenSize];
  if (options.embeddings.length !== shape[0] * shape[1]) {
    throw new AdapterMismatchError(`prompt_embeddings must be [${shape.join(', ')}] = ${shape[0] * shape[1]} values; got ${options.embeddings.length}.`);
  }
  return new Map([
    [ADAPTER_CONFIG_NAME, new TextEncoder().encode(serializePromptTuningConfig(config))],
    [ADAPTER_WEIGHTS_NAME, writeSafetensors([{ name: PROMPT_EMBEDDINGS_KEY, shape, ...encodeFloats(options.embeddings, dtype) }], { format: 'pt' })],
  ]);
}

/** Reads a PEFT prompt-tuning adapter folder: the config and `prompt_embeddings` (checked against the model when given). */
export async function importPeftPromptTuning(
  files: FileSet | ReadonlyMap<string, Uint8Array>,
  modelConfig?: ModelConfig,
): Promise<{ config: PromptTuningConfig; embeddings: Float32Array; dtype: SafetensorsDType }> {
  const set = asFileSet(files);
  const config = parsePromptTuningConfig(await readAdapterConfigJson(set), ADAPTER_CONFIG_NAME);
  if (modelConfig) checkPromptTuningModel(config, modelConfig);
  const file = ADAPTER_WEIGHTS_NAME;
  const source = await openAdapterWeights(set);
  try {
    const index = await readSafetensorsIndex(source);
    for (const key of index.tensors.keys()) {
      if (key !== PROMPT_EMBEDDINGS_KEY) throw new AdapterMismatchError(`Tensor "${key}" is not part of a prompt-tuning adapter, which holds "${PROMPT_EMBEDDINGS_KEY}" only.`, { file });
    }
    const entry = index.tensors.get(PROMPT_EMBEDDINGS_KEY);
    if (!entry) throw new AdapterMismatchError(`The file holds no "${PROMPT_EMBEDDINGS_KEY}" tensor.`, { file });
    if (entry.dtype !== 'F32' && entry.dtype !== 'F16' && entry.dtype !== 'BF16') throw new AdapterMismatchError(`Tensor "${PROMPT_EMBEDDINGS_KEY}" is ${entry.dtype}; expected F32, F16 or BF16.`, { file });
    const hidden = modelConfig?.hiddenSize ?? config.token_dim ?? entry.shape[1];
    if (entry.shape.length !== 2 || entry.shape[0] !== config.num_virtual_tokens || entry.shape[1] !== hidden) {
      throw new AdapterMismatchError(`Tensor "${PROMPT_EMBEDDINGS_KEY}" is [${entry.shape.join(', ')}]; expected [num_virtual_tokens=${config.num_virtual_tokens}, hidden=${hidden}].`, { file, byteOffset: entry.offset });
    }
    return { config, embeddings: await readTensorF32(source, entry), dtype: entry.dtype };
  } finally {
    await source.close?.();
  }
}

// ---------------------------------------------------------------------------------------------
// Prefix tuning

/** `adapter_config.json` and `adapter_model.safetensors` holding `prompt_embeddings` [nvt, L·2·Hkv·D] (PEFT's saved past keys and values). */
export function exportPeftPrefixTuning(options: { config: PrefixTuningConfig; table: Float32Array; modelConfig: ModelConfig; dtype?: AdapterDType }): AdapterFiles {
  const dtype = checkDType(options.dtype ?? 'f32');
  const config = savedPrefixTuningConfig(parsePrefixTuningConfig(options.config), options.modelConfig);
  const shape = [config.num_virtual_tokens, options.modelConfig.numHiddenLayers * 2 * prefixTokenDim(options.modelConfig)];
  if (options.table.length !== shape[0] * shape[1]) throw new AdapterMismatchError(`prompt_embeddings must be [${shape.join(', ')}]; got ${options.table.length} values.`);
  return new Map([
    [ADAPTER_CONFIG_NAME, new TextEncoder().encode(serializePrefixTuningConfig(config))],
    [ADAPTER_WEIGHTS_NAME, writeSafetensors([{ name: PROMPT_EMBEDDINGS_KEY, shape, ...encodeFloats(options.table, dtype) }], { format: 'pt' })],
  ]);
}

/** Reads a PEFT prefix-tuning adapter folder: the config and the (nvt, L·2·Hkv·D) table, checked against the model. */
export async function importPeftPrefixTuning(files: FileSet | ReadonlyMap<string, Uint8Array>, modelConfig: ModelConfig): Promise<{ config: PrefixTuningConfig; table: Float32Array }> {
  const set = asFileSet(files);
  const config = parsePrefixTuningConfig(await readAdapterConfigJson(set), ADAPTER_CONFIG_NAME);
  checkPrefixModel(config, modelConfig);
  const file = ADAPTER_WEIGHTS_NAME;
  const source = await openAdapterWeights(set);
  try {
    const index = await readSafetensorsIndex(source);
    for (const key of index.tensors.keys()) {
      if (key !== PROMPT_EMBEDDINGS_KEY) throw new AdapterMismatchError(`Tensor "${key}" is not part of a prefix-tuning adapter, which holds "${PROMPT_EMBEDDINGS_KEY}" only.`, { file });
    }
    const entry = index.tensors.get(PROMPT_EMBEDDINGS_KEY);
    if (!entry) throw new AdapterMismatchError(`The file holds no "${PROMPT_EMBEDDINGS_KEY}" tensor.`, { file });
    if (entry.dtype !== 'F32' && entry.dtype !== 'F16' && entry.dtype !== 'BF16') throw new AdapterMismatchError(`Tensor "${PROMPT_EMBEDDINGS_KEY}" is ${entry.dtype}; expected F32, F16 or BF16.`, { file });
    const width = modelConfig.numHiddenLayers * 2 * prefixTokenDim(modelConfig);
    if (entry.shape.length !== 2 || entry.shape[0] !== config.num_virtual_tokens || entry.shape[1] !== width) {
      throw new AdapterMismatchError(
        `Tensor "${PROMPT_EMBEDDINGS_KEY}" is [${entry.shape.join(', ')}]; expected [num_virtual_tokens=${config.num_virtual_tokens}, layers·2·kv_heads·head_dim=${width}].`,
        { file, byteOffset: entry.offset },
      );
    }
    return { config, table: await readTensorF32(source, entry) };
  } finally {
    await source.close?.();
  }
}
