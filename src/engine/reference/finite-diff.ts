// Central finite differences: the check every float64 backward in reference/ is held to.

/**
 * d loss / d v[i] ≈ (loss(v + h·eᵢ) − loss(v − h·eᵢ)) / 2h for every entry of `v` (or those in
 * `indices`), perturbing `v` in place and restoring it.
 */
export function centralDiff(v: Float64Array, loss: () => number, h = 1e-6, indices?: Iterable<number>): Float64Array {
  const g = new Float64Array(v.length);
  for (const i of indices ?? v.keys()) {
    const old = v[i];
    v[i] = old + h;
    const up = loss();
    v[i] = old - h;
    const down = loss();
    v[i] = old;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}
