// Embedding lookup and its gradient, f32. The table (V, C) may be split across buffers by rows; each
// dispatch binds one buffer holding table rows [rowStart, rowStart + rows).
//   forward:   out[n, c] = table[ids[n], c] for ids[n] in this buffer's rows; when zeroInvalid is set
//              (the dispatch of the first table buffer), out[n, c] = 0 for ids outside [0, V). So
//              every output element is written by exactly one dispatch and no read is out of bounds.
//   backward:  for each unique id u of a CSR grouping (uniq ascending; tokens[starts[u] .. starts[u+1]]
//              the token positions with that id, ascending):
//              dtable[id, c] += Σ dy[t, c] over those tokens t in [tokStart, tokStart + tokCount)
//              (accumulated). One workgroup per unique id, summing in token order: deterministic,
//              no atomics.
// Layouts: ids i32 (count) from element offIds; out (count, C) from element offOut; dy rows of tokens
// [tokStart, tokStart + tokCount) from element offDy; uniq, starts, tokens i32. Indices are folded into
// 2-D: wg.x + wg.y · nwg.x.

struct Fwd {
  total: u32,
  C: u32,
  offIds: u32,
  offOut: u32,
  rowStart: u32,
  rows: u32,
  V: u32,
  zeroInvalid: u32,
}

struct Bwd {
  C: u32,
  uBase: u32,
  uCount: u32,
  tokStart: u32,
  tokCount: u32,
  offDy: u32,
  rowStart: u32,
  _pad: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> fp: Fwd;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = (wg.x + wg.y * nwg.x) * WG + li;
  if (t >= fp.total) {
    return;
  }
  let n = t / fp.C;
  let c = t % fp.C;
  let id = ids[fp.offIds + n];
  if (id >= i32(fp.rowStart) && id < i32(fp.rowStart + fp.rows)) {
    out[fp.offOut + t] = table[(u32(id) - fp.rowStart) * fp.C + c];
  } else if (fp.zeroInvalid != 0u && (id < 0 || id >= i32(fp.V))) {
    out[fp.offOut + t] = 0.0;
  }
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> uniq: array<i32>;
@group(0) @binding(2) var<storage, read> starts: array<i32>;
@group(0) @binding(3) var<storage, read> tokens: array<i32>;
@group(0) @binding(4) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(5) var<uniform> bp: Bwd;

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wg.x + wg.y * nwg.x;
  if (w >= bp.uCount) {
    return;
  }
  let u = bp.uBase + w;
  let row = (u32(uniq[u]) - bp.rowStart) * bp.C;
  let k0 = u32(starts[u]);
  let k1 = u32(starts[u + 1u]);
  for (var c = li; c < bp.C; c += WG) {
    var acc = 0.0;
    var hit = false;
    for (var k = k0; k < k1; k++) {
      let tok = u32(tokens[k]);
      if (tok >= bp.tokStart && tok < bp.tokStart + bp.tokCount) {
        acc += dy[bp.offDy + (tok - bp.tokStart) * bp.C + c];
        hit = true;
      }
    }
    if (hit) {
      dtable[row + c] = dtable[row + c] + acc;
    }
  }
}
