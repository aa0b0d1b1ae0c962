// The steps that the compression commands (prune, distill, compress-report) and the studio's
// Compress screen share around the techniques themselves: the seeded held-out split of a data set,
// Wanda calibration followed by pruning, the LoRA recovery of a pruned folder (loaded with f32
// weights, trained, merged and written while the model is alive), distillation measured on held-out
// rows before and after, and generation speed as the median of a few timed greedy runs. Where the
// folders go (a directory, the studio's store) is the caller's: it passes a function that writes
// the files. Nothing here parses flags or renders anything.

import { InvalidArgumentError } from '../errors.ts';
import type { Gpu } from '../gpu/device.ts';
import type { ModelFolder } from '../io/model-folder.ts';
import { generate } from '../model/generate.ts';
import { type LlamaModel, type TokenRow, loadModel } from '../model/llama.ts';
import { type TrainExample, epochOrder } from '../train/batches.ts';
import { activationNorms } from './calibrate.ts';
import { type DistillEvaluation, type DistillOptions, distillStudent, evaluateDistill } from './distill.ts';
import { exportModel } from './export-model.ts';
import type { ExportedFile } from './folder.ts';
import { type PruneOptions, type PruneResult, pruneModel } from './prune.ts';
import { type RecoverOptions, recoverWithLora } from './recover.ts';

/** Progress of a step that runs in steps or rows: `done` of `total` `unit`. */
export interface StepProgress {
  done: number;
  total: number;
  /** What is counted: calibration rows or optimizer steps. */
  unit: 'rows' | 'steps';
  /** The last step's training loss (recovery and distillation). */
  loss?: number;
}

/**
 * Splits `rows` with the seed: the first round(fraction · n) of a seeded shuffle are held out (at
 * least one when fraction > 0, at most `maxHeld`), the rest train; at least one row always trains.
 */
export function splitHeldOut<T>(rows: readonly T[], fraction: number, seed: number, maxHeld = Infinity): { held: T[]; train: T[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new InvalidArgumentError(`The held-out fraction must be at least 0 and below 1; got ${fraction}.`);
  const n = rows.length;
  const order = epochOrder(n, seed, 0);
  const wanted = fraction > 0 ? Math.max(1, Math.round(fraction * n)) : 0;
  const nHeld = n > 1 ? Math.min(n - 1, wanted, maxHeld) : 0;
  return { held: order.slice(0, nHeld).map((i) => rows[i]), train: order.slice(nHeld).map((i) => rows[i]) };
}

export interface CalibrationInput {
  /** The model loaded from the folder being pruned (any weight storage: only activations are read). */
  model: LlamaModel;
  rows: readonly TokenRow[];
  signal?: AbortSignal;
  onProgress?: (p: StepProgress) => void;
}

/** Prunes `folder`; with the Wanda criterion and no norms given, the norms come from `calibration` first. */
export async function calibrateAndPrune(folder: ModelFolder, options: PruneOptions, calibration?: CalibrationInput): Promise<PruneResult> {
  if ((options.criterion ?? 'magnitude') === 'wanda' && !options.norms) {
    if (!calibration) throw new InvalidArgumentError('Wanda pruning needs calibration rows: the activations that weigh the weights.', { hint: 'Give a calibration dataset.' });
    const norms = await activationNorms(calibration.model, calibration.rows, {
      signal: calibration.signal,
      onProgress: (p) => calibration.onProgress?.({ done: p.rowsDone, total: p.rowsTotal, unit: 'rows' }),
    });
    return pruneModel(folder, { ...options, norms });
  }
  return pruneModel(folder, options);
}

/**
 * The LoRA recovery of a pruned folder: loads it with f32 weights on `gpu`, trains and merges the
 * adapter (recover.ts), and hands the merged folder's files to `write` while the model still holds
 * the weights they are read from; the model is released afterwards.
 */
export async function recoverPrunedFolder<T>(
  gpu: Gpu,
  pruned: ModelFolder,
  data: readonly TrainExample[],
  options: RecoverOptions,
  write: (files: ExportedFile[]) => Promise<T>,
  hooks: { signal?: AbortSignal; onProgress?: (p: StepProgress) => void } = {},
): Promise<{ written: T; firstLoss: number | null; lastLoss: number | null }> {
  const model = await loadModel(gpu, pruned, { dtype: 'f32' });
  try {
    const r = await recoverWithLora(model, pruned, data, options, hooks.signal, (s) => hooks.onProgress?.({ done: s.step, total: options.steps, unit: 'steps', loss: s.loss }));
    return { written: await write(r.files), firstLoss: r.firstLoss, lastLoss: r.lastLoss };
  } finally {
    model.release();
  }
}

export interface DistillRunResult<T> {
  written: T;
  /** Held-out measures before and after training; null without held-out rows. */
  before: DistillEvaluation | null;
  after: DistillEvaluation | null;
  /** The distillation loss of every step. */
  losses: number[];
}

/**
 * Distils `teacher` into the student folder's model (loaded here with f32 weights on the teacher's
 * GPU): held-out measures, training, held-out measures again, then the trained student's files go
 * to `write` while its weights are alive; the student is released afterwards.
 */
export async function distillToFolder<T>(args: {
  teacher: LlamaModel;
  studentFolder: ModelFolder;
  train: readonly TrainExample[];
  held: readonly TrainExample[];
  options: DistillOptions;
  write: (files: ExportedFile[]) => Promise<T>;
  signal?: AbortSignal;
  onProgress?: (p: StepProgress) => void;
  onStage?: (stage: 'measuring-before' | 'training' | 'measuring-after') => void;
}): Promise<DistillRunResult<T>> {
  const { teacher, studentFolder, held, options } = args;
  const student = await loadModel(teacher.gpu, studentFolder, { dtype: 'f32' });
  try {
    const measure = () => (held.length > 0 ? evaluateDistill(teacher, student, held, { seqLen: options.seqLen }) : Promise.resolve(null));
    args.onStage?.('measuring-before');
    const before = await measure();
    args.onStage?.('training');
    const result = await distillStudent({
      teacher,
      student,
      train: args.train,
      options,
      signal: args.signal,
      onStep: (s) => args.onProgress?.({ done: s.step, total: s.totalSteps, unit: 'steps', loss: s.loss }),
    });
    args.onStage?.('measuring-after');
    const after = await measure();
    const written = await args.write(await exportModel(student, studentFolder));
    return { written, before, after, losses: result.losses };
  } finally {
    student.release();
  }
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new InvalidArgumentError('The median of no values is undefined.');
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface SpeedOptions {
  /** New tokens per timed run. Default 32. */
  tokens?: number;
  /** Timed runs; the median is reported. Default 3. */
  repeats?: number;
  signal?: AbortSignal;
}

/**
 * Greedy generation speed of `model` after `prompt`: one short warm-up run (pipelines, buffers),
 * then `repeats` timed runs of `tokens` new tokens (no stop token), each timed by the wall clock;
 * returns the median tokens/s and every run's.
 */
export async function generationSpeed(model: LlamaModel, prompt: readonly number[], o: SpeedOptions = {}): Promise<{ tokensPerSecond: number; runs: number[] }> {
  const tokens = o.tokens ?? 32;
  const repeats = o.repeats ?? 3;
  if (!Number.isInteger(tokens) || tokens < 1) throw new InvalidArgumentError(`Generation speed needs at least one token per run; got ${tokens}.`);
  if (!Number.isInteger(repeats) || repeats < 1) throw new InvalidArgumentError(`Generation speed needs at least one timed run; got ${repeats}.`);
  if (prompt.length === 0) throw new InvalidArgumentError('Generation speed needs a prompt of at least one token.');
  await generate(model, prompt, { maxNewTokens: 2, temperature: 0, signal: o.signal });
  const runs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    const r = await generate(model, prompt, { maxNewTokens: tokens, temperature: 0, signal: o.signal });
    runs.push(r.tokens.length / ((performance.now() - t0) / 1000));
  }
  return { tokensPerSecond: median(runs), runs };
}
