import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { relL2 } from './compare.ts';
import { centralDiff } from './finite-diff.ts';
import { rope, ropeBackward, ropeInvFreq } from './rope.ts';

describe('reference rope', () => {
  it('rotates pair (i, i + D/2) by position · inv_freq[i]', () => {
    // D = 4: pairs (0, 2) and (1, 3). Angle 1·0.5 for the first pair, 0 for the second.
    // (1, 2) by 0.5 rad: (cos .5 − 2 sin .5, 2 cos .5 + sin .5) = (−0.0812685153, 2.2345906624).
    const out = rope([1, 5, 2, 7], [1], [0.5, 0], 1, 1);
    expect(out[0]).toBeCloseTo(-0.0812685153, 9);
    expect(out[1]).toBe(5);
    expect(out[2]).toBeCloseTo(2.2345906624, 9);
    expect(out[3]).toBe(7);
    // Two heads of one token share the angle; position 0 leaves x unchanged.
    expect([...rope([1, 2, 3, 4], [0], [0.7], 1, 2)]).toEqual([1, 2, 3, 4]);
  });

  it('backward agrees with central finite differences and undoes the forward', () => {
    const rng = new Rng(11);
    const [N, H, half] = [5, 3, 4];
    const x = Float64Array.from(rng.fill(N * H * 2 * half, (r) => r.normal()));
    const dy = Float64Array.from(rng.fill(x.length, (r) => r.normal()));
    const positions = [0, 1, 2, 0, 700];
    const inv = ropeInvFreq(2 * half, 10000);
    const loss = () => {
      const y = rope(x, positions, inv, N, H);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * dy[i];
      return s;
    };
    const g = centralDiff(x, loss);
    expect(relL2(ropeBackward(dy, positions, inv, N, H), g)).toBeLessThan(1e-8);
    expect(relL2(ropeBackward(rope(x, positions, inv, N, H), positions, inv, N, H), x)).toBeLessThan(1e-14);
  });
});

describe('ropeInvFreq', () => {
  it('computes 1 / theta^(2i/D)', () => {
    const inv = ropeInvFreq(8, 10000);
    expect([...inv]).toEqual([1, Math.fround(0.1), Math.fround(0.01), Math.fround(0.001)]);
  });

  it('llama3 scaling, hand-computed: keeps high, divides low, blends medium frequencies', () => {
    // D = 8, theta = 1e4: inv = [1, 0.1, 0.01, 0.001], wavelengths 2π/inv = [6.28, 62.8, 628.3, 6283].
    // original 1024, low 1, high 4: wavelength < 256 kept, > 1024 divided by factor 8, between blended:
    // smooth = (1024 / (200π) − 1) / 3 = 0.2099155, 0.01 · ((1 − smooth)/8 + smooth) = 0.00308676097.
    const inv = ropeInvFreq(8, 10000, { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 1024 });
    const want = [1, 0.1, 0.00308676097, 0.000125];
    for (let i = 0; i < 4; i++) expect(Math.abs(inv[i] - want[i]) / want[i], `i=${i}`).toBeLessThan(2e-7);
  });

  it('matches transformers bit for bit on the Llama 3.1 configuration', () => {
    // head_dim 128, rope_theta 5e5, factor 8, low 1, high 4, original 8192. Values printed by
    // transformers' _compute_llama3_parameters (float32): 0 and 20 kept, 30 blended, 45, 50, 63 divided.
    const inv = ropeInvFreq(128, 500000, { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(inv.length).toBe(64);
    expect(inv[0]).toBe(1);
    expect(inv[20]).toBe(0.016560440883040428);
    expect(inv[30]).toBe(0.0013718936825171113);
    expect(inv[41]).toBe(0.000027925909307668917);
    expect(inv[45]).toBe(0.000012297638932068367);
    expect(inv[50]).toBe(0.000004411534519022098);
    expect(inv[63]).toBe(3.068925877869333e-7);
  });

  it('accepts the old `type` key and rejects unsupported scalings and bad sizes', () => {
    const scaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 1024 };
    expect(ropeInvFreq(8, 10000, { type: 'llama3', ...scaling })).toEqual(ropeInvFreq(8, 10000, { rope_type: 'llama3', ...scaling }));
    expect(ropeInvFreq(8, 10000, { rope_type: 'default' })).toEqual(ropeInvFreq(8, 10000));
    expect(() => ropeInvFreq(8, 10000, { rope_type: 'yarn', factor: 4 })).toThrowError(/"yarn" is not supported/);
    expect(() => ropeInvFreq(7, 10000)).toThrowError(/even integer/);
    expect(() => ropeInvFreq(8, 10000, { rope_type: 'llama3', factor: 8 })).toThrowError(/needs factor/);
  });
});
