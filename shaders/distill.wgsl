// Row-wise knowledge-distillation loss over a chunk of student and teacher logits (the matmuls that
// produce them, a chunk of tokens at a time, run in the dispatcher), for
//   loss_r = kdScale · KL(softmax(t_r / T) ‖ softmax(s_r / T)) + ceScale · (logsumexp(s_r) − s_r[label])
// with kdScale = alpha · T² and ceScale = 1 − alpha.
//   student: (rows, V) f32 student logits s of this chunk (turned into dloss/ds by rows_backward).
//   teacher: (rows, V) f32 teacher logits t of the same tokens.
//   labels:  (N) i32 for all tokens; row r of the chunk is token row0 + r. A label outside [0, V)
//            (-100) means the token is not counted: loss 0 and a zero gradient row.
//   rowLoss: (N) f32, rowLoss[row0 + r] = loss_r.
// rows_backward also writes, in place,
//   ds_r = invCount · (kdScale / T · (softmax(s_r / T) − softmax(t_r / T)) + ceScale · (softmax(s_r) − onehot(label))).
// KL = Σ_j p_j (t_j − s_j) / T − lse(t / T) + lse(s / T) with p = softmax(t / T): one online pass
// gives the three (max, Σexp) pairs, a second pass the weighted sum. One workgroup per row; the grid
// may be folded into 2-D: the row is wg.x + wg.y · nwg.x. The mean over rows is cross_entropy.wgsl's
// sum_loss.

struct Params {
  rows: u32,
  V: u32,
  row0: u32,
  invCount: f32,
  invTemp: f32,
  kdScale: f32,
  ceScale: f32,
  _pad: u32,
}

const WG: u32 = 256u;
const LOWEST: f32 = -3.4028234663852886e38;

@group(0) @binding(0) var<storage, read_write> student: array<f32>;
@group(0) @binding(1) var<storage, read> teacher: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// (running max, Σ exp(x − max)) for s / T, t / T and s, per thread then per tree level.
var<workgroup> redS: array<vec2f, WG>;
var<workgroup> redT: array<vec2f, WG>;
var<workgroup> redC: array<vec2f, WG>;
var<workgroup> redK: array<f32, WG>;

fn combine(a: vec2f, b: vec2f) -> vec2f {
  if (b.y == 0.0) {
    return a;
  }
  if (a.y == 0.0) {
    return b;
  }
  let m = max(a.x, b.x);
  return vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

fn push(st: vec2f, x: f32) -> vec2f {
  if (x > st.x) {
    return vec2f(x, st.y * exp(st.x - x) + 1.0);
  }
  return vec2f(st.x, st.y + exp(x - st.x));
}

fn row_pass(r: u32, li: u32, backward: bool) {
  let base = r * p.V;
  let label = labels[p.row0 + r];
  // A storage value is not uniform to WGSL, so an uncounted row runs the same passes (every thread
  // reaches every barrier) and only its writes differ.
  let counted = label >= 0 && u32(label) < p.V;
  var sS = vec2f(LOWEST, 0.0);
  var sT = vec2f(LOWEST, 0.0);
  var sC = vec2f(LOWEST, 0.0);
  for (var j = li; j < p.V; j += WG) {
    let s = student[base + j];
    sS = push(sS, s * p.invTemp);
    sT = push(sT, teacher[base + j] * p.invTemp);
    sC = push(sC, s);
  }
  redS[li] = sS;
  redT[li] = sT;
  redC[li] = sC;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) {
      redS[li] = combine(redS[li], redS[li + k]);
      redT[li] = combine(redT[li], redT[li + k]);
      redC[li] = combine(redC[li], redC[li + k]);
    }
    workgroupBarrier();
  }
  let lseS = redS[0].x + log(redS[0].y);
  let lseT = redT[0].x + log(redT[0].y);
  let lseC = redC[0].x + log(redC[0].y);
  workgroupBarrier();

  var acc = 0.0;
  for (var j = li; j < p.V; j += WG) {
    let t = teacher[base + j] * p.invTemp;
    acc += exp(t - lseT) * (t - student[base + j] * p.invTemp);
  }
  redK[li] = acc;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) {
      redK[li] += redK[li + k];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    var loss = 0.0;
    if (counted) {
      let kl = redK[0] - lseT + lseS;
      let ce = lseC - student[base + u32(label)];
      loss = p.kdScale * kl + p.ceScale * ce;
    }
    rowLoss[p.row0 + r] = loss;
  }
  if (backward) {
    // Thread 0 reads the label's logit above; wait before any thread overwrites the row.
    workgroupBarrier();
    let scale = select(0.0, p.invCount, counted);
    let kd = p.kdScale * p.invTemp;
    for (var j = li; j < p.V; j += WG) {
      let s = student[base + j];
      let pS = exp(s * p.invTemp - lseS);
      let pT = exp(teacher[base + j] * p.invTemp - lseT);
      var pC = exp(s - lseC);
      if (counted && j == u32(label)) {
        pC -= 1.0;
      }
      student[base + j] = scale * (kd * (pS - pT) + p.ceScale * pC);
    }
  }
}

@compute @workgroup_size(WG)
fn rows_forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * nwg.x;
  if (r >= p.rows) {
    return;
  }
  row_pass(r, li, false);
}

@compute @workgroup_size(WG)
fn rows_backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * nwg.x;
  if (r >= p.rows) {
    return;
  }
  row_pass(r, li, true);
}
