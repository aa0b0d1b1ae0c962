// Dispatcher of shaders/embedding.wgsl: token embedding lookup (forward) and, for a trainable table,
// its gradient (backward). The table may be split across buffers (vocab × hidden × 4 bytes often
// exceeds one storage binding); ids, out and dy may be split too. Backward needs the ids on the CPU:
// it groups token positions by id (CSR) here, uploads the grouping into caller-owned TokenGroups and
// lets one workgroup per unique id sum its tokens' rows, deterministically and without atomics.

import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Gpu } from '../gpu/device.ts';
import { type Tensor, createTensor, rowPieces } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

const WG = 256;

/** Token positions grouped by id: ids `unique` ascending; tokens[starts[u] .. starts[u + 1]) have id unique[u], ascending. */
export interface Grouping {
  unique: Int32Array<ArrayBuffer>;
  starts: Int32Array<ArrayBuffer>;
  tokens: Int32Array<ArrayBuffer>;
}

/** Throws an InvalidArgumentError naming the first id outside [0, vocab). */
export function validateIds(ids: ArrayLike<number>, vocab: number): void {
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (!(id >= 0 && id < vocab)) {
      throw new InvalidArgumentError(`Token id ${id} at position ${n} is outside the embedding table's ${vocab} rows.`, {
        hint: 'The tokenizer and the model disagree on the vocabulary size; check that they come from the same checkpoint.',
      });
    }
  }
}

/** Groups token positions 0..N−1 by id (CSR). Validates the ids against `vocab`. */
export function groupTokens(ids: Int32Array, vocab: number): Grouping {
  validateIds(ids, vocab);
  const N = ids.length;
  const order = new Int32Array(N);
  for (let n = 0; n < N; n++) order[n] = n;
  order.sort((a, b) => ids[a] - ids[b] || a - b);
  const unique: number[] = [];
  const starts: number[] = [];
  for (let k = 0; k < N; k++) {
    if (k === 0 || ids[order[k]] !== ids[order[k - 1]]) {
      unique.push(ids[order[k]]);
      starts.push(k);
    }
  }
  starts.push(N);
  return { unique: Int32Array.from(unique), starts: Int32Array.from(starts), tokens: order };
}

/**
 * GPU storage for the grouping of up to `capacity` tokens, allocated once and rewritten by every
 * embeddingBackward call. The rewrite goes through the queue at call time, so a batch that used these
 * groups must be submitted before they are used again.
 */
export class TokenGroups {
  readonly capacity: number;
  readonly unique: Tensor; // (capacity) i32
  readonly starts: Tensor; // (capacity + 1) i32
  readonly tokens: Tensor; // (capacity) i32
  private lastBatch: Batch | null = null;

  constructor(gpu: Gpu, capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new InvalidArgumentError(`TokenGroups capacity must be a positive integer; got ${capacity}.`);
    if ((capacity + 1) * 4 > gpu.maxBindingBytes) {
      throw new ShapeError(`TokenGroups of ${capacity} tokens need ${(capacity + 1) * 4} bytes, more than one storage binding (${gpu.maxBindingBytes}).`);
    }
    this.capacity = capacity;
    this.unique = createTensor(gpu, [capacity], 'i32', { label: 'embedding.unique' });
    this.starts = createTensor(gpu, [capacity + 1], 'i32', { label: 'embedding.starts' });
    this.tokens = createTensor(gpu, [capacity], 'i32', { label: 'embedding.tokens' });
  }

  /** Uploads `g` for use by `batch`. */
  write(batch: Batch, g: Grouping): void {
    if (g.tokens.length > this.capacity) {
      throw new ShapeError(`embeddingBackward got ${g.tokens.length} tokens but its TokenGroups hold at most ${this.capacity}.`);
    }
    if (this.lastBatch === batch) throw new InvalidArgumentError('One TokenGroups serves one embeddingBackward per batch; give each call its own.');
    this.lastBatch = batch;
    const queue = this.unique.gpu.device.queue;
    queue.writeBuffer(this.unique.buffer, 0, g.unique);
    queue.writeBuffer(this.starts.buffer, 0, g.starts);
    queue.writeBuffer(this.tokens.buffer, 0, g.tokens);
  }

  release(): void {
    for (const t of [this.unique, this.starts, this.tokens]) t.release();
  }
}

function tableDims(op: string, table: Tensor): { V: number; C: number } {
  if (table.dtype !== 'f32' || table.shape.length !== 2) throw new ShapeError(`${op}: the table must be a 2-D f32 tensor (V, C); got ${table.describe()}.`);
  return { V: table.shape[0], C: table.shape[1] };
}

/**
 * Forward: out[n] = table[ids[n]] for table (V, C) f32 (possibly split), ids i32 of any shape (N
 * elements) and out (..., C) of N·C elements, overwritten. Rows for ids outside [0, V) are zeros (no
 * out-of-bounds read); with `hostIds` (the same ids on the CPU) such ids throw an InvalidArgumentError
 * instead.
 */
export function embedding(batch: Batch, table: Tensor, ids: Tensor, out: Tensor, hostIds?: Int32Array): void {
  const { V, C } = tableDims('embedding', table);
  if (ids.dtype !== 'i32') throw new ShapeError(`embedding takes i32 ids; ${ids.describe()} is ${ids.dtype}.`);
  const N = ids.numel;
  if (out.dtype !== 'f32' || out.numel !== N * C || out.shape[out.shape.length - 1] !== C) {
    throw new ShapeError(`embedding: out ${out.describe()} must be f32 (..., ${C}) holding ${N} rows, one per id of ${ids.describe()}.`);
  }
  if (hostIds) {
    if (hostIds.length !== N) throw new ShapeError(`embedding: ${hostIds.length} host ids for an ids tensor of ${N}.`);
    validateIds(hostIds, V);
  }
  if (N === 0 || C === 0) return;
  for (const p of rowPieces(N, [[ids, 1], [out, C]])) {
    const [ai, ao] = p.at;
    const total = p.count * C;
    table.chunks.forEach((ch, k) => {
      const u = Uint32Array.of(total, C, ai.offset, ao.offset, ch.rowStart, ch.rows, V, k === 0 ? 1 : 0);
      batch.dispatch(SHADERS.embedding, 'forward', {}, [table.binding(k), ids.binding(ai.chunk), out.binding(ao.chunk), batch.uniform(u)], Math.ceil(total / WG));
    });
  }
}

/**
 * Backward for a trainable table: dtable[ids[n]] += dy[n] for every token n (accumulated; rows of ids
 * that do not occur are untouched). ids on the CPU (N values in [0, V), validated), dy (..., C) of N
 * rows, dtable (V, C) f32 (possibly split). The grouping is built here and uploaded into `groups`
 * (capacity ≥ N). Each row's sum runs in token order, so repeated runs agree bit for bit.
 */
export function embeddingBackward(batch: Batch, ids: Int32Array, dy: Tensor, dtable: Tensor, groups: TokenGroups): void {
  const { V, C } = tableDims('embeddingBackward', dtable);
  const N = ids.length;
  if (dy.dtype !== 'f32' || dy.numel !== N * C || dy.shape[dy.shape.length - 1] !== C) {
    throw new ShapeError(`embeddingBackward: dy ${dy.describe()} must be f32 (..., ${C}) holding ${N} rows, one per id.`);
  }
  const g = groupTokens(ids, V);
  if (N === 0 || C === 0) return;
  groups.write(batch, g);
  const pieces = rowPieces(N, [[dy, C]]);
  let u0 = 0;
  dtable.chunks.forEach((ch, k) => {
    let u1 = u0;
    while (u1 < g.unique.length && g.unique[u1] < ch.rowStart + ch.rows) u1++;
    if (u1 > u0) {
      for (const p of pieces) {
        const [ad] = p.at;
        const u = Uint32Array.of(C, u0, u1 - u0, p.start, p.count, ad.offset, ch.rowStart, 0);
        batch.dispatch(
          SHADERS.embedding,
          'backward',
          {},
          [dy.binding(ad.chunk), groups.unique.binding(), groups.starts.binding(), groups.tokens.binding(), dtable.binding(k), batch.uniform(u)],
          u1 - u0,
        );
      }
    }
    u0 = u1;
  });
}
