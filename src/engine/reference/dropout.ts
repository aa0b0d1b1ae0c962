// Float64 reference of the dropout family (shaders/dropout.wgsl): the keep mask from the same
// stateless u32 hash as the shader (bit for bit), and inverted dropout forward and backward.

/** MurmurHash3's 32-bit finalizer in wrapping u32 arithmetic. */
export function fmix32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The u32 hash of element `index` under `seed`: fmix32(fmix32(seed) ^ (index · 0x9E3779B9)). */
export function dropoutHash(seed: number, index: number): number {
  return fmix32((fmix32(seed) ^ Math.imul(index >>> 0, 0x9e3779b9)) >>> 0);
}

/** The u32 threshold for drop probability p in [0, 1): elements whose hash is below it are dropped. */
export function dropoutThreshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** 1 where element i of n is kept, 0 where dropped. */
export function dropoutMask(seed: number, n: number, p: number): Uint8Array {
  const threshold = dropoutThreshold(p);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = dropoutHash(seed, i) >= threshold ? 1 : 0;
  return mask;
}

/** y = x / (1 − p) where kept, 0 where dropped. */
export function dropout(x: ArrayLike<number>, seed: number, p: number): Float64Array {
  const mask = dropoutMask(seed, x.length, p);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = mask[i] ? x[i] / (1 - p) : 0;
  return y;
}

/** dx = dy / (1 − p) where kept, 0 where dropped: the same mask, replayed from the seed. */
export function dropoutBackward(dy: ArrayLike<number>, seed: number, p: number): Float64Array {
  return dropout(dy, seed, p);
}
