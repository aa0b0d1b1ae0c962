import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { absmaxOf, dequantize4bit, dequantizeNested, fp4Code, nf4Code, quantize4bit } from './blockwise.ts';
import { dequantizeInt4, quantizeInt4 } from './int4.ts';
import { dequantizeInt8, quantizeInt8 } from './int8.ts';
import { DYNAMIC_MAP, FP4_TABLE, NF4_TABLE } from './tables.ts';
import { lcgValues } from './testing.ts';

// Fixtures written by scripts/bnb_reference.py (an independent numpy/torch implementation of
// bitsandbytes' algorithm): every byte, absmax and scale must match exactly.
const fixture = JSON.parse(readFileSync(new URL('../../../fixtures/quant/codecs.json', import.meta.url), 'utf8')) as {
  dynamic_map: string;
  nf4: string;
  fp4: string;
  cases: Record<string, unknown>[];
};

function bytes(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64, 'base64'));
}
function f32s(b64: string): Float32Array {
  const b = bytes(b64);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}
function sha(a: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}
function input(c: Record<string, unknown>): Float32Array {
  const shape = c.shape as number[];
  return lcgValues(c.seed as number, shape[0] * shape[1], (c.zero_block as [number, number] | null) ?? null);
}

describe('bitsandbytes tables', () => {
  it('NF4, FP4 and the dynamic map equal the reference bit for bit', () => {
    expect([...NF4_TABLE]).toEqual([...f32s(fixture.nf4)]);
    expect([...FP4_TABLE]).toEqual([...f32s(fixture.fp4)]);
    expect([...DYNAMIC_MAP]).toEqual([...f32s(fixture.dynamic_map)]);
  });

  it('the decision thresholds pick a nearest code', () => {
    for (let i = 0; i <= 2000; i++) {
      const x = -1 + i / 1000;
      for (const [table, code] of [
        [NF4_TABLE, nf4Code],
        [FP4_TABLE, fp4Code],
      ] as const) {
        const best = Math.min(...[...table].map((v) => Math.abs(v - x)));
        expect(Math.abs(Math.abs(table[code(x)] - x) - best)).toBeLessThan(1e-6);
      }
    }
  });
});

describe('codecs match scripts/bnb_reference.py exactly', () => {
  for (const c of fixture.cases) {
    it(`${c.name as string}`, () => {
      const shape = c.shape as number[];
      const x = input(c);
      if (c.kind === '4bit') {
        const q = quantize4bit(x, shape, { type: c.quant_type as 'nf4' | 'fp4', blocksize: c.blocksize as number, doubleQuant: c.double_quant as boolean });
        expect(Buffer.from(q.packed).equals(Buffer.from(bytes(c.packed as string)))).toBe(true);
        expect(q.packed.length).toBe(Math.floor((x.length + 1) / 2));
        if (c.double_quant) {
          expect(q.absmax).toBeNull();
          expect(Buffer.from(q.nested!.codes).equals(Buffer.from(bytes(c.nested_codes as string)))).toBe(true);
          expect([...q.nested!.absmax]).toEqual([...f32s(c.nested_absmax as string)]);
          expect(q.nested!.offset).toBe(c.offset);
          expect(dequantizeNested(q.nested!).length).toBe(Math.ceil(x.length / (c.blocksize as number)));
        } else {
          expect([...q.absmax!]).toEqual([...f32s(c.absmax as string)]);
        }
        expect(sha(dequantize4bit(q))).toBe(c.dequant_sha256);
      } else if (c.kind === 'int8') {
        const q = quantizeInt8(x, shape);
        expect(Buffer.from(q.codes.buffer).equals(Buffer.from(bytes(c.codes as string)))).toBe(true);
        expect([...q.scb]).toEqual([...f32s(c.scb as string)]);
        expect(sha(dequantizeInt8(q))).toBe(c.dequant_sha256);
      } else {
        const q = quantizeInt4(x, shape, { groupSize: c.group_size as number, symmetric: c.symmetric as boolean });
        expect(Buffer.from(q.packed).equals(Buffer.from(bytes(c.packed as string)))).toBe(true);
        expect([...q.scales]).toEqual([...f32s(c.scales as string)]);
        if (!c.symmetric) expect(Buffer.from(q.zeros!).equals(Buffer.from(bytes(c.zeros as string)))).toBe(true);
        expect(sha(dequantizeInt4(q))).toBe(c.dequant_sha256);
      }
    });
  }
});

describe('codec properties', () => {
  it('4-bit round trip error is bounded by half the widest code gap times absmax', () => {
    const x = lcgValues(42, 31 * 17);
    for (const type of ['nf4', 'fp4'] as const) {
      const q = quantize4bit(x, [31, 17], { type, blocksize: 64 });
      const d = dequantize4bit(q);
      const absmax = absmaxOf(q);
      const gap = type === 'nf4' ? 0.31 : 1 / 3; // widest NF4 gap is 1 − 0.7230; FP4 is 1 − 0.6667
      for (let i = 0; i < x.length; i++) expect(Math.abs(d[i] - x[i])).toBeLessThanOrEqual((gap / 2) * absmax[Math.floor(i / 64)] + 1e-7);
    }
  });

  it('double quantization keeps absmax close', () => {
    const x = lcgValues(7, 64 * 600);
    const plain = quantize4bit(x, [600, 64], { type: 'nf4', blocksize: 64 });
    const dq = quantize4bit(x, [600, 64], { type: 'nf4', blocksize: 64, doubleQuant: true });
    expect(Buffer.from(dq.packed).equals(Buffer.from(plain.packed))).toBe(true);
    const a = plain.absmax!;
    const b = absmaxOf(dq);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(0.02 * a[i] + 1e-6);
  });

  it('rejects bad block sizes, shapes and non-finite values with typed errors', () => {
    expect(() => quantize4bit(new Float32Array(8), [8], { type: 'nf4', blocksize: 48 })).toThrowError(/power of two from 32 to 4096/);
    expect(() => quantize4bit(new Float32Array(8), [8], { type: 'nf4', blocksize: 16 })).toThrowError(/power of two/);
    expect(() => quantize4bit(new Float32Array(8), [3, 3], { type: 'nf4' })).toThrowError(/8 values for a shape \[3, 3\]/);
    expect(() => quantize4bit(Float32Array.of(1, NaN), [2], { type: 'fp4' })).toThrowError(/element 1 is NaN/);
    expect(() => quantizeInt4(new Float32Array(8), [2, 4], { groupSize: 16 })).toThrowError(/32, 64 or 128/);
    expect(() => quantizeInt8(new Float32Array(8), [8])).toThrowError(/matrices/);
  });
});
