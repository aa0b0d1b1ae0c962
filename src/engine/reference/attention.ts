// Float64 reference of the attention family (shaders/attention.wgsl): causal self-attention with
// grouped-query heads, segment masking (padding, packed sequences) and optional prefix keys and
// values. Plain softmax over an explicit list of visible keys, row by row; the oracle the tiled
// kernel is tested against, not a fast or memory-efficient implementation.
//
// Layouts (row-major): q (B·T, Hq·D); k, v (B·T, Hkv·D); out (B·T, Hq·D); lse (B, Hq, T);
// segments (B·T); prefixK, prefixV (P, Hkv·D). Query head h uses kv head floor(h / (Hq / Hkv)).
// Query i attends key j of the same batch row iff j ≤ i and segments[j] == segments[i]; a token
// with a negative segment is padding: never a key, and its output row, lse and gradients are 0.
// Every non-padding query also attends all P prefix keys (shared over the batch).

export interface AttentionDims {
  /** Batch rows. */
  B: number;
  /** Tokens per batch row. */
  T: number;
  /** Query heads. */
  Hq: number;
  /** Key/value heads; Hq is a multiple of Hkv. */
  Hkv: number;
  /** Head dimension. */
  D: number;
  /** Prefix keys/values; 0 (the default) when there are none. */
  P?: number;
  /** Score scale; 1/sqrt(D) by default. */
  scale?: number;
}

export interface AttentionForwardResult {
  out: Float64Array; // (B·T, Hq·D)
  lse: Float64Array; // (B, Hq, T)
}

export interface AttentionGradients {
  dq: Float64Array; // (B·T, Hq·D)
  dk: Float64Array; // (B·T, Hkv·D)
  dv: Float64Array; // (B·T, Hkv·D)
  dPrefixK: Float64Array; // (P, Hkv·D)
  dPrefixV: Float64Array; // (P, Hkv·D)
}

interface Key {
  /** Row of the key in its source (prefixK/prefixV when `prefix`, else k/v). */
  row: number;
  prefix: boolean;
}

/** The keys query (b, i) attends, prefix keys first; empty for padding. */
function visibleKeys(segments: ArrayLike<number>, d: AttentionDims, b: number, i: number): Key[] {
  const seg = segments[b * d.T + i];
  if (seg < 0) return [];
  const keys: Key[] = [];
  for (let p = 0; p < (d.P ?? 0); p++) keys.push({ row: p, prefix: true });
  for (let j = 0; j <= i; j++) if (segments[b * d.T + j] === seg) keys.push({ row: b * d.T + j, prefix: false });
  return keys;
}

function check(d: AttentionDims, n: Record<string, [ArrayLike<number> | undefined, number]>): void {
  if (d.Hq % d.Hkv !== 0) throw new Error(`attention reference: Hq=${d.Hq} is not a multiple of Hkv=${d.Hkv}`);
  for (const [name, [a, want]] of Object.entries(n)) {
    if (a !== undefined && a.length !== want) throw new Error(`attention reference: ${name} has ${a.length} values, expected ${want}`);
  }
}

/** Per visible key of query (b, h, i): its probability, with the keys themselves. */
function rowProbabilities(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  pk: ArrayLike<number> | undefined,
  keys: Key[],
  d: AttentionDims,
  b: number,
  h: number,
  i: number,
): { probs: Float64Array; lse: number } {
  const { T, Hq, Hkv, D } = d;
  const scale = d.scale ?? 1 / Math.sqrt(D);
  const g = Math.floor(h / (Hq / Hkv));
  const qo = (b * T + i) * Hq * D + h * D;
  const scores = new Float64Array(keys.length);
  let max = -Infinity;
  keys.forEach((key, j) => {
    const src = key.prefix ? (pk as ArrayLike<number>) : k;
    const ko = key.row * Hkv * D + g * D;
    let s = 0;
    for (let c = 0; c < D; c++) s += q[qo + c] * src[ko + c];
    scores[j] = scale * s;
    if (scores[j] > max) max = scores[j];
  });
  let sum = 0;
  for (let j = 0; j < keys.length; j++) sum += Math.exp(scores[j] - max);
  const probs = new Float64Array(keys.length);
  for (let j = 0; j < keys.length; j++) probs[j] = Math.exp(scores[j] - max) / sum;
  return { probs, lse: max + Math.log(sum) };
}

/** out = softmax(scale · q·kᵀ + mask) · v per query head, and the per-row logsumexp of the scores. */
export function attentionForward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  segments: ArrayLike<number>,
  d: AttentionDims,
  prefixK?: ArrayLike<number>,
  prefixV?: ArrayLike<number>,
): AttentionForwardResult {
  const { B, T, Hq, Hkv, D } = d;
  const P = d.P ?? 0;
  check(d, { q: [q, B * T * Hq * D], k: [k, B * T * Hkv * D], v: [v, B * T * Hkv * D], segments: [segments, B * T], prefixK: [prefixK, P * Hkv * D], prefixV: [prefixV, P * Hkv * D] });
  const out = new Float64Array(B * T * Hq * D);
  const lse = new Float64Array(B * Hq * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const keys = visibleKeys(segments, d, b, i);
      if (keys.length === 0) continue;
      for (let h = 0; h < Hq; h++) {
        const g = Math.floor(h / (Hq / Hkv));
        const { probs, lse: l } = rowProbabilities(q, k, prefixK, keys, d, b, h, i);
        lse[(b * Hq + h) * T + i] = l;
        const oo = (b * T + i) * Hq * D + h * D;
        keys.forEach((key, j) => {
          const src = key.prefix ? (prefixV as ArrayLike<number>) : v;
          const vo = key.row * Hkv * D + g * D;
          for (let c = 0; c < D; c++) out[oo + c] += probs[j] * src[vo + c];
        });
      }
    }
  }
  return { out, lse };
}

/**
 * Gradients of attentionForward given dOut (B·T, Hq·D): dq; dk, dv summed over the query heads that
 * share each kv head; dPrefixK, dPrefixV also summed over the batch.
 */
export function attentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  segments: ArrayLike<number>,
  dOut: ArrayLike<number>,
  d: AttentionDims,
  prefixK?: ArrayLike<number>,
  prefixV?: ArrayLike<number>,
): AttentionGradients {
  const { B, T, Hq, Hkv, D } = d;
  const P = d.P ?? 0;
  check(d, { q: [q, B * T * Hq * D], k: [k, B * T * Hkv * D], v: [v, B * T * Hkv * D], segments: [segments, B * T], dOut: [dOut, B * T * Hq * D], prefixK: [prefixK, P * Hkv * D], prefixV: [prefixV, P * Hkv * D] });
  const scale = d.scale ?? 1 / Math.sqrt(D);
  const g = {
    dq: new Float64Array(B * T * Hq * D),
    dk: new Float64Array(B * T * Hkv * D),
    dv: new Float64Array(B * T * Hkv * D),
    dPrefixK: new Float64Array(P * Hkv * D),
    dPrefixV: new Float64Array(P * Hkv * D),
  };
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const keys = visibleKeys(segments, d, b, i);
      if (keys.length === 0) continue;
      for (let h = 0; h < Hq; h++) {
        const kvh = Math.floor(h / (Hq / Hkv));
        const { probs } = rowProbabilities(q, k, prefixK, keys, d, b, h, i);
        const qo = (b * T + i) * Hq * D + h * D;
        // dP_j = dOut_i · v_j; dS_j = P_j (dP_j − Σ_l P_l dP_l).
        const dP = new Float64Array(keys.length);
        let dot = 0;
        keys.forEach((key, j) => {
          const src = key.prefix ? (prefixV as ArrayLike<number>) : v;
          const vo = key.row * Hkv * D + kvh * D;
          let s = 0;
          for (let c = 0; c < D; c++) s += dOut[qo + c] * src[vo + c];
          dP[j] = s;
          dot += probs[j] * s;
        });
        keys.forEach((key, j) => {
          const dS = probs[j] * (dP[j] - dot);
          const kSrc = key.prefix ? (prefixK as ArrayLike<number>) : k;
          const dkDst = key.prefix ? g.dPrefixK : g.dk;
          const dvDst = key.prefix ? g.dPrefixV : g.dv;
          const ko = key.row * Hkv * D + kvh * D;
          for (let c = 0; c < D; c++) {
            g.dq[qo + c] += scale * dS * kSrc[ko + c];
            dkDst[ko + c] += scale * dS * q[qo + c];
            dvDst[ko + c] += probs[j] * dOut[qo + c];
          }
        });
      }
    }
  }
  return g;
}
