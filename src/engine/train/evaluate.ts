// The validation loss of a model with a trainable adapter applied: the mean cross-entropy over every
// counted token of every row, forward only (a tape that does not record, each block's intermediates
// freed as it goes), with the adapter in evaluation mode (no dropout) through its projection hook.
// Rows may be packed sequences. The per-batch losses stay on the GPU and are read once at the end.
// This is evaluateLoss of model/llama.ts for adapters and packed rows; it trains nothing. The
// TrainableAdapter interface (what evaluation and the trainer need of a PEFT method) lives here too.

import { Tape, type Var } from '../autograd/tape.ts';
import { CancelledError } from '../errors.ts';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor } from '../gpu/tensor.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { type LlamaModel, type LossResult, type ProjectionHook, planBatches } from '../model/llama.ts';
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

/** Keep at most this many evaluation batches in flight before waiting for the GPU. */
const IN_FLIGHT = 4;

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
  const losses = createTensor(gpu, [batches.length], 'f32', { label: 'eval.losses' }); // (batches)
  const counts: number[] = [];
  const wasTraining = adapter?.training ?? false;
  if (adapter) adapter.training = false;
  let rowsDone = 0;
  try {
    for (let i = 0; i < batches.length; i++) {
      if (options.signal?.aborted) throw new CancelledError('The evaluation was cancelled.');
      const inputs = uploadBatch(gpu, rows, batches[i], groups);
      try {
        counts.push(inputs.count);
        if (inputs.count > 0) {
          const tape = new Tape();
          tape.recording = false;
          const b = new Batch(gpu, 'eval');
          const projection = adapter ? adapter.hook(tape, adapter.leaves(tape)) : undefined;
          const loss = model.loss(tape, b, inputs, { projection }); // (1)
          b.encoder.copyBufferToBuffer(loss.value.buffer, 0, losses.buffer, i * 4, 4);
          tape.releaseUnrecorded();
          b.submit();
        }
      } finally {
        inputs.release();
      }
      rowsDone += batches[i].length;
      options.onProgress?.({ rowsDone, rowsTotal: rows.length });
      if (i % IN_FLIGHT === IN_FLIGHT - 1) await gpu.sync();
    }
    const values = await readTensor(losses as Tensor & { dtype: 'f32' }); // (batches)
    let sum = 0;
    let tokens = 0;
    counts.forEach((n, i) => {
      if (n === 0) return;
      sum += values[i] * n;
      tokens += n;
    });
    return { loss: tokens > 0 ? sum / tokens : NaN, tokens };
  } finally {
    if (adapter) adapter.training = wasTraining;
    losses.release();
    groups.release();
  }
}
