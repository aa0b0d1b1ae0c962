// Float64 reference of the quant family (shaders/quant.wgsl): products through a quantized weight,
// computed as float64 matrix products on the weight decoded by the CPU codecs (src/engine/quant).
// Decoding itself is exact float32 arithmetic and is checked against bitsandbytes' algorithm
// (quant/codecs.test.ts); this file only composes it with the float64 matmul.

import { type QuantizedMatrix, dequantizeMatrix } from '../quant/format.ts';
import { matmul } from './matmul.ts';

/** The decoded weight, as float64. */
export function dequantize(w: QuantizedMatrix): Float64Array {
  return Float64Array.from(dequantizeMatrix(w));
}

/** y = alpha · x · Wᵀ with x (M, K) and W (N, K) quantized; y is (M, N). */
export function matmulQuant(x: ArrayLike<number>, w: QuantizedMatrix, M: number, alpha = 1): Float64Array {
  const [N, K] = w.shape;
  return matmul(x, dequantize(w), { M, N, K, transB: true, alpha });
}

/** dX = alpha · dY · W with dY (M, N) and W (N, K) quantized; dX is (M, K). */
export function matmulQuantBackward(dy: ArrayLike<number>, w: QuantizedMatrix, M: number, alpha = 1): Float64Array {
  const [N, K] = w.shape;
  return matmul(dy, dequantize(w), { M, N: K, K: N, alpha });
}
