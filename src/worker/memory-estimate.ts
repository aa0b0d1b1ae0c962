// Memory estimates of a model on this device, from its config alone (nothing downloaded): the
// weights at the checkpoint's bytes per weight and as the engine stores them (f32, or bf16
// projections), the largest tensor against the device's storage-binding limit (larger tensors are
// split into several bindings), LoRA and QLoRA training from the engine's memory planner
// (engine/plan/memory.ts: weights, adapter, gradients, optimizer state, activations, workspace),
// and a rough figure for full fine-tuning. These are estimates, labelled as such in the studio:
// the browser's own overhead varies. Nothing here touches the GPU.

import { type ModelConfig, expectedWeights, parameterCount } from '../engine/model/config.ts';
import { type MemoryPlan, planTrainingMemory } from '../engine/plan/memory.ts';
import type { QuantFormat } from '../engine/quant/format.ts';

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
    /** LoRA: bf16 projections, f32 adapter with gradients and AdamW moments, activations (the planner's total). */
    loraBytes: number;
    /** QLoRA by base format (NF4/FP4 with double quantization, block 64; INT8; INT4 groups of 64): the planner's totals. */
    qloraBytes: Record<QuantFormat, number>;
    /** The planner's itemised LoRA (bf16 base) and QLoRA (NF4) plans. */
    plans: { lora: MemoryPlan; qlora: MemoryPlan };
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
  // The planner, for batch 4 (the studio's default) of tokensPerStep / 4 tokens, LoRA on all seven projections.
  const batch = Math.max(1, Math.min(4, tokens));
  const shape = { rank, batch, seqLen: Math.max(1, Math.round(tokens / batch)) };
  const lora = planTrainingMemory(c, { method: 'lora', weightDtype: 'bf16', ...shape });
  const qlora = (format: QuantFormat) => planTrainingMemory(c, { method: 'qlora', quant: { format, block: 64, doubleQuant: format === 'nf4' || format === 'fp4' }, ...shape });
  const qloraPlans = { nf4: qlora('nf4'), fp4: qlora('fp4'), int8: qlora('int8'), int4: qlora('int4') };
  const loraBytes = lora.total;
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
    training: {
      loraRank: rank,
      tokensPerStep: tokens,
      loraParameters,
      loraBytes,
      qloraBytes: { nf4: qloraPlans.nf4.total, fp4: qloraPlans.fp4.total, int8: qloraPlans.int8.total, int4: qloraPlans.int4.total },
      plans: { lora, qlora: qloraPlans.nf4 },
      fullBytes,
    },
    deviceMemoryBytes,
    verdict,
  };
}

function bytesPerWeight(dtype: string | null): number {
  if (dtype === 'float32') return 4;
  if (dtype === 'float64') return 8;
  return 2;
}

/** The settings of planTable's runs: batch 4 × 512 tokens, LoRA rank 16 on all seven projections. */
export const PLAN_TABLE_SETTINGS = { batch: 4, seqLen: 512, rank: 16 } as const;

/**
 * A Markdown table of the planner's predictions for the curated models (src/worker/catalog.ts)
 * under LoRA (f32 and bf16 base) and QLoRA (NF4/FP4 with double quantization, INT8, INT4), with and
 * without gradient checkpointing; printed by `whetstone quantize --plan-table` for docs/quantization.md.
 */
export function planTable(catalog: readonly { repo: string; config: Record<string, unknown> }[], parse: (raw: Record<string, unknown>) => ModelConfig): string {
  const { batch, seqLen, rank } = PLAN_TABLE_SETTINGS;
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  const runs: [string, Parameters<typeof planTrainingMemory>[1]][] = [
    ['LoRA f32', { method: 'lora', weightDtype: 'f32', rank, batch, seqLen }],
    ['LoRA bf16', { method: 'lora', weightDtype: 'bf16', rank, batch, seqLen }],
    ['QLoRA NF4', { method: 'qlora', quant: { format: 'nf4', block: 64, doubleQuant: true }, rank, batch, seqLen }],
    ['QLoRA FP4', { method: 'qlora', quant: { format: 'fp4', block: 64, doubleQuant: true }, rank, batch, seqLen }],
    ['QLoRA INT8', { method: 'qlora', quant: { format: 'int8' }, rank, batch, seqLen }],
    ['QLoRA INT4', { method: 'qlora', quant: { format: 'int4', block: 64 }, rank, batch, seqLen }],
    ['LoRA bf16 + ckpt', { method: 'lora', weightDtype: 'bf16', rank, batch, seqLen, checkpointBlocks: true }],
    ['QLoRA NF4 + ckpt', { method: 'qlora', quant: { format: 'nf4', block: 64, doubleQuant: true }, rank, batch, seqLen, checkpointBlocks: true }],
  ];
  const head = `| Model | ${runs.map(([n]) => n).join(' | ')} |`;
  const rule = `|---|${runs.map(() => '---:').join('|')}|`;
  const lines = [head, rule];
  for (const m of catalog) {
    const c = parse(m.config);
    const plans = runs.map(([, o]) => planTrainingMemory(c, o));
    lines.push(`| ${m.repo} | ${plans.map((p) => `${gib(p.total)} (${gib(p.weights)})`).join(' | ')} |`);
  }
  return lines.join('\n');
}
