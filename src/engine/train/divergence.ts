// Divergence detection for the training loop. A step whose loss or gradient norm is NaN or infinite
// stops the run at once. A loss that explodes stops it too: a step is suspect when its loss exceeds
// `factor` times the reference loss and the reference by more than `minRise` nats, and `patience`
// suspect steps in a row stop the run. The reference is the lowest median of the last `window`
// accepted step losses, so a single lucky micro-batch does not set it and it follows a falling loss
// within a few steps; the floor keeps a run near zero loss from stopping on an ordinary noisy batch.
// TrainingDivergedError names the step, the values and the checkpoint kept. It touches no GPU.

import { InvalidArgumentError, WhetstoneError, type ErrorDetails, type SerializedError } from '../errors.ts';

/** Why a run stopped: a non-finite loss, gradient norm or trained weight, or a loss that exploded. */
export type DivergenceReason = 'nan-loss' | 'nan-grad-norm' | 'nan-weights' | 'exploding-loss';

/** The run diverged; the checkpoints written before it are kept untouched. */
export class TrainingDivergedError extends WhetstoneError {
  readonly reason: DivergenceReason;
  /** The optimizer step whose loss (or gradient norm) gave it away. */
  readonly step: number;
  readonly loss: number;
  readonly gradNorm: number;
  /** The last checkpoint written, which a resume starts from; null when none was. */
  readonly checkpointStep: number | null;

  constructor(
    message: string,
    info: { reason: DivergenceReason; step: number; loss: number; gradNorm: number; checkpointStep: number | null },
    details: ErrorDetails = {},
  ) {
    super(message, {
      ...details,
      hint:
        details.hint ??
        'Lower the learning rate (or lengthen the warmup), keep gradient clipping on (max grad norm 1), and check the dataset for broken rows; ' +
          (info.checkpointStep === null ? 'no checkpoint was written yet, so start again.' : `then resume from the checkpoint of step ${info.checkpointStep}.`),
    });
    this.name = 'TrainingDivergedError';
    this.reason = info.reason;
    this.step = info.step;
    this.loss = info.loss;
    this.gradNorm = info.gradNorm;
    this.checkpointStep = info.checkpointStep;
  }

  override toJSON(): SerializedError & { reason: DivergenceReason; step: number; loss: number | null; gradNorm: number | null; checkpointStep: number | null } {
    const finite = (x: number) => (Number.isFinite(x) ? x : null);
    return { ...super.toJSON(), reason: this.reason, step: this.step, loss: finite(this.loss), gradNorm: finite(this.gradNorm), checkpointStep: this.checkpointStep };
  }
}

export interface DivergenceOptions {
  /** A step is suspect when its loss exceeds this many times the reference; 0 turns the check off (NaN still stops). Default 4. */
  factor?: number;
  /** ...and exceeds the reference by more than this many nats. Default 1. */
  minRise?: number;
  /** Step losses whose median forms the reference. Default 5. */
  window?: number;
  /** Suspect steps in a row that stop the run. Default 2. */
  patience?: number;
  /** Steps (the warmup) during which only NaN and Inf are checked. Default 0. */
  afterStep?: number;
}

/** The verdict on one step: fine, suspect (not stopping yet), or why the run must stop. */
export type DivergenceVerdict = 'ok' | 'suspect' | DivergenceReason;

/** What a checkpoint keeps of the detector so a resumed run judges losses as the original would. */
export interface DivergenceState {
  /** The last accepted step losses, oldest first (at most `window`). */
  recent: number[];
  /** The reference: the lowest median of `recent` so far, or null before the first loss. */
  reference: number | null;
  /** Suspect steps in a row up to now. */
  streak: number;
}

export class DivergenceGuard {
  readonly factor: number;
  readonly minRise: number;
  readonly window: number;
  readonly patience: number;
  readonly afterStep: number;
  private recent: number[] = [];
  private ref: number | null = null;
  private streak = 0;

  constructor(options: DivergenceOptions = {}) {
    this.factor = options.factor ?? 4;
    this.minRise = options.minRise ?? 1;
    this.window = options.window ?? 5;
    this.patience = options.patience ?? 2;
    this.afterStep = options.afterStep ?? 0;
    if (!(this.factor === 0 || this.factor > 1)) throw new InvalidArgumentError(`The divergence factor must be 0 (off) or above 1; got ${this.factor}.`);
    if (!(this.minRise >= 0)) throw new InvalidArgumentError(`The divergence floor must be ≥ 0 nats; got ${this.minRise}.`);
    if (!Number.isInteger(this.window) || this.window < 1) throw new InvalidArgumentError(`The divergence window must be a positive integer; got ${this.window}.`);
    if (!Number.isInteger(this.patience) || this.patience < 1) throw new InvalidArgumentError(`The divergence patience must be a positive integer; got ${this.patience}.`);
    if (!Number.isInteger(this.afterStep) || this.afterStep < 0) throw new InvalidArgumentError(`afterStep must be a whole number; got ${this.afterStep}.`);
  }

  /** The reference loss, or null before the first step. */
  get reference(): number | null {
    return this.ref;
  }

  /**
   * Judges optimizer step `step` by its loss and gradient norm. A suspect step is not added to the
   * reference; the verdict that stops the run leaves the state as it was.
   */
  check(step: number, loss: number, gradNorm: number): DivergenceVerdict {
    if (!Number.isFinite(loss)) return 'nan-loss';
    if (!Number.isFinite(gradNorm)) return 'nan-grad-norm';
    const ref = this.ref;
    if (this.factor > 0 && step > this.afterStep && ref !== null && loss > this.factor * ref && loss - ref > this.minRise) {
      if (this.streak + 1 >= this.patience) return 'exploding-loss';
      this.streak++;
      return 'suspect';
    }
    this.streak = 0;
    this.recent.push(loss);
    if (this.recent.length > this.window) this.recent.shift();
    const m = median(this.recent);
    this.ref = ref === null ? m : Math.min(ref, m);
    return 'ok';
  }

  state(): DivergenceState {
    return { recent: [...this.recent], reference: this.ref, streak: this.streak };
  }

  restore(s: DivergenceState): void {
    const ok =
      Array.isArray(s.recent) &&
      s.recent.length <= this.window &&
      s.recent.every(Number.isFinite) &&
      (s.reference === null || Number.isFinite(s.reference)) &&
      Number.isInteger(s.streak) &&
      s.streak >= 0;
    if (!ok) throw new InvalidArgumentError('The divergence state of the checkpoint is invalid.');
    this.recent = [...s.recent];
    this.ref = s.reference;
    this.streak = s.streak;
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** A sentence for the person about why the run stopped at `step`. */
export function divergenceMessage(reason: DivergenceReason, step: number, loss: number, gradNorm: number, guard: DivergenceGuard): string {
  switch (reason) {
    case 'nan-loss':
      return `Training diverged at step ${step}: the loss is ${loss}.`;
    case 'nan-grad-norm':
      return `Training diverged at step ${step}: the gradient norm is ${gradNorm} (loss ${loss}).`;
    case 'nan-weights':
      return `Training diverged at step ${step}: the trained weights hold NaN or Inf values.`;
    case 'exploding-loss':
      return `Training diverged at step ${step}: the loss rose to ${loss.toPrecision(4)}, more than ${guard.factor}× the reference loss ${guard.reference?.toPrecision(4)} for ${guard.patience} steps in a row.`;
  }
}
