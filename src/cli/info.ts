// `whetstone info --model DIR`: a JSON summary of a model folder (architecture, sizes, parameter
// count, context length, stored dtype, pre-quantization), read from config.json and the safetensors headers only: no
// weight is read and no GPU is opened.

import { parseArgs } from 'node:util';
import type { ModelFolder } from '../engine/io/model-folder.ts';
import { parameterCount } from '../engine/model/config.ts';
import { openModelArg } from './model-args.ts';

const TORCH_DTYPES: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64', U8: 'uint8', I8: 'int8' };

/** The summary `info` prints. */
export function modelSummary(folder: ModelFolder): Record<string, unknown> {
  const c = folder.config;
  // The dtype holding most of the weight bytes, in PyTorch's spelling.
  const bytesByDtype = new Map<string, number>();
  for (const w of folder.weights) bytesByDtype.set(w.dtype, (bytesByDtype.get(w.dtype) ?? 0) + w.entry.byteLength);
  const stored = [...bytesByDtype].sort((a, b) => b[1] - a[1])[0]?.[0];
  return {
    architecture: c.architecture,
    modelType: c.modelType,
    parameters: parameterCount(c),
    layers: c.numHiddenLayers,
    heads: c.numAttentionHeads,
    kvHeads: c.numKeyValueHeads,
    headDim: c.headDim,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    vocabSize: c.vocabSize,
    contextLength: c.maxPositionEmbeddings,
    dtype: stored ? (TORCH_DTYPES[stored] ?? stored) : null,
    torchDtype: c.torchDtype,
    quantization: quantizationSummary(folder),
    tiedEmbeddings: c.tieWordEmbeddings,
    ropeTheta: c.ropeTheta,
    ropeScaling: c.ropeScaling ? c.ropeScaling.ropeType : null,
    weightBytes: folder.weightBytes,
    shards: folder.shards.length,
    tokenizer: folder.tokenizerFiles.includes('tokenizer.json'),
  };
}

/**
 * A pre-quantized folder's scheme as config.json's quantization_config states it (method, 4-bit type,
 * double quantization, group size), or null for plain float weights. `dtype` above is then the
 * storage of the packed codes, not the weights' precision.
 */
function quantizationSummary(folder: ModelFolder): Record<string, unknown> | null {
  if (folder.config.quantization === null) return null;
  const q = (folder.rawConfig as { quantization_config?: Record<string, unknown> }).quantization_config ?? {};
  const summary: Record<string, unknown> = { method: folder.config.quantization };
  for (const key of ['load_in_4bit', 'load_in_8bit', 'bnb_4bit_quant_type', 'bnb_4bit_use_double_quant', 'bnb_4bit_compute_dtype', 'bits', 'group_size', 'sym']) {
    if (q[key] !== undefined) summary[key] = q[key];
  }
  return summary;
}

export async function infoCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { model: { type: 'string' } }, strict: true });
  const folder = await openModelArg(values.model);
  process.stdout.write(`${JSON.stringify(modelSummary(folder), null, 2)}\n`);
  return 0;
}
