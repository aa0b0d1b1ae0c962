// Dispatcher of shaders/matmul.wgsl: C = alpha · op(A) · op(B), plain or batched, over tensors that
// may be split across several buffers. Shapes are checked and the kernel variant picked here
// (matmulVariant); the arithmetic is in the shader.

import { ShapeError } from '../errors.ts';
import type { Batch } from '../gpu/batch.ts';
import { type Chunk, type Tensor, chunkBinding, createTensor } from '../gpu/tensor.ts';
import { SHADERS } from './shaders.ts';

export interface MatmulOptions {
  /** A is stored (K, M) (or (batch, K, M)) and used transposed. */
  transA?: boolean;
  /** B is stored (N, K) and used transposed: y = x · Wᵀ with W in nn.Linear layout. Default true. */
  transB?: boolean;
  alpha?: number;
  /** Add into C instead of overwriting it (gradient accumulation). */
  accumulate?: boolean;
  /** Overrides parts of the variant matmulVariant picks (tests reach every variant this way). */
  variant?: Partial<MatmulVariant>;
}

/** How the shader is run for one product: the tile shape, the K depth staged, and split-K. */
export interface MatmulVariant {
  /** Rows of C per thread (the shader's TM). */
  tm: 1 | 2 | 4;
  /** Thread rows per workgroup (the shader's WG_Y); a tile is wgY·tm rows by 4·wgX columns. */
  wgY: 4 | 8 | 16;
  /** Thread columns per workgroup (the shader's WG_X), each of 4 columns: 64-column tiles, or 16 for narrow products. */
  wgX: 4 | 16;
  /** K depth staged in workgroup memory per step (the shader's BK). */
  bk: 16 | 32;
  /** K slices computed in parallel and summed by reduce_slices (1: no split-K). */
  slices: number;
}

/**
 * The one place that picks the kernel variant for a product of M×N×K (batch entries). The tile is
 * as tall as M needs, up to 64 rows: 4, 8 or 16 rows for a handful of tokens (64 threads of 1, 2
 * or 4 rows × 4 columns), 32 rows (128 threads), then 64×64 tiles of 256 threads of 4×4 outputs
 * for long sequences. A product of at most 16 columns (LoRA's rank-r bottleneck: x·Aᵀ, dY·B, and
 * dB's dYᵀ·u) gets 16-column tiles, so that 60 of 64 columns are not computed for nothing. When
 * the output has few tiles and K is long, K is split across workgroups.
 */
export function matmulVariant(M: number, N: number, K: number, batch = 1): MatmulVariant {
  const [tm, wgY]: [MatmulVariant['tm'], MatmulVariant['wgY']] = M <= 4 ? [1, 4] : M <= 8 ? [2, 4] : M <= 16 ? [4, 4] : M <= 32 ? [4, 8] : [4, 16];
  // A product over a short K (the weight gradient of a few tokens) does not stage empty k rows.
  const bk = K <= 16 ? 16 : 32;
  const wgX = N <= 16 ? 4 : 16;
  const slices = batch > 1 ? 1 : splitKSlices(M, N, K, tm * wgY, 4 * wgX);
  return { tm, wgY, wgX, bk, slices };
}

interface Dims {
  M: number;
  N: number;
  K: number;
  batch: number;
  batchB: number;
}

/** Reads M, N, K and the batch count from the operand shapes, or throws a ShapeError that names them. */
export function matmulDims(a: readonly number[], b: readonly number[], opts: MatmulOptions = {}): Dims {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? true;
  const what = () => `matmul of A [${a.join(', ')}]${transA ? 'ᵀ' : ''} by B [${b.join(', ')}]${transB ? 'ᵀ' : ''}`;
  if ((a.length !== 2 && a.length !== 3) || (b.length !== 2 && b.length !== 3)) {
    throw new ShapeError(`${what()}: operands must be 2-D or 3-D (batched).`);
  }
  const batch = a.length === 3 ? a[0] : 1;
  const batchB = b.length === 3 ? b[0] : 1;
  if (b.length === 3 && a.length === 2) throw new ShapeError(`${what()}: a batched B needs a batched A.`);
  if (b.length === 3 && batchB !== batch) throw new ShapeError(`${what()}: batch sizes ${batch} and ${batchB} differ.`);
  const [ar, ac] = a.slice(-2);
  const [br, bc] = b.slice(-2);
  const [M, Ka] = transA ? [ac, ar] : [ar, ac];
  const [Kb, N] = transB ? [bc, br] : [br, bc];
  if (Ka !== Kb) throw new ShapeError(`${what()}: inner dimensions ${Ka} and ${Kb} differ.`);
  return { M, N, K: Ka, batch, batchB };
}

/** The shape of C for these operands. */
export function matmulOutShape(a: readonly number[], b: readonly number[], opts: MatmulOptions = {}): number[] {
  const d = matmulDims(a, b, opts);
  return a.length === 3 ? [d.batch, d.M, d.N] : [d.M, d.N];
}

/** C ← alpha · op(A) · op(B) (or C += … with `accumulate`). */
export function matmul(batch: Batch, a: Tensor, b: Tensor, c: Tensor, opts: MatmulOptions = {}): void {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? true;
  const d = matmulDims(a.shape, b.shape, opts);
  const want = matmulOutShape(a.shape, b.shape, opts);
  if (c.shape.length !== want.length || c.shape.some((v, i) => v !== want[i])) {
    throw new ShapeError(`matmul output C is [${c.shape.join(', ')}] but the product is [${want.join(', ')}].`);
  }
  for (const t of [a, b, c]) {
    if (t.dtype !== 'f32') throw new ShapeError(`matmul takes f32 tensors; ${t.describe()} is ${t.dtype}.`);
  }
  if (d.M === 0 || d.N === 0) return;
  const lda = transA ? d.M : d.K;
  const ldb = transB ? d.K : d.N;
  const v = { ...matmulVariant(d.M, d.N, d.K, d.batch), ...opts.variant };
  const rows = v.tm * v.wgY;
  const cols = 4 * v.wgX;
  const constants = { TRANS_A: transA, TRANS_B: transB, TM: v.tm, WG_Y: v.wgY, WG_X: v.wgX, BK: v.bk };

  if (d.batch > 1 || a.shape.length === 3) {
    if (a.isSplit || b.isSplit || c.isSplit) {
      throw new ShapeError(`Batched matmul over a tensor split across buffers is not supported (${[a, b, c].filter((t) => t.isSplit).map((t) => t.describe()).join(', ')}).`);
    }
    const params = packParams(d.M, d.N, d.K, lda, ldb, d.N, 0, 0, 0, d.M * d.K, d.batchB === 1 && b.shape.length === 2 ? 0 : d.K * d.N, d.M * d.N, opts.alpha ?? 1);
    batch.dispatch(SHADERS.matmul, 'main', { ...constants, ACCUMULATE: Boolean(opts.accumulate) }, [a.binding(), b.binding(), c.binding(), batch.uniform(params)], [
      Math.ceil(d.N / cols),
      Math.ceil(d.M / rows),
      d.batch,
    ]);
    return;
  }

  let slices = a.isSplit || b.isSplit || c.isSplit ? 1 : v.slices;
  if (slices * d.M * d.N * 4 > a.gpu.maxBindingBytes) slices = 1;
  if (slices > 1) {
    // Split-K: slice z covers K range [z·Ks, (z+1)·Ks) and writes its own (M, N) partial product.
    const Ks = Math.ceil(d.K / slices);
    const partial = createTensor(a.gpu, [slices, d.M, d.N], 'f32', { transient: true, label: 'matmul.splitk' });
    const strideA = transA ? Ks * lda : Ks;
    const strideB = transB ? Ks : Ks * ldb;
    const params = packParams(d.M, d.N, Ks, lda, ldb, d.N, 0, 0, 0, strideA, strideB, d.M * d.N, 1, d.K);
    batch.dispatch(SHADERS.matmul, 'main', { ...constants, ACCUMULATE: false }, [a.binding(), b.binding(), partial.binding(), batch.uniform(params)], [
      Math.ceil(d.N / cols),
      Math.ceil(d.M / rows),
      slices,
    ]);
    const n = d.M * d.N;
    const red = new Uint32Array(4);
    red[0] = n;
    red[1] = slices;
    new Float32Array(red.buffer)[2] = opts.alpha ?? 1;
    batch.dispatch(SHADERS.matmul, 'reduce_slices', { ACCUMULATE: Boolean(opts.accumulate) }, [partial.binding(), c.binding(), batch.uniform(red)], Math.ceil(n / 256));
    partial.release();
    return;
  }

  // 2-D: cut M, N and K where any operand's storage changes buffer, and run one dispatch per block.
  const mCuts = cuts(d.M, transA ? [] : [a], [c]);
  const nCuts = cuts(d.N, transB ? [b] : []);
  const kCuts = cuts(d.K, transA ? [a] : [], transB ? [] : [b]);
  for (let mi = 0; mi + 1 < mCuts.length; mi++) {
    const m0 = mCuts[mi];
    const Mp = mCuts[mi + 1] - m0;
    for (let ni = 0; ni + 1 < nCuts.length; ni++) {
      const n0 = nCuts[ni];
      const Np = nCuts[ni + 1] - n0;
      for (let ki = 0; ki + 1 < kCuts.length; ki++) {
        const k0 = kCuts[ki];
        const Kp = kCuts[ki + 1] - k0;
        const ca = chunkAt(a, transA ? k0 : m0);
        const cb = chunkAt(b, transB ? n0 : k0);
        const cc = chunkAt(c, m0);
        const offA = transA ? (k0 - ca.rowStart) * lda + m0 : (m0 - ca.rowStart) * lda + k0;
        const offB = transB ? (n0 - cb.rowStart) * ldb + k0 : (k0 - cb.rowStart) * ldb + n0;
        const offC = (m0 - cc.rowStart) * d.N + n0;
        const accumulate = Boolean(opts.accumulate) || ki > 0;
        const params = packParams(Mp, Np, Kp, lda, ldb, d.N, offA, offB, offC, 0, 0, 0, opts.alpha ?? 1);
        batch.dispatch(SHADERS.matmul, 'main', { ...constants, ACCUMULATE: accumulate }, [chunkBinding(ca), chunkBinding(cb), chunkBinding(cc), batch.uniform(params)], [
          Math.ceil(Np / cols),
          Math.ceil(Mp / rows),
          1,
        ]);
      }
    }
  }
}

/** Allocates C and computes it. */
export function matmulNew(batch: Batch, a: Tensor, b: Tensor, opts: MatmulOptions = {}, label?: string): Tensor {
  const c = createTensor(a.gpu, matmulOutShape(a.shape, b.shape, opts), 'f32', { label, transient: true });
  matmul(batch, a, b, c, opts);
  return c;
}

/** M, N, K, lda, ldb, ldc, offA, offB, offC, strideA, strideB, strideC, alpha[, kTotal]. */
function packParams(...v: number[]): Uint32Array {
  const u = new Uint32Array(16);
  const f = new Float32Array(u.buffer);
  for (let i = 0; i < 12; i++) u[i] = v[i];
  f[12] = v[12];
  u[13] = v[13] ?? 0xffffffff;
  return u;
}

/**
 * How many K slices to compute in parallel: when the output has few tiles and K is long (few
 * tokens through a wide layer, or the hidden-state gradient of an LM head), one workgroup per tile
 * would walk all of K alone. Slices of at least 512 keep the extra partial sums and the reduction
 * cheap next to the product.
 */
export function splitKSlices(M: number, N: number, K: number, rowsPerTile: number, colsPerTile = 64): number {
  const tiles = Math.ceil(M / rowsPerTile) * Math.ceil(N / colsPerTile);
  if (tiles >= 32 || K < 1024) return 1;
  return Math.max(1, Math.min(Math.floor(K / 512), Math.ceil(64 / tiles), 32));
}

/** Boundaries 0 = c0 < c1 < … < extent where the row chunks of the given tensors start. */
function cuts(extent: number, ...groups: Tensor[][]): number[] {
  const set = new Set<number>([0, extent]);
  for (const group of groups) for (const t of group) for (const ch of t.chunks) if (ch.rowStart > 0 && ch.rowStart < extent) set.add(ch.rowStart);
  return [...set].sort((x, y) => x - y);
}

function chunkAt(t: Tensor, row: number): Chunk {
  for (const ch of t.chunks) if (row >= ch.rowStart && row < ch.rowStart + ch.rows) return ch;
  return t.chunks[t.chunks.length - 1];
}
