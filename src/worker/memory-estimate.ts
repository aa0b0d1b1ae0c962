// Memory estimates of a model on this device, from its config alone (nothing downloaded): the
// weights at the checkpoint's bytes per weight and as the engine stores them (f32, or bf16
// projections), the largest tensor against the device's storage-binding limit (larger tensors are
// split into several bindings), and a rough figure for LoRA training and for full fine-tuning.
// These are estimates, labelled as such in the studio: activations, the buffer pool and the
// browser's own overhead vary. Nothing here touches the GPU.

import { type ModelConfig, expectedWeights, parameterCount } from '../engine/model/config.ts';

export interface DeviceMemoryLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

export interface MemoryEstimateOptions {
  /** LoRA rank of the training estimate. Default 16. */
  loraRank?: number;
  /** Tokens per optimizer step of the training estimate. Default 2048 (batch 4 × 512 tokens). */
  tokensPerStep?: number;
}

export type MemoryVerdict = 'fits' | 'tight' | 'too-large' | 'unknown';

export interface MemoryEstimate {
  parameters: number;
  /** Bytes per weight in the checkpoint files (from torch_dtype; 2 when it is not given). */
  checkpointBytesPerWeight: number;
  /** Parameters × checkpoint bytes per weight: about the download size. */
  checkpointBytes: number;
  /** GPU bytes of the weights stored in f32. */
  weightsF32Bytes: number;
  /** GPU bytes with the projection weights stored in bf16 (embeddings, norms and biases stay f32). */
  weightsBf16Bytes: number;
  /** The largest tensor as stored in f32, and how many storage bindings it takes on this device. */
  largestTensor: { name: string; bytes: number; bindings: number | null };
  /** The device's limits, or null when no GPU is connected. */
  limits: DeviceMemoryLimits | null;
  training: {
    loraRank: number;
    tokensPerStep: number;
    /** Trainable parameters of LoRA on every attention and MLP projection. */
    loraParameters: number;
    /** LoRA: bf16 projections, f32 adapter with gradients and AdamW moments, activations. */
    loraBytes: number;
    /** Full fine-tuning: f32 weights, gradients and AdamW moments, activations. */
    fullBytes: number;
  };
  /** Memory the device reports (navigator.deviceMemory: coarse, and capped at 8 GiB by browsers), or null when unknown. */
  deviceMemoryBytes: number | null;
  /** LoRA training against the reported device memory. */
  verdict: MemoryVerdict;
}

/** Bytes of the (tokens, vocab) logits chunk the loss computes at a time (as in model/llama.ts). */
const LOGITS_CHUNK_BYTES = 32 * 1024 * 1024;
/** Transient buffers and pool rounding, as a share of the rest. */
const OVERHEAD = 0.2;
const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export function estimateMemory(
  c: ModelConfig,
  limits: DeviceMemoryLimits | null,
  deviceMemoryBytes: number | null,
  options: MemoryEstimateOptions = {},
): MemoryEstimate {
  const rank = options.loraRank ?? 16;
  const tokens = options.tokensPerStep ?? 2048;
  const weights = expectedWeights(c);
  const parameters = parameterCount(c);
  const perWeight = bytesPerWeight(c.torchDtype);

  let projectionElems = 0;
  let loraParameters = 0;
  let largest = { name: '', elems: 0 };
  for (const w of weights) {
    const elems = w.shape.reduce((a, d) => a * d, 1);
    if (elems > largest.elems) largest = { name: w.name, elems };
    if (w.name.endsWith('_proj.weight')) {
      projectionElems += elems;
      if (PROJECTIONS.some((p) => w.name.endsWith(`${p}.weight`))) loraParameters += rank * (w.shape[0] + w.shape[1]);
    }
  }
  const weightsF32Bytes = parameters * 4;
  const weightsBf16Bytes = weightsF32Bytes - projectionElems * 2;
  const largestBytes = largest.elems * 4;

  const H = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const F = c.intermediateSize;
  // Saved per token and layer: two norms' inputs and outputs, q/k/v, the attention output and its
  // projection, gate/up/their product, the MLP output (f32 each).
  const perTokenLayer = (6 * H + 2 * q + 2 * kv + 3 * F) * 4;
  const activations = tokens * (c.numHiddenLayers * perTokenLayer + 2 * H * 4) + LOGITS_CHUNK_BYTES;
  const loraBytes = Math.round((weightsBf16Bytes + loraParameters * 4 * 4 + activations) * (1 + OVERHEAD));
  const fullBytes = Math.round((weightsF32Bytes * 4 + activations) * (1 + OVERHEAD));

  let verdict: MemoryVerdict = 'unknown';
  if (deviceMemoryBytes !== null && deviceMemoryBytes > 0) {
    verdict = loraBytes <= deviceMemoryBytes / 2 ? 'fits' : loraBytes <= deviceMemoryBytes ? 'tight' : 'too-large';
  }
  return {
    parameters,
    checkpointBytesPerWeight: perWeight,
    checkpointBytes: parameters * perWeight,
    weightsF32Bytes,
    weightsBf16Bytes,
    largestTensor: { name: largest.name, bytes: largestBytes, bindings: limits ? Math.ceil(largestBytes / limits.maxStorageBufferBindingSize) : null },
    limits,
    training: { loraRank: rank, tokensPerStep: tokens, loraParameters, loraBytes, fullBytes },
    deviceMemoryBytes,
    verdict,
  };
}

function bytesPerWeight(dtype: string | null): number {
  if (dtype === 'float32') return 4;
  if (dtype === 'float64') return 8;
  return 2;
}
