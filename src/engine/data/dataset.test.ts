// Tests of prepareDataset end to end on generated files: examples equal to tokenizing each row on
// its own, statistics (rows, tokens, counted tokens, histogram, truncation, duplicates), bad rows
// stopping the import with their lines or skipped and counted, seeded splits, a validation file,
// packing, CSV with a column mapping, Parquet, several files, progress and cancellation.
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { CancelledError, DatasetFormatError, DatasetRowsError, InvalidArgumentError } from '../errors.ts';
import { type ByteSource, memorySource } from '../io/source.ts';
import { type PreparedDataset, prepareDataset, type PrepareDatasetOptions, type PrepareProgress } from './dataset.ts';
import { tinyChatmlTokenizer } from './fixtures/tokenizers.ts';
import { detectFormat, normalizeRow } from './formats.ts';
import { createExampleTokenizer, IGNORE_INDEX } from './tokenize.ts';

const tok = tinyChatmlTokenizer();
const enc = new TextEncoder();
const jsonl = (rows: unknown[], name = 'train.jsonl'): ByteSource => memorySource(enc.encode(rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n'), name);
const base = (o: Partial<PrepareDatasetOptions> = {}): PrepareDatasetOptions => ({ tokenizer: tok, maxLength: 512, seed: 1, ...o });

const ALPACA = [
  { instruction: 'What is the capital of France?', input: '', output: 'The capital of France is Paris.' },
  { instruction: 'Translate to English.', input: 'Bonjour', output: 'Hello' },
  { instruction: 'How many days are there in a week?', output: 'There are seven days in a week.' },
  { instruction: 'What is the capital of France?', input: '', output: 'The capital of France is Paris.' },
];

/** What tokenizing one row on its own gives. */
function alone(row: Record<string, unknown>, trainOnPrompt = false) {
  const norm = normalizeRow(row, detectFormat([row]));
  if (!norm.ok) throw new Error(norm.problem.message);
  return createExampleTokenizer(tok, { trainOnPrompt }).tokenize(norm.example);
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the import to fail');
}

describe('prepareDataset', () => {
  it('tokenizes every row as it would be alone and counts what it did', async () => {
    const out = await prepareDataset(jsonl(ALPACA), base());
    expect(out.train.length).toBe(4);
    expect(out.validation).toEqual([]);
    const expected = ALPACA.map((r) => alone(r));
    out.train.forEach((ex, i) => {
      expect(Array.from(ex.inputIds)).toEqual(Array.from(expected[i].inputIds));
      expect(Array.from(ex.labels)).toEqual(Array.from(expected[i].labels));
      expect(ex.segments).toBeUndefined();
    });
    const lengths = expected.map((e) => e.inputIds.length);
    const counted = expected.reduce((n, e) => n + e.labels.slice(1).filter((l) => l !== IGNORE_INDEX).length, 0);
    const s = out.stats;
    expect(s).toMatchObject({
      format: 'alpaca',
      columns: { instruction: 'instruction', output: 'output', input: 'input' },
      files: [{ name: 'train.jsonl', rows: 4, split: 'train' }],
      rows: 4,
      examples: 4,
      trainExamples: 4,
      validationExamples: 0,
      tokens: lengths.reduce((a, b) => a + b, 0),
      countedTokens: counted,
      shortestExample: Math.min(...lengths),
      longestExample: Math.max(...lengths),
      truncatedRows: 0,
      duplicateRows: 1,
      noCountedTokenRows: 0,
      skippedRows: 0,
      errors: [],
      packing: null,
      offsetFallbacks: 0,
      warnings: [],
    });
    expect(s.meanLength).toBeCloseTo(lengths.reduce((a, b) => a + b, 0) / 4, 10);
    expect(s.lengthHistogram.length).toBe(16);
    expect(s.lengthHistogram[0]).toEqual({ from: 1, to: 32, count: lengths.filter((n) => n <= 32).length });
    expect(s.lengthHistogram.at(-1)).toMatchObject({ from: 481, to: 512 });
    expect(s.lengthHistogram.reduce((n, b) => n + b.count, 0)).toBe(4);
    // The counted tokens decode to each answer and its <|im_end|>.
    const first = out.train[0];
    const kept = Array.from(first.labels).filter((l) => l !== IGNORE_INDEX);
    expect(tok.decode(kept)).toBe('The capital of France is Paris.<|im_end|>');
  });

  it('truncates to maxLength, counts it, and leaves out examples with nothing left to learn', async () => {
    const rows = [
      { instruction: 'Hi', output: 'Hello.' },
      { instruction: 'Say something long.', output: 'A '.repeat(40) + 'end.' },
      { instruction: 'x'.repeat(200), output: 'Cut off.' },
    ];
    const full = rows.map((r) => alone(r).inputIds.length);
    const maxLength = 40;
    expect(full[0]).toBeLessThanOrEqual(maxLength);
    expect(full[1]).toBeGreaterThan(maxLength);
    const out = await prepareDataset(jsonl(rows), base({ maxLength }));
    expect(out.train.length).toBe(2);
    expect(out.train[1].inputIds.length).toBe(maxLength);
    expect(Array.from(out.train[1].inputIds)).toEqual(Array.from(alone(rows[1]).inputIds.slice(0, maxLength)));
    expect(out.stats).toMatchObject({ truncatedRows: 2, noCountedTokenRows: 1, examples: 2, longestExample: full[1] });
    expect(out.stats.lengthHistogram.at(-1)).toEqual({ from: 41, to: full[1], count: 1 });
    expect(out.stats.warnings).toEqual([
      '2 examples are longer than 40 tokens and were cut to it.',
      '1 example had no token left to learn after truncation and was left out.',
    ]);
  });

  it('stops with the list of bad rows, each with its line and what was expected', async () => {
    const lines = [
      ALPACA[0],
      '{"instruction": "broken",',
      ALPACA[1],
      { instruction: 'No answer' },
      { instruction: 'Number', output: 42 },
      ALPACA[2],
    ];
    const err = await failure(prepareDataset(jsonl(lines), base()));
    expect(err).toBeInstanceOf(DatasetRowsError);
    const rowsErr = err as InstanceType<typeof DatasetRowsError>;
    expect(rowsErr.total).toBe(3);
    expect(rowsErr.rows.map((r) => [r.line, r.rowIndex])).toEqual([
      [2, 1],
      [4, 3],
      [5, 4],
    ]);
    expect(rowsErr.rows[0]).toMatchObject({ file: 'train.jsonl', expected: 'one JSON object per line' });
    expect(rowsErr.rows[1]).toEqual({
      file: 'train.jsonl',
      line: 4,
      rowIndex: 3,
      message: 'column "output" holds nothing (the column is missing)',
      expected: 'a string (the answer to learn)',
    });
    expect(rowsErr.rows[2].message).toBe('column "output" holds number 42');
    expect(err.message).toMatch(/^train\.jsonl:2: 3 rows are not usable: train\.jsonl line 2: invalid JSON/);
    expect(err.message).toContain('train.jsonl line 4: column "output" holds nothing (the column is missing) (expected a string (the answer to learn))');
    expect(JSON.parse(JSON.stringify(err))).toMatchObject({ name: 'DatasetRowsError', total: 3, rows: [{ line: 2 }, { line: 4 }, { line: 5 }] });
  });

  it('skips bad rows with skipBadRows and counts them', async () => {
    const lines = [ALPACA[0], 'nope', ALPACA[1], { conversations: [] }, ALPACA[2]];
    const out = await prepareDataset(jsonl(lines), base({ skipBadRows: true }));
    expect(out.train.length).toBe(3);
    expect(out.stats).toMatchObject({ rows: 5, examples: 3, skippedRows: 2 });
    expect(out.stats.errors.map((e) => e.line)).toEqual([2, 4]);
    expect(out.stats.warnings).toContain('2 bad rows were skipped.');
  });

  it('stops early once maxReportedErrors rows are bad', async () => {
    const lines = [ALPACA[0], ...Array.from({ length: 50 }, () => ({ instruction: 'x' }))];
    const err = (await failure(prepareDataset(jsonl(lines), base({ maxReportedErrors: 3 })))) as InstanceType<typeof DatasetRowsError>;
    expect(err).toBeInstanceOf(DatasetRowsError);
    expect(err.total).toBe(3);
    expect(err.message).toMatch(/at least 3 rows are not usable \(reading stopped at line 4 of train\.jsonl\)/);
  });

  it('reports rows the chat template rejects', async () => {
    const strict = { ...tok, chatTemplate: "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" + tok.chatTemplate };
    const rows = [
      { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] },
      { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] },
    ];
    const out = await prepareDataset(jsonl(rows), base({ tokenizer: strict, skipBadRows: true }));
    expect(out.stats.examples).toBe(1);
    expect(out.stats.errors).toEqual([
      {
        file: 'train.jsonl',
        line: 2,
        rowIndex: 1,
        message: expect.stringMatching(/the chat template rejected the conversation: System role not supported/),
        expected: 'a conversation the chat template accepts (roles, their order, a leading system message)',
      },
    ]);
  });

  it('splits train and validation with a seed', async () => {
    const rows = Array.from({ length: 20 }, (_, i) => ({ instruction: `Question ${i}?`, output: `Answer ${i}.` }));
    const answers = (p: PreparedDataset['train']) => p.map((e) => tok.decode(Array.from(e.labels).filter((l) => l !== IGNORE_INDEX)));
    const a = await prepareDataset(jsonl(rows), base({ valFraction: 0.25, seed: 7 }));
    const b = await prepareDataset(jsonl(rows), base({ valFraction: 0.25, seed: 7 }));
    const c = await prepareDataset(jsonl(rows), base({ valFraction: 0.25, seed: 8 }));
    expect(a.validation.length).toBe(5);
    expect(a.train.length).toBe(15);
    expect(answers(b.validation)).toEqual(answers(a.validation));
    expect(answers(c.validation)).not.toEqual(answers(a.validation));
    const all = [...answers(a.train), ...answers(a.validation)].sort();
    expect(all).toEqual(rows.map((r) => `${r.output}<|im_end|>`).sort());
    // Each split keeps file order.
    const order = (xs: string[]) => xs.map((x) => Number(/Answer (\d+)/.exec(x)![1]));
    const trainOrder = order(answers(a.train));
    expect([...trainOrder].sort((x, y) => x - y)).toEqual(trainOrder);
    expect(a.stats).toMatchObject({ trainExamples: 15, validationExamples: 5 });
  });

  it('reads a separate validation file', async () => {
    const out = await prepareDataset(jsonl(ALPACA.slice(0, 3)), base({ valSource: jsonl([ALPACA[2]], 'val.jsonl') }));
    expect(out.train.length).toBe(3);
    expect(out.validation.length).toBe(1);
    expect(out.stats.files).toEqual([
      { name: 'train.jsonl', bytes: expect.any(Number), rows: 3, split: 'train' },
      { name: 'val.jsonl', bytes: expect.any(Number), rows: 1, split: 'validation' },
    ]);
    await expect(prepareDataset(jsonl(ALPACA), base({ valSource: jsonl(ALPACA), valFraction: 0.1 }))).rejects.toThrow(InvalidArgumentError);
  });

  it('packs examples with segments and positions and keeps every token', async () => {
    const rows = Array.from({ length: 12 }, (_, i) => ({ instruction: `Say ${'a '.repeat(i)}`, output: `Done ${i}.` }));
    const plain = await prepareDataset(jsonl(rows), base({ maxLength: 128 }));
    const packed = await prepareDataset(jsonl(rows), base({ maxLength: 128, packing: true }));
    expect(packed.train.length).toBeLessThan(plain.train.length);
    const tokens = packed.train.reduce((n, s) => n + s.inputIds.length, 0);
    expect(tokens).toBe(plain.stats.tokens);
    for (const s of packed.train) {
      expect(s.inputIds.length).toBeLessThanOrEqual(128);
      expect(s.segments!.length).toBe(s.inputIds.length);
      for (let t = 0; t < s.inputIds.length; t++) {
        const startsExample = t === 0 || s.segments![t] !== s.segments![t - 1];
        expect(s.positions![t]).toBe(startsExample ? 0 : s.positions![t - 1] + 1);
      }
    }
    expect(packed.stats.packing).toEqual({ trainSequences: packed.train.length, validationSequences: 0, fill: tokens / (packed.train.length * 128) });
  });

  it('reads CSV with a column mapping', async () => {
    const csv = 'question,answer\n"Why is the sky blue?","Because of Rayleigh scattering."\nWhat is 2+2?,4\n';
    const out = await prepareDataset(memorySource(enc.encode(csv), 'qa.csv'), base({ mapping: { instruction: 'question', output: 'answer' } }));
    expect(out.stats).toMatchObject({ format: 'alpaca', columns: { instruction: 'question', output: 'answer' }, examples: 2 });
    const answers = out.train.map((e) => tok.decode(Array.from(e.labels).filter((l) => l !== IGNORE_INDEX)));
    expect(answers).toEqual(['Because of Rayleigh scattering.<|im_end|>', '4<|im_end|>']);
  });

  it('reads Parquet and several files of one format', async () => {
    const pq = new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'text', data: ['The sun rose.', 'The river runs.', 'Tea is warm.'], type: 'STRING' }], rowGroupSize: 2 }));
    const out = await prepareDataset([memorySource(pq, 'a.parquet'), jsonl([{ text: 'One more.' }], 'b.jsonl')], base());
    expect(out.stats).toMatchObject({ format: 'text', rows: 4, examples: 4 });
    expect(tok.decode(Array.from(out.train[0].inputIds))).toBe('The sun rose.<|im_end|>');
    expect(Array.from(out.train[3].labels)).toEqual(Array.from(out.train[3].inputIds));
  });

  it('warns when the model has no chat template', async () => {
    const out = await prepareDataset(jsonl(ALPACA.slice(0, 1)), base({ tokenizer: tinyChatmlTokenizer(false) }));
    expect(out.stats.warnings).toEqual(['This model has no chat template; conversations are formatted as ChatML (<|im_start|>role ... <|im_end|>).']);
  });

  it('reports progress over all files and stops when cancelled', async () => {
    const a = jsonl(ALPACA, 'a.jsonl');
    const b = jsonl(ALPACA, 'b.jsonl');
    const progress: PrepareProgress[] = [];
    await prepareDataset([a, b], base({ read: { chunkBytes: 64 }, onProgress: (p) => progress.push(p) }));
    expect(progress.at(-1)).toMatchObject({ file: 'b.jsonl', bytesRead: a.size + b.size, totalBytes: a.size + b.size });
    expect(progress.some((p) => p.file === 'a.jsonl')).toBe(true);
    const controller = new AbortController();
    controller.abort();
    await expect(prepareDataset(a, base({ signal: controller.signal }))).rejects.toThrow(CancelledError);
  });

  it('refuses bad options and datasets with nothing usable', async () => {
    await expect(prepareDataset(jsonl(ALPACA), base({ maxLength: 1 }))).rejects.toThrow(InvalidArgumentError);
    await expect(prepareDataset(jsonl(ALPACA), base({ valFraction: 1 }))).rejects.toThrow(InvalidArgumentError);
    await expect(prepareDataset(jsonl(ALPACA), base({ seed: 0.5 }))).rejects.toThrow(InvalidArgumentError);
    await expect(prepareDataset([], base())).rejects.toThrow(/no dataset file/);
    await expect(prepareDataset(jsonl([{ foo: 1 }]), base())).rejects.toThrow(DatasetFormatError);
    await expect(prepareDataset(jsonl([{ instruction: 'x', output: '' }]), base({ skipBadRows: true }))).rejects.toThrow(/no usable training example is left \(1 bad row skipped/);
    await expect(prepareDataset(jsonl([ALPACA[0]]), base({ valFraction: 0.5 }))).rejects.toThrow(/at least 2 examples/);
  });
});
