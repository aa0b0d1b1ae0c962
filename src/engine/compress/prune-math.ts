// The arithmetic of pruning on plain arrays: unstructured masks by magnitude (per tensor, or against
// a global threshold found exactly by a two-pass radix histogram so no model-sized array is held),
// Wanda (|W| times the input channel's activation norm, compared within each output row), N:M
// semi-structured sparsity, structured scores of attention heads and MLP neurons, top-k selection
// and row/column slicing. Weights are nn.Linear matrices (rows = out, cols = in), row-major f32.
// No I/O, no GPU: prune.ts drives these over a model folder.

import { InvalidArgumentError, ShapeError } from '../errors.ts';

/** Zero-based positions of the `count` smallest of `scores` (ties broken by lower index first). */
export function smallestIndices(scores: ArrayLike<number>, count: number): Int32Array {
  const idx = Int32Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[a] - scores[b] || a - b);
  return idx.slice(0, Math.max(0, Math.min(count, scores.length)));
}

/** The indices to keep: the `keep` largest scores, returned in ascending index order (ties keep the lower index). */
export function keepLargest(scores: ArrayLike<number>, keep: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b] - scores[a] || a - b);
  return idx.slice(0, keep).sort((a, b) => a - b);
}

function checkSparsity(s: number): void {
  if (!(s >= 0 && s < 1)) throw new InvalidArgumentError(`Sparsity must be at least 0 and below 1; got ${s}.`);
}

/** Zeroes, in place, the floor(sparsity·n) entries of w with the smallest |w|. Returns how many were zeroed. */
export function magnitudePrune(w: Float32Array, sparsity: number): number {
  checkSparsity(sparsity);
  const k = Math.floor(sparsity * w.length);
  const abs = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) abs[i] = Math.abs(w[i]);
  for (const i of smallestIndices(abs, k)) w[i] = 0;
  return k;
}

/**
 * Wanda (Sun et al. 2023): score_ij = |W_ij| · ‖X_j‖₂, where ‖X_j‖₂ is the L2 norm of input channel
 * j over the calibration tokens; in each output row the floor(sparsity·cols) lowest scores are
 * zeroed, in place. Returns how many were zeroed.
 */
export function wandaPrune(w: Float32Array, rows: number, cols: number, inputNorms: ArrayLike<number>, sparsity: number): number {
  checkSparsity(sparsity);
  checkMatrix(w, rows, cols);
  if (inputNorms.length !== cols) throw new ShapeError(`Wanda: ${inputNorms.length} input-channel norms for a weight of ${cols} columns.`);
  const k = Math.floor(sparsity * cols);
  const score = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let j = 0; j < cols; j++) score[j] = Math.abs(w[base + j]) * inputNorms[j];
    for (const j of smallestIndices(score, k)) w[base + j] = 0;
  }
  return k * rows;
}

/**
 * N:M sparsity, in place: in every group of M consecutive weights of a row (along the input), the
 * M − N with the lowest scores are zeroed (at most N nonzeros per group, the 2:4 pattern sparse
 * tensor cores run). Scores are |W|, times the input channel's norm when `inputNorms` is given
 * (Wanda's criterion). cols must be a multiple of M. Returns how many were zeroed.
 */
export function nmPrune(w: Float32Array, rows: number, cols: number, n: number, m: number, inputNorms?: ArrayLike<number>): number {
  checkMatrix(w, rows, cols);
  if (!Number.isInteger(n) || !Number.isInteger(m) || m < 1 || n < 0 || n > m) throw new InvalidArgumentError(`N:M needs integers 0 ≤ N ≤ M, M ≥ 1; got ${n}:${m}.`);
  if (cols % m !== 0) throw new ShapeError(`N:M ${n}:${m}: a weight of ${cols} input columns is not a whole number of groups of ${m}.`);
  if (inputNorms && inputNorms.length !== cols) throw new ShapeError(`N:M: ${inputNorms.length} input-channel norms for a weight of ${cols} columns.`);
  const score = new Float64Array(m);
  let zeroed = 0;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += m) {
      const base = r * cols + g;
      for (let j = 0; j < m; j++) score[j] = Math.abs(w[base + j]) * (inputNorms ? inputNorms[g + j] : 1);
      for (const j of smallestIndices(score, m - n)) w[base + j] = 0;
      zeroed += m - n;
    }
  }
  return zeroed;
}

/**
 * Exact global magnitude threshold over many tensors without holding them together: |w| as f32 bit
 * patterns sort like the values, so one pass histograms the high 16 bits, a second the low 16 bits
 * inside the bucket that holds the k-th smallest. Feed every tensor to `add` in pass 1, call
 * `next()`, feed them again, then `threshold()` gives t and how many values equal to t are pruned
 * (those below t all are).
 */
export class GlobalThreshold {
  private readonly k: number;
  private pass = 1;
  private readonly hist = new Float64Array(65536);
  private high = 0;
  private below = 0; // values in buckets below `high` (pass 1), then below the exact value
  private total = 0;
  private readonly view = new Uint32Array(1);
  private readonly f = new Float32Array(this.view.buffer);

  /** `count` values in all; the floor(sparsity·count) smallest magnitudes are pruned. */
  constructor(count: number, sparsity: number) {
    checkSparsity(sparsity);
    this.k = Math.floor(sparsity * count);
  }

  private bits(x: number): number {
    this.f[0] = Math.abs(x);
    return this.view[0];
  }

  add(w: ArrayLike<number>): void {
    for (let i = 0; i < w.length; i++) {
      const b = this.bits(w[i]);
      if (this.pass === 1) {
        this.hist[b >>> 16]++;
        this.total++;
      } else if (b >>> 16 === this.high) this.hist[b & 0xffff]++;
    }
  }

  /** Ends pass 1. */
  next(): void {
    if (this.k > this.total) throw new InvalidArgumentError(`GlobalThreshold: ${this.k} values to prune but ${this.total} were given.`);
    // The bucket that holds the k-th smallest value (1-based).
    let acc = 0;
    let h = 0;
    while (h < 65535 && acc + this.hist[h] < this.k) acc += this.hist[h++];
    this.high = h;
    this.below = acc;
    this.hist.fill(0);
    this.pass = 2;
  }

  /** The threshold t (pruned: |w| < t, and `atThreshold` of the values equal to t, in feeding order). */
  threshold(): { t: number; atThreshold: number } {
    if (this.k === 0) return { t: 0, atThreshold: 0 };
    let acc = this.below;
    let lo = 0;
    while (lo < 65535 && acc + this.hist[lo] < this.k) acc += this.hist[lo++];
    this.view[0] = ((this.high << 16) | lo) >>> 0;
    return { t: this.f[0], atThreshold: this.k - acc };
  }
}

/** Applies a global threshold to one tensor in place; `budget.left` counts the values equal to t still to prune. Returns how many were zeroed. */
export function applyThreshold(w: Float32Array, t: number, budget: { left: number }): number {
  let zeroed = 0;
  const tf = Math.fround(t);
  for (let i = 0; i < w.length; i++) {
    const a = Math.fround(Math.abs(w[i]));
    if (a < tf || (a === tf && budget.left > 0)) {
      if (a === tf) budget.left--;
      w[i] = 0;
      zeroed++;
    }
  }
  return zeroed;
}

function checkMatrix(w: ArrayLike<number>, rows: number, cols: number): void {
  if (w.length !== rows * cols) throw new ShapeError(`A weight of ${w.length} values is not ${rows} × ${cols}.`);
}

/** The rows `keep` (ascending) of a (rows, cols) matrix. */
export function takeRows(w: Float32Array, cols: number, keep: readonly number[]): Float32Array {
  const out = new Float32Array(keep.length * cols);
  keep.forEach((r, i) => out.set(w.subarray(r * cols, (r + 1) * cols), i * cols));
  return out;
}

/** The columns `keep` (ascending) of a (rows, cols) matrix. */
export function takeCols(w: Float32Array, rows: number, cols: number, keep: readonly number[]): Float32Array {
  const out = new Float32Array(rows * keep.length);
  for (let r = 0; r < rows; r++) keep.forEach((c, i) => (out[r * keep.length + i] = w[r * cols + c]));
  return out;
}

/** Row indices of the heads `heads` (each D rows). */
export function headRows(heads: readonly number[], D: number): number[] {
  return heads.flatMap((h) => Array.from({ length: D }, (_, d) => h * D + d));
}

/** Squared L2 norm of each row. */
export function rowNormsSq(w: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[r * cols + j] * w[r * cols + j];
    out[r] = s;
  }
  return out;
}

/** Squared L2 norm of each column. */
export function colNormsSq(w: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) out[j] += w[r * cols + j] * w[r * cols + j];
  return out;
}

/**
 * Importance of each query head of one layer. magnitude: ‖W_q[head rows]‖_F · ‖W_o[:, head cols]‖_F.
 * With `oInputNorms` (activation criterion): sqrt(Σ_{j ∈ head} ‖X_j‖² · ‖W_o[:, j]‖²), the output
 * each head's channels carry into o_proj on the calibration set.
 */
export function queryHeadScores(q: Float32Array, o: Float32Array, hidden: number, heads: number, D: number, oInputNorms?: ArrayLike<number>): Float64Array {
  const qRows = rowNormsSq(q, heads * D, hidden);
  const oCols = colNormsSq(o, hidden, heads * D);
  const out = new Float64Array(heads);
  for (let h = 0; h < heads; h++) {
    let a = 0;
    let b = 0;
    for (let d = 0; d < D; d++) {
      const j = h * D + d;
      if (oInputNorms) b += oInputNorms[j] * oInputNorms[j] * oCols[j];
      else {
        a += qRows[j];
        b += oCols[j];
      }
    }
    out[h] = oInputNorms ? Math.sqrt(b) : Math.sqrt(a) * Math.sqrt(b);
  }
  return out;
}

/**
 * Importance of each MLP neuron (intermediate channel) of one layer. magnitude:
 * ‖gate_j‖ · ‖up_j‖ · ‖down[:, j]‖. With `downInputNorms`: ‖a_j‖ · ‖down[:, j]‖, where a_j is the
 * neuron's activation (the down_proj input) on the calibration set.
 */
export function neuronScores(gate: Float32Array, up: Float32Array, down: Float32Array, hidden: number, F: number, downInputNorms?: ArrayLike<number>): Float64Array {
  const d = colNormsSq(down, hidden, F);
  const out = new Float64Array(F);
  if (downInputNorms) {
    for (let j = 0; j < F; j++) out[j] = downInputNorms[j] * Math.sqrt(d[j]);
    return out;
  }
  const g = rowNormsSq(gate, F, hidden);
  const u = rowNormsSq(up, F, hidden);
  for (let j = 0; j < F; j++) out[j] = Math.sqrt(g[j] * u[j] * d[j]);
  return out;
}
