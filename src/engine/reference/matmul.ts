// Float64 reference of the matmul family (shaders/matmul.wgsl): the oracle its kernel is tested
// against, and the building block of the other references. Plain loops, no speed tricks.

export interface MatmulDims {
  M: number;
  N: number;
  K: number;
  /** A stored (K, M) instead of (M, K). */
  transA?: boolean;
  /** B stored (N, K) instead of (K, N). */
  transB?: boolean;
  /** Number of independent products; B with batchB = 1 is shared by all of them. */
  batch?: number;
  batchB?: number;
  alpha?: number;
}

/** C = alpha · op(A) · op(B) for each batch; returns C of shape (batch, M, N). */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, d: MatmulDims): Float64Array {
  const { M, N, K } = d;
  const batch = d.batch ?? 1;
  const alpha = d.alpha ?? 1;
  const shareB = (d.batchB ?? batch) === 1;
  const c = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    const oa = t * M * K;
    const ob = shareB ? 0 : t * K * N;
    const oc = t * M * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = d.transA ? a[oa + k * M + m] : a[oa + m * K + k];
          const bv = d.transB ? b[ob + n * K + k] : b[ob + k * N + n];
          s += av * bv;
        }
        c[oc + m * N + n] = alpha * s;
      }
    }
  }
  return c;
}

/**
 * Gradients of y = x · Wᵀ (x: (M, K), W: (N, K), y: (M, N)) given dY:
 * dX = dY · W (M, K) and dW = dYᵀ · x (N, K).
 */
export function linearBackward(x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, M: number, N: number, K: number) {
  return {
    dx: matmul(dy, w, { M, N: K, K: N }),
    dw: matmul(dy, x, { M: N, N: K, K: M, transA: true }),
  };
}
