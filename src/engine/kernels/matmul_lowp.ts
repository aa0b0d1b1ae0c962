// Dispatcher of shaders/matmul_lowp.wgsl: products through a frozen weight stored in 16 bits
// (bf16, or f16 decoded without the `shader-f16` feature): y = x · Wᵀ and, for backward through
// it, dx = dy · W. Activations are f32; any operand may be split across buffers. There is no
// weight gradient here (the weight is frozen). Shapes are checked with matmul.ts's helpers.

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Chunk, type Tensor, chunkBinding } from '../gpu/tensor.ts';
import { matmulDims } from './matmul.ts';
import { SHADERS } from './shaders.ts';

export interface MatmulLowpOptions {
  alpha?: number;
  /** Add into the output instead of overwriting it. */
  accumulate?: boolean;
}

const TILE = 64;

/**
 * y ← alpha · x · Wᵀ (or y += … with `accumulate`). x (..., K) f32 (leading dimensions are
 * flattened into M rows), W (N, K) of dtype 'bf16' or 'f16' (raw 16-bit values, nn.Linear
 * layout), y (..., N) f32 with the leading dimensions of x.
 */
export function matmulLowp(batch: Batch, x: Tensor, w: Tensor, y: Tensor, opts: MatmulLowpOptions = {}): void {
  const { M, K, lead } = flatten('matmulLowp', 'x', x);
  const d = matmulDims([M, K], w.shape, { transB: true });
  checkOperands('matmulLowp', x, w, y, [...lead, d.N]);
  if (M === 0 || d.N === 0) return;
  const mCuts = cuts(M, [mRanges(x, K), mRanges(y, d.N)]);
  const nCuts = cuts(d.N, [w.chunks.map((c) => [c.rowStart, c.rows] as const)]);
  for (let mi = 0; mi + 1 < mCuts.length; mi++) {
    const m0 = mCuts[mi];
    const Mp = mCuts[mi + 1] - m0;
    const [cx, xStart] = chunkAt(x, m0, K);
    const [cy, yStart] = chunkAt(y, m0, d.N);
    for (let ni = 0; ni + 1 < nCuts.length; ni++) {
      const n0 = nCuts[ni];
      const Np = nCuts[ni + 1] - n0;
      const [cw, wStart] = chunkAt(w, n0, K);
      const params = packParams(Mp, Np, K, K, K, d.N, (m0 - xStart) * K, (n0 - wStart) * K, (m0 - yStart) * d.N + n0, Boolean(opts.accumulate), opts.alpha ?? 1);
      batch.dispatch(SHADERS.matmul_lowp, 'forward', { FORMAT: format(w) }, [chunkBinding(cx), chunkBinding(cw), chunkBinding(cy), batch.uniform(params)], [
        Math.ceil(Np / TILE),
        Math.ceil(Mp / TILE),
        1,
      ]);
    }
  }
}

/**
 * dx ← alpha · dy · W (or dx += … with `accumulate`): the input gradient of y = x · Wᵀ through a
 * frozen 16-bit weight. dy (..., N) f32, W (N, K) 'bf16' or 'f16', dx (..., K) f32 with the
 * leading dimensions of dy.
 */
export function matmulLowpBackward(batch: Batch, dy: Tensor, w: Tensor, dx: Tensor, opts: MatmulLowpOptions = {}): void {
  const { M, K: N, lead } = flatten('matmulLowpBackward', 'dy', dy);
  const d = matmulDims([M, N], w.shape, { transB: false }); // GEMM: (M, N) · (N, K) → d.K = N, d.N = K
  const K = d.N;
  checkOperands('matmulLowpBackward', dy, w, dx, [...lead, K]);
  if (M === 0 || K === 0) return;
  const mCuts = cuts(M, [mRanges(dy, N), mRanges(dx, K)]);
  const kCuts = cuts(N, [w.chunks.map((c) => [c.rowStart, c.rows] as const)]);
  for (let mi = 0; mi + 1 < mCuts.length; mi++) {
    const m0 = mCuts[mi];
    const Mp = mCuts[mi + 1] - m0;
    const [cdy, dyStart] = chunkAt(dy, m0, N);
    const [cdx, dxStart] = chunkAt(dx, m0, K);
    for (let ki = 0; ki + 1 < kCuts.length; ki++) {
      const k0 = kCuts[ki];
      const Kp = kCuts[ki + 1] - k0;
      const [cw, wStart] = chunkAt(w, k0, K);
      const accumulate = Boolean(opts.accumulate) || ki > 0;
      const params = packParams(Mp, K, Kp, N, K, K, (m0 - dyStart) * N + k0, (k0 - wStart) * K, (m0 - dxStart) * K, accumulate, opts.alpha ?? 1);
      batch.dispatch(SHADERS.matmul_lowp, 'backward_input', { FORMAT: format(w) }, [chunkBinding(cdy), chunkBinding(cw), chunkBinding(cdx), batch.uniform(params)], [
        Math.ceil(K / TILE),
        Math.ceil(Mp / TILE),
        1,
      ]);
    }
  }
}

function format(w: Tensor): number {
  return w.dtype === 'bf16' ? 0 : 1;
}

/** M (the product of the leading dimensions) and the last dimension of an activation tensor. */
function flatten(op: string, name: string, t: Tensor): { M: number; K: number; lead: number[] } {
  if (t.shape.length < 2) throw new ShapeError(`${op}: ${name} must have at least 2 dimensions; got ${t.describe()}.`);
  const lead = t.shape.slice(0, -1);
  return { M: lead.reduce((a, b) => a * b, 1), K: t.shape[t.shape.length - 1], lead };
}

function checkOperands(op: string, a: Tensor, w: Tensor, c: Tensor, want: number[]): void {
  if (w.dtype !== 'bf16' && w.dtype !== 'f16') throw new ShapeError(`${op}: the weight must be bf16 or f16; ${w.describe()} is ${w.dtype}.`);
  for (const t of [a, c]) {
    if (t.dtype !== 'f32') throw new ShapeError(`${op}: activations must be f32; ${t.describe()} is ${t.dtype}.`);
  }
  if (c.shape.length !== want.length || c.shape.some((v, i) => v !== want[i])) {
    throw new ShapeError(`${op}: output is ${c.describe()} but the product of ${a.describe()} and ${w.describe()} is [${want.join(', ')}].`);
  }
}

/** [first matrix row, rows] of each chunk of an activation with `cols` columns. */
function mRanges(t: Tensor, cols: number): (readonly [number, number])[] {
  const per = cols === 0 ? 0 : t.rowElems / cols;
  return t.chunks.map((c) => [c.rowStart * per, c.rows * per] as const);
}

/** Boundaries 0 = c0 < c1 < … < extent where a chunk of any of the given range lists starts. */
function cuts(extent: number, groups: (readonly [number, number])[][]): number[] {
  const set = new Set<number>([0, extent]);
  for (const g of groups) for (const [start] of g) if (start > 0 && start < extent) set.add(start);
  return [...set].sort((a, b) => a - b);
}

/** The chunk of `t` holding matrix row `row` (rows of `cols` elements) and that chunk's first matrix row. */
function chunkAt(t: Tensor, row: number, cols: number): [Chunk, number] {
  const per = cols === 0 ? 1 : t.rowElems / cols;
  for (const c of t.chunks) if (row >= c.rowStart * per && row < (c.rowStart + c.rows) * per) return [c, c.rowStart * per];
  const last = t.chunks[t.chunks.length - 1];
  return [last, last.rowStart * per];
}

function packParams(M: number, N: number, K: number, lda: number, ldw: number, ldc: number, offA: number, offW: number, offC: number, accumulate: boolean, alpha: number): Uint32Array {
  const u = new Uint32Array(12);
  u.set([M, N, K, lda, ldw, ldc, offA, offW, offC, accumulate ? 1 : 0]);
  new Float32Array(u.buffer)[10] = alpha;
  return u;
}
