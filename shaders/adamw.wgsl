// AdamW and global gradient-norm clipping, all f32, over flat arrays.
//   adamw_step:     one torch.optim.AdamW step in place on param, m, v (n elements each), with
//                   g = grad · coef[0] (the clip coefficient, 1 when not clipping):
//                     p ← p · decay                         decay = 1 − lr·wd
//                     m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
//                     p ← p − stepSize · m / (sqrt(v) / bc2Sqrt + eps)
//                   stepSize = lr / (1 − β1^t) and bc2Sqrt = sqrt(1 − β2^t) come from the host.
//                   The grid may be folded into 2-D: the element block is wg.x + wg.y · nwg.x.
//   sumsq_partial:  the first level of Σg²: workgroup w of a grid of nwg.x workgroups sums the
//                   squares of elements w·WG + li, stepping by nwg.x·WG, and writes
//                   partials[base + w]. The assignment depends on n only: the sum is deterministic.
//   sumsq_final:    one workgroup sums partials (n) and writes out[0] = Σ (+ out[0] when accumulate).
//   clip_coef:      norm[0] = sqrt(sumsq[0]), coef[0] = min(1, maxNorm / (norm + 1e-6)), as
//                   torch.nn.utils.clip_grad_norm_.
// No float atomics anywhere.

const WG: u32 = 256u;

struct StepParams {
  n: u32,
  decay: f32,
  beta1: f32,
  beta2: f32,
  // 1 − β1 and 1 − β2, rounded from float64 on the host (1.0 − f32(0.999) would be off by 1e-5).
  omb1: f32,
  omb2: f32,
  stepSize: f32,
  bc2Sqrt: f32,
  eps: f32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m1: array<f32>;
@group(0) @binding(3) var<storage, read_write> m2: array<f32>;
@group(0) @binding(4) var<storage, read> coef: array<f32>;
@group(0) @binding(5) var<uniform> sp: StepParams;

@compute @workgroup_size(WG)
fn adamw_step(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= sp.n) {
    return;
  }
  let g = grad[i] * coef[0];
  let p = param[i] * sp.decay;
  let m = sp.beta1 * m1[i] + sp.omb1 * g;
  let v = sp.beta2 * m2[i] + sp.omb2 * g * g;
  m1[i] = m;
  m2[i] = v;
  param[i] = p - sp.stepSize * m / (sqrt(v) / sp.bc2Sqrt + sp.eps);
}

struct PartialParams {
  n: u32,
  base: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> g2: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> pp: PartialParams;

var<workgroup> sums: array<f32, WG>;

fn tree_sum(li: u32) {
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) {
      sums[li] += sums[li + k];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn sumsq_partial(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = wg.x * WG + li; i < pp.n; i += nwg.x * WG) {
    let x = g2[i];
    s = fma(x, x, s);
  }
  sums[li] = s;
  workgroupBarrier();
  tree_sum(li);
  if (li == 0u) {
    partials[pp.base + wg.x] = sums[0];
  }
}

struct FinalParams {
  n: u32,
  accumulate: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> parts: array<f32>;
@group(0) @binding(1) var<storage, read_write> total: array<f32>;
@group(0) @binding(2) var<uniform> fp: FinalParams;

@compute @workgroup_size(WG)
fn sumsq_final(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < fp.n; i += WG) {
    s += parts[i];
  }
  sums[li] = s;
  workgroupBarrier();
  tree_sum(li);
  if (li == 0u) {
    var t = sums[0];
    if (fp.accumulate != 0u) {
      t += total[0];
    }
    total[0] = t;
  }
}

struct ClipParams {
  maxNorm: f32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> sumsq: array<f32>;
@group(0) @binding(1) var<storage, read_write> clip: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm: array<f32>;
@group(0) @binding(3) var<uniform> cp: ClipParams;

@compute @workgroup_size(1)
fn clip_coef() {
  let nrm = sqrt(sumsq[0]);
  norm[0] = nrm;
  clip[0] = min(1.0, cp.maxNorm / (nrm + 1e-6));
}
