// The training set as the loop consumes it: examples checked against the vocabulary and cut to the
// sequence length, a seeded shuffle per epoch, micro-batches of rows (a fixed row count, or a
// budget of padded tokens), optimizer steps of `gradAccum` micro-batches, and the upload of one
// micro-batch as right-padded model inputs (packed sequences keep their segments and positions).
// It runs no model and keeps no GPU state between micro-batches except the shared TokenGroups.

import { InvalidArgumentError } from '../errors.ts';
import type { Gpu } from '../gpu/device.ts';
import { type Tensor, createTensor, writeTensor } from '../gpu/tensor.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { IGNORE_INDEX, type ModelInputs } from '../model/llama.ts';
import { Rng } from '../random.ts';

/**
 * One training or validation sequence: token ids and aligned labels (IGNORE_INDEX not counted;
 * labels = inputIds when absent). A packed sequence also carries, per token, the index of the
 * example it belongs to (`segments`) and its position inside that example (`positions`), as
 * data/packing.ts writes them; attention never crosses a segment boundary.
 */
export interface TrainExample {
  inputIds: ArrayLike<number>;
  labels?: ArrayLike<number> | null;
  segments?: ArrayLike<number>;
  positions?: ArrayLike<number>;
}

/** A checked example: ids, labels, segments and positions of one length, and its counted targets. */
export interface Row {
  ids: Int32Array;
  labels: Int32Array;
  segments: Int32Array;
  positions: Int32Array;
  /** Next-token targets counted in the loss (after the shift, within one segment). */
  count: number;
}

export interface PreparedRows {
  rows: Row[];
  /** Examples longer than seqLen, cut to their first seqLen tokens. */
  truncated: number;
  /** Examples left out because no target counts after the cut (nothing to learn from them). */
  skipped: number;
}

/**
 * Checks `examples` (ids inside the vocabulary, labels -100 or an id, all arrays of one length) and
 * cuts each to `seqLen` tokens. Throws InvalidArgumentError naming the example `what`[i].
 */
export function prepareRows(examples: readonly TrainExample[], vocabSize: number, seqLen: number, what = 'example'): PreparedRows {
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new InvalidArgumentError(`The sequence length must be an integer ≥ 2; got ${seqLen}.`);
  const rows: Row[] = [];
  let truncated = 0;
  let skipped = 0;
  examples.forEach((e, i) => {
    const where = `${what} ${i}`;
    const n = e?.inputIds?.length;
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`Training ${where} has no input ids.`);
    for (const [key, arr] of [['labels', e.labels], ['segments', e.segments], ['positions', e.positions]] as const) {
      if (arr !== undefined && arr !== null && arr.length !== n) {
        throw new InvalidArgumentError(`Training ${where}: ${key} has ${arr.length} entries for ${n} input ids; they must be aligned.`);
      }
    }
    const len = Math.min(n, seqLen);
    if (n > seqLen) truncated++;
    const ids = new Int32Array(len);
    const labels = new Int32Array(len);
    const segments = new Int32Array(len);
    const positions = new Int32Array(len);
    for (let t = 0; t < len; t++) {
      const id = e.inputIds[t];
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new InvalidArgumentError(`Training ${where}: token id ${id} at position ${t} is outside the vocabulary (0..${vocabSize - 1}).`, {
          hint: 'The tokenizer and the model disagree on the vocabulary; prepare the dataset with the model\'s own tokenizer.',
        });
      }
      ids[t] = id;
      const y = e.labels ? e.labels[t] : id;
      if (y !== IGNORE_INDEX && (!Number.isInteger(y) || y < 0 || y >= vocabSize)) {
        throw new InvalidArgumentError(`Training ${where}: label ${y} at position ${t} is neither ${IGNORE_INDEX} nor a token id (0..${vocabSize - 1}).`);
      }
      labels[t] = y;
      const s = e.segments ? e.segments[t] : 0;
      const p = e.positions ? e.positions[t] : t;
      if (!Number.isInteger(s) || s < 0) throw new InvalidArgumentError(`Training ${where}: segment ${s} at position ${t} must be an integer ≥ 0.`);
      if (!Number.isInteger(p) || p < 0) throw new InvalidArgumentError(`Training ${where}: position ${p} at position ${t} must be an integer ≥ 0.`);
      segments[t] = s;
      positions[t] = p;
    }
    let count = 0;
    for (let t = 0; t + 1 < len; t++) if (labels[t + 1] !== IGNORE_INDEX && segments[t + 1] === segments[t]) count++;
    if (count === 0) {
      skipped++;
      return;
    }
    rows.push({ ids, labels, segments, positions, count });
  });
  return { rows, truncated, skipped };
}

/** How micro-batches are formed: a fixed number of rows, or at most this many padded tokens (rows × longest). */
export type BatchSizing = { batchSize: number } | { batchTokens: number };

/** The micro-batches of one epoch, as row indices, in training order. */
export type EpochPlan = number[][];

/** The shuffled order of `n` rows in `epoch` (Fisher–Yates from a generator seeded by seed and epoch). */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const rng = new Rng((Math.imul(seed >>> 0, 0x85ebca6b) ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/**
 * The micro-batches of `epoch`: the shuffled rows cut, in order, into groups of batchSize rows, or
 * into the longest runs whose padded size (rows × longest row) stays within batchTokens (a row
 * longer than the budget goes alone).
 */
export function planEpoch(lengths: readonly number[], sizing: BatchSizing, seed: number, epoch: number): EpochPlan {
  const order = epochOrder(lengths.length, seed, epoch);
  const plan: EpochPlan = [];
  if ('batchSize' in sizing) {
    for (let i = 0; i < order.length; i += sizing.batchSize) plan.push(order.slice(i, i + sizing.batchSize));
    return plan;
  }
  let current: number[] = [];
  let T = 0;
  for (const r of order) {
    const t = Math.max(T, lengths[r]);
    if (current.length > 0 && (current.length + 1) * t > sizing.batchTokens) {
      plan.push(current);
      current = [];
    }
    T = current.length === 0 ? lengths[r] : Math.max(T, lengths[r]);
    current.push(r);
  }
  if (current.length > 0) plan.push(current);
  return plan;
}

/** Optimizer steps in an epoch of `microBatches` micro-batches: the last step may take fewer. */
export function stepsInEpoch(microBatches: number, gradAccum: number): number {
  return Math.ceil(microBatches / gradAccum);
}

/** FNV-1a over the rows' tokens, labels, segments and positions: a guard that a resumed run sees the same data. */
export function fingerprintRows(rows: readonly Row[]): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 8) & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 16) & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 24) & 0xff;
    h = Math.imul(h, 0x01000193);
  };
  mix(rows.length);
  for (const r of rows) {
    mix(r.ids.length);
    for (const arr of [r.ids, r.labels, r.segments, r.positions]) for (let i = 0; i < arr.length; i++) mix(arr[i]);
  }
  return `${rows.length}:${(h >>> 0).toString(16).padStart(8, '0')}`;
}

/** One micro-batch on the CPU: right-padded (B, T) arrays, row-major. */
export interface HostBatch {
  B: number;
  T: number;
  ids: Int32Array; // (N) padding id 0
  positions: Int32Array; // (N)
  segments: Int32Array; // (N) -1 on padding
  targets: Int32Array; // (N) next-token targets, IGNORE_INDEX where nothing counts
  /** Counted targets. */
  count: number;
}

/**
 * Rows `batch` as one right-padded micro-batch (T = the longest row): ids, RoPE positions,
 * segments (-1 on padding) and next-token targets (IGNORE_INDEX where the label is, on the last
 * token of a row, and across a segment boundary).
 */
export function hostBatch(rows: readonly Row[], batch: readonly number[]): HostBatch {
  if (batch.length === 0) throw new InvalidArgumentError('A micro-batch needs at least one row.');
  const B = batch.length;
  const T = Math.max(...batch.map((i) => rows[i].ids.length));
  const N = B * T;
  const ids = new Int32Array(N);
  const positions = new Int32Array(N);
  const segments = new Int32Array(N).fill(-1);
  const targets = new Int32Array(N).fill(IGNORE_INDEX);
  let count = 0;
  batch.forEach((r, k) => {
    const row = rows[r];
    const len = row.ids.length;
    const at = k * T;
    ids.set(row.ids, at);
    positions.set(row.positions, at);
    segments.set(row.segments, at);
    for (let t = 0; t + 1 < len; t++) {
      const y = row.labels[t + 1];
      if (y !== IGNORE_INDEX && row.segments[t + 1] === row.segments[t]) {
        targets[at + t] = y;
        count++;
      }
    }
  });
  return { B, T, ids, positions, segments, targets, count };
}

/**
 * Uploads rows `batch` (see hostBatch) into pooled transient tensors as the model's inputs.
 * `groups` is the embedding backward's scratch, shared by every micro-batch of a run. release()
 * returns the tensors to the pool.
 */
export function uploadBatch(gpu: Gpu, rows: readonly Row[], batch: readonly number[], groups: TokenGroups): ModelInputs {
  const h = hostBatch(rows, batch);
  const N = h.B * h.T;
  if (N > groups.capacity) throw new InvalidArgumentError(`A micro-batch of ${N} padded tokens exceeds the ${groups.capacity} planned for.`);
  const owned: Tensor[] = [];
  const upload = (data: Int32Array, label: string) => {
    const t = createTensor(gpu, [N], 'i32', { transient: true, label });
    owned.push(t);
    writeTensor(t, data);
    return t;
  };
  try {
    return {
      B: h.B,
      T: h.T,
      ids: upload(h.ids, 'train.input_ids'),
      hostIds: h.ids,
      positions: upload(h.positions, 'train.positions'),
      segments: upload(h.segments, 'train.segments'),
      groups,
      targets: upload(h.targets, 'train.targets'),
      count: h.count,
      release() {
        for (const t of owned) t.release();
      },
    };
  } catch (e) {
    for (const t of owned) t.release();
    throw e;
  }
}
