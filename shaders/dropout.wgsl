// Seeded inverted dropout, f32, over a flat tensor of n elements, without a stored mask:
//   keep(i) = hash(seed, base + i) ≥ threshold        (threshold ≈ p · 2³², so P(keep) ≈ 1 − p)
//   y[i]    = keep(i) ? x[i] · scale : 0                (scale = 1 / (1 − p), rounded to f32)
// hash(seed, j) = fmix32(fmix32(seed) ^ (j · 0x9E3779B9)) with MurmurHash3's 32-bit finalizer, all in
// wrapping u32 arithmetic; reference/dropout.ts computes the same bits with Math.imul.
// The backward pass (dx from dy) is this same entry with the same seed: the mask is replayed, so
// `main` serves both directions. base is the global index of this binding's first element (split
// tensors run one dispatch per buffer). One thread per element; index folded into 2-D:
// (wg.x + wg.y · nwg.x) · WG + li.

struct Params {
  n: u32,
  base: u32,
  seed: u32,
  threshold: u32,
  scale: f32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

const WG: u32 = 256u;

fn fmix32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x85ebca6bu;
  h ^= h >> 13u;
  h *= 0xc2b2ae35u;
  h ^= h >> 16u;
  return h;
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= p.n) {
    return;
  }
  let h = fmix32(fmix32(p.seed) ^ ((p.base + i) * 0x9e3779b9u));
  if (h >= p.threshold) {
    y[i] = x[i] * p.scale;
  } else {
    y[i] = 0.0;
  }
}
