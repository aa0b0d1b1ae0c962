// The validation loss of a model with a trainable adapter applied: the mean cross-entropy over every
// counted token of every row, forward only (a tape that does not record, each block's intermediates
// freed as it goes), with the adapter in evaluation mode (no dropout) through its projection hook.
// Rows may be packed sequences. The per-batch losses stay on the GPU and are read once at the end.
// It shares meanLossOverBatches with evaluateLoss of model/llama.ts and adds adapters and packed
// rows; it trains nothing. The
// TrainableAdapter interface (what evaluation and the trainer need of a PEFT method) lives here too.

import { Tape, type Var } from '../autograd/tape.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { InvalidArgumentError } from '../errors.ts';
import { type ForwardOptions, IGNORE_INDEX, type LlamaModel, type LossResult, type ProjectionHook, type TokenRow, meanLossOverBatches, planBatches } from '../model/llama.ts';
import { type Row, uploadBatch } from './batches.ts';

/**
 * What the trainer needs of an adapter: trainable tensors with gradient buffers, leaves, and how it
 * enters the forward pass — a projection hook (LoRA), or forward options (any hooks of
 * ForwardOptions, or the trainable weights themselves as parameter overrides). An adapter gives
 * forwardOptions, hook, or both; forwardOptions wins.
 */
export interface TrainableAdapter {
  /** Trainable f32 tensors with their gradient buffers, in a fixed order. */
  readonly params: readonly { name: string; value: Tensor; grad: Tensor }[];
  /** Training mode (dropout on, gradient buffers on the leaves). */
  training: boolean;
  /** A leaf per parameter for `tape`: with its gradient buffer in training mode. */
  leaves(tape: Tape): Map<string, Var>;
  /** The hook that applies the adapter to the model's projections; `step` seeds dropout. */
  hook?(tape: Tape, leaves: Map<string, Var>, step?: number): ProjectionHook;
  /** The forward options that apply the adapter, with `leaves` of the tape the forward records on; `step` seeds dropout. */
  forwardOptions?(tape: Tape, leaves: Map<string, Var>, step?: number): ForwardOptions;
  /** Rewrites prepared rows before they are batched (prompt tuning prepends its virtual tokens); rows the adapter takes as they are when absent. */
  adaptRows?(rows: readonly Row[]): Row[];
  /** Called after the trainer changed the parameter values (each optimizer update, a resume), recording work in `b` (quantization-aware full fine-tuning re-quantizes its working copies). */
  paramsChanged?(b: Batch): void;
}

/** The forward options that apply `adapter` on `tape` with its `leaves` (forwardOptions, else the projection hook). */
export function adapterForward(adapter: TrainableAdapter, tape: Tape, leaves: Map<string, Var>, step?: number): ForwardOptions {
  if (adapter.forwardOptions) return adapter.forwardOptions(tape, leaves, step);
  if (adapter.hook) return { projection: adapter.hook(tape, leaves, step) };
  throw new InvalidArgumentError('The adapter gives neither forwardOptions nor a projection hook, so it cannot enter the forward pass.');
}

export interface EvaluateRowsOptions {
  /** Most padded tokens (rows × longest row) per forward pass. Default 2048. */
  batchTokens?: number;
  signal?: AbortSignal;
  onProgress?: (p: { rowsDone: number; rowsTotal: number }) => void;
}

/**
 * The loss of `model` (with `adapter` applied when given) over prepared rows, rewritten by the
 * adapter's adaptRows first when it has one. The adapter's training mode is off during the
 * evaluation and restored afterwards.
 */
export async function evaluateRows(model: LlamaModel, adapter: TrainableAdapter | null, rows: readonly Row[], options: EvaluateRowsOptions = {}): Promise<LossResult> {
  model.assertLive();
  if (rows.length === 0) return { loss: NaN, tokens: 0 };
  if (adapter?.adaptRows) rows = adapter.adaptRows(rows);
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
      forward: adapter ? (tape) => adapterForward(adapter, tape, adapter.leaves(tape)) : undefined,
      signal: options.signal,
      onProgress: options.onProgress,
    });
  } finally {
    if (adapter) adapter.training = wasTraining;
    groups.release();
  }
}

/** A checked TokenRow (ids in the vocabulary, labels aligned) as a Row: one sequence, segment 0, positions from 0, its counted next-token targets. */
export function tokenRowToRow(r: TokenRow): Row {
  const ids = Int32Array.from(r.inputIds);
  const labels = Int32Array.from(r.labels ?? r.inputIds);
  let count = 0;
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) count++;
  return { ids, labels, segments: new Int32Array(ids.length), positions: Int32Array.from(ids, (_, t) => t), count };
}
