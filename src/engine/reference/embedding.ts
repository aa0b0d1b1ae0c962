// Float64 reference of the embedding family (shaders/embedding.wgsl): row gather from a (V, C) table
// and the scatter-add of its gradient. Plain loops.

/** out (N, C): row ids[n] of table (V, C); rows for ids outside [0, V) are zeros. */
export function embedding(table: ArrayLike<number>, ids: ArrayLike<number>, V: number, C: number): Float64Array {
  const out = new Float64Array(ids.length * C);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id < 0 || id >= V) continue;
    for (let c = 0; c < C; c++) out[n * C + c] = table[id * C + c];
  }
  return out;
}

/** dtable (V, C) with dtable[ids[n]] += dy[n] for every token n, in token order. */
export function embeddingBackward(ids: ArrayLike<number>, dy: ArrayLike<number>, V: number, C: number): Float64Array {
  const dtable = new Float64Array(V * C);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    for (let c = 0; c < C; c++) dtable[id * C + c] += dy[n * C + c];
  }
  return dtable;
}
