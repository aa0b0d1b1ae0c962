// Learning-rate schedules as Hugging Face transformers computes them (get_constant_schedule,
// get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup with num_cycles 0.5): a multiplier of the base learning rate as a
// function of the scheduler step, and the warmup length from a step count or a ratio of the run as
// TrainingArguments.get_warmup_steps resolves it. Pure arithmetic: no optimizer state lives here.

import { InvalidArgumentError } from '../errors.ts';

/** The schedules the trainer offers, by transformers' SchedulerType names. */
export type ScheduleName = 'constant' | 'linear' | 'cosine';

export const SCHEDULE_NAMES: readonly ScheduleName[] = ['constant', 'linear', 'cosine'];

export interface ScheduleOptions {
  name: ScheduleName;
  /** Optimizer steps of the whole run (num_training_steps). */
  totalSteps: number;
  /** Linear warmup steps from 0 to the base rate (num_warmup_steps). Default 0. */
  warmupSteps?: number;
}

/**
 * Warmup steps for a run of `totalSteps`: a value in [0, 1) is a ratio, ceil(totalSteps × ratio)
 * (TrainingArguments.get_warmup_steps); a whole number ≥ 1 is a step count as it is.
 */
export function resolveWarmupSteps(warmup: number, totalSteps: number): number {
  checkSteps('totalSteps', totalSteps);
  if (!Number.isFinite(warmup) || warmup < 0) throw new InvalidArgumentError(`Warmup must be a step count or a ratio in [0, 1); got ${warmup}.`);
  if (warmup < 1) return Math.ceil(totalSteps * warmup);
  if (!Number.isInteger(warmup)) {
    throw new InvalidArgumentError(`Warmup of ${warmup} is neither a ratio in [0, 1) nor a whole number of steps.`, {
      hint: 'Give a step count such as 100, or a share of the run such as 0.1.',
    });
  }
  return warmup;
}

/**
 * The multiplier of the base learning rate at scheduler step `step` (0-based: transformers' LambdaLR
 * lr_lambda(current_step)). The Trainer's optimizer step s (1-based) runs with lrLambda(s − 1), so
 * with warmup the first update has a learning rate of 0.
 *
 * - constant: 1, or step / warmup during warmup.
 * - linear: step / warmup during warmup, then max(0, (total − step) / (total − warmup)).
 * - cosine: step / warmup during warmup, then max(0, ½·(1 + cos(π·progress))) with
 *   progress = (step − warmup) / (total − warmup).
 *
 * Denominators are max(1, …) as in transformers.
 */
export function lrLambda(options: ScheduleOptions, step: number): number {
  const { name, totalSteps } = options;
  const warmup = options.warmupSteps ?? 0;
  checkSteps('totalSteps', totalSteps);
  if (!Number.isInteger(warmup) || warmup < 0) throw new InvalidArgumentError(`warmupSteps must be a non-negative integer; got ${warmup}.`);
  if (!Number.isInteger(step) || step < 0) throw new InvalidArgumentError(`The scheduler step must be a non-negative integer; got ${step}.`);
  if (step < warmup) return step / Math.max(1, warmup);
  switch (name) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmup));
    case 'cosine': {
      const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
      // num_cycles = 0.5: half a cosine wave, from 1 down to 0.
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)));
    }
    default:
      throw new InvalidArgumentError(`Unknown learning-rate schedule ${JSON.stringify(name)}; expected one of ${SCHEDULE_NAMES.join(', ')}.`);
  }
}

/** The learning rate of optimizer step `optimizerStep` (1-based): baseLr × lrLambda(optimizerStep − 1). */
export function learningRate(baseLr: number, options: ScheduleOptions, optimizerStep: number): number {
  if (!Number.isInteger(optimizerStep) || optimizerStep < 1) {
    throw new InvalidArgumentError(`The optimizer step must be an integer ≥ 1; got ${optimizerStep}.`);
  }
  return baseLr * lrLambda(options, optimizerStep - 1);
}

/** Whether `name` is a schedule this module computes. */
export function isScheduleName(name: unknown): name is ScheduleName {
  return typeof name === 'string' && (SCHEDULE_NAMES as readonly string[]).includes(name);
}

function checkSteps(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer; got ${n}.`);
}
