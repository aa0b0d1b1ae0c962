// Row-wise cross-entropy over a chunk of logits, for a language-model head whose (tokens × vocab)
// logits are produced a chunk of tokens at a time (the matmul runs in the dispatcher).
//   logits: (rows, V) f32, row-major, the rows of this chunk.
//   labels: (N) i32 for all tokens; row r of the chunk is token row0 + r. A label outside [0, V)
//           (-100 in practice) means the token is not counted.
//   rowLoss: (N) f32; rowLoss[row0 + r] = logsumexp(logits_r) − logits_r[label], 0 when not counted.
// rows_forward writes rowLoss only. rows_backward also turns the chunk in place into
//   dlogits_r = (softmax(logits_r) − onehot(label)) · invCount   (a zero row when not counted).
// One workgroup per row; max and Σexp come from one online pass, combined by a tree in workgroup
// memory. The grid may be folded into 2-D: the row is wg.x + wg.y · nwg.x.
// sum_loss: one workgroup sums rowLoss (n) in a fixed order and writes meanLoss[0] = Σ · invCount.

struct RowParams {
  rows: u32,
  V: u32,
  row0: u32,
  invCount: f32,
}

const WG: u32 = 256u;
const LOWEST: f32 = -3.4028234663852886e38;

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(3) var<uniform> p: RowParams;

// (running max, Σ exp(x − max)) of each thread, then of the tree.
var<workgroup> red: array<vec2f, WG>;

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

fn row_pass(r: u32, li: u32, backward: bool) {
  let base = r * p.V;
  let label = labels[p.row0 + r];
  let counted = label >= 0 && u32(label) < p.V;
  var picked = 0.0;
  if (li == 0u && counted) {
    picked = logits[base + u32(label)];
  }

  var st = vec2f(LOWEST, 0.0);
  for (var j = li; j < p.V; j += WG) {
    let x = logits[base + j];
    if (x > st.x) {
      st = vec2f(x, st.y * exp(st.x - x) + 1.0);
    } else {
      st.y += exp(x - st.x);
    }
  }
  red[li] = st;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] = combine(red[li], red[li + s]);
    }
    workgroupBarrier();
  }
  let tot = red[0];
  let lse = tot.x + log(tot.y);
  if (li == 0u) {
    var loss = 0.0;
    if (counted) {
      loss = lse - picked;
    }
    rowLoss[p.row0 + r] = loss;
  }
  if (backward) {
    let scale = select(0.0, p.invCount, counted);
    for (var j = li; j < p.V; j += WG) {
      var g = exp(logits[base + j] - lse);
      if (counted && j == u32(label)) {
        g -= 1.0;
      }
      logits[base + j] = g * scale;
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

struct SumParams {
  n: u32,
  invCount: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> perRow: array<f32>;
@group(0) @binding(1) var<storage, read_write> meanLoss: array<f32>;
@group(0) @binding(2) var<uniform> q: SumParams;

var<workgroup> sums: array<f32, WG>;

@compute @workgroup_size(WG)
fn sum_loss(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < q.n; i += WG) {
    s += perRow[i];
  }
  sums[li] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) {
      sums[li] += sums[li + k];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    meanLoss[0] = sums[0] * q.invCount;
  }
}
