// Rotary position embeddings, Hugging Face rotate-half convention, f32. For token n, head h and
// i < half = D/2, with θ = f32(pos[n]) · inv_freq[i] (the f32 product Hugging Face computes):
//   out[n, h, i]        = x[n, h, i] · cos θ − x[n, h, i + half] · sin θ
//   out[n, h, i + half] = x[n, h, i + half] · cos θ + x[n, h, i] · sin θ
// The backward pass (dx from dy) is the same rotation by −θ: the dispatcher sets sign = −1.
// Layouts: x and out (count, H, D) row-major from elements offX / offO of their bindings; pos i32
// (count) from element offP; inv_freq f32 (half). `rotate` reads x and writes out; `rotate_inplace`
// overwrites x. One thread per rotated pair; index folded into 2-D: (wg.x + wg.y · nwg.x) · WG + li.
// cos and sin come from sincos() below, accurate to about 1e-7 for |θ| up to 4·10⁵ (positions of
// several hundred thousand), where the built-ins guarantee little outside [−π, π].

struct Params {
  pairs: u32,
  H: u32,
  half: u32,
  offX: u32,
  offO: u32,
  offP: u32,
  sign: f32,
  _pad: u32,
}

const WG: u32 = 256u;

// (cos a, sin a). a is reduced to r = a − k·π/2, |r| ≤ π/4, with π/2 split into pieces of at most 6
// significant bits (Cody–Waite): k·piece is exact for |k| < 2^18, so the reduction loses nothing.
// Taylor polynomials on [−π/4, π/4] are within 2e-9 of cos and sin; the quadrant k mod 4 picks signs.
fn sincos(a: f32) -> vec2f {
  let k = round(a * 0.636619772367581343);
  var r = a - k * 1.5625;
  r = r - k * 0.0078125;
  r = r - k * 0.00048065185546875;
  r = r - k * 3.0994415283203125e-06;
  r = r - k * 7.450580596923828e-08;
  r = r - k * 9.92093629470503e-10;
  let r2 = r * r;
  let s = r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0))));
  let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
  let q = i32(k) & 3;
  if (q == 0) {
    return vec2f(c, s);
  }
  if (q == 1) {
    return vec2f(-s, c);
  }
  if (q == 2) {
    return vec2f(-c, -s);
  }
  return vec2f(s, -c);
}

struct Pair {
  a: u32,
  b: u32,
  cs: vec2f,
}

// Element indices (relative to the piece) of thread t's pair and its (cos θ, sign · sin θ).
fn pairOf(t: u32, H: u32, half: u32, pos: i32, invf: f32, sign: f32) -> Pair {
  let i = t % half;
  let n = t / half / H;
  let h = (t / half) % H;
  let base = (n * H + h) * 2u * half;
  let cs = sincos(f32(pos) * invf);
  return Pair(base + i, base + i + half, vec2f(cs.x, sign * cs.y));
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn rotate(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wg.x + wg.y * nwg.x) * WG + li;
  if (t >= p.pairs) {
    return;
  }
  let n = t / p.half / p.H;
  let pr = pairOf(t, p.H, p.half, pos[p.offP + n], inv_freq[t % p.half], p.sign);
  let x1 = x[p.offX + pr.a];
  let x2 = x[p.offX + pr.b];
  out[p.offO + pr.a] = x1 * pr.cs.x - x2 * pr.cs.y;
  out[p.offO + pr.b] = x2 * pr.cs.x + x1 * pr.cs.y;
}

@group(0) @binding(0) var<storage, read_write> xio: array<f32>;
@group(0) @binding(1) var<storage, read> ipos: array<i32>;
@group(0) @binding(2) var<storage, read> iinv_freq: array<f32>;
@group(0) @binding(3) var<uniform> ip: Params;

@compute @workgroup_size(WG)
fn rotate_inplace(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wg.x + wg.y * nwg.x) * WG + li;
  if (t >= ip.pairs) {
    return;
  }
  let n = t / ip.half / ip.H;
  let pr = pairOf(t, ip.H, ip.half, ipos[ip.offP + n], iinv_freq[t % ip.half], ip.sign);
  let x1 = xio[ip.offX + pr.a];
  let x2 = xio[ip.offX + pr.b];
  xio[ip.offX + pr.a] = x1 * pr.cs.x - x2 * pr.cs.y;
  xio[ip.offX + pr.b] = x2 * pr.cs.x + x1 * pr.cs.y;
}
