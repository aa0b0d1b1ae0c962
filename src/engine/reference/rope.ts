// Float64 reference of the rope family (shaders/rope.wgsl): rotary position embeddings in the
// Hugging Face rotate-half convention, forward and backward, plus ropeInvFreq, the CPU computation of
// the inverse frequencies (rope_theta, llama3 rope_scaling) that the kernel and the model upload.
//
// Hugging Face computes the angle position · inv_freq in float32, so the reference rounds that one
// product to f32 (Math.fround) and evaluates cos and sin of it in float64; everything else is float64.

import { InvalidArgumentError } from '../errors.ts';

/** The `rope_scaling` object of a Hugging Face config.json (only the fields rope reads). */
export interface RopeScaling {
  rope_type?: string;
  /** Older configs spell `rope_type` as `type`. */
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

const f = Math.fround;

/**
 * The inverse frequencies (headDim / 2 values, float32) that transformers computes for rope:
 * `_compute_default_rope_parameters` (1 / theta^(2i / headDim)), then, for `rope_type: "llama3"`,
 * `_compute_llama3_parameters`: wavelengths longer than original_max_position_embeddings /
 * low_freq_factor are divided by `factor`, shorter than original_max_position_embeddings /
 * high_freq_factor are kept, and those between are blended with a smooth factor. Every operation is
 * rounded to float32 in the order PyTorch evaluates it (`scalar / tensor` is PyTorch's reciprocal
 * times scalar), so the values match transformers bit for bit.
 */
export function ropeInvFreq(headDim: number, theta: number, scaling?: RopeScaling | null): Float32Array {
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new InvalidArgumentError(`Rotary head dimension must be an even integer ≥ 2; got ${headDim}.`);
  }
  if (!(theta > 0)) throw new InvalidArgumentError(`rope_theta must be positive; got ${theta}.`);
  const half = headDim / 2;
  const inv = new Float32Array(half);
  const base = f(theta);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(Math.pow(base, f(f(2 * i) / headDim))));

  const type = scaling?.rope_type ?? scaling?.type ?? 'default';
  if (!scaling || type === 'default') return inv;
  if (type !== 'llama3') {
    throw new InvalidArgumentError(`rope_scaling of type "${type}" is not supported; supported: default, llama3.`);
  }
  const { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: oldLen } = scaling;
  if (factor === undefined || low === undefined || high === undefined || oldLen === undefined) {
    throw new InvalidArgumentError(
      'llama3 rope_scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings.',
    );
  }
  if (!(high > low)) throw new InvalidArgumentError(`llama3 rope_scaling needs high_freq_factor > low_freq_factor; got ${high} and ${low}.`);
  const lowWavelen = f(oldLen / low);
  const highWavelen = f(oldLen / high);
  const twoPi = f(2 * Math.PI);
  const span = f(high - low);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const wavelen = f(f(1 / inv[i]) * twoPi);
    const scaled = wavelen > lowWavelen ? f(inv[i] / factor) : inv[i];
    if (wavelen < highWavelen || wavelen > lowWavelen) {
      out[i] = scaled;
      continue;
    }
    const smooth = f(f(f(f(1 / wavelen) * oldLen) - low) / span);
    out[i] = f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
  }
  return out;
}

/**
 * Rotates x (N, H, D) per token n by the angles θ_i = fround(positions[n] · invFreq[i]), i < D/2:
 * out[i] = x[i]·cos θ_i − x[i + D/2]·sin θ_i, out[i + D/2] = x[i + D/2]·cos θ_i + x[i]·sin θ_i.
 * `sign` −1 rotates by −θ, which is the backward pass (dx from dy).
 */
export function rope(x: ArrayLike<number>, positions: ArrayLike<number>, invFreq: ArrayLike<number>, N: number, H: number, sign = 1): Float64Array {
  const half = invFreq.length;
  const D = 2 * half;
  const out = new Float64Array(N * H * D);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[n] * invFreq[i]);
      const c = Math.cos(angle);
      const s = sign * Math.sin(angle);
      for (let h = 0; h < H; h++) {
        const b = (n * H + h) * D;
        const x1 = x[b + i];
        const x2 = x[b + i + half];
        out[b + i] = x1 * c - x2 * s;
        out[b + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/** dx of rope given dy: the rotation by the negative angles. */
export function ropeBackward(dy: ArrayLike<number>, positions: ArrayLike<number>, invFreq: ArrayLike<number>, N: number, H: number): Float64Array {
  return rope(dy, positions, invFreq, N, H, -1);
}
