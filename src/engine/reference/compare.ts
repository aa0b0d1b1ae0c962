// How kernels are judged against the float64 reference: relative L2 error and friends.

/** ‖got − want‖₂ / ‖want‖₂ (absolute L2 when want is all zeros). NaN anywhere gives Infinity. */
export function relL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`relL2: length ${got.length} vs ${want.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (!Number.isFinite(g) || !Number.isFinite(w)) return Infinity;
    num += (g - w) * (g - w);
    den += w * w;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Largest |got − want|; NaN anywhere gives Infinity. */
export function maxAbsDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`maxAbsDiff: length ${got.length} vs ${want.length}`);
  let m = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!Number.isFinite(d)) return Infinity;
    if (d > m) m = d;
  }
  return m;
}
