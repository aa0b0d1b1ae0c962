// The code tables of the weight formats, shared by quant.wgsl (decoding inside the products) and
// fake_quant.wgsl (encoding and decoding in place): kernels/shaders.ts puts this file before each of
// them. Values as bitsandbytes defines them (src/engine/quant/tables.ts holds the same on the CPU).
//   NF4: the 16 NormalFloat values by code, ascending; an encoder picks code c + 1 over c when the
//     scaled value is above the float32 midpoint (NF4[c] + NF4[c + 1]) · 0.5 (bitsandbytes'
//     decision thresholds are exactly these midpoints in float32).
//   FP4: 1 sign, 2 exponent, 1 mantissa bit: magnitudes [0, 0.0625, 8, 12, 4, 6, 2, 3] / 12 in
//     float32, then the negatives; FP4_THRESHOLDS are bitsandbytes' magnitude decision points and
//     FP4_MAGNITUDE_CODES the 3-bit code of each interval (|x| ≤ FP4_THRESHOLDS[0]: code 0).
//   INV127: bitsandbytes' float32 constant for 1/127 (INT8 rows: value = q · absmax · INV127).

var<private> NF4: array<f32, 16> = array<f32, 16>(
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0);
var<private> FP4: array<f32, 16> = array<f32, 16>(
  0.0, 0.005208333333333333, 0.6666666666666666, 1.0, 0.3333333333333333, 0.5, 0.16666666666666666, 0.25,
  -0.0, -0.005208333333333333, -0.6666666666666666, -1.0, -0.3333333333333333, -0.5, -0.16666666666666666, -0.25);
var<private> FP4_THRESHOLDS: array<f32, 7> = array<f32, 7>(0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333);
var<private> FP4_MAGNITUDE_CODES: array<u32, 8> = array<u32, 8>(0u, 1u, 6u, 7u, 4u, 5u, 2u, 3u);
const INV127: f32 = 7.874015718698502e-3;
