import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';
import { Rng } from '../random.ts';
import * as ref from '../reference/matmul_lowp.ts';

const fromBits = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);
const bitsOf = (f: Float32Array) => [...new Uint32Array(f.buffer, f.byteOffset, f.length)];

describe('bf16', () => {
  it('rounds f32 to nearest, ties to even (hand-computed)', () => {
    const x = fromBits([
      0x3f800000, // 1.0 → 0x3f80
      0x3f808000, // 1 + 2^-8: exactly halfway between 0x3f80 and 0x3f81 → even 0x3f80
      0x3f818000, // halfway between 0x3f81 and 0x3f82 → even 0x3f82
      0x3f808001, // just above halfway → 0x3f81
      0x3f807fff, // just below halfway → 0x3f80
      0x40490fdb, // π → 0x4049
      0xc0200000, // -2.5 → 0xc020
      0x7f7fffff, // f32 max rounds past bf16 max → +Inf
      0x7f800000, // +Inf
      0xff800000, // -Inf
      0x80000000, // -0
      0x7fc00000, // NaN
      0x7f800001, // signalling NaN → stays NaN (quiet)
      0x00010000, // subnormal, exact
    ]);
    expect([...f32ToBf16(x)]).toEqual([
      0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x3f80, 0x4049, 0xc020, 0x7f80, 0x7f80, 0xff80, 0x8000, 0x7fc0, 0x7fc0, 0x0001,
    ]);
  });

  it('widens every bf16 exactly and narrows it back unchanged', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const wide = bf16ToF32(all);
    expect(bitsOf(wide)).toEqual([...all].map((i) => (i << 16) >>> 0));
    const isNaN = (i: number) => (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
    expect([...f32ToBf16(wide)]).toEqual([...all].map((i) => (isNaN(i) ? i | 0x40 : i)));
  });

  it('writes into a given output and works on subarrays', () => {
    const src = new Float32Array([0, 1, 2, 3]).subarray(1);
    const dst = new Uint16Array(3);
    expect(f32ToBf16(src, dst)).toBe(dst);
    expect([...bf16ToF32(dst)]).toEqual([1, 2, 3]);
  });
});

describe('f16', () => {
  it('widens hand-checked values exactly', () => {
    const h = new Uint16Array([0x3c00, 0x0001, 0x03ff, 0x0400, 0x7bff, 0xfc00, 0x7c00, 0x8000, 0x3555, 0xc000]);
    const f = f16ToF32(h);
    expect([...f]).toEqual([1, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 65504, -Infinity, Infinity, -0, 0.333251953125, -2]);
    expect(Object.is(f[7], -0)).toBe(true);
    expect(Number.isNaN(f16ToF32(new Uint16Array([0x7e00]))[0])).toBe(true);
  });

  it('round-trips all 65536 f16 values through f32', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const isNaN = (i: number) => (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
    expect([...f32ToF16(f16ToF32(all))]).toEqual([...all].map((i) => (isNaN(i) ? i | 0x200 : i)));
  });

  it('rounds f32 to nearest, ties to even', () => {
    const x = new Float32Array([65519, 65520, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, -1e-9, 1e10]);
    expect([...f32ToF16(x)]).toEqual([0x7bff, 0x7c00, 0x0000, 0x0002, 0x3c00, 0x3c02, 0x3c01, 0x8000, 0x7c00]);
  });
});

describe('agreement with the float64 reference conversions', () => {
  it('decodes every 16-bit pattern and encodes random f32 values exactly as reference/matmul_lowp.ts does', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const bf = bf16ToF32(all);
    const hf = f16ToF32(all);
    for (let h = 0; h < 65536; h++) {
      expect(Object.is(bf[h], Math.fround(ref.bf16ToF32(h))) || (Number.isNaN(bf[h]) && Number.isNaN(ref.bf16ToF32(h)))).toBe(true);
      expect(Object.is(hf[h], ref.f16ToF32(h)) || (Number.isNaN(hf[h]) && Number.isNaN(ref.f16ToF32(h)))).toBe(true);
    }
    const rng = new Rng(17);
    const xs = Float32Array.from({ length: 20000 }, (_, i) => rng.normal() * 2 ** ((i % 60) - 30));
    const b = f32ToBf16(xs);
    const f = f32ToF16(xs);
    for (let i = 0; i < xs.length; i++) {
      expect(b[i]).toBe(ref.f32ToBf16(xs[i]));
      expect(f[i]).toBe(ref.f32ToF16(xs[i]));
    }
  });
});
