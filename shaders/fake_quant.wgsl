// Fake quantization of a weight: Wq = decode(encode(W)) in f32, the value the weight takes once it is
// stored in one of the formats of src/engine/quant (quantization-aware training multiplies by it).
// W and Wq are (R, C) row-major f32. The tensor is cut into groups of consecutive elements, each
// encoded with its own scale, exactly as the CPU codecs do (FORMAT):
//   0 NF4, 1 FP4 (bitsandbytes, no double quantization): blocks of BLOCK elements of the flattened
//     tensor (the last may be shorter); absmax = max |x|; each x is multiplied by the float32
//     reciprocal of absmax and mapped to a code by the decision thresholds (NF4: code c + 1 over c
//     when above the float32 midpoint of NF4[c] and NF4[c + 1]; FP4: the sign, then the magnitude
//     thresholds; a value on a threshold takes the lower code); an all-zero block gets code 0;
//     value = TABLE[code] · absmax.
//   2 INT8 (per row): s = 127 / absmax (float32), q = round(x · s) (half to even), value =
//     q · absmax · INV127; a zero row stays zero.
//   3 INT4 (groups of BLOCK columns in each row): symmetric (ZEROS = 0): scale = absmax / 7, zero 8;
//     asymmetric (ZEROS = 1): lo = min(0, min x), hi = max(0, max x), scale = (hi − lo) / 15,
//     zero = clamp(round(−lo / scale), 0, 15); q = clamp(round(x / scale) + zero, 0, 15); value =
//     (q − zero) · scale; a zero scale gives zeros.
// The CPU codecs round every division correctly (float32); WGSL only promises 2.5 ulp for `/`, so
// the divisions that decide codes use div_rn, an exact integer long division. Products and sums are
// correctly rounded in WGSL, so the results are bit-identical to the CPU codecs' decode(encode(W))
// for finite weights (values whose reciprocal or quotient leaves the normal float32 range — a block
// absmax of 2¹²⁶ or more, say — fall back to `/`). One workgroup per group; the codes themselves are
// never stored. The tables (NF4, FP4, FP4_THRESHOLDS, FP4_MAGNITUDE_CODES, INV127) come from
// quant_codes.wgsl, which kernels/shaders.ts puts before this file.

struct Params {
  total: u32, // elements in all (R · C)
  cols: u32,
  block: u32, // NF4/FP4 block, INT4 group size; unused by INT8 (a group is a row)
  gpr: u32, // INT4 groups per row
  groups: u32, // groups in all
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override FORMAT: u32 = 0u;
override ZEROS: u32 = 0u;

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> wq: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> red_max: array<f32, 256>;
var<workgroup> red_min: array<f32, 256>;

// A finite nonzero float32's mantissa with its implicit bit (normalised to [2²³, 2²⁴)) and the
// exponent e with |x| = m · 2^(e − 150).
fn unpack(x: f32) -> vec2<i32> {
  let bits = bitcast<u32>(x) & 0x7fffffffu;
  var e = i32(bits >> 23u);
  var m = bits & 0x7fffffu;
  if (e == 0) {
    // subnormal: shift the leading bit up to bit 23
    e = 1;
    loop {
      if ((m & 0x800000u) != 0u) {
        break;
      }
      m = m << 1u;
      e -= 1;
    }
  } else {
    m = m | 0x800000u;
  }
  return vec2<i32>(i32(m), e);
}

// a / b rounded to the nearest float32 (ties to even), for finite a and b with b ≠ 0: the mantissas
// are divided bit by bit to 26 quotient bits plus a sticky bit. A quotient outside the normal range
// falls back to a / b.
fn div_rn(a: f32, b: f32) -> f32 {
  if (a == 0.0) {
    return a / b;
  }
  let neg = (a < 0.0) != (b < 0.0);
  let ua = unpack(a);
  let ub = unpack(b);
  var ma = u32(ua.x);
  let mb = u32(ub.x);
  var e = ua.y - ub.y;
  if (ma < mb) {
    ma = ma << 1u; // the ratio now lies in [1, 2)
    e -= 1;
  }
  // Restoring division: q = floor(ma · 2²⁵ / mb), 26 bits, the leading one first.
  var r = ma - mb;
  var q = 1u;
  for (var i = 0u; i < 25u; i++) {
    r = r << 1u;
    q = q << 1u;
    if (r >= mb) {
      r -= mb;
      q |= 1u;
    }
  }
  var mant = q >> 2u;
  let round_bit = (q >> 1u) & 1u;
  let sticky = (q & 1u) | select(0u, 1u, r != 0u);
  if (round_bit == 1u && (sticky == 1u || (mant & 1u) == 1u)) {
    mant += 1u;
    if (mant == 0x1000000u) {
      mant = 0x800000u;
      e += 1;
    }
  }
  let biased = e + 127;
  if (biased < 1 || biased > 254) {
    return a / b;
  }
  let bits = (select(0u, 0x80000000u, neg)) | (u32(biased) << 23u) | (mant & 0x7fffffu);
  return bitcast<f32>(bits);
}

fn nf4_code(x: f32) -> u32 {
  var c = 0u;
  loop {
    if (c >= 15u) {
      break;
    }
    if (!(x > (NF4[c] + NF4[c + 1u]) * 0.5)) {
      break;
    }
    c++;
  }
  return c;
}

fn fp4_code(x: f32) -> u32 {
  var sign = 0u;
  if (x < 0.0) {
    sign = 8u;
  }
  let a = abs(x);
  var i = 0u;
  loop {
    if (i >= 7u) {
      break;
    }
    if (!(a > FP4_THRESHOLDS[i])) {
      break;
    }
    i++;
  }
  return sign + FP4_MAGNITUDE_CODES[i];
}

// The first element and the element count of group g.
fn group_range(g: u32) -> vec2<u32> {
  if (FORMAT == 2u) {
    return vec2<u32>(g * p.cols, p.cols);
  }
  if (FORMAT == 3u) {
    let r = g / p.gpr;
    let c0 = (g % p.gpr) * p.block;
    return vec2<u32>(r * p.cols + c0, min(p.block, p.cols - c0));
  }
  let s = g * p.block;
  return vec2<u32>(s, min(p.block, p.total - s));
}

// One workgroup of 256 threads per group (a 1-D count folded into a 2-D grid).
@compute @workgroup_size(256, 1, 1)
fn fake_quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = wg.x + wg.y * nwg.x;
  if (g >= p.groups) {
    return; // uniform across the workgroup
  }
  let range = group_range(g);
  let start = range.x;
  let n = range.y;

  // hi = max(0, max x), lo = min(0, min x); absmax = max |x| = max(hi, −lo).
  var hi = 0.0;
  var lo = 0.0;
  for (var i = li; i < n; i += 256u) {
    let x = w[start + i];
    hi = max(hi, x);
    lo = min(lo, x);
  }
  red_max[li] = hi;
  red_min[li] = lo;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    if (li < stride) {
      red_max[li] = max(red_max[li], red_max[li + stride]);
      red_min[li] = min(red_min[li], red_min[li + stride]);
    }
    workgroupBarrier();
  }
  hi = red_max[0];
  lo = red_min[0];
  // abs() clears the sign of a zero: the CPU's absmax of a zero group is +0, and the sign of a
  // zero result follows it.
  let absmax = max(abs(hi), abs(lo));

  if (FORMAT <= 1u) {
    var recip = 0.0;
    if (absmax > 0.0) {
      recip = div_rn(1.0, absmax);
    }
    for (var i = li; i < n; i += 256u) {
      var code = 0u; // an all-zero block: code 0
      if (absmax > 0.0) {
        let x = w[start + i] * recip;
        if (FORMAT == 0u) {
          code = nf4_code(x);
        } else {
          code = fp4_code(x);
        }
      }
      if (FORMAT == 0u) {
        wq[start + i] = NF4[code] * absmax;
      } else {
        // The sign applied by negation: the table's −0.0 literal may lose its sign when compiled.
        let m = FP4[code & 7u] * absmax;
        wq[start + i] = select(m, -m, code >= 8u);
      }
    }
    return;
  }

  if (FORMAT == 2u) {
    var s = 0.0;
    if (absmax > 0.0) {
      s = div_rn(127.0, absmax);
    }
    for (var i = li; i < n; i += 256u) {
      // Through i32, as the CPU stores the code: −0 becomes 0.
      let q = f32(i32(round(w[start + i] * s)));
      wq[start + i] = q * absmax * INV127;
    }
    return;
  }

  var scale: f32;
  var zero: f32;
  if (ZEROS == 1u) {
    scale = div_rn(hi - lo, 15.0);
    zero = 0.0;
    if (scale != 0.0) {
      zero = clamp(round(div_rn(-lo, scale)), 0.0, 15.0);
    }
  } else {
    scale = div_rn(absmax, 7.0);
    zero = 8.0;
  }
  for (var i = li; i < n; i += 256u) {
    var q = zero;
    if (scale != 0.0) {
      q = f32(u32(clamp(round(div_rn(w[start + i], scale)) + zero, 0.0, 15.0))); // a 4-bit code
    }
    wq[start + i] = (q - zero) * scale;
  }
}
