// Quantized frozen weights: dequantization, and matrix products that decode the weight tile by tile
// in workgroup memory (the whole dequantized matrix never exists):
//   dequantize:      Wf (R, Cw) f32 = decode(W)
//   forward:         Y = alpha · X · Wᵀ        X (M, Cw) f32, W (R, Cw), Y (M, R) f32
//   backward_input:  dX = alpha · dY · W       dY (M, R) f32, W (R, Cw), dX (M, Cw) f32
// (ACCUMULATE in the parameters: the result is added to the output instead of overwriting it.)
// W is a (R, Cw) matrix in one of four formats (FORMAT), its codes in `codes` as bytes packed four
// per u32 (little-endian), element e = r·Cw + c of the row-major flattening:
//   0 NF4, 1 FP4 (bitsandbytes): 4-bit code of e in byte e/2, high nibble for even e; value =
//     TABLE[code] · absmax[e / BLOCK]. With DOUBLE = 1 the absmax values are double-quantized:
//     absmax[b] = dmap[aux byte b] · scales[b / 256] + offset; otherwise absmax = scales.
//   2 INT8 (per row, symmetric): int8 byte e; value = q · scales[r] · (1/127) (scales = row absmax).
//   3 INT4 (groups of BLOCK columns in each row): 4-bit code as for NF4; g = r·GPR + c / BLOCK;
//     value = (code − zero) · scales[g], zero = aux byte g when ZEROS = 1, else 8 (symmetric).
// All arithmetic is f32. GEMM tiles as in matmul_lowp.wgsl: 64×64 outputs per workgroup of 16×16
// threads, BK-deep slices staged in workgroup memory, bound-checked edges (any M, R, Cw).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  lda: u32,
  ldc: u32,
  offA: u32,
  offC: u32,
  accumulate: u32,
  alpha: f32,
  cols: u32,
  block: u32,
  gpr: u32,
  offset: f32,
  total: u32,
  _pad0: u32,
  _pad1: u32,
}

override FORMAT: u32 = 0u;
override DOUBLE: u32 = 0u;
override ZEROS: u32 = 0u;

// NF4, FP4 and INV127 are declared in quant_codes.wgsl, which kernels/shaders.ts puts before this file.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const THREADS: u32 = 256u;

// The activation comes last so that `dequantize`, which has none, binds 0..5 only.
@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<u32>;
@group(0) @binding(3) var<storage, read> dmap: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> A: array<f32>;

var<workgroup> As: array<f32, 1024>; // [BK][BM]
var<workgroup> Bs: array<f32, 1024>; // [BK][BN]

fn byteAt(e: u32) -> u32 {
  return (codes[e >> 2u] >> ((e & 3u) * 8u)) & 0xffu;
}

fn auxByte(i: u32) -> u32 {
  return (aux[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn nibble(e: u32) -> u32 {
  let b = byteAt(e >> 1u);
  if ((e & 1u) == 0u) {
    return b >> 4u;
  }
  return b & 15u;
}

fn blockScale(b: u32) -> f32 {
  if (DOUBLE == 1u) {
    return dmap[auxByte(b)] * scales[b / 256u] + p.offset;
  }
  return scales[b];
}

// The decoded weight W[r][c].
fn weight(r: u32, c: u32) -> f32 {
  let e = r * p.cols + c;
  if (FORMAT == 0u) {
    return NF4[nibble(e)] * blockScale(e / p.block);
  }
  if (FORMAT == 1u) {
    return FP4[nibble(e)] * blockScale(e / p.block);
  }
  if (FORMAT == 2u) {
    let q = bitcast<i32>(byteAt(e) << 24u) >> 24u;
    return f32(q) * scales[r] * INV127;
  }
  let g = r * p.gpr + c / p.block;
  var zero = 8.0;
  if (ZEROS == 1u) {
    zero = f32(auxByte(g));
  }
  return (f32(nibble(e)) - zero) * scales[g];
}

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) {
    return 0.0;
  }
  return A[p.offA + m * p.lda + k];
}

// op(B)[k][n]: W[n][k] when transposed (forward), W[k][n] otherwise (backward_input).
fn loadB(k: u32, n: u32, trans: bool) -> f32 {
  if (k >= p.K || n >= p.N) {
    return 0.0;
  }
  if (trans) {
    return weight(n, k);
  }
  return weight(k, n);
}

fn gemm(wg: vec3u, lid: vec3u, li: u32, trans: bool) {
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;

  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) {
    acc[i] = 0.0;
  }

  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var r = 0u; r < 4u; r++) {
      let e = li + r * THREADS;
      let am = e / BK;
      let ak = e % BK;
      As[ak * BM + am] = loadA(m0 + am, k0 + ak);
      var bn: u32;
      var bk: u32;
      if (trans) {
        bn = e / BK;
        bk = e % BK;
      } else {
        bk = e / BN;
        bn = e % BN;
      }
      Bs[bk * BN + bn] = loadB(k0 + bk, n0 + bn, trans);
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < TM; i++) {
        av[i] = As[k * BM + lid.y + i * 16u];
      }
      for (var j = 0u; j < TN; j++) {
        bv[j] = Bs[k * BN + lid.x + j * 16u];
      }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
          acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM; i++) {
    let m = m0 + lid.y + i * 16u;
    if (m >= p.M) {
      continue;
    }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + lid.x + j * 16u;
      if (n >= p.N) {
        continue;
      }
      let idx = p.offC + m * p.ldc + n;
      var v = p.alpha * acc[i * TN + j];
      if (p.accumulate != 0u) {
        v += C[idx];
      }
      C[idx] = v;
    }
  }
}

@compute @workgroup_size(16, 16, 1)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  gemm(wg, lid, li, true);
}

@compute @workgroup_size(16, 16, 1)
fn backward_input(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  gemm(wg, lid, li, false);
}

// One thread per element of a 2-D grid of 256-thread workgroups: Wf[e] = W[e / cols][e % cols], e < total.
@compute @workgroup_size(256, 1, 1)
fn dequantize(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * 256u;
  if (e >= p.total) {
    return;
  }
  C[p.offC + e] = weight(e / p.cols, e % p.cols);
}
