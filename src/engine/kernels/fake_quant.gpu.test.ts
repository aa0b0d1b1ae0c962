import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { type QuantOptions, dequantizeMatrix, quantizeMatrix } from '../quant/format.ts';
import { Rng } from '../random.ts';
import { fill } from './elementwise.ts';
import { fakeQuantize } from './fake_quant.ts';

/** Indices where two f32 arrays differ bit for bit (-0 and 0 differ). */
function bitDiffs(a: Float32Array, b: Float32Array): number[] {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const out: number[] = [];
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) out.push(i);
  return out;
}

describe('fake quantization on the GPU = the CPU codec decode(encode(W)), bit for bit', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  const cases: [string, QuantOptions][] = [
    ['nf4 block 64', { format: 'nf4', block: 64 }],
    ['nf4 block 32', { format: 'nf4', block: 32 }],
    ['fp4 block 128', { format: 'fp4', block: 128 }],
    ['int8 rows', { format: 'int8' }],
    ['int4 g32 symmetric', { format: 'int4', block: 32 }],
    ['int4 g64 asymmetric', { format: 'int4', block: 64, symmetric: false }],
  ];
  // Odd sizes: element counts and rows that are not multiples of the block or group.
  const shapes: [number, number][] = [
    [37, 93],
    [5, 301],
    [1, 7],
  ];
  for (const [label, options] of cases) {
    it(`${label} on ${shapes.map((s) => s.join('×')).join(', ')}, a zero block and values on the grid included`, async () => {
      for (const [rows, cols] of shapes) {
        const rng = new Rng(rows * 1000 + cols);
        const values = rng.fill(rows * cols, (r) => 0.05 * r.normal() * (r.uniform(0, 1) < 0.05 ? 8 : 1));
        if (rows > 2) values.fill(0, cols, cols + Math.min(cols, 64)); // a run of zeros (an all-zero block or row)
        // Values a decoder produces, so codes sit exactly on grid points and thresholds get tested.
        if (rows > 4) {
          const decoded = dequantizeMatrix(quantizeMatrix(values, [rows, cols], options));
          values.set(decoded.subarray(3 * cols, 4 * cols), 3 * cols);
        }
        const want = dequantizeMatrix(quantizeMatrix(values, [rows, cols], options));
        const w = tensorFromArray(gpu, values, [rows, cols]);
        const out = createTensor(gpu, [rows, cols]);
        run(gpu, (b) => {
          fill(b, out, NaN);
          fakeQuantize(b, w, out, options);
        });
        const got = await readTensor(out as typeof out & { dtype: 'f32' });
        const diffs = bitDiffs(got, want);
        expect(diffs.slice(0, 5).map((i) => `${i}: ${Object.is(got[i], -0) ? "-0" : got[i]} vs ${Object.is(want[i], -0) ? "-0" : want[i]} (x ${Object.is(values[i], -0) ? "-0" : values[i]})`), `${rows}×${cols}`).toEqual([]);
        w.release();
        out.release();
      }
    });
  }

  it('refuses double quantization, a split or mismatched output, and the weight as its own output', () => {
    const w = createTensor(gpu, [4, 64]);
    const bad = createTensor(gpu, [4, 32]);
    run(gpu, (b) => {
      expect(() => fakeQuantize(b, w, w, { format: 'nf4' })).toThrow(/another tensor/);
      expect(() => fakeQuantize(b, w, bad, { format: 'nf4' })).toThrow(/shape \[4, 64\]/);
      expect(() => fakeQuantize(b, w, bad, { format: 'nf4', doubleQuant: true })).toThrow(/double quantization/);
    });
    w.release();
    bad.release();
  });
});
