// CPU encode and decode of group-wise INT4 (the layout GPTQ/AWQ-style integer 4-bit weights use,
// without reordering): each row of a (rows, cols) matrix is cut into groups of `groupSize` columns
// (the last group of a row may be shorter). Symmetric: scale = absmax / 7, q = clamp(round(x /
// scale), −8, 7), stored as q + 8. Asymmetric: scale = (max − min) / 15, zero = clamp(round(−min /
// scale), 0, 15), q = clamp(round(x / scale) + zero, 0, 15). Either way x ≈ (q − zero) · scale with
// zero = 8 when symmetric. Rounding is half to even; arithmetic is float32. Codes are packed two
// per byte over the row-major element order, the even element in the high nibble (as NF4).

import { InvalidArgumentError } from '../errors.ts';
import { roundHalfEven } from './int8.ts';

const f = Math.fround;

export const INT4_GROUP_SIZES: readonly number[] = [32, 64, 128];

export interface QuantizedInt4 {
  shape: [number, number];
  groupSize: number;
  symmetric: boolean;
  packed: Uint8Array; // ((rows·cols + 1) / 2)
  scales: Float32Array; // (rows · groupsPerRow)
  /** Zero points (asymmetric only). */
  zeros: Uint8Array | null; // (rows · groupsPerRow)
}

export function groupsPerRow(cols: number, groupSize: number): number {
  return Math.ceil(cols / groupSize);
}

export function quantizeInt4(values: ArrayLike<number>, shape: readonly number[], options: { groupSize?: number; symmetric?: boolean } = {}): QuantizedInt4 {
  const groupSize = options.groupSize ?? 64;
  const symmetric = options.symmetric ?? true;
  if (!INT4_GROUP_SIZES.includes(groupSize)) throw new InvalidArgumentError(`INT4 group size must be 32, 64 or 128; got ${groupSize}.`);
  if (shape.length !== 2) throw new InvalidArgumentError(`INT4 quantization works on matrices; got shape [${shape.join(', ')}].`);
  const [rows, cols] = shape;
  if (values.length !== rows * cols) throw new InvalidArgumentError(`quantizeInt4: ${values.length} values for a [${rows}, ${cols}] matrix.`);
  const G = groupsPerRow(cols, groupSize);
  const scales = new Float32Array(rows * G);
  const zeros = symmetric ? null : new Uint8Array(rows * G);
  const packed = new Uint8Array((rows * cols + 1) >> 1);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      const c0 = g * groupSize;
      const c1 = Math.min(cols, c0 + groupSize);
      let lo = 0;
      let hi = 0;
      for (let c = c0; c < c1; c++) {
        const v = f(values[r * cols + c]);
        if (!Number.isFinite(v)) throw new InvalidArgumentError(`quantizeInt4: element (${r}, ${c}) is ${v}; only finite values can be quantized.`);
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      let scale: number;
      let zero: number;
      if (symmetric) {
        scale = f(Math.max(-lo, hi) / 7);
        zero = 8;
      } else {
        scale = f(f(hi - lo) / 15);
        zero = scale === 0 ? 0 : Math.min(15, Math.max(0, roundHalfEven(f(-lo / scale))));
      }
      scales[r * G + g] = scale;
      if (zeros) zeros[r * G + g] = zero;
      for (let c = c0; c < c1; c++) {
        const e = r * cols + c;
        const q = scale === 0 ? zero : Math.min(15, Math.max(0, roundHalfEven(f(f(values[e]) / scale)) + zero));
        packed[e >> 1] |= e & 1 ? q : q << 4;
      }
    }
  }
  return { shape: [rows, cols], groupSize, symmetric, packed, scales, zeros };
}

export function dequantizeInt4(q: QuantizedInt4): Float32Array {
  const [rows, cols] = q.shape;
  const G = groupsPerRow(cols, q.groupSize);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const e = r * cols + c;
      const byte = q.packed[e >> 1];
      const code = e & 1 ? byte & 15 : byte >> 4;
      const g = r * G + Math.floor(c / q.groupSize);
      const zero = q.zeros ? q.zeros[g] : 8;
      out[e] = f((code - zero) * q.scales[g]);
    }
  }
  return out;
}
