// Float64 reference of the distill family (shaders/distill.wgsl): the knowledge-distillation loss
//   Σ_counted [alpha · T² · KL(softmax(t_i / T) ‖ softmax(s_i / T)) + (1 − alpha) · CE(s_i, label_i)] / count
// with student logits s = hS · WSᵀ and teacher logits t = hT · WTᵀ computed in full (no chunking),
// and its gradients with respect to the student's logits, hidden states and head weight. Labels equal
// to -100 are not counted. Plain loops; the oracle, not a fast path.

import { IGNORE_INDEX } from './cross_entropy.ts';
import { linearBackward, matmul } from './matmul.ts';

export interface DistillLogitsLoss {
  loss: number;
  /** (N) per-token loss, 0 for tokens not counted. */
  rowLoss: Float64Array;
  /** (N, V) dloss/ds. */
  dlogits: Float64Array;
}

function logSumExp(x: ArrayLike<number>, base: number, V: number, scale: number): number {
  let max = -Infinity;
  for (let j = 0; j < V; j++) max = Math.max(max, x[base + j] * scale);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(x[base + j] * scale - max);
  return max + Math.log(s);
}

/** The loss over student logits s (N, V) and teacher logits t (N, V). */
export function distillLogits(
  s: ArrayLike<number>,
  t: ArrayLike<number>,
  labels: ArrayLike<number>,
  N: number,
  V: number,
  count: number,
  temperature: number,
  alpha: number,
): DistillLogitsLoss {
  const rowLoss = new Float64Array(N);
  const dlogits = new Float64Array(N * V);
  const inv = count > 0 ? 1 / count : 0;
  const T = temperature;
  let sum = 0;
  for (let i = 0; i < N; i++) {
    const label = labels[i];
    if (label === IGNORE_INDEX) continue;
    if (!Number.isInteger(label) || label < 0 || label >= V) throw new RangeError(`label ${label} of token ${i} is outside [0, ${V}) and is not ${IGNORE_INDEX}`);
    const base = i * V;
    const lseS = logSumExp(s, base, V, 1 / T);
    const lseT = logSumExp(t, base, V, 1 / T);
    const lseC = logSumExp(s, base, V, 1);
    let kl = 0;
    for (let j = 0; j < V; j++) {
      const logPT = t[base + j] / T - lseT;
      const logPS = s[base + j] / T - lseS;
      kl += Math.exp(logPT) * (logPT - logPS);
    }
    const ce = lseC - s[base + label];
    rowLoss[i] = alpha * T * T * kl + (1 - alpha) * ce;
    sum += rowLoss[i];
    for (let j = 0; j < V; j++) {
      const pS = Math.exp(s[base + j] / T - lseS);
      const pT = Math.exp(t[base + j] / T - lseT);
      const pC = Math.exp(s[base + j] - lseC) - (j === label ? 1 : 0);
      dlogits[base + j] = inv * (alpha * T * (pS - pT) + (1 - alpha) * pC);
    }
  }
  return { loss: sum * inv, rowLoss, dlogits };
}

export interface DistillHeadLoss extends DistillLogitsLoss {
  /** (N, Cs) dloss/dhS. */
  dh: Float64Array;
  /** (V, Cs) dloss/dWS. */
  dW: Float64Array;
}

/** The loss and the student's gradients: hS (N, Cs), WS (V, Cs), hT (N, Ct), WT (V, Ct), labels (N). */
export function distill(
  hS: ArrayLike<number>,
  wS: ArrayLike<number>,
  hT: ArrayLike<number>,
  wT: ArrayLike<number>,
  labels: ArrayLike<number>,
  dims: { N: number; Cs: number; Ct: number; V: number },
  count: number,
  temperature: number,
  alpha: number,
): DistillHeadLoss {
  const { N, Cs, Ct, V } = dims;
  const s = matmul(hS, wS, { M: N, N: V, K: Cs, transB: true }); // (N, V)
  const t = matmul(hT, wT, { M: N, N: V, K: Ct, transB: true }); // (N, V)
  const r = distillLogits(s, t, labels, N, V, count, temperature, alpha);
  const { dx, dw } = linearBackward(hS, wS, r.dlogits, N, V, Cs);
  return { ...r, dh: dx, dW: dw };
}
