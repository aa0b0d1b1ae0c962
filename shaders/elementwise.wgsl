// Elementwise f32 ops over flat arrays of n elements.
//   binary:  out = OP(a, b)   OP 0: alpha*a + beta*b   OP 1: alpha*a*b
//   unary:   y = alpha*x + beta
//   fill:    dst = alpha
//   accumulate: acc = beta*acc + alpha*src, in place
//   add_rows: acc[i] += alpha*src[i mod m], a vector added to every row, in place
// Their backward passes are themselves elementwise (d(a+b) passes dout through, d(a*b)/da = b),
// so the same entries serve both directions. Index: the workgroup grid may be folded into 2-D.

struct Params {
  n: u32,
  alpha: f32,
  beta: f32,
  _pad: u32,
}

override OP: u32 = 0u;
const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= p.n) {
    return;
  }
  if (OP == 0u) {
    out[i] = p.alpha * a[i] + p.beta * b[i];
  } else {
    out[i] = p.alpha * a[i] * b[i];
  }
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> q: Params;

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= q.n) {
    return;
  }
  y[i] = q.alpha * x[i] + q.beta;
}

@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<uniform> r: Params;

// dst = alpha everywhere (tests poison outputs with NaN this way).
@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= r.n) {
    return;
  }
  dst[i] = r.alpha;
}

@group(0) @binding(0) var<storage, read_write> acc: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<uniform> s: Params;

// acc = beta*acc + alpha*src, in place (gradient accumulation; beta = 0 overwrites).
@compute @workgroup_size(WG)
fn accumulate(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= s.n) {
    return;
  }
  acc[i] = s.beta * acc[i] + s.alpha * src[i];
}

// acc[i] += alpha*src[i mod m], in place: adds a (m) vector to every row of an (n/m, m) tensor
// (a linear layer's bias). The row length m travels in the params' last field.
@compute @workgroup_size(WG)
fn add_rows(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= s.n) {
    return;
  }
  acc[i] += s.alpha * src[i % s._pad];
}
