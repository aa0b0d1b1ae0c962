// The memory planner: predicts the GPU bytes a training run of any tuning method needs, from the
// model's config and the run's settings (nothing is loaded; methods whose size depends on more than
// the config take the adapter's parameter count), itemised as weights, adapter, gradients,
// optimizer state, activations and workspace; and checks a plan against a device's limits before a
// run starts, with a typed error that says what to change. The figures follow what this engine
// allocates: weights as loadModel stores them (f32, bf16 projections, or quantized projections with
// their scales), LoRA factors with gradients and two AdamW moments in f32, and the activations the
// tape keeps for backward (every transient of a layer's forward, or only block inputs with
// gradient checkpointing plus one block recomputed), each rounded up to the buffer pool's size
// class as the allocator rounds it. Measured peaks on tiny models are checked against it
// (plan/memory.gpu.test.ts); docs/quantization.md lists predictions for real models.

import { GpuOutOfMemoryError, InvalidArgumentError } from '../errors.ts';
import { sizeClass } from '../gpu/allocator.ts';
import { type ModelConfig, expectedWeights } from '../model/config.ts';
import { type QuantOptions, quantizedBytes, resolveQuantOptions } from '../quant/format.ts';

/** Bytes of the (tokens, vocab) logits chunk the loss computes at a time (as in model/llama.ts). */
const LOGITS_CHUNK_BYTES = 32 * 1024 * 1024;
const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
type Projection = (typeof PROJECTIONS)[number];

/**
 * The buffer pool keeps, per size class, as many buffers as were ever in use at once, and the
 * backward pass's gradients use classes the forward's tensors do not fill exactly; measured on tiny
 * models, the pool ends this much above the forward's saved tensors.
 */
const POOL_FACTOR = 1.12;
/** Staging buffers of the loss and metrics reads. */
const READBACK_BYTES = 8192;

/** A registry method id (peft/methods.ts: lora, dora, ia3, prompt, prefix, adapter, full), or qlora: LoRA over a quantized base. */
export type TrainingMethod = string;

/** Methods whose adapter is LoRA's factors beside the projections (their activations and counts come from rank and targets). */
const LOW_RANK = new Set(['lora', 'qlora', 'dora']);

export interface PlanOptions {
  method: TrainingMethod;
  /** Quantization of the projection weights: QLoRA's (default NF4, block 64, double quantization), or any method's quantized base. */
  quant?: QuantOptions;
  /** LoRA: how the frozen projections are stored (default 'f32'). */
  weightDtype?: 'f32' | 'bf16';
  /** LoRA rank (default 8). */
  rank?: number;
  /** Projections that get LoRA (default all seven). */
  targets?: readonly string[];
  /** LoRA dropout > 0 keeps a dropped copy of each target's input. */
  dropout?: number;
  /** Rows per micro-batch. */
  batch: number;
  /** Tokens per row. */
  seqLen: number;
  checkpointBlocks?: boolean;
  /**
   * Trainable values of the adapter (PeftAdapter.parameterCount once it exists). Required for
   * methods other than LoRA, QLoRA, DoRA and full fine-tuning, whose counts the plan derives itself
   * (DoRA: LoRA's factors plus one magnitude per adapted output; full: every weight); when given, it
   * replaces the derived count.
   */
  trainableParameters?: number;
  /** Virtual tokens prompt tuning puts before every row: they lengthen every row. */
  virtualTokens?: number;
  /** Full fine-tuning, quantization-aware: an f32 working copy of every projection, fake-quantized, which the forward reads. */
  quantAware?: boolean;
}

export interface MemoryPlan {
  method: TrainingMethod;
  /**
   * The base model as stored on the GPU (quantized projections with their scales under QLoRA; with
   * quantization-aware full fine-tuning also the fake-quantized copies of the projections).
   */
  weights: number;
  /** The trainable tensors (f32): LoRA factors, or the method's own (full fine-tuning: f32 copies of every weight). */
  adapter: number;
  /** Gradients of the trainable tensors (f32). */
  gradients: number;
  /** AdamW's two moments (f32). */
  optimizer: number;
  /** Tensors kept for backward, in the pool's size classes. */
  activations: number;
  /** Batch inputs, the logits chunk of the loss, backward scratch and the pool's slack. */
  workspace: number;
  total: number;
  /** The largest single buffer (bytes) and what it is. */
  largestBuffer: { name: string; bytes: number };
  /** The largest buffer that cannot be split across bindings (a quantized weight's codes). */
  largestUnsplittable: { name: string; bytes: number } | null;
  trainableParameters: number;
  tokensPerMicroBatch: number;
}

function projectionOf(name: string): Projection | null {
  for (const p of PROJECTIONS) if (name.endsWith(`${p}.weight`)) return p;
  return null;
}

/** Bytes one quantized (rows, cols) weight takes on the GPU: its parts plus the map or placeholders (quant/tensor.ts). */
export function quantizedWeightBytes(rows: number, cols: number, quant: QuantOptions): number {
  const o = resolveQuantOptions(quant);
  // Double quantization keeps its 256-value map (1 KiB); unused parts are 4-byte placeholders.
  const extra = o.doubleQuant ? 1024 : o.format === 'int4' && !o.symmetric ? 4 : 8;
  return quantizedBytes(rows, cols, o) + extra;
}

/** Predicts the GPU memory of a training run (see PlanOptions for what each method needs). */
export function planTrainingMemory(c: ModelConfig, o: PlanOptions): MemoryPlan {
  const lowRank = LOW_RANK.has(o.method);
  const rank = lowRank ? (o.rank ?? 8) : 0;
  const targets = new Set<string>(lowRank ? (o.targets ?? PROJECTIONS) : []);
  if (!lowRank && o.method !== 'full' && o.trainableParameters === undefined) {
    throw new InvalidArgumentError(`The memory plan of --method ${o.method} needs the adapter's parameter count (trainableParameters).`);
  }
  if (o.quantAware && o.method !== 'full') throw new InvalidArgumentError(`Quantization-aware training fake-quantizes the weights of a full fine-tune; --method ${o.method} has no such plan.`);
  if (o.trainableParameters !== undefined && !(Number.isInteger(o.trainableParameters) && o.trainableParameters >= 0)) {
    throw new InvalidArgumentError(`trainableParameters must be a non-negative integer; got ${o.trainableParameters}.`);
  }
  const quant = o.method === 'qlora' || o.quant ? resolveQuantOptions(o.quant ?? { format: 'nf4', block: 64, doubleQuant: true }) : null;
  const N = o.batch * (o.seqLen + (o.virtualTokens ?? 0));
  const f = 4;

  // Weights, as loadModel stores them.
  let weights = (c.headDim / 2) * f; // rope inv_freq
  let trainable = 0;
  let largestBuffer = { name: '', bytes: 0 };
  let largestUnsplittable: MemoryPlan['largestUnsplittable'] = null;
  for (const w of expectedWeights(c)) {
    const elems = w.shape.reduce((a, d) => a * d, 1);
    const proj = projectionOf(w.name);
    let bytes: number;
    if (proj && quant) {
      bytes = quantizedWeightBytes(w.shape[0], w.shape[1], quant);
      const codes = quant.format === 'int8' ? elems : Math.ceil(elems / 2);
      if (!largestUnsplittable || codes > largestUnsplittable.bytes) largestUnsplittable = { name: `${w.name} (codes)`, bytes: codes };
    } else {
      bytes = elems * (proj && o.weightDtype === 'bf16' ? 2 : f);
    }
    if (bytes > largestBuffer.bytes) largestBuffer = { name: w.name, bytes };
    weights += Math.ceil(bytes / 4) * 4;
    if (proj && targets.has(proj)) trainable += rank * (w.shape[0] + w.shape[1]) + (o.method === 'dora' ? w.shape[0] : 0);
    if (o.method === 'full') trainable += elems;
    if (proj && o.method === 'full' && o.quantAware) weights += elems * f;
  }
  if (o.trainableParameters !== undefined) trainable = o.trainableParameters;

  // Activations kept for backward, per token of one micro-batch.
  const C = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const F = c.intermediateSize;
  const outOf: Record<Projection, number> = { q_proj: q, k_proj: kv, v_proj: kv, o_proj: C, gate_proj: F, up_proj: F, down_proj: C };
  const inOf: Record<Projection, number> = { q_proj: C, k_proj: C, v_proj: C, o_proj: q, gate_proj: C, up_proj: C, down_proj: F };
  const t = (cols: number) => sizeClass(N * cols * f); // one (N, cols) f32 transient
  let layer = 0;
  for (const p of PROJECTIONS) {
    layer += t(outOf[p]); // the frozen projection's output
    if (targets.has(p)) {
      layer += t(rank) + 2 * t(outOf[p]); // x·Aᵀ, its product with Bᵀ, and the sum with the base output
      if ((o.dropout ?? 0) > 0) layer += t(inOf[p]);
    }
  }
  if (c.attentionBias) layer += t(q) + 2 * t(kv); // q/k/v bias outputs
  if (c.outputBias) layer += t(C);
  if (c.qkNorm) layer += t(q) + t(kv) + sizeClass(N * c.numAttentionHeads * f) + sizeClass(N * c.numKeyValueHeads * f);
  layer += 2 * (t(C) + sizeClass(N * f)); // two RMSNorms: output and rstd
  layer += t(q) + t(kv); // RoPE outputs
  layer += t(q) + sizeClass(N * c.numAttentionHeads * f); // attention output and logsumexp
  layer += t(F); // SwiGLU
  layer += 2 * t(C); // the two residual sums
  const L = c.numHiddenLayers;
  const blockInput = t(C);
  // With checkpointing only block inputs stay; backward recomputes one block, and that block's
  // gradients cannot reuse buffers of the others' (freed) activations, since there are none.
  const activations = o.checkpointBlocks ? L * blockInput + 2 * layer : L * layer;

  // Workspace: the embedding output, final norm, the loss's logits chunk and dh, batch inputs.
  const chunkTokens = Math.max(1, Math.min(N, Math.floor(LOGITS_CHUNK_BYTES / (c.vocabSize * f))));
  const logitsChunk = sizeClass(chunkTokens * c.vocabSize * f);
  const inputs = 4 * sizeClass(N * 4) + 2 * sizeClass(N * 4); // ids, positions, segments, targets; token groups
  const base = blockInput + t(C) + sizeClass(N * f) + logitsChunk + t(C) + inputs;
  // The uniform arena: 64 KiB pages of 256 dispatch parameter blocks, about 50 dispatches a layer per step.
  const uniforms = Math.ceil((50 * (L + 1)) / 256) * 65536;
  const workspace = Math.round(base + (POOL_FACTOR - 1) * (activations + base)) + uniforms + READBACK_BYTES;

  const adapter = trainable * f;
  const total = weights + adapter * 4 + activations + workspace + 3 * 256; // + the optimizer's norm scalars
  return {
    method: o.method,
    weights,
    adapter,
    gradients: adapter,
    optimizer: 2 * adapter,
    activations,
    workspace,
    total,
    largestBuffer,
    largestUnsplittable,
    trainableParameters: trainable,
    tokensPerMicroBatch: N,
  };
}

export interface DeviceLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/**
 * Throws GpuOutOfMemoryError, saying what to change, when the plan cannot run: a quantized
 * weight's codes larger than one storage binding, or a total above `budgetBytes` (the memory the
 * run may use, when known).
 */
export function checkPlan(plan: MemoryPlan, limits: DeviceLimits, budgetBytes: number | null = null): void {
  const u = plan.largestUnsplittable;
  if (u && u.bytes > limits.maxStorageBufferBindingSize) {
    throw new GpuOutOfMemoryError(`${u.name} takes ${formatMiB(u.bytes)}, more than this GPU binds at once (${formatMiB(limits.maxStorageBufferBindingSize)}).`, {
      hint: 'Use a smaller model, or train with --method lora and bf16 weights instead of a quantized base.',
    });
  }
  if (budgetBytes !== null && plan.total > budgetBytes) {
    const act = plan.activations + plan.workspace;
    const tips = [
      `lower --batch (${plan.tokensPerMicroBatch} tokens per micro-batch now; use --grad-accum to keep the effective batch)`,
      'lower --seq-len',
      'add --checkpoint-blocks',
    ];
    if (plan.method === 'lora') tips.push('train with --method qlora --quant nf4 to store the base in 4 bits');
    throw new GpuOutOfMemoryError(
      `The run needs about ${formatMiB(plan.total)} of GPU memory (weights ${formatMiB(plan.weights)}, activations and workspace ${formatMiB(act)}) but ${formatMiB(budgetBytes)} is available.`,
      { hint: `To fit: ${tips.join('; ')}.` },
    );
  }
}

export function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 2 : 0)} MiB`;
}

/** The plan as a table of lines (for the CLI). */
export function describePlan(plan: MemoryPlan): string {
  const rows: [string, number][] = [
    ['weights', plan.weights],
    ['adapter', plan.adapter],
    ['gradients', plan.gradients],
    ['optimizer state', plan.optimizer],
    ['activations', plan.activations],
    ['workspace', plan.workspace],
    ['total', plan.total],
  ];
  return rows.map(([k, v]) => `  ${k.padEnd(16)} ${formatMiB(v).padStart(12)}`).join('\n');
}

