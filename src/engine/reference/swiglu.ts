// Float64 reference of the swiglu family (shaders/swiglu.wgsl): out = silu(gate) · up, elementwise,
// and its backward. Plain loops.

function sigmoid(g: number): number {
  return 1 / (1 + Math.exp(-g));
}

/** out = silu(gate) · up = gate · σ(gate) · up. */
export function swiglu(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
  return out;
}

/** dgate = dout · up · σ(g)(1 + g(1 − σ(g))), dup = dout · silu(g). */
export function swigluBackward(gate: ArrayLike<number>, up: ArrayLike<number>, dout: ArrayLike<number>): { dgate: Float64Array; dup: Float64Array } {
  const dgate = new Float64Array(gate.length);
  const dup = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i];
    const s = sigmoid(g);
    dgate[i] = dout[i] * up[i] * s * (1 + g * (1 - s));
    dup[i] = dout[i] * g * s;
  }
  return { dgate, dup };
}
