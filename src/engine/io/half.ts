// Conversions between 16-bit floats (IEEE f16 and bfloat16, held as raw Uint16 bits) and f32 on
// typed arrays, on the CPU. Widening is exact; narrowing rounds to nearest, ties to even, as PyTorch
// does. GPU-side conversions live in the kernels, not here.

let f16Table: Float32Array | null = null;

/** All 65536 f16 values as f32, built once on first use (256 KiB). */
function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const bits = new Uint32Array(65536);
  const vals = new Float32Array(bits.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) bits[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    else if (exp !== 0) bits[h] = (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
    else vals[h] = (sign ? -1 : 1) * mant * 2 ** -24; // zero or subnormal: exact in f32
  }
  f16Table = vals;
  return vals;
}

/** f16 bits → f32, exact (subnormals, infinities and NaN payloads included). */
export function f16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const table = f16ToF32Table();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]];
  return dst;
}

/** bf16 bits → f32, exact: the bits become the upper half of the f32. */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return dst;
}

/** f32 → bf16 bits, rounding to nearest with ties to even; NaN stays NaN (quiet), ±Inf stays ±Inf. */
export function f32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) dst[i] = (x >>> 16) | 0x0040;
    else dst[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return dst;
}

/**
 * f32 → f16 bits, rounding to nearest with ties to even: values from 65520 up become Inf, values
 * below the smallest subnormal's half become signed zero, NaN stays NaN (quiet).
 */
export function f32ToF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    if (abs > 0x7f800000) {
      dst[i] = sign | 0x7e00 | ((abs >>> 13) & 0x3ff);
    } else if (abs >= 0x477ff000) {
      dst[i] = sign | 0x7c00; // ≥ 65520 (or Inf)
    } else if (abs < 0x38800000) {
      // Below the smallest normal f16 (2^-14): a subnormal step count, 2^-24 per step.
      const v = Math.abs(src[i]) * 2 ** 24;
      const fl = Math.floor(v);
      const frac = v - fl;
      const r = frac > 0.5 || (frac === 0.5 && (fl & 1) === 1) ? fl + 1 : fl;
      dst[i] = sign | r;
    } else {
      let h = (abs - 0x38000000) >>> 13; // rebias the exponent from 127 to 15
      const rem = abs & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
      dst[i] = sign | h;
    }
  }
  return dst;
}
