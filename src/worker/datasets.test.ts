// The worker's dataset import with the demo model's tokenizer: detection, statistics, the token
// preview with counted tokens, overrides and column mapping, and bad rows with line numbers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import type { Tokenizer } from '../engine/model/tokenizer.ts';
import { loadFolderTokenizer } from '../engine/model/tokenizer-folder.ts';
import { type DatasetImportOptions, importDataset } from './datasets.ts';

const ROOT = join(import.meta.dirname, '../..');
let tokenizer: Tokenizer;
beforeAll(async () => {
  tokenizer = await loadFolderTokenizer(await openModelDirectory(join(ROOT, 'public/models/demo')));
});

const file = (name: string, text: string) => new File([text], name);
const run = (f: File, options: DatasetImportOptions = {}) =>
  importDataset(f, options, { tokenizer: async () => ({ tokenizer, name: 'demo' }), signal: new AbortController().signal });

describe('importDataset', () => {
  it('imports the sample dataset: Alpaca, statistics, and a preview with counted and context tokens', async () => {
    const r = await run(file('alpaca-facts.jsonl', readFileSync(join(ROOT, 'public/datasets/alpaca-facts.jsonl'), 'utf8')));
    expect(r.error).toBeNull();
    expect(r.inspection).toMatchObject({ fileFormat: 'jsonl', detectedFileFormat: 'jsonl', columns: ['instruction', 'input', 'output'], detectedFormat: 'alpaca' });
    expect(r.stats).toMatchObject({ format: 'alpaca', rows: 50, examples: 50, truncatedRows: 0 });
    expect(r.stats!.countedTokens).toBeGreaterThan(0);
    expect(r.stats!.countedTokens).toBeLessThan(r.stats!.tokens);
    expect(r.stats!.lengthHistogram.reduce((n, b) => n + b.count, 0)).toBe(50);
    expect(r.preview).toHaveLength(4);
    const ex = r.preview[0];
    expect(ex.pieces.map((p) => p.text).join('')).toContain('What is the boiling point of water at sea level?');
    const counted = ex.pieces.filter((p) => p.counted).map((p) => p.text).join('');
    expect(counted).toContain('Water boils at 100 degrees Celsius');
    expect(counted).not.toContain('boiling point');
    expect(ex.pieces.filter((p) => p.counted).reduce((n, p) => n + p.ids.length, 0)).toBe(ex.countedTokens);
    expect(ex.pieces.some((p) => p.special && p.text === '<|im_start|>')).toBe(true);
  });

  it('reports bad rows with their line numbers, or skips and lists them', async () => {
    const text = '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n{"instruction": "broken", \n{"instruction": "e"}\n';
    const r = await run(file('broken.jsonl', text));
    expect(r.stats).toBeNull();
    expect(r.error?.name).toBe('DatasetRowsError');
    expect(r.error?.total).toBe(2);
    expect((r.error?.rows as { line: number }[]).map((x) => x.line)).toEqual([3, 4]);
    const skipped = await run(file('broken.jsonl', text), { skipBadRows: true });
    expect(skipped.error).toBeNull();
    expect(skipped.stats).toMatchObject({ rows: 4, examples: 2, skippedRows: 2 });
    expect(skipped.stats!.errors.map((e) => e.line)).toEqual([3, 4]);
  });

  it('applies the column mapping and the format override', async () => {
    const csv = 'question,answer\nWhat is two plus two?,Four.\nName a colour.,Blue.\n';
    const unmapped = await run(file('qa.csv', csv));
    expect(unmapped.inspection?.columns).toEqual(['question', 'answer']);
    expect(unmapped.inspection?.detection).toBeNull();
    expect(unmapped.error?.name).toBe('DatasetFormatError');
    const mapped = await run(file('qa.csv', csv), { format: 'alpaca', mapping: { instruction: 'question', output: 'answer' } });
    expect(mapped.error).toBeNull();
    expect(mapped.stats).toMatchObject({ format: 'alpaca', examples: 2, columns: { instruction: 'question', output: 'answer' } });
    const asText = await run(file('qa.csv', csv), { fileFormat: 'text' });
    expect(asText.inspection).toMatchObject({ fileFormat: 'text', detectedFileFormat: 'csv' });
    expect(asText.stats).toMatchObject({ format: 'text', examples: 1 });
  });
});
