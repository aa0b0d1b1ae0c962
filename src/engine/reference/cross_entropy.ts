// Float64 reference of the cross_entropy family (shaders/cross_entropy.wgsl): mean cross-entropy
// of a language-model head, loss = Σ_counted (logsumexp(logits_i) − logits_i[label_i]) / count,
// with logits = h · Wᵀ computed in full (no chunking), and its gradients with respect to h and W.
// Labels equal to -100 are ignored. Plain loops; this is the oracle, not a fast path.

import { linearBackward, matmul } from './matmul.ts';

/** The label value that marks a token as not counted (PyTorch's ignore_index default). */
export const IGNORE_INDEX = -100;

/** How many labels are counted (not IGNORE_INDEX). */
export function countLabels(labels: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
}

export interface LogitsLoss {
  /** Σ rowLoss / count (0 when count is 0). */
  loss: number;
  /** (N) per-token loss, 0 for ignored tokens. */
  rowLoss: Float64Array;
  /** (N, V) dloss/dlogits = (softmax − onehot(label)) / count, zero rows for ignored tokens. */
  dlogits: Float64Array;
}

/**
 * Cross-entropy over logits (N, V) with labels (N). `count` divides the summed loss; it is usually
 * countLabels(labels) but may be larger (a count over several micro-batches). Labels must be -100
 * or in [0, V).
 */
export function crossEntropyLogits(logits: ArrayLike<number>, labels: ArrayLike<number>, N: number, V: number, count: number): LogitsLoss {
  const rowLoss = new Float64Array(N);
  const dlogits = new Float64Array(N * V);
  const inv = count > 0 ? 1 / count : 0;
  let sum = 0;
  for (let i = 0; i < N; i++) {
    const label = labels[i];
    if (label === IGNORE_INDEX) continue;
    if (!Number.isInteger(label) || label < 0 || label >= V) throw new RangeError(`label ${label} of token ${i} is outside [0, ${V}) and is not ${IGNORE_INDEX}`);
    const base = i * V;
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[base + j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[base + j] - max);
    const lse = max + Math.log(s);
    rowLoss[i] = lse - logits[base + label];
    sum += rowLoss[i];
    for (let j = 0; j < V; j++) {
      const p = Math.exp(logits[base + j] - lse);
      dlogits[base + j] = (p - (j === label ? 1 : 0)) * inv;
    }
  }
  return { loss: sum * inv, rowLoss, dlogits };
}

export interface HeadLoss extends LogitsLoss {
  /** (N, V) logits = h · Wᵀ. */
  logits: Float64Array;
  /** (N, C) dloss/dh = dlogits · W. */
  dh: Float64Array;
  /** (V, C) dloss/dW = dlogitsᵀ · h. */
  dW: Float64Array;
}

/** Loss and gradients of the LM head: h (N, C), W (V, C), labels (N). */
export function crossEntropy(h: ArrayLike<number>, w: ArrayLike<number>, labels: ArrayLike<number>, N: number, C: number, V: number, count: number): HeadLoss {
  const logits = matmul(h, w, { M: N, N: V, K: C, transB: true }); // (N, V)
  const r = crossEntropyLogits(logits, labels, N, V, count);
  const { dx, dw } = linearBackward(h, w, r.dlogits, N, V, C);
  return { ...r, logits, dh: dx, dW: dw };
}
