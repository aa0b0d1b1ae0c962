// RMSNorm (Hugging Face LlamaRMSNorm), f32, over `rows` rows of C elements each:
//   forward:      rstd[r] = 1 / sqrt(mean_c(x[r, c]²) + eps)
//                 y[r, c] = x[r, c] · rstd[r] · w[c]
//   backward_dx:  s = Σ_c dy[r, c] · w[c] · x[r, c]
//                 dx[r, c] = rstd[r] · (w[c] · dy[r, c] − x[r, c] · rstd[r]² · s / C)      (overwritten)
//   backward_dw:  dw[c] += Σ_r dy[r, c] · x[r, c] · rstd[r]                              (accumulated)
// Layouts: x, y, dy, dx row-major (rows, C) starting at element offX / offY / offDy / offDx of their
// binding; rstd (rows) from element offR; w and dw (C). The dispatcher views any (..., k·C) tensor
// as (rows, C), so Qwen3's per-head q_norm/k_norm runs on (T, H·D) as (T·H, D).
// forward and backward_dx run one workgroup per row (index folded into 2-D: wg.x + wg.y·nwg.x) and
// reduce in workgroup memory with a fixed tree. backward_dw runs one workgroup per 32 columns: 8 lanes
// stride over the rows, then lane sums are added in lane order, so the result is deterministic.

struct Params {
  rows: u32,
  C: u32,
  offX: u32,
  offY: u32,
  offR: u32,
  offDy: u32,
  eps: f32,
  _pad: u32,
}

const WG: u32 = 128u;
var<workgroup> red: array<f32, 256>;

// Sum of `v` over the WG threads of the workgroup, the same on every thread.
fn wgSum(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (li < s) {
      red[li] = red[li] + red[li + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@group(0) @binding(0) var<storage, read> fx: array<f32>;
@group(0) @binding(1) var<storage, read> fw: array<f32>;
@group(0) @binding(2) var<storage, read_write> fy: array<f32>;
@group(0) @binding(3) var<storage, read_write> frstd: array<f32>;
@group(0) @binding(4) var<uniform> fp: Params;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= fp.rows) {
    return;
  }
  let C = fp.C;
  let bx = fp.offX + row * C;
  var ss = 0.0;
  for (var c = li; c < C; c += WG) {
    let v = fx[bx + c];
    ss += v * v;
  }
  let r = 1.0 / sqrt(wgSum(li, ss) / f32(C) + fp.eps);
  let by = fp.offY + row * C;
  for (var c = li; c < C; c += WG) {
    fy[by + c] = fx[bx + c] * r * fw[c];
  }
  if (li == 0u) {
    frstd[fp.offR + row] = r;
  }
}

@group(0) @binding(0) var<storage, read> bx: array<f32>;
@group(0) @binding(1) var<storage, read> bw: array<f32>;
@group(0) @binding(2) var<storage, read> bdy: array<f32>;
@group(0) @binding(3) var<storage, read> brstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> bdx: array<f32>;
@group(0) @binding(5) var<uniform> bp: Params;

// bp.offY is the offset of dx.
@compute @workgroup_size(WG)
fn backward_dx(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= bp.rows) {
    return;
  }
  let C = bp.C;
  let ox = bp.offX + row * C;
  let od = bp.offDy + row * C;
  var s = 0.0;
  for (var c = li; c < C; c += WG) {
    s += bdy[od + c] * bw[c] * bx[ox + c];
  }
  let r = brstd[bp.offR + row];
  let k = r * r * wgSum(li, s) / f32(C);
  let o = bp.offY + row * C;
  for (var c = li; c < C; c += WG) {
    bdx[o + c] = r * (bw[c] * bdy[od + c] - bx[ox + c] * k);
  }
}

const COLS: u32 = 32u;
const LANES: u32 = 8u;

@group(0) @binding(0) var<storage, read> gx: array<f32>;
@group(0) @binding(1) var<storage, read> gdy: array<f32>;
@group(0) @binding(2) var<storage, read> grstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> gdw: array<f32>;
@group(0) @binding(4) var<uniform> gp: Params;

@compute @workgroup_size(COLS * LANES)
fn backward_dw(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let col = (wg.x + wg.y * nwg.x) * COLS + li % COLS;
  let lane = li / COLS;
  let C = gp.C;
  var acc = 0.0;
  if (col < C) {
    for (var r = lane; r < gp.rows; r += LANES) {
      acc += gdy[gp.offDy + r * C + col] * gx[gp.offX + r * C + col] * grstd[gp.offR + r];
    }
  }
  red[li] = acc;
  workgroupBarrier();
  if (lane == 0u && col < C) {
    var total = 0.0;
    for (var l = 0u; l < LANES; l++) {
      total += red[l * COLS + li];
    }
    gdw[col] = gdw[col] + total;
  }
}
