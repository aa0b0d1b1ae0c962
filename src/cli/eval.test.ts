// The eval command's JSONL rows: text and input_ids rows, and every kind of bad row reported as a
// typed error with its file and line.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DatasetFormatError, DatasetRowsError, FileReadError } from '../engine/errors.ts';
import { type EvalRowContext, parseEvalRow, readEvalRows } from './eval.ts';

const ctx: EvalRowContext = { file: 'data.jsonl', vocabSize: 50, contextLength: 8, encode: (text) => [...text].map((ch) => ch.charCodeAt(0) % 50) };

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('eval JSONL rows', () => {
  it('reads text rows (every token counted), input_ids rows with and without labels, and skips blank lines', () => {
    expect(parseEvalRow('{"text": "abc"}', 1, 0, ctx)).toEqual({ inputIds: [47, 48, 49], labels: null });
    expect(parseEvalRow('{"input_ids": [1, 2, 3]}', 2, 1, ctx)).toEqual({ inputIds: [1, 2, 3], labels: null });
    expect(parseEvalRow('{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}', 3, 2, ctx)).toEqual({ inputIds: [1, 2, 3], labels: [-100, 2, 3] });
    expect(parseEvalRow('   ', 4, 3, ctx)).toBeNull();
  });

  it('reports bad rows with the file and line', () => {
    const cases: [string, RegExp][] = [
      ['[1, 2]', /JSON object/],
      ['{"foo": 1}', /Expected "text" or "input_ids"; the row has "foo"/],
      ['{"text": 5}', /"text" must be a string/],
      ['{"text": ""}', /encodes to no tokens/],
      ['{"text": "a", "input_ids": [1]}', /both "text" and "input_ids"/],
      ['{"input_ids": []}', /"input_ids" is empty/],
      ['{"input_ids": [1, 2.5]}', /"input_ids"\[1\] is 2.5/],
      ['{"input_ids": [1, 50]}', /"input_ids"\[1\] is 50; expected a token id from 0 to 49/],
      ['{"input_ids": [1, 2], "labels": [1]}', /"labels" has 1 entries but "input_ids" has 2/],
      ['{"input_ids": [1, 2], "labels": [1, -1]}', /"labels"\[1\] is -1; expected -100 or a token id/],
      ['{"input_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9]}', /9 tokens, more than the model's context length of 8/],
    ];
    for (const [line, message] of cases) {
      const e = errorOf(() => parseEvalRow(line, 7, 5, ctx));
      expect(e, line).toBeInstanceOf(DatasetRowsError);
      expect(e.message, line).toMatch(/^data\.jsonl:7: /);
      expect(e.message, line).toMatch(message);
      const rows = (e as InstanceType<typeof DatasetRowsError>).rows;
      expect(rows[0]).toMatchObject({ file: 'data.jsonl', line: 7, rowIndex: 5 });
    }
    const notJson = errorOf(() => parseEvalRow('{"text": "a"', 2, 1, ctx));
    expect(notJson).toBeInstanceOf(DatasetFormatError);
    expect(notJson.message).toMatch(/^data\.jsonl:2: The line is not valid JSON/);
    const noTokenizer = errorOf(() => parseEvalRow('{"text": "a"}', 3, 2, { ...ctx, encode: null }));
    expect(noTokenizer.message).toMatch(/needs the model's tokenizer/);
  });

  it('reads a file line by line and names the line of the first bad row', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'whetstone-eval-'));
    try {
      const file = join(dir, 'rows.jsonl');
      await writeFile(file, '{"input_ids": [1, 2]}\n\n{"text": "hi"}\r\n{"input_ids": [3], "labels": [4, 5]}\n');
      const e = await readEvalRows(file, ctx).catch((err: unknown) => err as Error);
      expect(e).toBeInstanceOf(DatasetRowsError);
      expect((e as Error).message).toContain(`${file}:4: `);
      expect((e as InstanceType<typeof DatasetRowsError>).rows[0].rowIndex).toBe(2);
      await writeFile(file, '{"input_ids": [1, 2]}\n\n{"text": "hi"}\r\n');
      expect(await readEvalRows(file, ctx)).toHaveLength(2);
      await expect(readEvalRows(join(dir, 'missing.jsonl'), ctx)).rejects.toBeInstanceOf(FileReadError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
