// The tensor type: a shape, a dtype and GPU storage. Storage is one buffer, or, when the tensor is
// larger than one storage binding may cover, several buffers that each hold a run of whole rows
// (the leading dimension). Kernels bind chunk by chunk. No arithmetic lives here.

import { InvalidArgumentError, ShapeError } from '../errors.ts';
import type { Gpu } from './device.ts';

export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32' | 'u8';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u32: 4, u8: 1 };

export type TypedArrayFor<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'i32'
    ? Int32Array
    : D extends 'u32'
      ? Uint32Array
      : D extends 'u8'
        ? Uint8Array
        : Uint16Array;

/** A run of whole rows stored in one buffer. */
export interface Chunk {
  buffer: GPUBuffer;
  /** Byte offset of the first row inside `buffer`. */
  offset: number;
  /** Index of the first row of the tensor this chunk holds. */
  rowStart: number;
  rows: number;
  /** Bytes of the chunk's data (rows × row bytes). */
  bytes: number;
}

/** A binding covering a chunk's data (at least 4 bytes, a multiple of 4). */
export function chunkBinding(c: Chunk): GPUBufferBinding {
  return { buffer: c.buffer, offset: c.offset, size: Math.max(4, Math.ceil(c.bytes / 4) * 4) };
}

export interface RowRange {
  rowStart: number;
  rows: number;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: readonly number[], what = 'tensor'): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`Invalid ${what} shape [${shape.join(', ')}]: dimensions must be non-negative integers.`);
  }
}

/** Rows of the leading dimension and elements per row (a scalar or 1-D tensor has rows of one element). */
export function rowLayout(shape: readonly number[]): { rows: number; rowElems: number } {
  if (shape.length === 0) return { rows: 1, rowElems: 1 };
  if (shape.length === 1) return { rows: shape[0], rowElems: 1 };
  return { rows: shape[0], rowElems: numel(shape.slice(1)) };
}

/**
 * Splits `shape` into row ranges of at most `maxBytes` each. Every tensor of the same shape and
 * dtype gets the same ranges, so elementwise kernels can pair chunks one to one.
 */
export function planChunks(shape: readonly number[], dtype: DType, maxBytes: number): RowRange[] {
  const { rows, rowElems } = rowLayout(shape);
  const rowBytes = rowElems * DTYPE_BYTES[dtype];
  if (rows === 0 || rowBytes === 0) return [{ rowStart: 0, rows }];
  // Chunks hold a whole number of 4-byte words so that every chunk starts word-aligned.
  let perChunk = Math.floor(maxBytes / rowBytes);
  while (perChunk > 1 && (perChunk * rowBytes) % 4 !== 0) perChunk--;
  if (perChunk < 1 || (perChunk * rowBytes) % 4 !== 0) {
    throw new ShapeError(
      `One row of a [${shape.join(', ')}] ${dtype} tensor (${rowBytes} bytes) does not fit in one storage binding of ${maxBytes} bytes.`,
    );
  }
  const ranges: RowRange[] = [];
  for (let r = 0; r < rows; r += perChunk) ranges.push({ rowStart: r, rows: Math.min(perChunk, rows - r) });
  return ranges;
}

/** Where a piece of rows lives in one tensor: its chunk and the element offset inside that chunk. */
export interface PieceAt {
  chunk: number;
  offset: number;
}

/** Rows [start, start + count) of a row view, held by one chunk of every tensor involved. */
export interface Piece {
  start: number;
  count: number;
  at: PieceAt[];
}

/**
 * Cuts rows [0, n) of a row view into pieces that each lie in one chunk of every tensor, where
 * `parts[i] = [tensor, elements of that tensor per row]`. Throws a ShapeError when a tensor is split
 * inside a row (its leading dimension does not hold whole rows of the view).
 */
export function rowPieces(n: number, parts: readonly (readonly [Tensor, number])[]): Piece[] {
  const cuts = new Set<number>([0, n]);
  for (const [t, unit] of parts) {
    for (const c of t.chunks) {
      const e = c.rowStart * t.rowElems;
      if (e % unit !== 0) {
        throw new ShapeError(`Tensor ${t.describe()} is split across buffers at element ${e}, inside a row of ${unit} elements.`);
      }
      if (e / unit > 0 && e / unit < n) cuts.add(e / unit);
    }
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  const pieces: Piece[] = [];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const start = sorted[i];
    const at = parts.map(([t, unit]) => {
      const e = start * unit;
      const re = t.rowElems;
      let k = t.chunks.findIndex((c) => e >= c.rowStart * re && e < (c.rowStart + c.rows) * re);
      if (k < 0) k = t.chunks.length - 1;
      return { chunk: k, offset: e - t.chunks[k].rowStart * re };
    });
    pieces.push({ start, count: sorted[i + 1] - start, at });
  }
  return pieces;
}

export interface TensorOptions {
  label?: string;
  /** Take the buffers from the allocator's transient pool; release() returns them. */
  transient?: boolean;
}

export class Tensor {
  readonly gpu: Gpu;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly chunks: readonly Chunk[];
  readonly transient: boolean;
  readonly label?: string;
  private freed = false;

  constructor(gpu: Gpu, shape: readonly number[], dtype: DType, chunks: Chunk[], transient: boolean, label?: string) {
    this.gpu = gpu;
    this.shape = [...shape];
    this.dtype = dtype;
    this.chunks = chunks;
    this.transient = transient;
    this.label = label;
  }

  get numel(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }

  get rowElems(): number {
    return rowLayout(this.shape).rowElems;
  }

  get isSplit(): boolean {
    return this.chunks.length > 1;
  }

  get released(): boolean {
    return this.freed;
  }

  /** The single buffer of an unsplit tensor. */
  get buffer(): GPUBuffer {
    this.assertLive();
    if (this.chunks.length !== 1) {
      throw new ShapeError(`Tensor ${this.describe()} is split across ${this.chunks.length} buffers; bind it chunk by chunk.`);
    }
    return this.chunks[0].buffer;
  }

  /** A binding covering chunk `i`'s data. */
  binding(i = 0): GPUBufferBinding {
    this.assertLive();
    return chunkBinding(this.chunks[i]);
  }

  describe(): string {
    return `${this.label ? `"${this.label}" ` : ''}[${this.shape.join(', ')}] ${this.dtype}`;
  }

  /** Frees the storage: transient buffers go back to the pool, others are destroyed. */
  release(): void {
    if (this.freed) return;
    this.freed = true;
    for (const c of this.chunks) {
      if (this.transient) this.gpu.allocator.release(c.buffer);
      else this.gpu.allocator.destroy(c.buffer);
    }
  }

  assertLive(): void {
    if (this.freed) throw new InvalidArgumentError(`Tensor ${this.describe()} was used after release().`);
  }
}

/** Allocates an uninitialised tensor. */
export function createTensor(gpu: Gpu, shape: readonly number[], dtype: DType = 'f32', options: TensorOptions = {}): Tensor {
  checkShape(shape);
  const { rowElems } = rowLayout(shape);
  const rowBytes = rowElems * DTYPE_BYTES[dtype];
  const chunks: Chunk[] = planChunks(shape, dtype, gpu.maxBindingBytes).map((r, i, all) => {
    const bytes = r.rows * rowBytes;
    const label = options.label && all.length > 1 ? `${options.label}#${i}` : options.label;
    const buffer = options.transient ? gpu.allocator.acquire(bytes, undefined, label) : gpu.allocator.create(bytes, undefined, label);
    return { buffer, offset: 0, rowStart: r.rowStart, rows: r.rows, bytes };
  });
  return new Tensor(gpu, shape, dtype, chunks, Boolean(options.transient), options.label);
}

/** Allocates a tensor and uploads `data` (length must equal the element count; f16/bf16 as raw u16). */
export function tensorFromArray<D extends DType>(
  gpu: Gpu,
  data: TypedArrayFor<D> | ArrayLike<number>,
  shape: readonly number[],
  dtype: D = 'f32' as D,
  options: TensorOptions = {},
): Tensor {
  const t = createTensor(gpu, shape, dtype, options);
  writeTensor(t, data);
  return t;
}

/** Uploads `data` into `t` through the queue. */
export function writeTensor(t: Tensor, data: ArrayLike<number> | ArrayBufferView): void {
  t.assertLive();
  const view = toTyped(data, t.dtype);
  if (view.length !== t.numel) {
    throw new ShapeError(`Cannot write ${view.length} values into tensor ${t.describe()} of ${t.numel} elements.`);
  }
  const rowElems = t.rowElems;
  for (const c of t.chunks) {
    const part = view.subarray(c.rowStart * rowElems, (c.rowStart + c.rows) * rowElems);
    writePadded(t.gpu.device, c.buffer, c.offset, part);
  }
}

function writePadded(device: GPUDevice, buffer: GPUBuffer, offset: number, part: ArrayBufferView): void {
  const bytes = new Uint8Array(part.buffer as ArrayBuffer, part.byteOffset, part.byteLength);
  if (bytes.byteLength % 4 === 0) {
    device.queue.writeBuffer(buffer, offset, bytes);
    return;
  }
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  device.queue.writeBuffer(buffer, offset, padded);
}

export function typedArrayFor(dtype: DType, length: number): TypedArrayFor<DType> {
  switch (dtype) {
    case 'f32':
      return new Float32Array(length);
    case 'i32':
      return new Int32Array(length);
    case 'u32':
      return new Uint32Array(length);
    case 'u8':
      return new Uint8Array(length);
    default:
      return new Uint16Array(length);
  }
}

function toTyped(data: ArrayLike<number> | ArrayBufferView, dtype: DType): TypedArrayFor<DType> {
  const want = typedArrayFor(dtype, 0).constructor as { new (src: ArrayLike<number>): TypedArrayFor<DType> };
  if (data instanceof want) return data as TypedArrayFor<DType>;
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) return new want(data as unknown as ArrayLike<number>);
  return new want(data as ArrayLike<number>);
}
