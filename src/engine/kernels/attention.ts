// Dispatcher of shaders/attention.wgsl: causal self-attention with grouped-query heads, segment
// masking (padding, packed sequences) and optional prefix keys/values, forward and backward,
// FlashAttention-2 style (keys streamed in tiles, online softmax; only out and the per-row
// logsumexp are saved for backward). Shapes, dtypes and tile sizes are chosen here; the arithmetic
// is in the shader. It allocates nothing: outputs and the backward scratch come from the caller.
//
// Layouts (row-major, as the q/k/v projections produce them):
//   q, out, dOut, dq (B·T, Hq·D)    k, v, dk, dv (B·T, Hkv·D)    segments i32 (B·T)
//   lse (B, Hq, T)    stats (B, Hq, T, 2)    prefixK, prefixV, dPrefixK, dPrefixV (P, Hkv·D)
// Query head h uses kv head floor(h / (Hq / Hkv)). Query t attends key t' of its batch row iff
// t' ≤ t and segments[t'] == segments[t]; a negative segment marks padding (never a key; its out,
// lse and gradients are 0). Every non-padding query also attends the P prefix keys.

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import type { Gpu } from '../gpu/device.ts';
import type { DType, Tensor } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

export interface AttentionOptions {
  /** Batch rows B; q has B·T rows. */
  batchSize: number;
  /** Query heads Hq. */
  numHeads: number;
  /** Key/value heads Hkv; numHeads must be a multiple of it. */
  numKvHeads: number;
  /** Score scale; 1/sqrt(D) by default. */
  scale?: number;
}

export interface AttentionInputs {
  q: Tensor; // (B·T, Hq·D)
  k: Tensor; // (B·T, Hkv·D)
  v: Tensor; // (B·T, Hkv·D)
  segments: Tensor; // (B·T) i32
  /** Prefix keys and values for prefix tuning, shared over the batch: both or neither. */
  prefixK?: Tensor; // (P, Hkv·D)
  prefixV?: Tensor; // (P, Hkv·D)
}

export interface AttentionGradTensors {
  dq: Tensor; // (B·T, Hq·D)
  dk: Tensor; // (B·T, Hkv·D)
  dv: Tensor; // (B·T, Hkv·D)
  /** Required exactly when the inputs have a prefix. */
  dPrefixK?: Tensor; // (P, Hkv·D)
  dPrefixV?: Tensor; // (P, Hkv·D)
}

/** Sizes of one attention call, read from the tensors and options. */
export interface AttentionShape {
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
  P: number;
  scale: number;
}

/** Largest head dimension the kernel handles (CPT columns × at most 32 lanes per row). */
export const MAX_HEAD_DIM = 256;
const CPT = 8;
const STATS_WG = 64;
const TILE_CHOICES: readonly [number, number][] = [
  [16, 16],
  [16, 8],
  [8, 8],
  [8, 4],
  [4, 4],
  [4, 2],
  [2, 2],
  [1, 1],
];

/** Override constants of the tiled entries for head dimension D on this device. */
export interface AttentionTiling {
  /** Tile row stride: a power of two ≥ D, at least 16. */
  DMAX: number;
  /** Threads per owned row: DMAX / 8. */
  LANES: number;
  /** Owned rows per workgroup. */
  R: number;
  /** Rows per streamed tile. */
  S: number;
}

/** Bytes of workgroup memory the largest entry (dkdv) declares for a tiling. */
export function attentionWorkgroupBytes(t: AttentionTiling): number {
  return 4 * (2 * t.R * t.DMAX + 2 * t.S * t.DMAX + 2 * t.R * t.S + 4 * t.S);
}

/** The largest tiles whose workgroup memory and thread count fit the device. */
export function attentionTiling(gpu: Gpu, D: number): AttentionTiling {
  let DMAX = 16;
  while (DMAX < D) DMAX *= 2;
  const LANES = DMAX / CPT;
  const limits = gpu.summary.limits;
  for (const [R, S] of TILE_CHOICES) {
    const t = { DMAX, LANES, R, S };
    if (R * LANES <= limits.maxComputeInvocationsPerWorkgroup && attentionWorkgroupBytes(t) <= limits.maxComputeWorkgroupStorageSize) return t;
  }
  throw new ShapeError(
    `attention with head dimension ${D} needs more workgroup memory than this GPU offers (${limits.maxComputeWorkgroupStorageSize} bytes).`,
  );
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

function checkTensor(t: Tensor, name: string, shape: readonly number[], dtype: DType): void {
  if (!same(t.shape, shape)) throw new ShapeError(`attention: ${name} is [${t.shape.join(', ')}] but should be [${shape.join(', ')}].`);
  if (t.dtype !== dtype) throw new ShapeError(`attention: ${name} must be ${dtype}; ${t.describe()} is ${t.dtype}.`);
  if (t.isSplit) {
    throw new ShapeError(`attention: ${name} ${t.describe()} is split across ${t.chunks.length} buffers; attention needs each tensor in one storage binding.`, {
      hint: 'Use a smaller batch or a shorter sequence length.',
    });
  }
}

/** Reads B, T, Hq, Hkv, D, P from the inputs and checks their shapes and dtypes. */
export function attentionShape(x: AttentionInputs, o: AttentionOptions): AttentionShape {
  const { batchSize: B, numHeads: Hq, numKvHeads: Hkv } = o;
  for (const [name, n] of [['batchSize', B], ['numHeads', Hq], ['numKvHeads', Hkv]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new ShapeError(`attention: ${name} must be a positive integer, got ${n}.`);
  }
  if (Hq % Hkv !== 0) throw new ShapeError(`attention: numHeads ${Hq} is not a multiple of numKvHeads ${Hkv}.`);
  if (x.q.shape.length !== 2) throw new ShapeError(`attention: q is [${x.q.shape.join(', ')}] but should be 2-D (B·T, Hq·D).`);
  const [N, width] = x.q.shape;
  if (N % B !== 0) throw new ShapeError(`attention: q has ${N} rows, not a multiple of batchSize ${B}.`);
  if (width % Hq !== 0 || width === 0) throw new ShapeError(`attention: q row width ${width} is not a positive multiple of numHeads ${Hq}.`);
  const T = N / B;
  if (T === 0) throw new ShapeError('attention: q has no rows (the sequence length is 0).');
  const D = width / Hq;
  if (D > MAX_HEAD_DIM) throw new ShapeError(`attention: head dimension ${D} exceeds the supported ${MAX_HEAD_DIM}.`);
  checkTensor(x.q, 'q', [N, Hq * D], 'f32');
  checkTensor(x.k, 'k', [N, Hkv * D], 'f32');
  checkTensor(x.v, 'v', [N, Hkv * D], 'f32');
  checkTensor(x.segments, 'segments', [N], 'i32');
  if (Boolean(x.prefixK) !== Boolean(x.prefixV)) throw new ShapeError('attention: prefixK and prefixV must be given together.');
  let P = 0;
  if (x.prefixK && x.prefixV) {
    P = x.prefixK.shape[0] ?? 0;
    checkTensor(x.prefixK, 'prefixK', [P, Hkv * D], 'f32');
    checkTensor(x.prefixV, 'prefixV', [P, Hkv * D], 'f32');
  }
  const scale = o.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new ShapeError(`attention: scale must be finite, got ${scale}.`);
  return { B, T, Hq, Hkv, D, P, scale };
}

/** Shape of the logsumexp tensor the forward writes: (B, Hq, T). */
export function attentionLseShape(s: AttentionShape): number[] {
  return [s.B, s.Hq, s.T];
}

/** Shape of the backward's scratch tensor: (B, Hq, T, 2), per query (lse, rowsum(dOut ⊙ out)). */
export function attentionStatsShape(s: AttentionShape): number[] {
  return [s.B, s.Hq, s.T, 2];
}

function params(s: AttentionShape, count: number, mode = 0, accumulate = false): Uint32Array {
  const u = new Uint32Array(12);
  const f = new Float32Array(u.buffer);
  u.set([s.B, s.T, s.Hq, s.Hkv, s.D, s.P, mode, accumulate ? 1 : 0, count]);
  f[9] = s.scale;
  return u;
}

const constants = (t: AttentionTiling) => ({ DMAX: t.DMAX, LANES: t.LANES, R: t.R, S: t.S });

/**
 * Forward: overwrites out (B·T, Hq·D) with softmax(scale · q·kᵀ + mask) · v per query head and
 * lse (B, Hq, T) with the logsumexp of each query row's scores (0 for padding rows).
 */
export function attention(batch: Batch, x: AttentionInputs, out: Tensor, lse: Tensor, o: AttentionOptions): void {
  const s = attentionShape(x, o);
  checkTensor(out, 'out', [s.B * s.T, s.Hq * s.D], 'f32');
  checkTensor(lse, 'lse', attentionLseShape(s), 'f32');
  const tiles = attentionTiling(batch.gpu, s.D);
  const count = s.B * Math.ceil(s.T / tiles.R) * s.Hq;
  // Without prefix rows, k and v stand in for the unused prefix bindings (never read: P = 0).
  const pk = x.prefixK && s.P > 0 ? x.prefixK : x.k;
  const pv = x.prefixV && s.P > 0 ? x.prefixV : x.v;
  batch.dispatch(
    SHADERS.attention,
    'forward',
    constants(tiles),
    [x.q.binding(), x.k.binding(), x.v.binding(), pk.binding(), pv.binding(), x.segments.binding(), out.binding(), lse.binding(), batch.uniform(params(s, count))],
    count,
  );
}

/**
 * Backward: given the forward's out and lse and the upstream dOut (B·T, Hq·D), overwrites dq, dk,
 * dv and, with a prefix, dPrefixK and dPrefixV. dk, dv are summed over the query heads sharing a
 * kv head; dPrefixK, dPrefixV also over the batch. `stats` (B, Hq, T, 2) is scratch: it is
 * overwritten with (lse, rowsum(dOut ⊙ out)) per query. Deterministic (no atomics).
 */
export function attentionBackward(
  batch: Batch,
  x: AttentionInputs,
  out: Tensor,
  lse: Tensor,
  dOut: Tensor,
  stats: Tensor,
  grads: AttentionGradTensors,
  o: AttentionOptions,
): void {
  const s = attentionShape(x, o);
  const N = s.B * s.T;
  checkTensor(out, 'out', [N, s.Hq * s.D], 'f32');
  checkTensor(lse, 'lse', attentionLseShape(s), 'f32');
  checkTensor(dOut, 'dOut', [N, s.Hq * s.D], 'f32');
  checkTensor(stats, 'stats', attentionStatsShape(s), 'f32');
  checkTensor(grads.dq, 'dq', [N, s.Hq * s.D], 'f32');
  checkTensor(grads.dk, 'dk', [N, s.Hkv * s.D], 'f32');
  checkTensor(grads.dv, 'dv', [N, s.Hkv * s.D], 'f32');
  const prefix = x.prefixK !== undefined && x.prefixV !== undefined;
  if (prefix !== (grads.dPrefixK !== undefined) || prefix !== (grads.dPrefixV !== undefined)) {
    throw new ShapeError(`attention backward: dPrefixK and dPrefixV are required exactly when the inputs have a prefix (they ${prefix ? 'do' : 'do not'}).`);
  }
  if (grads.dPrefixK) checkTensor(grads.dPrefixK, 'dPrefixK', [s.P, s.Hkv * s.D], 'f32');
  if (grads.dPrefixV) checkTensor(grads.dPrefixV, 'dPrefixV', [s.P, s.Hkv * s.D], 'f32');

  const tiles = attentionTiling(batch.gpu, s.D);
  const c = constants(tiles);
  const queries = s.B * s.Hq * s.T;
  batch.dispatch(SHADERS.attention, 'stats', {}, [out.binding(), dOut.binding(), lse.binding(), stats.binding(), batch.uniform(params(s, queries))], Math.ceil(queries / STATS_WG));

  const blocks = s.B * Math.ceil(s.T / tiles.R);
  const common = [x.q.binding(), dOut.binding(), stats.binding(), x.segments.binding()];
  const dkdv = (mode: number, count: number, k: Tensor, v: Tensor, dk: Tensor, dv: Tensor) =>
    batch.dispatch(SHADERS.attention, 'dkdv', c, [...common, k.binding(), v.binding(), dk.binding(), dv.binding(), batch.uniform(params(s, count, mode))], count);
  const dq = (mode: number, k: Tensor, v: Tensor, accumulate: boolean) =>
    batch.dispatch(SHADERS.attention, 'dq', c, [...common, k.binding(), v.binding(), grads.dq.binding(), batch.uniform(params(s, blocks * s.Hq, mode, accumulate))], blocks * s.Hq);

  dkdv(0, blocks * s.Hkv, x.k, x.v, grads.dk, grads.dv);
  dq(0, x.k, x.v, false);
  if (x.prefixK && x.prefixV && grads.dPrefixK && grads.dPrefixV && s.P > 0) {
    dkdv(1, Math.ceil(s.P / tiles.R) * s.Hkv, x.prefixK, x.prefixV, grads.dPrefixK, grads.dPrefixV);
    dq(1, x.prefixK, x.prefixV, true);
  }
}
