import { describe, expect, it } from 'vitest';
import { GpuUnavailableError, ShapeError, WhetstoneError, describeError } from './errors.ts';
import { Rng } from './random.ts';

describe('typed errors', () => {
  it('have stable names, default hints and locations', () => {
    const e = new GpuUnavailableError('no adapter');
    expect(e).toBeInstanceOf(WhetstoneError);
    expect(e.name).toBe('GpuUnavailableError');
    expect(e.hint).toMatch(/chromium/);
    const s = new ShapeError('bad shape', { file: 'model.safetensors', byteOffset: 8 });
    expect(s.message).toBe('model.safetensors (byte 8): bad shape');
    expect(describeError(s)).toMatchObject({ name: 'ShapeError', byteOffset: 8 });
    expect(JSON.parse(JSON.stringify(s))).toMatchObject({ name: 'ShapeError', file: 'model.safetensors' });
  });

  it('describes foreign errors too', () => {
    expect(describeError(new TypeError('x'))).toEqual({ name: 'TypeError', message: 'x' });
    expect(describeError('boom')).toEqual({ name: 'Error', message: 'boom' });
  });
});

describe('Rng', () => {
  it('repeats for a seed and differs across seeds', () => {
    const a = new Rng(42).fill(5);
    expect(new Rng(42).fill(5)).toEqual(a);
    expect(new Rng(43).fill(5)).not.toEqual(a);
  });

  it('draws normals with mean ≈ 0 and variance ≈ 1', () => {
    const r = new Rng(7);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      s += v;
      s2 += v * v;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
  });
});
