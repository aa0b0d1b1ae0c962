// The model-folder glue every compression method (and LoRA's merged export) shares: reading one weight of an opened folder by
// name (as f32, from its shard; clustered and quantized weights decoded), and producing a new Hugging Face folder (config.json,
// model.safetensors, the tokenizer and generation files copied from the source) whose tensors are
// computed only when the safetensors stream reaches them, so at most one output tensor exists in
// memory at a time. It runs no model and does not touch the GPU; writing the files to a disk or a
// store is the caller's (the CLI writes them, exportedBytes collects them in memory).

import { InvalidArgumentError, WeightMismatchError } from '../errors.ts';
import { GENERATION_CONFIG_FILE, type ModelFolder, TOKENIZER_FILES, readWeightF32 } from '../io/model-folder.ts';
import { type LazyTensorToWrite, type SafetensorsDType, safetensorsLayout, streamSafetensors } from '../io/safetensors.ts';
import { f32ToBf16, f32ToF16 } from '../io/half.ts';
import type { ExportedFile } from '../peft/lora/model.ts';

export type { ExportedFile };

/** Bytes read at a time when copying a file. */
const COPY_CHUNK_BYTES = 16 * 1024 * 1024;

/** Files copied next to the new weights when the source folder has them. */
const COPIED_FILES = [GENERATION_CONFIG_FILE, ...TOKENIZER_FILES] as const;

/** Reads weights of an opened folder by name, one at a time, as f32 (clustered weights come back reconstructed). */
export class WeightReader {
  readonly folder: ModelFolder;
  private readonly byName: Map<string, ModelFolder['weights'][number]>;

  constructor(folder: ModelFolder) {
    this.folder = folder;
    this.byName = new Map(folder.weights.map((w) => [w.name, w]));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The stored shape of a weight the config needs. */
  shape(name: string): number[] {
    return this.location(name).shape;
  }

  /** The dtype a weight is stored with in the source checkpoint. */
  dtype(name: string): SafetensorsDType {
    return this.location(name).dtype;
  }

  /** The weight's values as f32 (row-major, its HF shape; clustered and quantized weights decoded). */
  read(name: string): Promise<Float32Array> {
    return readWeightF32(this.folder, this.location(name));
  }

  private location(name: string): ModelFolder['weights'][number] {
    const w = this.byName.get(name);
    if (!w) throw new WeightMismatchError(`The model folder has no weight "${name}".`);
    return w;
  }
}

/** A float storage type for written tensors. */
export type FloatStorage = 'F32' | 'F16' | 'BF16';

/** f32 values encoded for `dtype`. */
export function encodeFloat(values: Float32Array, dtype: FloatStorage): ArrayBufferView {
  if (dtype === 'F32') return values;
  if (dtype === 'BF16') return f32ToBf16(values);
  return f32ToF16(values);
}

/** The storage of a written float tensor: the source's F16/BF16 kept, everything else F32. */
export function storageLike(dtype: SafetensorsDType | undefined): FloatStorage {
  return dtype === 'BF16' || dtype === 'F16' ? dtype : 'F32';
}

/**
 * A new model folder: config.json (`rawConfig` without any quantization_config, pretty-printed), model.safetensors (`tensors`,
 * produced lazily as the stream reaches each one) and the tokenizer and generation files copied from
 * `source` when it has them.
 */
export async function modelFolderFiles(
  rawConfig: Record<string, unknown>,
  tensors: readonly LazyTensorToWrite[],
  source: Pick<ModelFolder, 'files'>,
): Promise<ExportedFile[]> {
  if (tensors.length === 0) throw new InvalidArgumentError('A model folder needs at least one tensor.');
  const metadata = { format: 'pt' };
  const layout = safetensorsLayout(tensors, metadata);
  // The tensors written are float (or clustered): a quantized source's quantization_config no longer applies.
  const { quantization_config: _dropped, ...config } = rawConfig;
  return folderFiles(config, { name: 'model.safetensors', bytes: layout.totalBytes, chunks: () => streamSafetensors(tensors, metadata) }, source);
}

/**
 * The files of a model folder around its weights: config.json (`config` pretty-printed, as given),
 * `weights`, then the tokenizer and generation files of `source` that it has, each copied as it is
 * read.
 */
export async function folderFiles(
  config: Record<string, unknown>,
  weights: ExportedFile,
  source: Pick<ModelFolder, 'files'>,
): Promise<ExportedFile[]> {
  const configBytes = new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`);
  const out: ExportedFile[] = [
    {
      name: 'config.json',
      bytes: configBytes.byteLength,
      async *chunks() {
        yield configBytes;
      },
    },
    weights,
  ];
  const listed = new Set(source.files.list());
  for (const name of COPIED_FILES) {
    if (!listed.has(name)) continue;
    const opened = await source.files.open(name);
    const size = opened.size;
    await opened.close?.();
    out.push({
      name,
      bytes: size,
      async *chunks() {
        const src = await source.files.open(name);
        try {
          for (let at = 0; at < src.size; at += COPY_CHUNK_BYTES) yield await src.read(at, Math.min(COPY_CHUNK_BYTES, src.size - at));
        } finally {
          await src.close?.();
        }
      },
    });
  }
  return out;
}

/** Total bytes of a folder's files. */
export function folderBytes(files: readonly ExportedFile[]): number {
  return files.reduce((a, f) => a + f.bytes, 0);
}
