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

async function readAdapterWeights(source: ByteSource, config: LoraConfig, modelConfig: ModelConfig | undefined): Promise<ImportedPeftLora> {
  const file = ADAPTER_WEIGHTS_NAME;
  const index = await readSafetensorsIndex(source);
  const found = new Map<string, { A?: string; B?: string }>();
  let dtype: SafetensorsDType | null = null;
  for (const [key, entry] of index.tensors) {
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
