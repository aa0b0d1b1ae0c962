// Next-token choice: greedy ties, the temperature / top-k / top-p distribution against hand-computed
// values, reproducible seeded draws whose frequencies follow the distribution, and argument checks.

import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { argmax, checkSampling, sampleToken, samplingDistribution } from './sampling.ts';

const softmax = (z: number[]) => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe('sampling', () => {
  it('greedy picks the first of equal maxima and ignores NaN', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(argmax([NaN, -1, -2])).toBe(1);
    expect(sampleToken(Float32Array.of(0.5, 2, 1), { temperature: 0, topK: 1 }, new Rng(1))).toBe(1);
  });

  it('applies temperature, then top-k (keeping ties), then top-p as Hugging Face does', () => {
    const z = [2, 1, 1, 0, -1];
    const t = samplingDistribution(z, { temperature: 2 });
    const want = softmax(z.map((v) => v / 2));
    t.forEach((p, i) => expect(p).toBeCloseTo(want[i], 12));

    // top-k 2: the 2nd largest is 1, tied with index 2, so three tokens stay.
    const k = samplingDistribution(z, { temperature: 1, topK: 2 });
    const kw = softmax([2, 1, 1]);
    expect([...k].slice(0, 3).map((v) => +v.toFixed(12))).toEqual(kw.map((v) => +v.toFixed(12)));
    expect(k[3]).toBe(0);
    expect(k[4]).toBe(0);

    // top-p: probabilities ~ [0.60, 0.22, 0.08, 0.06, 0.03] of z2; p = 0.8 keeps the two largest
    // (ascending cumulative 0.03, 0.09, 0.17 ≤ 0.2 are dropped).
    const z2 = [3, 2, 1, 0.7, 0];
    const full = softmax(z2);
    const p = samplingDistribution(z2, { temperature: 1, topP: 0.8 });
    const kept = full[0] + full[1];
    expect(p[0]).toBeCloseTo(full[0] / kept, 12);
    expect(p[1]).toBeCloseTo(full[1] / kept, 12);
    expect(p[2] + p[3] + p[4]).toBe(0);
    // A tiny top-p keeps only the most likely token.
    expect([...samplingDistribution(z2, { temperature: 1, topP: 1e-6 })]).toEqual([1, 0, 0, 0, 0]);
  });

  it('draws reproducibly from a seed, with frequencies that follow the distribution', () => {
    const z = Float32Array.of(1, 0.5, 0, -0.5, 3, 2);
    const opts = { temperature: 0.9, topK: 4, topP: 0.97 };
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 20 }, () => sampleToken(z, opts, rng));
    };
    expect(draw(3)).toEqual(draw(3));
    expect(draw(3)).not.toEqual(draw(4));
    const probs = samplingDistribution(z, opts);
    const counts = new Array(z.length).fill(0);
    const rng = new Rng(9);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampleToken(z, opts, rng)]++;
    counts.forEach((c, i) => {
      if (probs[i] === 0) expect(c, `token ${i}`).toBe(0);
      else expect(Math.abs(c / n - probs[i]), `token ${i}`).toBeLessThan(4 * Math.sqrt((probs[i] * (1 - probs[i])) / n) + 1e-3);
    });
  });

  it('refuses settings out of range', () => {
    expect(() => checkSampling({ temperature: -1 })).toThrowError(/temperature/);
    expect(() => checkSampling({ topK: 1.5 })).toThrowError(/top-k/);
    expect(() => checkSampling({ topP: 0 })).toThrowError(/top-p/);
    expect(() => checkSampling({ topP: 1.2 })).toThrowError(/top-p/);
    expect(() => samplingDistribution([1, 2], { temperature: 0 })).toThrowError(/positive temperature/);
  });
});
