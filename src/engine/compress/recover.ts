// A short LoRA recovery fine-tune of a pruned model: a LoRA adapter is trained on the pruned (f32)
// model with the training loop of train/trainer.ts, merged into the weights on the GPU, and the
// merged model is written as a folder. Unstructured and N:M pruning keep their zeros: each written
// projection is multiplied by the pruned checkpoint's mask (values that were zero stay zero), since
// the dense LoRA update would otherwise fill them in. Structured pruning needs no mask (the removed
// heads and neurons are gone from the shapes).

import { InvalidArgumentError } from '../errors.ts';
import type { ModelFolder } from '../io/model-folder.ts';
import type { LlamaModel } from '../model/llama.ts';
import { createLora, createLoraConfig, mergeLora } from '../peft/lora/index.ts';
import type { TrainExample } from '../train/batches.ts';
import { MemoryCheckpointStore } from '../train/checkpoint.ts';
import { train } from '../train/trainer.ts';
import { exportModel } from './export-model.ts';
import { type ExportedFile, WeightReader } from './folder.ts';

export interface RecoverOptions {
  steps: number;
  lr: number;
  /** LoRA rank and alpha. Default 8 and 16. */
  rank?: number;
  alpha?: number;
  /** Default every linear projection. */
  targets?: string[] | 'all-linear';
  batchSize?: number;
  seqLen: number;
  seed: number;
  /** Re-apply the pruned checkpoint's zeros to the merged projections. Default true. */
  keepSparsity?: boolean;
}

export interface RecoverResult {
  files: ExportedFile[];
  /** Training loss of the first and of the last step. */
  firstLoss: number | null;
  lastLoss: number | null;
}

/**
 * Trains and merges a LoRA adapter into `model` (loaded with f32 weights from `folder`, the pruned
 * folder), then returns the merged model as folder files. The model's weights are changed in place.
 * `onStep` hears each optimizer step's loss; an aborted `signal` stops with CancelledError.
 */
export async function recoverWithLora(
  model: LlamaModel,
  folder: ModelFolder,
  data: readonly TrainExample[],
  o: RecoverOptions,
  signal?: AbortSignal,
  onStep?: (s: { step: number; loss: number }) => void,
): Promise<RecoverResult> {
  if (model.weightDtype !== 'f32') throw new InvalidArgumentError('Recovery merges the adapter into the weights: load the pruned model with f32 weights.');
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new InvalidArgumentError(`Recovery needs a positive whole number of steps; got ${o.steps}.`);
  const config = createLoraConfig({ r: o.rank ?? 8, lora_alpha: o.alpha ?? 16, target_modules: o.targets ?? 'all-linear' });
  const adapter = createLora(model, config, { seed: o.seed });
  let result;
  try {
    result = await train({
      model,
      adapter,
      train: data,
      options: { lr: o.lr, maxSteps: o.steps, batchSize: o.batchSize ?? 8, seqLen: o.seqLen, seed: o.seed, divergence: false },
      checkpoints: new MemoryCheckpointStore('recovery'),
      onMetrics: onStep && ((m) => onStep({ step: m.step, loss: m.loss })),
      signal,
    });
    mergeLora(model, adapter);
  } finally {
    adapter.release();
  }
  const reader = new WeightReader(folder);
  const keep = o.keepSparsity ?? true;
  const files = await exportModel(model, folder, {
    transform: async (name, values) => {
      if (!keep || !name.endsWith('_proj.weight')) return values;
      const pruned = await reader.read(name);
      for (let i = 0; i < values.length; i++) if (pruned[i] === 0) values[i] = 0;
      return values;
    },
  });
  return { files, firstLoss: result.metrics[0]?.loss ?? null, lastLoss: result.trainLoss };
}
