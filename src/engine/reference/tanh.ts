// Float64 reference of the tanh family (shaders/tanh.wgsl): out = tanh(x), elementwise, and its
// backward. Plain loops over Math.tanh.

/** out = tanh(x). */
export function tanh(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.tanh(x[i]);
  return out;
}

/** dx = dout · (1 − tanh²(x)), computed as dout / cosh²(x), which keeps its precision where tanh saturates. */
export function tanhBackward(x: ArrayLike<number>, dout: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.cosh(x[i]);
    dx[i] = dout[i] / (c * c);
  }
  return dx;
}
