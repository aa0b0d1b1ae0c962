// INT8 quantization of activations, simulated in f32 (fake quantization): each value is replaced
// by the nearest point of a symmetric 8-bit grid, q · s with q = clamp(round(x / s), −127, 127)
// (round half to even), and a grid step s per row (dynamic: s = max |row| / 127, computed by
// `row_scale`) or one fixed step for the tensor (static: a calibrated scale in the parameters).
// A step of 0 (a row of zeros) gives zeros. x and y are (rows, cols) f32; y may be x's buffer
// only through distinct bindings of different tensors (the dispatcher never aliases).

struct Params {
  rows: u32,
  cols: u32,
  mode: u32, // 0: per-row scales from `scales`; 1: the static scale below
  scale: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> scales: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, 256>;

// One workgroup per row: scales[row] = max |x[row, :]| / 127.
@compute @workgroup_size(256, 1, 1)
fn row_scale(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  var m = 0.0;
  for (var c = li; c < p.cols; c += 256u) {
    m = max(m, abs(x[row * p.cols + c]));
  }
  partial[li] = m;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride >>= 1u) {
    if (li < stride) {
      partial[li] = max(partial[li], partial[li + stride]);
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    scales[row] = partial[0] / 127.0;
  }
}

// One thread per element: y = q · s.
@compute @workgroup_size(256, 1, 1)
fn fake_quant(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  if (i >= p.rows * p.cols) {
    return;
  }
  var s = p.scale;
  if (p.mode == 0u) {
    s = scales[i / p.cols];
  }
  if (s == 0.0) {
    y[i] = 0.0;
    return;
  }
  let q = clamp(round(x[i] / s), -127.0, 127.0);
  y[i] = q * s;
}
