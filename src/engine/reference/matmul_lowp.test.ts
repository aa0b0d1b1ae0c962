import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { bf16ToF32, decode, encode, f16ToF32, f32ToBf16, f32ToF16, matmulLowp, matmulLowpBackward } from './matmul_lowp.ts';

describe('reference bf16 conversion', () => {
  it('encodes known values, rounding to nearest even', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(-2)).toBe(0xc000);
    expect(f32ToBf16(0)).toBe(0x0000);
    expect(f32ToBf16(-0)).toBe(0x8000);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even (down)
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(f32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // above the tie
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80); // the largest f32 rounds to Inf
    expect(f32ToBf16(-Infinity)).toBe(0xff80);
    expect(f32ToBf16(NaN)).toBe(0x7fc0);
    expect(bf16ToF32(0x3f81)).toBe(1 + 2 ** -7);
    expect(bf16ToF32(0x0001)).toBe(2 ** -133);
  });

  it('round-trips every non-NaN pattern and picks the nearest representable value', () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const x = bf16ToF32(h);
      if (!Number.isNaN(x) && f32ToBf16(x) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
    const rng = new Rng(1);
    for (let i = 0; i < 5000; i++) {
      const x = Math.fround(rng.normal() * 2 ** rng.int(60) * 2 ** -30);
      const h = f32ToBf16(x);
      const err = Math.abs(bf16ToF32(h) - x);
      // Neighbours in magnitude (h ± 1 within the same sign; x is finite and nonzero) are never closer.
      expect(err).toBeLessThanOrEqual(Math.abs(bf16ToF32(h + 1) - x));
      if ((h & 0x7fff) > 0) expect(err).toBeLessThanOrEqual(Math.abs(bf16ToF32(h - 1) - x));
    }
  });
});

describe('reference f16 conversion', () => {
  it('encodes known values, rounding to nearest even', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(65504)).toBe(0x7bff); // the largest f16
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // tie between 65504 and 65536 → even → Inf
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(f32ToF16(NaN)).toBe(0x7e00);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even (down)
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(f32ToF16(2 ** -14)).toBe(0x0400); // the smallest normal
    expect(f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400); // tie between 0x3ff and 0x400 → even
    expect(f32ToF16(2 ** -24)).toBe(0x0001); // the smallest subnormal
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie → even → 0
    expect(f32ToF16(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16(-(2 ** -26))).toBe(0x8000);
    expect(f16ToF32(0x3555)).toBe(0.333251953125);
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
  });

  it('round-trips every non-NaN pattern and picks the nearest representable value', () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const x = f16ToF32(h);
      if (!Number.isNaN(x) && f32ToF16(x) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
    const rng = new Rng(2);
    for (let i = 0; i < 5000; i++) {
      const x = Math.fround(rng.normal() * 2 ** (rng.int(40) - 28));
      const h = f32ToF16(x);
      const err = Math.abs(f16ToF32(h) - x);
      // Neighbours in magnitude (h ± 1 within the same sign) are never closer.
      if ((h & 0x7fff) < 0x7bff) expect(err).toBeLessThanOrEqual(Math.abs(f16ToF32(h + 1) - x));
      if ((h & 0x7fff) > 0) expect(err).toBeLessThanOrEqual(Math.abs(f16ToF32(h - 1) - x));
    }
  });
});

describe('reference products through a low-precision weight', () => {
  it('decodes to the weights within the format precision', () => {
    const w = new Rng(4).fill(500, (r) => r.normal());
    // bf16 keeps 8 significant bits (relative error ≤ 2^-9), f16 11 (≤ 2^-12) in the normal range.
    expect(relL2(decode(encode(w, 'bf16'), 'bf16'), w)).toBeLessThan(2 ** -9);
    expect(relL2(decode(encode(w, 'f16'), 'f16'), w)).toBeLessThan(2 ** -12);
    expect(relL2(decode(encode(w, 'f16'), 'f16'), w)).toBeGreaterThan(0);
  });

  it('computes a known product and its input gradient', () => {
    // W = [[0.5, 0.25], [1, -1]] is exact in both formats; x = [1, 2].
    for (const format of ['bf16', 'f16'] as const) {
      const w = encode([0.5, 0.25, 1, -1], format);
      expect([...matmulLowp([1, 2], w, format, 1, 2, 2)]).toEqual([1, -1]);
      // dX = dY · W with dY = [2, 3]: [2·0.5 + 3·1, 2·0.25 − 3] = [4, −2.5].
      expect([...matmulLowpBackward([2, 3], w, format, 1, 2, 2)]).toEqual([4, -2.5]);
    }
  });

  it('the backward is the adjoint of the forward: <dY, x·Wᵀ> = <dY·W, x>', () => {
    const rng = new Rng(3);
    const [M, N, K] = [4, 5, 7];
    for (const format of ['bf16', 'f16'] as const) {
      const x = rng.fill(M * K, (r) => r.normal());
      const w = encode(rng.fill(N * K, (r) => r.normal()), format);
      const dy = rng.fill(M * N, (r) => r.normal());
      const y = matmulLowp(x, w, format, M, N, K);
      const dx = matmulLowpBackward(dy, w, format, M, N, K);
      let a = 0;
      let b = 0;
      for (let i = 0; i < y.length; i++) a += dy[i] * y[i];
      for (let i = 0; i < dx.length; i++) b += dx[i] * x[i];
      expect(Math.abs(a - b)).toBeLessThan(1e-12 * Math.abs(a) + 1e-12);
    }
  });
});
