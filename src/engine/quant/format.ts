// The quantization formats of frozen weights, their options, and one CPU entry point over the four
// codecs: quantizeMatrix (f32 values → a QuantizedMatrix) and dequantizeMatrix (back to f32). A
// QuantizedMatrix holds what the GPU kernels bind (shaders/quant.wgsl): codes as bytes, f32 scales,
// auxiliary bytes and the offset. No GPU code here.

import { InvalidArgumentError } from '../errors.ts';
import { BLOCKSIZES_4BIT, type Quantized4, dequantize4bit, quantize4bit } from './blockwise.ts';
import { INT4_GROUP_SIZES, type QuantizedInt4, dequantizeInt4, groupsPerRow, quantizeInt4 } from './int4.ts';
import { type QuantizedInt8, dequantizeInt8, quantizeInt8 } from './int8.ts';
import { DYNAMIC_MAP } from './tables.ts';

export type QuantFormat = 'nf4' | 'fp4' | 'int8' | 'int4';

export const QUANT_FORMATS: readonly QuantFormat[] = ['nf4', 'fp4', 'int8', 'int4'];

export interface QuantOptions {
  format: QuantFormat;
  /** NF4/FP4 block size (default 64) or INT4 group size (default 64); ignored by INT8 (per row). */
  block?: number;
  /** NF4/FP4: double quantization of the absmax values. */
  doubleQuant?: boolean;
  /** INT4: symmetric (default) or asymmetric with a zero point per group. */
  symmetric?: boolean;
}

/** A (rows, cols) matrix in one of the formats, in the layout the GPU kernels read. */
export interface QuantizedMatrix {
  format: QuantFormat;
  shape: [number, number];
  /** NF4/FP4 block, INT4 group, INT8: cols. */
  block: number;
  doubleQuant: boolean;
  /** 4-bit codes (two per byte, high nibble first) or int8 bytes. */
  codes: Uint8Array;
  /** NF4/FP4: absmax per block (or per 256 blocks when double-quantized); INT8: row absmax (SCB); INT4: per group. */
  scales: Float32Array;
  /** NF4/FP4 double-quantized: one dynamic-map code per block; INT4 asymmetric: zero points; else null. */
  aux: Uint8Array | null;
  /** NF4/FP4 double-quantized: the 256-value map of the aux codes (bitsandbytes' nested_quant_map). */
  dmap: Float32Array | null;
  /** NF4/FP4 double-quantized: the mean subtracted before quantizing absmax. */
  offset: number;
}

/** Checks a format name (from a flag or a config) and returns it. */
export function parseQuantFormat(value: string, where = '--quant'): QuantFormat {
  if (!(QUANT_FORMATS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${where} must be one of ${QUANT_FORMATS.join(', ')}; got ${JSON.stringify(value)}.`);
  }
  return value as QuantFormat;
}

/** Validates options and fills their defaults. */
export function resolveQuantOptions(o: QuantOptions): Required<QuantOptions> {
  parseQuantFormat(o.format, 'format');
  const block = o.format === 'int8' ? 0 : (o.block ?? 64);
  if ((o.format === 'nf4' || o.format === 'fp4') && !BLOCKSIZES_4BIT.includes(block)) {
    throw new InvalidArgumentError(`The ${o.format} block size must be a power of two from 32 to 4096; got ${block}.`);
  }
  if (o.format === 'int4' && !INT4_GROUP_SIZES.includes(block)) throw new InvalidArgumentError(`The int4 group size must be 32, 64 or 128; got ${block}.`);
  if (o.doubleQuant && o.format !== 'nf4' && o.format !== 'fp4') throw new InvalidArgumentError(`Double quantization applies to nf4 and fp4, not ${o.format}.`);
  return { format: o.format, block, doubleQuant: Boolean(o.doubleQuant), symmetric: o.symmetric ?? true };
}

/** Quantizes a row-major (rows, cols) matrix. */
export function quantizeMatrix(values: ArrayLike<number>, shape: readonly number[], options: QuantOptions): QuantizedMatrix {
  const o = resolveQuantOptions(options);
  if (shape.length !== 2) throw new InvalidArgumentError(`Only matrices are quantized; got shape [${shape.join(', ')}].`);
  const [rows, cols] = shape;
  if (o.format === 'nf4' || o.format === 'fp4') {
    return from4bit(quantize4bit(values, shape, { type: o.format, blocksize: o.block, doubleQuant: o.doubleQuant }));
  }
  if (o.format === 'int8') {
    const q = quantizeInt8(values, shape);
    return { format: 'int8', shape: [rows, cols], block: cols, doubleQuant: false, codes: new Uint8Array(q.codes.buffer), scales: q.scb, aux: null, dmap: null, offset: 0 };
  }
  const q = quantizeInt4(values, shape, { groupSize: o.block, symmetric: o.symmetric });
  return { format: 'int4', shape: [rows, cols], block: o.block, doubleQuant: false, codes: q.packed, scales: q.scales, aux: q.zeros, dmap: null, offset: 0 };
}

/** The QuantizedMatrix view of a bitsandbytes 4-bit tensor (2-D). */
export function from4bit(q: Quantized4, dmap: Float32Array = DYNAMIC_MAP): QuantizedMatrix {
  if (q.shape.length !== 2) throw new InvalidArgumentError(`Only matrices are quantized; got shape [${q.shape.join(', ')}].`);
  const base = { format: q.type, shape: [q.shape[0], q.shape[1]] as [number, number], block: q.blocksize, codes: q.packed };
  if (q.nested) return { ...base, doubleQuant: true, scales: q.nested.absmax, aux: q.nested.codes, dmap, offset: q.nested.offset };
  return { ...base, doubleQuant: false, scales: q.absmax!, aux: null, dmap: null, offset: 0 };
}

/** The bitsandbytes 4-bit view of an NF4/FP4 QuantizedMatrix. */
export function to4bit(m: QuantizedMatrix): Quantized4 {
  if (m.format !== 'nf4' && m.format !== 'fp4') throw new InvalidArgumentError(`${m.format} is not a 4-bit bitsandbytes format.`);
  return {
    type: m.format,
    blocksize: m.block,
    shape: [...m.shape],
    packed: m.codes,
    absmax: m.doubleQuant ? null : m.scales,
    nested: m.doubleQuant ? { codes: m.aux!, absmax: m.scales, offset: m.offset } : null,
  };
}

/** Decodes to f32 (row-major). Double-quantized absmax uses the matrix's own map. */
export function dequantizeMatrix(m: QuantizedMatrix): Float32Array {
  const [rows, cols] = m.shape;
  if (m.format === 'nf4' || m.format === 'fp4') {
    if (m.doubleQuant && m.dmap && m.dmap !== DYNAMIC_MAP) {
      // A stored map (from a checkpoint): decode the absmax values with it.
      const absmax = new Float32Array(m.aux!.length);
      for (let b = 0; b < absmax.length; b++) absmax[b] = Math.fround(Math.fround(m.dmap[m.aux![b]] * m.scales[b >> 8]) + m.offset);
      return dequantize4bit({ ...to4bit(m), absmax, nested: null });
    }
    return dequantize4bit(to4bit(m));
  }
  if (m.format === 'int8') {
    const q: QuantizedInt8 = { shape: [rows, cols], codes: new Int8Array(m.codes.buffer, m.codes.byteOffset, m.codes.length), scb: m.scales };
    return dequantizeInt8(q);
  }
  const q: QuantizedInt4 = { shape: [rows, cols], groupSize: m.block, symmetric: m.aux === null, packed: m.codes, scales: m.scales, zeros: m.aux };
  return dequantizeInt4(q);
}

/** Bytes a quantized (rows, cols) matrix takes in memory (codes, scales, aux bytes; a shared map not counted). */
export function quantizedBytes(rows: number, cols: number, o: Required<QuantOptions>): number {
  const n = rows * cols;
  if (o.format === 'int8') return n + 4 * rows;
  const codes = Math.ceil(n / 2);
  if (o.format === 'int4') {
    const groups = rows * groupsPerRow(cols, o.block);
    return codes + 4 * groups + (o.symmetric ? 0 : groups);
  }
  const blocks = Math.ceil(n / o.block);
  return o.doubleQuant ? codes + blocks + 4 * Math.ceil(blocks / 256) : codes + 4 * blocks;
}
