// Float64 reference of the quant_act family (shaders/quant_act.wgsl): INT8 fake quantization of
// activations. Step s per row (max |row| / 127, rounded to f32 as the kernel computes it) or one
// static step; y = clamp(round_half_even(x / s), −127, 127) · s; a step of 0 gives 0.

import { roundHalfEven } from '../quant/int8.ts';

const f = Math.fround;

export function rowScales(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(x[r * cols + c]));
    out[r] = f(f(m) / 127);
  }
  return out;
}

export function fakeQuantInt8(x: ArrayLike<number>, rows: number, cols: number, staticScale?: number): Float64Array {
  const scales = staticScale === undefined ? rowScales(x, rows, cols) : null;
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const s = scales ? scales[r] : f(staticScale as number);
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      y[i] = s === 0 ? 0 : Math.min(127, Math.max(-127, roundHalfEven(f(f(x[i]) / s)))) * s;
    }
  }
  return y;
}
