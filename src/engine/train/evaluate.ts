// The validation loss of a model with a trainable adapter applied: the mean cross-entropy over every
// counted token of every row, forward only (a tape that does not record, each block's intermediates
// freed as it goes), with the adapter in evaluation mode (no dropout) through its projection hook.
// Rows may be packed sequences. The per-batch losses stay on the GPU and are read once at the end.
// It shares meanLossOverBatches with evaluateLoss of model/llama.ts and adds adapters and packed
// rows; it trains nothing. The
// TrainableAdapter interface (what evaluation and the trainer need of a PEFT method) lives here too.

import { Tape, type Var } from '../autograd/tape.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { type LlamaModel, type LossResult, type ProjectionHook, meanLossOverBatches, planBatches } from '../model/llama.ts';
import { type Row, uploadBatch } from './batches.ts';

/** What the trainer needs of an adapter: trainable tensors with gradient buffers, leaves and a projection hook. */
export interface TrainableAdapter {
  /** Trainable f32 tensors with their gradient buffers, in a fixed order. */
  readonly params: readonly { name: string; value: Tensor; grad: Tensor }[];
  /** Training mode (dropout on, gradient buffers on the leaves). */
  training: boolean;
  /** A leaf per parameter for `tape`: with its gradient buffer in training mode. */
  leaves(tape: Tape): Map<string, Var>;
  /** The hook that applies the adapter to the model's projections; `step` seeds dropout. */
  hook(tape: Tape, leaves: Map<string, Var>, step?: number): ProjectionHook;
}

export interface EvaluateRowsOptions {
  /** Most padded tokens (rows × longest row) per forward pass. Default 2048. */
  batchTokens?: number;
  signal?: AbortSignal;
  onProgress?: (p: { rowsDone: number; rowsTotal: number }) => void;
}

/**
 * The loss of `model` (with `adapter` applied when given) over prepared rows. The adapter's
 * training mode is off during the evaluation and restored afterwards.
 */
export async function evaluateRows(model: LlamaModel, adapter: TrainableAdapter | null, rows: readonly Row[], options: EvaluateRowsOptions = {}): Promise<LossResult> {
  model.assertLive();
  if (rows.length === 0) return { loss: NaN, tokens: 0 };
  const gpu = model.gpu;
  const batches = planBatches(rows.map((r) => r.ids.length), options.batchTokens ?? 2048);
  const capacity = Math.max(...batches.map((b) => b.length * Math.max(...b.map((i) => rows[i].ids.length))));
  const groups = new TokenGroups(gpu, capacity);
  const wasTraining = adapter?.training ?? false;
  if (adapter) adapter.training = false;
  try {
    return await meanLossOverBatches(model, {
      count: batches.length,
      inputsFor: (i) => uploadBatch(gpu, rows, batches[i], groups),
      rowsIn: (i) => batches[i].length,
      rowsTotal: rows.length,
      projection: adapter ? (tape) => adapter.hook(tape, adapter.leaves(tape)) : undefined,
      signal: options.signal,
      onProgress: options.onProgress,
    });
  } finally {
    if (adapter) adapter.training = wasTraining;
    groups.release();
  }
}
