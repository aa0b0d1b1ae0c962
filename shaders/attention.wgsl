// Causal self-attention with grouped-query heads, FlashAttention-2 style: keys are streamed in
// tiles through workgroup memory with an online softmax, and no (T, T) matrix is ever stored.
//   forward:  out = softmax(scale · q·kᵀ + mask) · v,  lse = per-row logsumexp of the scores
//   stats:    stats[i] = (lse_i, Δ_i = rowsum(dOut ⊙ out)_i)        (backward, step 1)
//   dkdv:     dk = scale · dSᵀ·q,  dv = Pᵀ·dOut   over one key block  (backward, step 2)
//   dq:       dq = scale · dS·k                   over one query block (backward, step 3)
// with P = exp(scale · q·kᵀ − lse) recomputed tile by tile and dS = P ⊙ (dOut·vᵀ − Δ).
//
// Layouts (row-major, f32 unless noted): q, out, dOut, dq (B·T, Hq·D); k, v, dk, dv (B·T, Hkv·D);
// segments i32 (B·T); lse (B, Hq, T); stats (B, Hq, T, 2); prefix keys/values and their gradients
// (P, Hkv·D). Query head h uses kv head h / (Hq / Hkv).
// Masking: query t attends key t' of the same batch row iff t' ≤ t and segments agree; a token
// whose segment is negative is padding (never a key; its out, lse and gradients are 0). Every
// non-padding query also attends the P prefix keys, which take part in the same softmax.
//
// Work split: a workgroup owns R rows (queries in forward and dq, keys in dkdv) of one head and
// streams tiles of S rows of the other side. LANES threads share an owned row; thread `lane` holds
// columns lane, lane + LANES, … (CPT of them) of that row's accumulators, and computes the scores
// of streamed rows lane, lane + LANES, …. Tiles use row stride DMAX (a power of two ≥ D, with
// DMAX = CPT · LANES), zero-filled past D. Each output element is written by exactly one thread:
// no atomics, so results are deterministic. dkdv and dq run once over the causal keys (mode 0)
// and once over the prefix keys (mode 1); a mode-1 dkdv workgroup sums over the whole batch, and
// the mode-1 dq pass adds into the dq of the mode-0 pass.
// Workgroups are numbered w = wg.x + wg.y · nwg.x (the grid may be folded into 2-D).

struct Params {
  B: u32,
  T: u32,
  Hq: u32,
  Hkv: u32,
  D: u32,
  P: u32,
  // dkdv, dq: 0 = the causal keys k, v; 1 = the prefix keys.
  mode: u32,
  // dq: add into dq instead of overwriting it.
  accumulate: u32,
  // Workgroups (or, in stats, threads) that have work.
  count: u32,
  scale: f32,
  _pad0: u32,
  _pad1: u32,
}

override DMAX: u32 = 16u;
override LANES: u32 = 2u;
override R: u32 = 16u;
override S: u32 = 16u;
override WG: u32 = R * LANES;

const CPT: u32 = 8u;
// Score of a masked pair, and the running max before any key: exp(MASKED − m) is exactly 0 for
// every reachable m, and exp(NEG_INIT − m) is 0 once a real score has been seen.
const MASKED: f32 = -2e30;
const NEG_INIT: f32 = -1e30;
// Position of a key slot past the end of its source: visible to no query.
const FAR: i32 = 0x7fffffff;

var<workgroup> ownA: array<f32, R * DMAX>;
var<workgroup> ownB: array<f32, R * DMAX>;
var<workgroup> strA: array<f32, S * DMAX>;
var<workgroup> strB: array<f32, S * DMAX>;
var<workgroup> tileA: array<f32, R * S>;
var<workgroup> tileB: array<f32, R * S>;
var<workgroup> strPos: array<i32, S>;
var<workgroup> strSeg: array<i32, S>;
var<workgroup> strLse: array<f32, S>;
var<workgroup> strDelta: array<f32, S>;

// Query at position qPos with segment qSeg (negative: padding or no query) sees the key at kPos
// with segment kSeg (kPos −1: a prefix key; FAR: no key).
fn visible(qPos: i32, qSeg: i32, kPos: i32, kSeg: i32) -> bool {
  return qSeg >= 0 && kPos <= qPos && (kPos < 0 || kSeg == qSeg);
}

// ---------------------------------------------------------------------------------------------
// forward: one workgroup per (batch row b, query block of R, query head h).

@group(0) @binding(0) var<storage, read> fq: array<f32>;
@group(0) @binding(1) var<storage, read> fk: array<f32>;
@group(0) @binding(2) var<storage, read> fv: array<f32>;
@group(0) @binding(3) var<storage, read> fpk: array<f32>;
@group(0) @binding(4) var<storage, read> fpv: array<f32>;
@group(0) @binding(5) var<storage, read> fseg: array<i32>;
@group(0) @binding(6) var<storage, read_write> fout: array<f32>;
@group(0) @binding(7) var<storage, read_write> flse: array<f32>;
@group(0) @binding(8) var<uniform> fp: Params;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wg.x + wg.y * nwg.x;
  if (w >= fp.count) {
    return;
  }
  let T = fp.T;
  let D = fp.D;
  let h = w % fp.Hq;
  let bq = w / fp.Hq;
  let nqb = (T + R - 1u) / R;
  let b = bq / nqb;
  let q0 = (bq % nqb) * R;
  let g = h / (fp.Hq / fp.Hkv);
  let qStride = fp.Hq * D;
  let kStride = fp.Hkv * D;
  let r = li / LANES;
  let lane = li % LANES;

  for (var i = li; i < R * DMAX; i += WG) {
    let t = q0 + i / DMAX;
    let c = i % DMAX;
    var x = 0.0;
    if (t < T && c < D) {
      x = fq[(b * T + t) * qStride + h * D + c];
    }
    ownA[i] = x;
  }
  let tq = q0 + r;
  var qSeg = -1;
  if (tq < T) {
    qSeg = fseg[b * T + tq];
  }
  let qPos = i32(tq);

  var m = NEG_INIT;
  var l = 0.0;
  var acc: array<f32, CPT>;
  // Keys in order: the P prefix keys, then positions 0 .. min(T, q0 + R) − 1 of row b.
  let nKeys = fp.P + min(T, q0 + R);
  for (var e0 = 0u; e0 < nKeys; e0 += S) {
    workgroupBarrier();
    for (var i = li; i < S * DMAX; i += WG) {
      let e = e0 + i / DMAX;
      let c = i % DMAX;
      var kx = 0.0;
      var vx = 0.0;
      if (e < nKeys && c < D) {
        if (e < fp.P) {
          let o = e * kStride + g * D + c;
          kx = fpk[o];
          vx = fpv[o];
        } else {
          let o = (b * T + e - fp.P) * kStride + g * D + c;
          kx = fk[o];
          vx = fv[o];
        }
      }
      strA[i] = kx;
      strB[i] = vx;
    }
    for (var s = li; s < S; s += WG) {
      let e = e0 + s;
      var pos = FAR;
      var seg = -1;
      if (e < fp.P) {
        pos = -1;
      } else if (e < nKeys) {
        pos = i32(e - fp.P);
        seg = fseg[b * T + e - fp.P];
      }
      strPos[s] = pos;
      strSeg[s] = seg;
    }
    workgroupBarrier();

    for (var s = lane; s < S; s += LANES) {
      var x = MASKED;
      if (visible(qPos, qSeg, strPos[s], strSeg[s])) {
        var d = 0.0;
        for (var c = 0u; c < D; c++) {
          d = fma(ownA[r * DMAX + c], strA[s * DMAX + c], d);
        }
        x = fp.scale * d;
      }
      tileA[r * S + s] = x;
    }
    workgroupBarrier();

    // Online softmax: rescale what was accumulated to the new running max, then add this tile.
    var mt = m;
    for (var s = 0u; s < S; s++) {
      mt = max(mt, tileA[r * S + s]);
    }
    let alpha = exp(m - mt);
    l *= alpha;
    for (var k = 0u; k < CPT; k++) {
      acc[k] *= alpha;
    }
    for (var s = 0u; s < S; s++) {
      let pr = exp(tileA[r * S + s] - mt);
      l += pr;
      for (var k = 0u; k < CPT; k++) {
        acc[k] = fma(pr, strB[s * DMAX + lane + k * LANES], acc[k]);
      }
    }
    m = mt;
  }

  if (tq < T) {
    // l is 0 only for padding rows, whose output and lse are 0.
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let o = (b * T + tq) * qStride + h * D;
    for (var k = 0u; k < CPT; k++) {
      let c = lane + k * LANES;
      if (c < D) {
        fout[o + c] = acc[k] * inv;
      }
    }
    if (lane == 0u) {
      flse[(b * fp.Hq + h) * T + tq] = select(0.0, m + log(l), l > 0.0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// stats: one thread per (b, h, t): stats = (lse, rowsum(dOut ⊙ out)).

@group(0) @binding(0) var<storage, read> sout: array<f32>;
@group(0) @binding(1) var<storage, read> sdout: array<f32>;
@group(0) @binding(2) var<storage, read> slse: array<f32>;
@group(0) @binding(3) var<storage, read_write> sstats: array<f32>;
@group(0) @binding(4) var<uniform> sp: Params;

@compute @workgroup_size(64)
fn stats(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * 64u + li;
  if (i >= sp.count) {
    return;
  }
  let t = i % sp.T;
  let h = (i / sp.T) % sp.Hq;
  let b = i / (sp.T * sp.Hq);
  let o = (b * sp.T + t) * sp.Hq * sp.D + h * sp.D;
  var d = 0.0;
  for (var c = 0u; c < sp.D; c++) {
    d = fma(sdout[o + c], sout[o + c], d);
  }
  sstats[2u * i] = slse[i];
  sstats[2u * i + 1u] = d;
}

// ---------------------------------------------------------------------------------------------
// dkdv: one workgroup per (key block of R, kv head g): mode 0, the keys at positions k0 .. k0+R−1
// of batch row b, over the queries k0 .. T−1 of row b; mode 1, prefix keys k0 .. k0+R−1, over all
// queries of every batch row. Either way over the Hq/Hkv query heads of group g.

@group(0) @binding(0) var<storage, read> kq: array<f32>;
@group(0) @binding(1) var<storage, read> kdout: array<f32>;
@group(0) @binding(2) var<storage, read> kstats: array<f32>;
@group(0) @binding(3) var<storage, read> kseg: array<i32>;
@group(0) @binding(4) var<storage, read> kkeys: array<f32>;
@group(0) @binding(5) var<storage, read> kvals: array<f32>;
@group(0) @binding(6) var<storage, read_write> kdk: array<f32>;
@group(0) @binding(7) var<storage, read_write> kdv: array<f32>;
@group(0) @binding(8) var<uniform> kp: Params;

@compute @workgroup_size(WG)
fn dkdv(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wg.x + wg.y * nwg.x;
  if (w >= kp.count) {
    return;
  }
  let T = kp.T;
  let D = kp.D;
  let G = kp.Hq / kp.Hkv;
  let g = w % kp.Hkv;
  let blk = w / kp.Hkv;
  let qStride = kp.Hq * D;
  let kStride = kp.Hkv * D;
  let prefix = kp.mode == 1u;
  // Owned key rows: k0 + i for i < R, valid below nOwn; source row rowBase + k0 + i.
  var k0: u32;
  var nOwn: u32;
  var rowBase: u32;
  var b0: u32;
  var b1: u32;
  var t0Start: u32;
  if (prefix) {
    k0 = blk * R;
    nOwn = kp.P;
    rowBase = 0u;
    b0 = 0u;
    b1 = kp.B;
    t0Start = 0u;
  } else {
    let nkb = (T + R - 1u) / R;
    k0 = (blk % nkb) * R;
    nOwn = T;
    b0 = blk / nkb;
    b1 = b0 + 1u;
    rowBase = b0 * T;
    t0Start = k0;
  }
  let r = li / LANES;
  let lane = li % LANES;

  for (var i = li; i < R * DMAX; i += WG) {
    let kr = k0 + i / DMAX;
    let c = i % DMAX;
    var kx = 0.0;
    var vx = 0.0;
    if (kr < nOwn && c < D) {
      let o = (rowBase + kr) * kStride + g * D + c;
      kx = kkeys[o];
      vx = kvals[o];
    }
    ownA[i] = kx;
    ownB[i] = vx;
  }
  let kr = k0 + r;
  var kPos = FAR;
  var kSeg = -1;
  if (kr < nOwn) {
    if (prefix) {
      kPos = -1;
    } else {
      kPos = i32(kr);
      kSeg = kseg[rowBase + kr];
    }
  }

  var dk: array<f32, CPT>;
  var dv: array<f32, CPT>;
  for (var b = b0; b < b1; b++) {
    for (var hh = 0u; hh < G; hh++) {
      let h = g * G + hh;
      for (var t0 = t0Start; t0 < T; t0 += S) {
        workgroupBarrier();
        for (var i = li; i < S * DMAX; i += WG) {
          let t = t0 + i / DMAX;
          let c = i % DMAX;
          var qx = 0.0;
          var gx = 0.0;
          if (t < T && c < D) {
            let o = (b * T + t) * qStride + h * D + c;
            qx = kq[o];
            gx = kdout[o];
          }
          strA[i] = qx;
          strB[i] = gx;
        }
        for (var s = li; s < S; s += WG) {
          let t = t0 + s;
          var seg = -1;
          var lse = 0.0;
          var delta = 0.0;
          if (t < T) {
            seg = kseg[b * T + t];
            let st = 2u * ((b * kp.Hq + h) * T + t);
            lse = kstats[st];
            delta = kstats[st + 1u];
          }
          strPos[s] = i32(t);
          strSeg[s] = seg;
          strLse[s] = lse;
          strDelta[s] = delta;
        }
        workgroupBarrier();

        for (var s = lane; s < S; s += LANES) {
          var pr = 0.0;
          var ds = 0.0;
          if (visible(strPos[s], strSeg[s], kPos, kSeg)) {
            var qkd = 0.0;
            var dp = 0.0;
            for (var c = 0u; c < D; c++) {
              qkd = fma(ownA[r * DMAX + c], strA[s * DMAX + c], qkd);
              dp = fma(ownB[r * DMAX + c], strB[s * DMAX + c], dp);
            }
            pr = exp(kp.scale * qkd - strLse[s]);
            ds = pr * (dp - strDelta[s]);
          }
          tileA[r * S + s] = pr;
          tileB[r * S + s] = ds;
        }
        workgroupBarrier();

        for (var s = 0u; s < S; s++) {
          let pr = tileA[r * S + s];
          let ds = tileB[r * S + s];
          for (var k = 0u; k < CPT; k++) {
            let c = lane + k * LANES;
            dv[k] = fma(pr, strB[s * DMAX + c], dv[k]);
            dk[k] = fma(ds, strA[s * DMAX + c], dk[k]);
          }
        }
      }
    }
  }

  if (kr < nOwn) {
    let o = (rowBase + kr) * kStride + g * D;
    for (var k = 0u; k < CPT; k++) {
      let c = lane + k * LANES;
      if (c < D) {
        kdk[o + c] = kp.scale * dk[k];
        kdv[o + c] = dv[k];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// dq: one workgroup per (batch row b, query block of R, query head h), over the causal keys
// 0 .. min(T, q0 + R) − 1 of row b (mode 0) or the P prefix keys (mode 1).

@group(0) @binding(0) var<storage, read> qq: array<f32>;
@group(0) @binding(1) var<storage, read> qdout: array<f32>;
@group(0) @binding(2) var<storage, read> qstats: array<f32>;
@group(0) @binding(3) var<storage, read> qseg: array<i32>;
@group(0) @binding(4) var<storage, read> qkeys: array<f32>;
@group(0) @binding(5) var<storage, read> qvals: array<f32>;
@group(0) @binding(6) var<storage, read_write> qdq: array<f32>;
@group(0) @binding(7) var<uniform> qp: Params;

@compute @workgroup_size(WG)
fn dq(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wg.x + wg.y * nwg.x;
  if (w >= qp.count) {
    return;
  }
  let T = qp.T;
  let D = qp.D;
  let h = w % qp.Hq;
  let bq = w / qp.Hq;
  let nqb = (T + R - 1u) / R;
  let b = bq / nqb;
  let q0 = (bq % nqb) * R;
  let g = h / (qp.Hq / qp.Hkv);
  let qStride = qp.Hq * D;
  let kStride = qp.Hkv * D;
  let prefix = qp.mode == 1u;
  let r = li / LANES;
  let lane = li % LANES;

  for (var i = li; i < R * DMAX; i += WG) {
    let t = q0 + i / DMAX;
    let c = i % DMAX;
    var qx = 0.0;
    var gx = 0.0;
    if (t < T && c < D) {
      let o = (b * T + t) * qStride + h * D + c;
      qx = qq[o];
      gx = qdout[o];
    }
    ownA[i] = qx;
    ownB[i] = gx;
  }
  let tq = q0 + r;
  var qSeg = -1;
  var lse = 0.0;
  var delta = 0.0;
  if (tq < T) {
    qSeg = qseg[b * T + tq];
    let st = 2u * ((b * qp.Hq + h) * T + tq);
    lse = qstats[st];
    delta = qstats[st + 1u];
  }
  let qPos = i32(tq);

  var nKeys: u32;
  var rowBase: u32;
  if (prefix) {
    nKeys = qp.P;
    rowBase = 0u;
  } else {
    nKeys = min(T, q0 + R);
    rowBase = b * T;
  }

  var acc: array<f32, CPT>;
  for (var e0 = 0u; e0 < nKeys; e0 += S) {
    workgroupBarrier();
    for (var i = li; i < S * DMAX; i += WG) {
      let e = e0 + i / DMAX;
      let c = i % DMAX;
      var kx = 0.0;
      var vx = 0.0;
      if (e < nKeys && c < D) {
        let o = (rowBase + e) * kStride + g * D + c;
        kx = qkeys[o];
        vx = qvals[o];
      }
      strA[i] = kx;
      strB[i] = vx;
    }
    for (var s = li; s < S; s += WG) {
      let e = e0 + s;
      var pos = FAR;
      var seg = -1;
      if (e < nKeys) {
        if (prefix) {
          pos = -1;
        } else {
          pos = i32(e);
          seg = qseg[rowBase + e];
        }
      }
      strPos[s] = pos;
      strSeg[s] = seg;
    }
    workgroupBarrier();

    for (var s = lane; s < S; s += LANES) {
      var ds = 0.0;
      if (visible(qPos, qSeg, strPos[s], strSeg[s])) {
        var qkd = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < D; c++) {
          qkd = fma(ownA[r * DMAX + c], strA[s * DMAX + c], qkd);
          dp = fma(ownB[r * DMAX + c], strB[s * DMAX + c], dp);
        }
        let pr = exp(qp.scale * qkd - lse);
        ds = pr * (dp - delta);
      }
      tileA[r * S + s] = ds;
    }
    workgroupBarrier();

    for (var s = 0u; s < S; s++) {
      let ds = tileA[r * S + s];
      for (var k = 0u; k < CPT; k++) {
        acc[k] = fma(ds, strA[s * DMAX + lane + k * LANES], acc[k]);
      }
    }
  }

  if (tq < T) {
    let o = (b * T + tq) * qStride + h * D;
    for (var k = 0u; k < CPT; k++) {
      let c = lane + k * LANES;
      if (c < D) {
        var x = qp.scale * acc[k];
        if (qp.accumulate != 0u) {
          x += qdq[o + c];
        }
        qdq[o + c] = x;
      }
    }
  }
}
