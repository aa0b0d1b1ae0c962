// Deterministic test values shared with scripts/bnb_reference.py (make_input), reproduced bit for bit:
// a 31-bit LCG, the sum of four 24-bit uniforms minus 2, times 0.05, every 7th value times 9, rounded
// once to float32, and an optional run of zeros. For tests and fixtures only.

export function lcgValues(seed: number, n: number, zeroBlock: readonly [number, number] | null = null): Float32Array {
  let state = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < 4; j++) {
      state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff;
      s += (state >>> 7) / 2 ** 24;
    }
    let v = (s - 2) * 0.05;
    if (i % 7 === 0) v *= 9;
    out[i] = v;
  }
  if (zeroBlock) out.fill(0, zeroBlock[0], zeroBlock[0] + zeroBlock[1]);
  return out;
}
