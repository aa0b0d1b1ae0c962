// Tests of readFileRows: rows of a dataset file on disk by path, the file closed however the
// iteration ends, and a typed error for a missing file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileReadError } from '../errors.ts';
import { readFileRows } from './readers-node.ts';

const dir = mkdtempSync(join(tmpdir(), 'whetstone-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readFileRows', () => {
  it('reads a file by path, detecting its format from the name', async () => {
    const path = join(dir, 'train.csv');
    writeFileSync(path, 'instruction,output\nHi,Hello\nBye,Goodbye\n');
    const rows = [];
    for await (const r of readFileRows(path)) rows.push(r);
    expect(rows).toEqual([
      { row: { instruction: 'Hi', output: 'Hello' }, line: 2, rowIndex: 0 },
      { row: { instruction: 'Bye', output: 'Goodbye' }, line: 3, rowIndex: 1 },
    ]);
  });

  it('stops early without error and can read the file again', async () => {
    const path = join(dir, 'many.jsonl');
    writeFileSync(path, Array.from({ length: 1000 }, (_, i) => JSON.stringify({ i })).join('\n'));
    for (let pass = 0; pass < 3; pass++) {
      let n = 0;
      for await (const r of readFileRows(path, { chunkBytes: 128 })) {
        expect(r.row.i).toBe(n);
        if (++n === 5) break;
      }
      expect(n).toBe(5);
    }
  });

  it('names a missing file', async () => {
    const path = join(dir, 'missing.jsonl');
    await expect(readFileRows(path).next()).rejects.toThrow(FileReadError);
    await expect(readFileRows(path).next()).rejects.toThrow(/missing\.jsonl: The file does not exist/);
  });
});
