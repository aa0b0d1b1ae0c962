import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/device.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import * as ref from '../reference/quant_act.ts';
import { fill } from './elementwise.ts';
import { fakeQuantInt8, rowScales } from './quant_act.ts';

describe('INT8 activation fake quantization vs float64 reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  for (const [rows, cols] of [
    [37, 93],
    [3, 700],
    [1, 1],
  ]) {
    it(`${rows}×${cols}: row scales, dynamic and static`, async () => {
      const xs = new Rng(rows + cols).fill(rows * cols, (r) => 3 * r.normal());
      if (rows > 2) xs.fill(0, cols, 2 * cols); // a row of zeros
      const x = tensorFromArray(gpu, xs, [rows, cols]);
      const s = createTensor(gpu, [rows]);
      const y = createTensor(gpu, [rows, cols]);
      const y2 = createTensor(gpu, [rows, cols]);
      run(gpu, (b) => {
        fill(b, s, NaN);
        fill(b, y, NaN);
        fill(b, y2, NaN);
        rowScales(b, x, s);
        fakeQuantInt8(b, x, y, s);
        fakeQuantInt8(b, x, y2, s, 0.05);
      });
      expect(relL2(await readTensor(s), ref.rowScales(xs, rows, cols))).toBeLessThan(1e-7);
      const got = await readTensor(y);
      const want = ref.fakeQuantInt8(xs, rows, cols);
      expect(relL2(got, want)).toBeLessThan(1e-6);
      // Every value sits on its row's grid.
      const scales = ref.rowScales(xs, rows, cols);
      for (let i = 0; i < got.length; i++) {
        const st = scales[Math.floor(i / cols)];
        if (st > 0) expect(Math.abs(got[i] / st - Math.round(got[i] / st))).toBeLessThan(1e-3);
      }
      expect(relL2(await readTensor(y2), ref.fakeQuantInt8(xs, rows, cols, 0.05))).toBeLessThan(1e-6);
      for (const t of [x, s, y, y2]) t.release();
    });
  }
});
