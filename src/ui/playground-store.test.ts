// The Playground store's pure helpers: reading the settings fields, applying streamed deltas to the
// columns, and the figures and strength as shown.
import { describe, expect, it } from 'vitest';
import { type ColumnView, DEFAULT_FIELDS, applyDeltas, columnFigures, formatStrength, readSettings } from './playground-store.ts';

describe('readSettings', () => {
  it('reads valid fields as numbers', () => {
    expect(readSettings({ ...DEFAULT_FIELDS, maxNewTokens: '8', temperature: '0.7', topP: '0.9', topK: '40', seed: '12', chat: true })).toEqual({
      ok: true,
      value: { maxNewTokens: 8, temperature: 0.7, topP: 0.9, topK: 40, seed: 12, chat: true },
    });
  });

  it('names the first bad field and what it expects', () => {
    const problem = (patch: Partial<typeof DEFAULT_FIELDS>) => {
      const r = readSettings({ ...DEFAULT_FIELDS, ...patch });
      return r.ok ? null : r.problem;
    };
    expect(problem({ maxNewTokens: '' })).toBe('Max new tokens must be a whole number of tokens from 1 to 4096; it is "".');
    expect(problem({ maxNewTokens: '1.5' })).toMatch(/^Max new tokens/);
    expect(problem({ maxNewTokens: '5000' })).toMatch(/^Max new tokens/);
    expect(problem({ temperature: '-0.1' })).toMatch(/^Temperature must be a number ≥ 0/);
    expect(problem({ topP: '0' })).toMatch(/^Top-p must be a probability in \(0, 1\]/);
    expect(problem({ topP: '1.2' })).toMatch(/^Top-p/);
    expect(problem({ topK: '-1' })).toMatch(/^Top-k/);
    expect(problem({ seed: 'abc' })).toMatch(/^Seed must be a whole number/);
  });
});

describe('columns', () => {
  it('appends streamed text and takes the latest totals', () => {
    const empty: ColumnView = { text: '', tokens: 0, seconds: 0, done: false, finishReason: null };
    let cols: { base: ColumnView; tuned: ColumnView | null } = { base: empty, tuned: empty };
    cols = applyDeltas(cols, [
      { column: 'base', text: 'Hel', tokens: 2, seconds: 0.5, done: false },
      { column: 'tuned', text: 'Yo', tokens: 1, seconds: 0.5, done: false },
    ]);
    cols = applyDeltas(cols, [{ column: 'base', text: 'lo', tokens: 3, seconds: 1, done: true }]);
    expect(cols.base).toEqual({ text: 'Hello', tokens: 3, seconds: 1, done: true, finishReason: null });
    expect(cols.tuned).toEqual({ text: 'Yo', tokens: 1, seconds: 0.5, done: false, finishReason: null });
  });

  it('shows figures and strength with units', () => {
    expect(columnFigures({ tokens: 0, seconds: 0 })).toBe('0 tokens');
    expect(columnFigures({ tokens: 1, seconds: 0 })).toBe('1 token');
    expect(columnFigures({ tokens: 8, seconds: 4 })).toBe('8 tokens · 2.0 tokens/s · 4.0 s');
    expect(formatStrength(1)).toBe('1.00×');
    expect(formatStrength(0.05)).toBe('0.05×');
  });
});
