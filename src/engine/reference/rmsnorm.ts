// Float64 reference of the rmsnorm family (shaders/rmsnorm.wgsl): Hugging Face LlamaRMSNorm over
// rows of C elements, forward and backward. Plain loops; the oracle the kernel is tested against.

/** y = x · rstd · w per row of x (rows, C), with rstd = 1 / sqrt(mean(x²) + eps). */
export function rmsnorm(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, C: number, eps: number): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(rows * C);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[r * C + c] * x[r * C + c];
    const s = 1 / Math.sqrt(ss / C + eps);
    rstd[r] = s;
    for (let c = 0; c < C; c++) y[r * C + c] = x[r * C + c] * s * w[c];
  }
  return { y, rstd };
}

/** dx (rows, C) and dw (C) of rmsnorm given dy; rstd is recomputed from x. */
export function rmsnormBackward(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  rows: number,
  C: number,
  eps: number,
): { dx: Float64Array; dw: Float64Array } {
  const { rstd } = rmsnorm(x, w, rows, C, eps);
  const dx = new Float64Array(rows * C);
  const dw = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const s = rstd[r];
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dy[r * C + c] * w[c] * x[r * C + c];
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      dx[i] = s * (w[c] * dy[i] - (x[i] * s * s * dot) / C);
      dw[c] += dy[i] * x[i] * s;
    }
  }
  return { dx, dw };
}
