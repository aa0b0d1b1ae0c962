// SwiGLU gating of the Llama MLP, f32, elementwise over n elements:
//   forward:   out = silu(gate) · up,  silu(g) = g · σ(g),  σ(g) = 1 / (1 + e^(−g))
//   backward:  dgate = dout · up · σ(g) · (1 + g · (1 − σ(g)))      (overwritten)
//              dup   = dout · silu(g)                                (overwritten)
// Layouts: gate, up, out, dout, dgate, dup are flat arrays of the same n elements (row-major (N, F)
// in the model); the dispatcher runs one dispatch per buffer of a split tensor. One thread per
// element; index folded into 2-D: (wg.x + wg.y · nwg.x) · WG + li.

struct Params {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

const WG: u32 = 256u;

fn sigmoid(g: f32) -> f32 {
  return 1.0 / (1.0 + exp(-g));
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= p.n) {
    return;
  }
  let g = gate[i];
  out[i] = g * sigmoid(g) * up[i];
}

@group(0) @binding(0) var<storage, read> bgate: array<f32>;
@group(0) @binding(1) var<storage, read> bup: array<f32>;
@group(0) @binding(2) var<storage, read> bdout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(4) var<storage, read_write> dup: array<f32>;
@group(0) @binding(5) var<uniform> bp: Params;

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= bp.n) {
    return;
  }
  let g = bgate[i];
  let s = sigmoid(g);
  let d = bdout[i];
  dgate[i] = d * bup[i] * s * (1.0 + g * (1.0 - s));
  dup[i] = d * g * s;
}
