// CPU encode and decode of bitsandbytes' blockwise formats, bit for bit: 4-bit NF4 and FP4 with a
// float32 absmax per block (quantize_4bit / dequantize_4bit), the 8-bit blockwise "dynamic" code
// (quantize_blockwise, used here for double quantization), and double quantization of the 4-bit
// absmax values (compress_statistics). All arithmetic is float32 as in bitsandbytes' kernels. This
// is the reference the GPU kernels and the writers rely on; it does not touch the GPU.
//
// Rules, as bitsandbytes applies them:
// - the tensor is flattened row-major and cut into blocks of `blocksize` elements (the last may be
//   shorter); absmax[b] = max |x| over block b;
// - each x is scaled by the float32 reciprocal of its block's absmax, then mapped to a code by the
//   decision thresholds of tables.ts (NF4: code c + 1 over c when x > threshold c; FP4: the sign
//   bit for x < 0, then the magnitude thresholds; ties go to the lower magnitude). A block whose
//   absmax is 0 scales to NaN, which every threshold test rejects: code 0;
// - two codes per byte, the even element in the high nibble; an odd count pads a zero;
// - double quantization: offset = mean(absmax), then absmax − offset is quantized blockwise with the
//   signed dynamic map in blocks of 256 (nearest code; a value exactly on a midpoint goes down).
//   bitsandbytes computes the mean as a float32 reduction whose last bit depends on the device's
//   summation order; here it is the float64 mean rounded to float32.

import { InvalidArgumentError } from '../errors.ts';
import { DYNAMIC_MAP, FP4_MAGNITUDE_CODES, FP4_TABLE, FP4_THRESHOLDS, NF4_TABLE, NF4_THRESHOLDS } from './tables.ts';

const f = Math.fround;

export type Quant4Type = 'nf4' | 'fp4';

/** Blocksizes bitsandbytes accepts for 4-bit quantization: powers of two from 32 to 4096. */
export const BLOCKSIZES_4BIT: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/** The block size of double quantization (bitsandbytes' nested_blocksize). */
export const NESTED_BLOCKSIZE = 256;

/** Double-quantized absmax values: 8-bit codes of (absmax − offset), per-256-block absmax, and the offset. */
export interface NestedAbsmax {
  /** One dynamic-map code per 4-bit block. */
  codes: Uint8Array; // (blocks)
  /** absmax of (absmax − offset) per group of 256 blocks. */
  absmax: Float32Array; // (ceil(blocks / 256))
  offset: number;
}

/** A tensor in bitsandbytes' 4-bit layout. */
export interface Quantized4 {
  type: Quant4Type;
  blocksize: number;
  shape: number[];
  /** Two codes per byte, high nibble first: (numel + 1) / 2 bytes. */
  packed: Uint8Array;
  /** Per-block float32 absmax; null when double-quantized. */
  absmax: Float32Array | null; // (blocks)
  nested: NestedAbsmax | null;
}

export function table4(type: Quant4Type): Float32Array {
  return type === 'nf4' ? NF4_TABLE : FP4_TABLE;
}

export function checkBlocksize4(blocksize: number): void {
  if (!BLOCKSIZES_4BIT.includes(blocksize)) {
    throw new InvalidArgumentError(`4-bit block size must be a power of two from 32 to 4096; got ${blocksize}.`, { hint: 'bitsandbytes uses 64 by default.' });
  }
}

/** The NF4 code of a value already scaled into [-1, 1]. */
export function nf4Code(x: number): number {
  let c = 0;
  // Thresholds are ascending: the code is the number of thresholds strictly below x.
  while (c < 15 && x > NF4_THRESHOLDS[c]) c++;
  return c;
}

/** The FP4 code of a value already scaled into [-1, 1]. */
export function fp4Code(x: number): number {
  const sign = x < 0 ? 0b1000 : 0;
  const a = Math.abs(x);
  let i = 0;
  while (i < 7 && a > FP4_THRESHOLDS[i]) i++;
  return sign + FP4_MAGNITUDE_CODES[i];
}

function blockCount(n: number, blocksize: number): number {
  return Math.ceil(n / blocksize);
}

/** Per-block float32 absmax of values (flattened). */
export function blockAbsmax(values: ArrayLike<number>, blocksize: number): Float32Array {
  const n = values.length;
  const out = new Float32Array(blockCount(n, blocksize));
  for (let i = 0; i < n; i++) {
    const b = Math.floor(i / blocksize);
    const a = Math.abs(f(values[i]));
    if (a > out[b] || Number.isNaN(a)) out[b] = a;
  }
  return out;
}

export interface Quantize4Options {
  type: Quant4Type;
  /** Default 64. */
  blocksize?: number;
  /** Double quantization of the absmax values (bitsandbytes compress_statistics). */
  doubleQuant?: boolean;
}

/** Quantizes `values` (row-major, of `shape`) to bitsandbytes' 4-bit layout. */
export function quantize4bit(values: ArrayLike<number>, shape: readonly number[], options: Quantize4Options): Quantized4 {
  const blocksize = options.blocksize ?? 64;
  checkBlocksize4(blocksize);
  const n = values.length;
  const want = shape.reduce((a, d) => a * d, 1);
  if (want !== n) throw new InvalidArgumentError(`quantize4bit: ${n} values for a shape [${shape.join(', ')}] of ${want} elements.`);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(values[i])) throw new InvalidArgumentError(`quantize4bit: element ${i} is ${values[i]}; only finite values can be quantized.`);
  }
  const absmax = blockAbsmax(values, blocksize);
  const recip = absmax.map((a) => f(1 / a));
  const code = options.type === 'nf4' ? nf4Code : fp4Code;
  const packed = new Uint8Array((n + 1) >> 1);
  for (let i = 0; i < n; i++) {
    const c = code(f(f(values[i]) * recip[Math.floor(i / blocksize)]));
    packed[i >> 1] |= i & 1 ? c : c << 4;
  }
  // An odd count pads one zero element, which takes the code of 0 in the low nibble.
  if (n % 2 === 1) packed[n >> 1] |= code(0);
  if (!options.doubleQuant) return { type: options.type, blocksize, shape: [...shape], packed, absmax, nested: null };
  return { type: options.type, blocksize, shape: [...shape], packed, absmax: null, nested: doubleQuantize(absmax) };
}

/** Double quantization of 4-bit absmax values: offset = mean, then 8-bit dynamic blockwise in blocks of 256. */
export function doubleQuantize(absmax: Float32Array): NestedAbsmax {
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = f(absmax.length > 0 ? sum / absmax.length : 0);
  const centred = absmax.map((a) => f(a - offset));
  const q = quantizeBlockwise8(centred, NESTED_BLOCKSIZE);
  return { codes: q.codes, absmax: q.absmax, offset };
}

/** The float32 absmax values back from their double-quantized form. */
export function dequantizeNested(nested: NestedAbsmax): Float32Array {
  const d = dequantizeBlockwise8(nested.codes, nested.absmax, NESTED_BLOCKSIZE);
  return d.map((v) => f(v + nested.offset));
}

/** The per-block float32 absmax of a 4-bit tensor (decoding double quantization when present). */
export function absmaxOf(q: Quantized4): Float32Array {
  if (q.absmax) return q.absmax;
  if (!q.nested) throw new InvalidArgumentError('A 4-bit tensor needs absmax values or their double-quantized form.');
  return dequantizeNested(q.nested);
}

/** Decodes a 4-bit tensor to float32 (row-major, q.shape): table[code] · absmax[block]. */
export function dequantize4bit(q: Quantized4): Float32Array {
  const n = q.shape.reduce((a, d) => a * d, 1);
  if (q.packed.length < (n + 1) >> 1) throw new InvalidArgumentError(`dequantize4bit: ${q.packed.length} packed bytes for ${n} values; need ${(n + 1) >> 1}.`);
  const absmax = absmaxOf(q);
  if (absmax.length < blockCount(n, q.blocksize)) throw new InvalidArgumentError(`dequantize4bit: ${absmax.length} absmax values for ${blockCount(n, q.blocksize)} blocks.`);
  const table = table4(q.type);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const byte = q.packed[i >> 1];
    const c = i & 1 ? byte & 15 : byte >> 4;
    out[i] = f(table[c] * absmax[Math.floor(i / q.blocksize)]);
  }
  return out;
}

/** The index of the DYNAMIC_MAP value nearest to x (a value on a midpoint goes to the lower one). */
export function dynamicCode(x: number, map: Float32Array = DYNAMIC_MAP): number {
  if (Number.isNaN(x)) return 0;
  let lo = 0;
  let hi = map.length - 1;
  // The first index whose value is ≥ x, then the nearer of it and its left neighbour.
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (map[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return 0;
  const below = lo - 1;
  if (map[lo] < x) return lo; // x above the last value
  const midpoint = f(f(map[below] + map[lo]) * 0.5);
  return x <= midpoint ? below : lo;
}

/** bitsandbytes quantize_blockwise with the signed dynamic map: per-block absmax and one byte per value. */
export function quantizeBlockwise8(values: ArrayLike<number>, blocksize: number): { codes: Uint8Array; absmax: Float32Array } {
  const absmax = blockAbsmax(values, blocksize);
  const recip = absmax.map((a) => f(1 / a));
  const codes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = f(f(values[i]) * recip[Math.floor(i / blocksize)]);
    codes[i] = dynamicCode(x > 1 ? 1 : x < -1 ? -1 : x);
  }
  return { codes, absmax };
}

/** bitsandbytes dequantize_blockwise with the signed dynamic map. */
export function dequantizeBlockwise8(codes: Uint8Array, absmax: Float32Array, blocksize: number): Float32Array {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = f(DYNAMIC_MAP[codes[i]] * absmax[Math.floor(i / blocksize)]);
  return out;
}
