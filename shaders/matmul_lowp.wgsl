// Tiled matrix multiply through a weight stored in 16 bits, for frozen low-precision weights:
//   forward:         Y = alpha · X · Wᵀ        X (M, K) f32, W (N, K), Y (M, N) f32
//   backward_input:  dX = alpha · dY · W       dY (M, N') f32, W (N', K'), dX (M, K') f32
// (ACCUMULATE in the parameters: the result is added to the output instead of overwriting it.)
// No weight gradient: the weight is frozen. In GEMM terms both are C (M, N) = A (M, K) · op(B)
// with B the weight, transposed for forward; the kernel below is written in those terms.
// W holds 16-bit values packed two per u32, element e in bits 16·(e & 1) of word e >> 1 (the
// little-endian layout of a u16 array). FORMAT 0: bf16, decoded exactly as the upper half of an
// f32. FORMAT 1: IEEE f16, decoded with unpack2x16float, which needs no `shader-f16` feature.
// All arithmetic is f32. Tiles as in matmul.wgsl: each workgroup computes a BM×BN tile with 16×16
// threads of TM×TN outputs, staging BK-deep slices in workgroup memory; edges are bound-checked,
// so any M, N, K works (odd K included: a weight row may start in the middle of a word).
// Offsets and leading dimensions are in elements, so a call may work on a sub-block (the
// dispatcher uses this for tensors split across buffers).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  lda: u32,
  ldw: u32,
  ldc: u32,
  offA: u32,
  offW: u32,
  offC: u32,
  accumulate: u32,
  alpha: f32,
  _pad: u32,
}

override FORMAT: u32 = 0u;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const THREADS: u32 = 256u;

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> As: array<f32, 1024>; // [BK][BM]
var<workgroup> Bs: array<f32, 1024>; // [BK][BN]

// The weight element at flat index e (relative to the bound buffer).
fn weight(e: u32) -> f32 {
  let word = W[e >> 1u];
  if (FORMAT == 0u) {
    return bitcast<f32>(((word >> ((e & 1u) * 16u)) & 0xffffu) << 16u);
  }
  return unpack2x16float(word)[e & 1u];
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
    return weight(p.offW + n * p.ldw + k);
  }
  return weight(p.offW + k * p.ldw + n);
}

fn gemm(wg: vec3u, lid: vec3u, li: u32, trans: bool) {
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;

  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) {
    acc[i] = 0.0;
  }

  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // Each thread stages 4 elements of each tile, walking memory in its contiguous direction.
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
