// Post-training quantization of a Hugging Face model folder into another one: every projection
// weight (q/k/v/o, gate/up/down) is quantized (NF4/FP4 in bitsandbytes' serialization, INT8 as
// LLM.int8, INT4 groups in this engine's own layout; bnb-format.ts), every other tensor is copied
// as stored, and config.json gains quantization_config. The safetensors file is produced as a
// stream: each weight is read and quantized when the stream needs it, so neither the model nor its
// quantized form is ever whole in memory (a weight is quantized at most twice, once for its scales
// and once for its codes, because the format's tensor order puts them apart). The per-layer
// relative error is collected as it goes. Writing files is the caller's job (cli/quantize.ts).

import { CancelledError, InvalidArgumentError } from '../errors.ts';
import type { ModelFolder, WeightLocation } from '../io/model-folder.ts';
import { type LazyTensorToWrite, type SafetensorsDType, decodeToF32, readTensor, safetensorsLayout, streamSafetensors } from '../io/safetensors.ts';
import type { ByteSource } from '../io/source.ts';
import { quantizationConfig, serializedParts } from './bnb-format.ts';
import { type QuantOptions, type QuantizedMatrix, dequantizeMatrix, quantizeMatrix, resolveQuantOptions } from './format.ts';

export interface LayerError {
  name: string;
  shape: [number, number];
  /** ‖dequantized − original‖₂ / ‖original‖₂ over the weight. */
  relError: number;
  maxAbsError: number;
}

export interface QuantizedFolder {
  /** config.json with quantization_config. */
  config: Record<string, unknown>;
  /** model.safetensors, as a stream of byte chunks; pull it once. */
  weights: AsyncGenerator<Uint8Array>;
  /** Filled while `weights` is pulled: one entry per quantized weight, in the order first met. */
  report: LayerError[];
  /** Bytes model.safetensors will have. */
  totalBytes: number;
}

const TORCH_DTYPE: Partial<Record<SafetensorsDType, string>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64' };

/** Whether a weight of the folder is quantized by quantizeFolder. */
export function isQuantizedProjection(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && name.endsWith('_proj.weight');
}

export interface QuantizeFolderOptions {
  onProgress?: (p: { tensor: string; done: number; total: number }) => void;
  signal?: AbortSignal;
}

/** Plans the quantized folder of `folder` with options `options`; nothing is read until `weights` is pulled. */
export function quantizeFolder(folder: ModelFolder, options: QuantOptions, run: QuantizeFolderOptions = {}): QuantizedFolder {
  const o = resolveQuantOptions(options);
  const already = folder.weights.find((w) => w.quantized);
  if (already) throw new InvalidArgumentError(`The model is already quantized ("${already.name}" is stored as ${already.quantized?.format}); quantize the original weights.`);
  const sources = new Map<string, Promise<ByteSource>>();
  const open = (file: string) => {
    let s = sources.get(file);
    if (!s) {
      s = Promise.resolve(folder.files.open(file));
      sources.set(file, s);
    }
    return s;
  };
  const readRaw = async (w: WeightLocation) => readTensor(await open(w.file), w.entry, { signal: run.signal });
  const report: LayerError[] = [];
  const reported = new Set<string>();
  let last: { name: string; m: QuantizedMatrix } | null = null;
  const quantized = async (w: WeightLocation): Promise<QuantizedMatrix> => {
    if (last?.name === w.name) return last.m;
    if (run.signal?.aborted) throw new CancelledError('Quantization was cancelled.');
    const n = w.shape[0] * w.shape[1];
    const values = decodeToF32(w.dtype, await readRaw(w), new Float32Array(n));
    const m = quantizeMatrix(values, w.shape, o);
    if (!reported.has(w.name)) {
      reported.add(w.name);
      report.push({ name: w.name, shape: [w.shape[0], w.shape[1]], ...errorOf(values, dequantizeMatrix(m)) });
    }
    last = { name: w.name, m };
    return m;
  };
  const tensors: LazyTensorToWrite[] = [];
  let done = 0;
  const progress = (name: string) => run.onProgress?.({ tensor: name, done: ++done, total: tensors.length });
  for (const w of folder.weights) {
    if (isQuantizedProjection(w.name, w.shape)) {
      const dtypeName = TORCH_DTYPE[w.dtype] ?? 'float32';
      for (const part of serializedParts(w.name, w.shape[0], w.shape[1], o, dtypeName)) {
        tensors.push({ name: part.name, dtype: part.dtype, shape: part.shape, data: async () => (progress(part.name), part.data(await quantized(w))) });
      }
    } else {
      tensors.push({ name: w.name, dtype: w.dtype, shape: w.shape, data: async () => (progress(w.name), await readRaw(w)) });
    }
  }
  const totalBytes = safetensorsLayout(tensors, { format: 'pt' }).totalBytes;
  const config = { ...folder.rawConfig, quantization_config: quantizationConfig(o, 'float32') };
  async function* weights(): AsyncGenerator<Uint8Array> {
    try {
      yield* streamSafetensors(tensors, { format: 'pt' });
    } finally {
      for (const s of sources.values()) await (await s).close?.();
    }
  }
  return { config, weights: weights(), report, totalBytes };
}

function errorOf(original: Float32Array, decoded: Float32Array): { relError: number; maxAbsError: number } {
  let num = 0;
  let den = 0;
  let max = 0;
  for (let i = 0; i < original.length; i++) {
    const d = decoded[i] - original[i];
    num += d * d;
    den += original[i] * original[i];
    max = Math.max(max, Math.abs(d));
  }
  return { relError: den > 0 ? Math.sqrt(num / den) : Math.sqrt(num), maxAbsError: max };
}
