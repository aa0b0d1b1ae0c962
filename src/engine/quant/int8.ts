// CPU encode and decode of symmetric per-row INT8 (bitsandbytes' LLM.int8 weight layout without
// outlier decomposition): SCB[r] = max |W[r, :]| (float32), q = round(W · (127 / SCB[r])) with ties
// to even, stored as int8; W ≈ q · SCB[r] / 127. A row of zeros has SCB 0 and codes 0.

import { InvalidArgumentError } from '../errors.ts';

const f = Math.fround;

/** bitsandbytes' float32 constant for 1/127 in int8_vectorwise_dequant. */
const INV127 = f(7.874015718698502e-3);

export interface QuantizedInt8 {
  shape: [number, number];
  codes: Int8Array; // (rows·cols)
  /** Row absmax (bitsandbytes' SCB). */
  scb: Float32Array; // (rows)
}

/** Round half to even (torch.round). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function quantizeInt8(values: ArrayLike<number>, shape: readonly number[]): QuantizedInt8 {
  if (shape.length !== 2) throw new InvalidArgumentError(`INT8 quantization works on matrices; got shape [${shape.join(', ')}].`);
  const [rows, cols] = shape;
  if (values.length !== rows * cols) throw new InvalidArgumentError(`quantizeInt8: ${values.length} values for a [${rows}, ${cols}] matrix.`);
  const scb = new Float32Array(rows);
  const codes = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) {
      const v = values[r * cols + c];
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`quantizeInt8: element (${r}, ${c}) is ${v}; only finite values can be quantized.`);
      m = Math.max(m, Math.abs(f(v)));
    }
    scb[r] = m;
    if (m === 0) continue;
    const s = f(127 / m);
    for (let c = 0; c < cols; c++) codes[r * cols + c] = roundHalfEven(f(f(values[r * cols + c]) * s));
  }
  return { shape: [rows, cols], codes, scb };
}

export function dequantizeInt8(q: QuantizedInt8): Float32Array {
  const [rows, cols] = q.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = f(f(q.codes[r * cols + c] * q.scb[r]) * INV127);
  }
  return out;
}
