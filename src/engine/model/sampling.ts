// Next-token choice from one position's logits, on the CPU: greedy (argmax), or sampling with a
// temperature, top-k and top-p (nucleus) filtering in the order and with the tie rules of Hugging
// Face's logits warpers (temperature, then TopKLogitsWarper, then TopPLogitsWarper), drawn from a
// seeded Rng so a seed reproduces a generation. It does not run the model (generate.ts does).

import { InvalidArgumentError } from '../errors.ts';
import type { Rng } from '../random.ts';

export interface SamplingOptions {
  /** Softmax temperature; 0 (the default) picks the most likely token (greedy decoding). */
  temperature?: number;
  /** Keep only the k most likely tokens (ties with the k-th kept too); 0 or absent keeps all. */
  topK?: number;
  /** Keep the most likely tokens whose probabilities add up to at least p; 1 or absent keeps all. */
  topP?: number;
}

/** Throws InvalidArgumentError for a temperature, top-k or top-p outside its range. */
export function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!Number.isFinite(t) || t < 0) throw new InvalidArgumentError(`temperature must be a finite number ≥ 0 (0 is greedy); got ${t}.`);
  const k = o.topK ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new InvalidArgumentError(`top-k must be a non-negative integer (0 keeps every token); got ${k}.`);
  const p = o.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new InvalidArgumentError(`top-p must be in (0, 1]; got ${p}.`);
}

/** Index of the largest logit; the lowest index among equal maxima (torch.argmax's choice). NaN never wins. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > max) {
      max = logits[i];
      best = i;
    }
  }
  return best;
}

/**
 * The probabilities (float64, summing to 1, zero for filtered tokens) that sampling draws from:
 * softmax(logits / temperature) restricted by top-k, then by top-p, renormalised. Temperature must
 * be positive here.
 */
export function samplingDistribution(logits: ArrayLike<number>, o: SamplingOptions): Float64Array {
  checkSampling(o);
  const t = o.temperature ?? 0;
  if (!(t > 0)) throw new InvalidArgumentError('samplingDistribution needs a positive temperature; use argmax for greedy decoding.');
  const V = logits.length;
  const scores = Float64Array.from(logits, (z) => (Number.isNaN(z) ? -Infinity : z / t)); // (V)
  const k = o.topK ?? 0;
  if (k > 0 && k < V) {
    // TopKLogitsWarper: drop scores below the k-th largest (ties with it stay).
    const kth = [...scores].sort((a, b) => b - a)[k - 1];
    for (let i = 0; i < V; i++) if (scores[i] < kth) scores[i] = -Infinity;
  }
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  const probs = new Float64Array(V); // (V)
  if (max === -Infinity) {
    probs.fill(1 / V);
    return probs;
  }
  let sum = 0;
  for (let i = 0; i < V; i++) sum += probs[i] = Math.exp(scores[i] - max);
  for (let i = 0; i < V; i++) probs[i] /= sum;
  const p = o.topP ?? 1;
  if (p < 1) {
    // TopPLogitsWarper: sort ascending, drop tokens whose cumulative probability (from the least
    // likely up to and including them) is ≤ 1 − p; the most likely token always stays.
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => probs[a] - probs[b] || b - a);
    let cum = 0;
    for (let r = 0; r < V - 1; r++) {
      cum += probs[order[r]];
      if (cum <= 1 - p) probs[order[r]] = 0;
      else break;
    }
    let kept = 0;
    for (let i = 0; i < V; i++) kept += probs[i];
    for (let i = 0; i < V; i++) probs[i] /= kept;
  }
  return probs;
}

/** The next token: argmax when the temperature is 0, else one draw from samplingDistribution with `rng`. */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  checkSampling(o);
  if (!((o.temperature ?? 0) > 0)) return argmax(logits);
  const probs = samplingDistribution(logits, o);
  const u = rng.next();
  let cum = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cum += probs[i];
    last = i;
    if (u < cum) return i;
  }
  return last;
}
