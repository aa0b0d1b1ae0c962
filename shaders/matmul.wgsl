// Tiled f32 matrix multiply, batched:
//   C[b] = alpha * op(A[b]) · op(B[b])          (ACCUMULATE: C[b] += ...)
// op(A) is (M, K): A is stored (M, K), or (K, M) when TRANS_A.
// op(B) is (K, N): B is stored (K, N), or (N, K) when TRANS_B (the nn.Linear weight layout, y = x·Wᵀ).
// The transposed variants give backward's products: dX = dY·W (TRANS_B false), dW = dYᵀ·X (TRANS_A).
// Each workgroup computes a BM×BN tile of C with 16×16 threads of TM×TN outputs each, staging
// BK-deep slices of A and B in workgroup memory. Edges are bound-checked: any M, N, K works.
// TM (1, 2 or 4) is an override so that skinny products (few tokens) do not waste rows: BM = 16·TM.
// Offsets and strides are in elements. lda, ldb, ldc are the row strides of A, B, C as stored, so a
// call may work on a sub-block of larger matrices (the dispatcher uses this for split tensors).
// Split-K: the z index may also select a slice of K instead of a batch entry (strides then step
// along K); kTotal bounds the last, shorter slice. Each slice writes its own partial product, and
// `reduce_slices` sums them into C.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  lda: u32,
  ldb: u32,
  ldc: u32,
  offA: u32,
  offB: u32,
  offC: u32,
  strideA: u32,
  strideB: u32,
  strideC: u32,
  alpha: f32,
  kTotal: u32,
  _pad1: u32,
  _pad2: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = true;
override ACCUMULATE: bool = false;
override TM: u32 = 4u;

override BM: u32 = 16u * TM;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TN: u32 = 4u;
const THREADS: u32 = 256u;

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> As: array<f32, 1024>; // [BK][BM], BM ≤ 64
var<workgroup> Bs: array<f32, 1024>; // [BK][BN]

fn loadA(base: u32, m: u32, k: u32, kLim: u32) -> f32 {
  if (m >= p.M || k >= kLim) {
    return 0.0;
  }
  if (TRANS_A) {
    return A[base + k * p.lda + m];
  }
  return A[base + m * p.lda + k];
}

fn loadB(base: u32, k: u32, n: u32, kLim: u32) -> f32 {
  if (k >= kLim || n >= p.N) {
    return 0.0;
  }
  if (TRANS_B) {
    return B[base + n * p.ldb + k];
  }
  return B[base + k * p.ldb + n];
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let baseA = p.offA + batch * p.strideA;
  let baseB = p.offB + batch * p.strideB;
  // K of this z entry: all of K for a batch entry, what is left of kTotal for a K slice.
  let kLim = min(p.K, p.kTotal - batch * p.K);

  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) {
    acc[i] = 0.0;
  }

  for (var k0 = 0u; k0 < kLim; k0 += BK) {
    // Each thread stages TM elements of the A tile and 4 of the B tile, walking memory in its
    // contiguous direction.
    for (var r = 0u; r < TM; r++) {
      let e = li + r * THREADS;
      var am: u32;
      var ak: u32;
      if (TRANS_A) {
        ak = e / BM;
        am = e % BM;
      } else {
        am = e / BK;
        ak = e % BK;
      }
      As[ak * BM + am] = loadA(baseA, m0 + am, k0 + ak, kLim);
    }
    for (var r = 0u; r < 4u; r++) {
      let e = li + r * THREADS;
      var bn: u32;
      var bk: u32;
      if (TRANS_B) {
        bn = e / BK;
        bk = e % BK;
      } else {
        bk = e / BN;
        bn = e % BN;
      }
      Bs[bk * BN + bn] = loadB(baseB, k0 + bk, n0 + bn, kLim);
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

  let baseC = p.offC + batch * p.strideC;
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
      let idx = baseC + m * p.ldc + n;
      var v = p.alpha * acc[i * TN + j];
      if (ACCUMULATE) {
        v += C[idx];
      }
      C[idx] = v;
    }
  }
}

struct ReduceParams {
  n: u32,
  slices: u32,
  alpha: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> r: ReduceParams;

// out[i] = alpha * Σ_s partial[s*n + i]   (ACCUMULATE: out[i] += ...), summed in slice order.
@compute @workgroup_size(256)
fn reduce_slices(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  if (i >= r.n) {
    return;
  }
  var s = 0.0;
  for (var z = 0u; z < r.slices; z++) {
    s += partial[z * r.n + i];
  }
  var v = r.alpha * s;
  if (ACCUMULATE) {
    v += out[i];
  }
  out[i] = v;
}
