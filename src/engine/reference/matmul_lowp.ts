// Float64 reference of the matmul_lowp family (shaders/matmul_lowp.wgsl): conversions between f32
// and the 16-bit weight formats bf16 and f16 (IEEE binary16), both rounding to nearest, ties to
// even, and the products through a weight decoded from them. Values are raw 16-bit patterns in
// plain numbers or Uint16Arrays, the layout tensors of dtype 'bf16' and 'f16' hold.

import { matmul } from './matmul.ts';

export type LowpFormat = 'bf16' | 'f16';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0];
}

function fromBits(u: number): number {
  u32[0] = u >>> 0;
  return f32[0];
}

/** q = m / 2^s rounded to nearest, ties to even (m ≥ 0 integer below 2^32, 1 ≤ s ≤ 31). */
function shiftRne(m: number, s: number): number {
  const q = Math.floor(m / 2 ** s);
  const r = m - q * 2 ** s;
  const half = 2 ** (s - 1);
  return r > half || (r === half && q % 2 === 1) ? q + 1 : q;
}

/** bf16 bits of x (first rounded to f32): the upper half of the f32, rounded to nearest even. NaN stays a quiet NaN. */
export function f32ToBf16(x: number): number {
  const u = bitsOf(x);
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The value of bf16 bits h (exact). */
export function bf16ToF32(h: number): number {
  return fromBits((h & 0xffff) << 16);
}

/** f16 bits of x (first rounded to f32), rounded to nearest even; overflow gives ±Inf, tiny values subnormals or ±0. */
export function f32ToF16(x: number): number {
  const u = bitsOf(x);
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // f16 biased exponent
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal f16 (or zero): with M = mant | 2^23 the value in units of 2^-24 is M / 2^(14 − e).
    if (e < -10) return sign;
    return sign | shiftRne(mant | 0x800000, 14 - e);
  }
  // Normal: drop 13 mantissa bits; a carry out of the mantissa moves into the exponent (up to Inf).
  return sign | ((e << 10) + shiftRne(mant, 13));
}

/** The value of f16 bits h (exact). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes values into `format` bits. */
export function encode(xs: ArrayLike<number>, format: LowpFormat): Uint16Array {
  const out = new Uint16Array(xs.length);
  const f = format === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < xs.length; i++) out[i] = f(xs[i]);
  return out;
}

/** Decodes `format` bits into their values. */
export function decode(bits: ArrayLike<number>, format: LowpFormat): Float64Array {
  const out = new Float64Array(bits.length);
  const f = format === 'bf16' ? bf16ToF32 : f16ToF32;
  for (let i = 0; i < bits.length; i++) out[i] = f(bits[i]);
  return out;
}

/** y = alpha · x · Wᵀ with x (M, K) and W (N, K) given as `format` bits; y is (M, N). */
export function matmulLowp(x: ArrayLike<number>, wBits: ArrayLike<number>, format: LowpFormat, M: number, N: number, K: number, alpha = 1): Float64Array {
  return matmul(x, decode(wBits, format), { M, N, K, transB: true, alpha });
}

/** dX = alpha · dY · W with dY (M, N) and W (N, K) given as `format` bits; dX is (M, K). */
export function matmulLowpBackward(dy: ArrayLike<number>, wBits: ArrayLike<number>, format: LowpFormat, M: number, N: number, K: number, alpha = 1): Float64Array {
  return matmul(dy, decode(wBits, format), { M, N: K, K: N, alpha });
}
