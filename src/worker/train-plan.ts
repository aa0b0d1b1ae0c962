// The memory plan of a studio run, for every method: the engine's planner (plan/memory.ts) gives
// the LoRA and QLoRA plans item by item; for the other methods it gives the frozen base's weights,
// activations and workspace (a plan with no LoRA targets), and the method's trainable values are
// counted here from the model's shape (prompt tuning also lengthens every row by its virtual
// tokens). The worker checks the plan against the device before a run starts; the Train screen
// shows it. Pure functions: nothing here allocates or touches the GPU.

import { GpuOutOfMemoryError } from '../engine/errors.ts';
import { type ModelConfig, parameterCount } from '../engine/model/config.ts';
import { type DeviceLimits, type MemoryPlan, formatMiB, planTrainingMemory } from '../engine/plan/memory.ts';
import { LINEAR_MODULE_NAMES, METHODS, type MethodId, type TrainSettings, loraTargets } from './train-settings.ts';

/** A run's planned GPU memory in bytes, item by item. */
export interface RunPlan {
  method: MethodId;
  /** The frozen base as stored on the GPU (quantized projections with their scales under QLoRA; with quantization-aware full fine-tuning, also the f32 working copies of the projections). */
  weights: number;
  /** The trainable values (f32); full fine-tuning: the f32 copies of every weight. */
  adapter: number;
  /** Their gradients (f32). */
  gradients: number;
  /** AdamW's two moments (f32). */
  optimizer: number;
  /** Tensors kept for backward. */
  activations: number;
  /** Batch inputs, the loss's logits chunk, backward scratch, the pool's slack. */
  workspace: number;
  total: number;
  /** Trainable values, or null for a method whose count is only known once its adapter exists. */
  trainableParameters: number | null;
  /** How the base is quantized ("nf4, block 64, double-quantized"), or null. */
  quantization: string | null;
  tokensPerMicroBatch: number;
  /** The largest buffer that cannot be split across bindings (a quantized weight's codes), or null. */
  largestUnsplittable: MemoryPlan['largestUnsplittable'];
}

type Proj = (typeof LINEAR_MODULE_NAMES)[number];

function dims(c: ModelConfig): Record<Proj, { in: number; out: number }> {
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const C = c.hiddenSize;
  const F = c.intermediateSize;
  return {
    q_proj: { in: C, out: q },
    k_proj: { in: C, out: kv },
    v_proj: { in: C, out: kv },
    o_proj: { in: q, out: C },
    gate_proj: { in: C, out: F },
    up_proj: { in: C, out: F },
    down_proj: { in: F, out: C },
  };
}

function projections(targets: unknown, fallback: readonly Proj[]): Proj[] {
  if (targets === 'all-linear') return [...LINEAR_MODULE_NAMES];
  if (Array.isArray(targets)) return LINEAR_MODULE_NAMES.filter((p) => targets.includes(p));
  return [...fallback];
}

/** Trainable values of a non-LoRA method from the model's shape, or null for a method not counted here. */
function trainableOf(c: ModelConfig, method: MethodId, values: Record<string, unknown>): number | null {
  const L = c.numHiddenLayers;
  const d = dims(c);
  switch (method) {
    case 'ia3': {
      const targets = projections(values.target_modules, ['k_proj', 'v_proj', 'down_proj']);
      const ff = projections(values.feedforward_modules, ['down_proj']);
      return L * targets.reduce((n, p) => n + (ff.includes(p) ? d[p].in : d[p].out), 0);
    }
    case 'prompt':
      return Number(values.num_virtual_tokens) * c.hiddenSize;
    case 'prefix': {
      const nvt = Number(values.num_virtual_tokens);
      const dim = c.numKeyValueHeads * c.headDim;
      if (values.prefix_projection !== true) return L * 2 * nvt * dim;
      // The projection: embedding (nvt, dim), Linear dim → hidden, Linear hidden → L·2·dim, with biases.
      const hidden = Number(values.encoder_hidden_size) || dim;
      return nvt * dim + hidden * dim + hidden + L * 2 * dim * (hidden + 1);
    }
    case 'adapter': {
      const r = Math.max(1, Math.floor(c.hiddenSize / Number(values.reduction_factor)));
      return L * 2 * (2 * r * c.hiddenSize + r + c.hiddenSize);
    }
    case 'full':
      return parameterCount(c);
    default:
      return null;
  }
}

/** The plan of a run with `settings` on a model of config `c` whose projections are stored as `weightDtype`. */
export function planRun(c: ModelConfig, settings: TrainSettings, weightDtype: 'f32' | 'bf16' = 'f32'): RunPlan {
  const seqLen = Math.min(settings.seqLen, c.maxPositionEmbeddings);
  const shape = { batch: settings.batchSize, seqLen, weightDtype };
  if (settings.lora) {
    const l = settings.lora;
    const t = loraTargets(l.targets);
    const targets = Array.isArray(t) ? t : undefined;
    const p = planTrainingMemory(c, { ...shape, method: settings.quant ? 'qlora' : 'lora', quant: settings.quant, rank: l.rank, targets, dropout: l.dropout });
    // DoRA adds one magnitude per output row of each adapted projection.
    const d = dims(c);
    const magnitudes = settings.method === 'dora' ? c.numHiddenLayers * projections(t, LINEAR_MODULE_NAMES).reduce((n, x) => n + d[x].out, 0) : 0;
    const trainable = p.trainableParameters + magnitudes;
    const extra = magnitudes * 4;
    const q = settings.quant;
    return {
      method: settings.method,
      weights: p.weights,
      adapter: p.adapter + extra,
      gradients: p.gradients + extra,
      optimizer: p.optimizer + 2 * extra,
      activations: p.activations,
      workspace: p.workspace,
      total: p.total + 4 * extra,
      trainableParameters: trainable,
      quantization: q ? `${q.format}${q.format === 'int8' ? ' (per row)' : `, block ${q.block}`}${q.doubleQuant ? ', double-quantized' : ''}` : null,
      tokensPerMicroBatch: p.tokensPerMicroBatch,
      largestUnsplittable: p.largestUnsplittable,
    };
  }
  const values = settings.options ?? {};
  const virtual = settings.method === 'prompt' ? Number(values.num_virtual_tokens) || 0 : 0;
  const base = planTrainingMemory(c, { ...shape, seqLen: seqLen + virtual, method: 'lora', rank: 0, targets: [] });
  const trainable = trainableOf(c, settings.method, values);
  const bytes = (trainable ?? 0) * 4;
  // Quantization-aware full fine-tuning keeps an f32 working copy of every projection weight.
  const qatCopies =
    settings.method === 'full' && settings.qat
      ? planTrainingMemory(c, { ...shape, method: 'full', quantAware: true }).weights - planTrainingMemory(c, { ...shape, method: 'full' }).weights
      : 0;
  return {
    method: settings.method,
    weights: base.weights + qatCopies,
    adapter: bytes,
    gradients: bytes,
    optimizer: 2 * bytes,
    activations: base.activations,
    workspace: base.workspace,
    total: base.total + qatCopies + 4 * bytes,
    trainableParameters: trainable,
    quantization: null,
    tokensPerMicroBatch: base.tokensPerMicroBatch,
    largestUnsplittable: null,
  };
}

/** The plan with the adapter's measured size (once it exists) in place of the estimate. */
export function withMeasuredAdapter(plan: RunPlan, trainableParameters: number): RunPlan {
  const bytes = trainableParameters * 4;
  const before = plan.adapter + plan.gradients + plan.optimizer;
  return { ...plan, adapter: bytes, gradients: bytes, optimizer: 2 * bytes, total: plan.total - before + 4 * bytes, trainableParameters };
}

/**
 * Throws GpuOutOfMemoryError, naming the Train screen's settings to change, when the plan cannot
 * run on a device with `limits`: a quantized weight's codes over one storage binding, or a total
 * above `budgetBytes` (the memory the run may use, when known).
 */
export function checkRunPlan(plan: RunPlan, limits: DeviceLimits, budgetBytes: number | null): void {
  const u = plan.largestUnsplittable;
  if (u && u.bytes > limits.maxStorageBufferBindingSize) {
    throw new GpuOutOfMemoryError(`${u.name} takes ${formatMiB(u.bytes)}, more than this GPU binds at once (${formatMiB(limits.maxStorageBufferBindingSize)}).`, {
      hint: 'Choose a smaller model, or train with LoRA instead of QLoRA.',
    });
  }
  if (budgetBytes !== null && plan.total > budgetBytes) {
    const tips = [
      `lower Batch size (${plan.tokensPerMicroBatch} tokens per micro-batch now) and raise Gradient accumulation to keep the effective batch`,
      'lower Sequence length',
    ];
    if (plan.method === 'lora' || plan.method === 'dora') tips.push('choose QLoRA to store the base in 4 bits');
    if (plan.method === 'full') tips.push('choose LoRA, QLoRA or IA3, which train far fewer values');
    if (plan.method === 'qlora') tips.push('choose NF4 or FP4 with double quantization');
    const name = METHODS[plan.method]?.name ?? plan.method;
    throw new GpuOutOfMemoryError(
      `${name} with these settings needs about ${formatMiB(plan.total)} of GPU memory (weights ${formatMiB(plan.weights)}, trainable values with gradients and optimizer state ${formatMiB(plan.adapter + plan.gradients + plan.optimizer)}, activations and workspace ${formatMiB(plan.activations + plan.workspace)}) but about ${formatMiB(budgetBytes)} is available.`,
      { hint: `To fit: ${tips.join('; ')}.` },
    );
  }
}
