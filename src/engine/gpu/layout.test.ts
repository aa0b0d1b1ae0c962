import { describe, expect, it } from 'vitest';
import { ShapeError } from '../errors.ts';
import { formatBytes, sizeClass } from './allocator.ts';
import { fold } from './batch.ts';
import { planChunks } from './tensor.ts';

describe('planChunks', () => {
  it('keeps a tensor that fits in one chunk', () => {
    expect(planChunks([10, 10], 'f32', 1024)).toEqual([{ rowStart: 0, rows: 10 }]);
  });

  it('splits by whole rows and covers every row once', () => {
    const ranges = planChunks([100, 30], 'f32', 1000); // 120-byte rows, 8 per chunk
    expect(ranges[0]).toEqual({ rowStart: 0, rows: 8 });
    expect(ranges.reduce((n, r) => n + r.rows, 0)).toBe(100);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i].rowStart).toBe(ranges[i - 1].rowStart + ranges[i - 1].rows);
  });

  it('keeps chunks word-aligned for 2-byte and 1-byte types', () => {
    for (const r of planChunks([99, 3], 'f16', 70)) expect((r.rows * 6) % 4 === 0 || r.rowStart + r.rows === 99).toBe(true);
    for (const r of planChunks([50, 1], 'u8', 10)) expect(r.rows % 4 === 0 || r.rowStart + r.rows === 50).toBe(true);
  });

  it('refuses a row larger than a binding with a ShapeError', () => {
    expect(() => planChunks([2, 1000], 'f32', 1024)).toThrow(ShapeError);
  });
});

describe('sizeClass', () => {
  it('rounds up to 256 bytes and then to quarter-power-of-two steps', () => {
    expect(sizeClass(1)).toBe(256);
    expect(sizeClass(256)).toBe(256);
    expect(sizeClass(257)).toBe(512);
    expect(sizeClass(4096)).toBe(4096);
    expect(sizeClass(4097)).toBe(5120);
    for (const n of [1000, 12345, 1 << 20, 3_000_001]) {
      expect(sizeClass(n)).toBeGreaterThanOrEqual(n);
      expect(sizeClass(n)).toBeLessThanOrEqual(Math.max(256, n * 1.25 + 256));
    }
  });
});

describe('fold', () => {
  it('folds a long 1-D grid into two dimensions that cover it', () => {
    expect(fold(100, 65535)).toEqual([100, 1, 1]);
    const [x, y] = fold(200_000, 65535);
    expect(x).toBeLessThanOrEqual(65535);
    expect(x * y).toBeGreaterThanOrEqual(200_000);
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(128 * 1024 * 1024)).toBe('128 MiB');
  });
});
