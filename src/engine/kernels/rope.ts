// Dispatcher of shaders/rope.wgsl: rotary position embeddings (Hugging Face rotate-half) on query or
// key activations, in place or out of place, forward and backward. ropeInvFreq (the CPU computation
// of the inverse frequencies, rope_theta and llama3 scaling) lives with the reference and is
// re-exported here for the model.

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Tensor, rowPieces } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

export { ropeInvFreq, type RopeScaling } from '../reference/rope.ts';

const WG = 256;

function params(pairs: number, H: number, half: number, offX: number, offO: number, offP: number, sign: number): Uint32Array {
  const u = new Uint32Array(8);
  u.set([pairs, H, half, offX, offO, offP]);
  new Float32Array(u.buffer)[6] = sign;
  return u;
}

/** Checks the operands and returns tokens N, heads H and half = D/2. */
function dims(op: string, x: Tensor, positions: Tensor, invFreq: Tensor, out: Tensor): { N: number; H: number; half: number } {
  if (x.dtype !== 'f32' || out.dtype !== 'f32') throw new ShapeError(`${op} takes f32 activations; got ${x.describe()} and ${out.describe()}.`);
  if (positions.dtype !== 'i32') throw new ShapeError(`${op} takes i32 positions; ${positions.describe()} is ${positions.dtype}.`);
  if (invFreq.dtype !== 'f32' || invFreq.shape.length !== 1 || invFreq.shape[0] === 0) {
    throw new ShapeError(`${op}: inv_freq must be a non-empty 1-D f32 tensor (D/2); got ${invFreq.describe()}.`);
  }
  if (invFreq.isSplit) throw new ShapeError(`${op}: inv_freq ${invFreq.describe()} must fit in one buffer.`);
  if (out.shape.length !== x.shape.length || out.shape.some((d, i) => d !== x.shape[i])) {
    throw new ShapeError(`${op}: output is [${out.shape.join(', ')}] but input is [${x.shape.join(', ')}].`);
  }
  const half = invFreq.shape[0];
  const N = positions.numel;
  const H = N === 0 ? 0 : x.numel / (N * 2 * half);
  if (N === 0 ? x.numel !== 0 : !Number.isInteger(H)) {
    throw new ShapeError(`${op}: input [${x.shape.join(', ')}] is not (N, H, D) for N = ${N} positions and D = ${2 * half} (2 × inv_freq length).`);
  }
  return { N, H, half };
}

function dispatch(batch: Batch, x: Tensor, positions: Tensor, invFreq: Tensor, out: Tensor, sign: number, op: string): void {
  const { N, H, half } = dims(op, x, positions, invFreq, out);
  if (N === 0 || H === 0) return;
  const rowElems = H * 2 * half;
  if (out === x) {
    for (const p of rowPieces(N, [[x, rowElems], [positions, 1]])) {
      const [ax, ap] = p.at;
      const pairs = p.count * H * half;
      batch.dispatch(
        SHADERS.rope,
        'rotate_inplace',
        {},
        [x.binding(ax.chunk), positions.binding(ap.chunk), invFreq.binding(), batch.uniform(params(pairs, H, half, ax.offset, ax.offset, ap.offset, sign))],
        Math.ceil(pairs / WG),
      );
    }
    return;
  }
  for (const p of rowPieces(N, [[x, rowElems], [out, rowElems], [positions, 1]])) {
    const [ax, ao, ap] = p.at;
    const pairs = p.count * H * half;
    batch.dispatch(
      SHADERS.rope,
      'rotate',
      {},
      [x.binding(ax.chunk), out.binding(ao.chunk), positions.binding(ap.chunk), invFreq.binding(), batch.uniform(params(pairs, H, half, ax.offset, ao.offset, ap.offset, sign))],
      Math.ceil(pairs / WG),
    );
  }
}

/**
 * Forward: rotates x (N, H·D) — any shape whose elements are N tokens × H heads × D, token-major —
 * by the angles positions[n] · invFreq[i] (positions i32 (N), restarting per packed sequence;
 * invFreq f32 (D/2) from ropeInvFreq). Writes `out` (same shape; overwritten), or x itself when
 * `out` is x or omitted.
 */
export function rope(batch: Batch, x: Tensor, positions: Tensor, invFreq: Tensor, out: Tensor = x): void {
  dispatch(batch, x, positions, invFreq, out, 1, 'rope');
}

/** Backward: dx = dy rotated by the negative angles; dx (same shape as dy) is overwritten, or dy itself when omitted. */
export function ropeBackward(batch: Batch, dy: Tensor, positions: Tensor, invFreq: Tensor, dx: Tensor = dy): void {
  dispatch(batch, dy, positions, invFreq, dx, -1, 'ropeBackward');
}
