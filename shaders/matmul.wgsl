// Tiled f32 matrix multiply, batched:
//   C[b] = alpha * op(A[b]) · op(B[b])          (ACCUMULATE: C[b] += ...)
// op(A) is (M, K): A is stored (M, K), or (K, M) when TRANS_A.
// op(B) is (K, N): B is stored (K, N), or (N, K) when TRANS_B (the nn.Linear weight layout, y = x·Wᵀ).
// The transposed variants give backward's products: dX = dY·W (TRANS_B false), dW = dYᵀ·X (TRANS_A).
//
// Each workgroup computes a BM×BN tile of C (BN = 4·WG_X: 64 columns, or 16 for a narrow product
// such as LoRA's rank-r bottleneck) with WG_X×WG_Y threads; a thread owns TM consecutive rows and 4
// consecutive columns of the tile and keeps them as TM vec4 accumulators.
// BK-deep slices of A and B are staged in workgroup memory: A as [BK][BM] scalars (a thread reads
// its TM rows of one k), B as [BK][BN/4] vec4 (a thread reads its 4 columns of one k in one load).
// The dispatcher picks TM (1, 2 or 4), WG_Y (4, 8 or 16), WG_X (16, or 4 when N is at most 16) and
// BK (16 or 32) by shape, so that a product with few rows (few tokens) or few columns does not waste
// threads and each thread has enough work
// (matmul.ts, matmulVariant). Edges are bound-checked: any M, N, K works.
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
override WG_Y: u32 = 16u;
override BK: u32 = 16u;
override WG_X: u32 = 16u;

override BM: u32 = WG_Y * TM;
override THREADS: u32 = WG_X * WG_Y;
override BN: u32 = 4u * WG_X;

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> As: array<f32, BK * BM>; // [BK][BM]
var<workgroup> Bs: array<vec4<f32>, BK * WG_X>; // [BK][BN / 4]

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

// Four consecutive elements of A as stored, from op(A)[m][k] along k (or along m when TRANS_A).
fn loadA4(base: u32, m: u32, k: u32, kLim: u32) -> vec4<f32> {
  if (TRANS_A) {
    if (k < kLim && m + 3u < p.M) {
      let i = base + k * p.lda + m;
      return vec4<f32>(A[i], A[i + 1u], A[i + 2u], A[i + 3u]);
    }
    return vec4<f32>(loadA(base, m, k, kLim), loadA(base, m + 1u, k, kLim), loadA(base, m + 2u, k, kLim), loadA(base, m + 3u, k, kLim));
  }
  if (m < p.M && k + 3u < kLim) {
    let i = base + m * p.lda + k;
    return vec4<f32>(A[i], A[i + 1u], A[i + 2u], A[i + 3u]);
  }
  return vec4<f32>(loadA(base, m, k, kLim), loadA(base, m, k + 1u, kLim), loadA(base, m, k + 2u, kLim), loadA(base, m, k + 3u, kLim));
}

// Four consecutive elements of B as stored, from op(B)[k][n] along n (or along k when TRANS_B).
fn loadB4(base: u32, k: u32, n: u32, kLim: u32) -> vec4<f32> {
  if (TRANS_B) {
    if (n < p.N && k + 3u < kLim) {
      let i = base + n * p.ldb + k;
      return vec4<f32>(B[i], B[i + 1u], B[i + 2u], B[i + 3u]);
    }
    return vec4<f32>(loadB(base, k, n, kLim), loadB(base, k + 1u, n, kLim), loadB(base, k + 2u, n, kLim), loadB(base, k + 3u, n, kLim));
  }
  if (k < kLim && n + 3u < p.N) {
    let i = base + k * p.ldb + n;
    return vec4<f32>(B[i], B[i + 1u], B[i + 2u], B[i + 3u]);
  }
  return vec4<f32>(loadB(base, k, n, kLim), loadB(base, k, n + 1u, kLim), loadB(base, k, n + 2u, kLim), loadB(base, k, n + 3u, kLim));
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let baseA = p.offA + batch * p.strideA;
  let baseB = p.offB + batch * p.strideB;
  // K of this z entry: all of K for a batch entry, what is left of kTotal for a K slice.
  let kLim = min(p.K, p.kTotal - batch * p.K);
  let row = lid.y * TM;

  var acc: array<vec4<f32>, 4>;
  for (var i = 0u; i < 4u; i++) {
    acc[i] = vec4<f32>(0.0);
  }

  for (var k0 = 0u; k0 < kLim; k0 += BK) {
    // Stage the tiles: each thread reads runs of four elements along the direction in which the
    // operand is contiguous in memory.
    for (var g = li; g < BK * BM / 4u; g += THREADS) {
      if (TRANS_A) {
        let ak = g / (BM / 4u);
        let am = (g % (BM / 4u)) * 4u;
        let v = loadA4(baseA, m0 + am, k0 + ak, kLim);
        for (var j = 0u; j < 4u; j++) {
          As[ak * BM + am + j] = v[j];
        }
      } else {
        let am = g / (BK / 4u);
        let ak = (g % (BK / 4u)) * 4u;
        let v = loadA4(baseA, m0 + am, k0 + ak, kLim);
        for (var j = 0u; j < 4u; j++) {
          As[(ak + j) * BM + am] = v[j];
        }
      }
    }
    for (var g = li; g < BK * WG_X; g += THREADS) {
      if (TRANS_B) {
        let bn = g / (BK / 4u);
        let bk = (g % (BK / 4u)) * 4u;
        let v = loadB4(baseB, k0 + bk, n0 + bn, kLim);
        for (var j = 0u; j < 4u; j++) {
          Bs[(bk + j) * WG_X + bn / 4u][bn % 4u] = v[j];
        }
      } else {
        let bk = g / WG_X;
        let bn = (g % WG_X) * 4u;
        Bs[bk * WG_X + bn / 4u] = loadB4(baseB, k0 + bk, n0 + bn, kLim);
      }
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let b = Bs[k * WG_X + lid.x];
      for (var i = 0u; i < TM; i++) {
        acc[i] = fma(vec4<f32>(As[k * BM + row + i]), b, acc[i]);
      }
    }
    workgroupBarrier();
  }

  let baseC = p.offC + batch * p.strideC;
  for (var i = 0u; i < TM; i++) {
    let m = m0 + row + i;
    if (m >= p.M) {
      continue;
    }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= p.N) {
        continue;
      }
      let idx = baseC + m * p.ldc + n;
      var v = p.alpha * acc[i][j];
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
