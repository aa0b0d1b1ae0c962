// The code tables of the bitsandbytes formats, as float32 values: the 4-bit NormalFloat (NF4) and
// FP4 tables in code order, the decision thresholds bitsandbytes' quantizers compare against, and
// the signed 8-bit "dynamic" map that double quantization uses for the absmax values. Tables only:
// encoding and decoding live in blockwise.ts.

const f = Math.fround;

/** NF4 values by 4-bit code (bitsandbytes get_4bit_type('nf4'); ascending). */
export const NF4_TABLE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * NF4 decision thresholds, float32: code c + 1 is chosen over code c when x > NF4_THRESHOLDS[c]
 * (midpoints of neighbouring table values, as bitsandbytes' dQuantizeNF4 decision tree holds them).
 */
export const NF4_THRESHOLDS: Float32Array = Float32Array.from([
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984, -0.13791173323988914, -0.045525018125772476,
  0.03979014977812767, 0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482,
  0.8614784181118011,
]);

/**
 * FP4 values by code: 1 sign bit, 2 exponent bits, 1 mantissa bit, the magnitudes
 * [0, 0.0625, 8, 12, 4, 6, 2, 3] divided by 12 in float32 (bitsandbytes get_4bit_type('fp4')).
 */
export const FP4_TABLE: Float32Array = Float32Array.from([0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3], (v) => f(v / 12));

/**
 * FP4 magnitude thresholds (float32, as bitsandbytes' dQuantizeFP4 writes them) with the 3-bit
 * magnitude code each interval maps to: |x| above THRESHOLD[i] and not above the next one gets
 * FP4_MAGNITUDE_CODES[i + 1]; |x| ≤ THRESHOLD[0] gets code 0.
 */
export const FP4_THRESHOLDS: Float32Array = Float32Array.from([0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333]);
export const FP4_MAGNITUDE_CODES: readonly number[] = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

/**
 * bitsandbytes' create_dynamic_map(signed=true, max_exponent_bits=7, total_bits=8): for each
 * exponent i = 0..6, the midpoints of linspace(0.1, 1, 2^i + 1) (float32, computed the way
 * torch.linspace does) scaled by 10^(i − 6), with both signs, plus 0 and 1, sorted: 256 values.
 * Double-quantized checkpoints store the map they were made with (nested_quant_map); loading uses
 * the stored one.
 */
export function dynamicMap(): Float32Array {
  const data: number[] = [];
  for (let i = 0; i < 7; i++) {
    const bounds = linspaceF32(0.1, 1, 2 ** i + 1);
    const scale = f(10 ** (i - 6));
    for (let j = 0; j + 1 < bounds.length; j++) {
      const mean = f(f(bounds[j] + bounds[j + 1]) / 2);
      data.push(f(scale * mean), f(-scale * mean));
    }
  }
  data.push(0, 1);
  data.sort((a, b) => a - b);
  return Float32Array.from(data);
}

/**
 * torch.linspace(start, end, steps) in float32 as torch's CPU kernel computes it (torch 1.13 with
 * 8-wide float vectors): elements go in runs of 16 as two vectors of 8, each vector starting from a
 * base — start + step·i (one rounding: the compiler fuses it) below the halfway index, end −
 * step·(steps − 1 − i) from there — and counting up by step (rounded twice); the elements after the
 * last run of 16 are computed one by one from the same base formula. The last bit of some values
 * depends on this order, and bitsandbytes builds its dynamic map from them.
 */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f(start);
  const e = f(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const at = (i: number) => (i < half ? f(s + step * i) : f(e - f(step * (steps - i - 1))));
  const V = 8;
  let i = 0;
  for (; i + 2 * V <= steps; i += 2 * V) {
    for (const b of [i, i + V]) {
      const base = at(b);
      for (let j = 0; j < V; j++) out[b + j] = f(base + f(j * step));
    }
  }
  for (; i < steps; i++) out[i] = at(i);
  return out;
}

/** The signed 8-bit dynamic map (computed once). */
export const DYNAMIC_MAP: Float32Array = dynamicMap();
