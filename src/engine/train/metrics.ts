// What the training loop reports: one metrics record per optimizer step (the line metrics.jsonl
// holds and the loss chart plots), the progress events of a run, and the short formatting of
// durations and rates that progress lines share. No computation of the values lives here.

/** One optimizer step, as measured after it ran. */
export interface StepMetrics {
  /** Optimizer step, 1-based. */
  step: number;
  /** Passes over the training set done after this step (fractional within an epoch). */
  epoch: number;
  /** Mean cross-entropy over every counted token of the step's micro-batches. */
  loss: number;
  /** Mean cross-entropy over the validation set after this step, when it was evaluated. */
  valLoss?: number;
  /** The learning rate this step's update used. */
  lr: number;
  /** Global L2 norm of the accumulated gradient, before clipping. */
  gradNorm: number;
  /** Input tokens (padding left out) of the step. */
  tokens: number;
  /** Counted target tokens of the step (what the loss averages over). */
  targets: number;
  /** Input tokens per second of wall time spent on this step. */
  tokensPerSecond: number;
  /** Training time so far, across resumes, in milliseconds. */
  elapsedMs: number;
  /** The most GPU memory the engine held during the run so far, in bytes. */
  peakBytes: number;
}

/** Where a run is: emitted after every step, during evaluation and when a checkpoint is written. */
export interface TrainProgress {
  phase: 'train' | 'eval' | 'checkpoint';
  /** Optimizer steps done. */
  step: number;
  totalSteps: number;
  /** Passes over the training set done (fractional). */
  epoch: number;
  /** The last step's loss and learning rate, once a step ran in this session. */
  loss?: number;
  lr?: number;
  tokensPerSecond?: number;
  /** Estimated milliseconds left, from this session's pace; null before the first step. */
  etaMs: number | null;
  /** During 'eval': validation rows done and in all. */
  rowsDone?: number;
  rowsTotal?: number;
}

/** "1h02m", "3m05s", "42s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** A number in 3 significant figures, switching to exponent notation for learning rates. */
export function formatValue(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 1e-2) return x.toExponential(2);
  return x.toPrecision(4);
}
