// Tests of the dataset readers on small generated files: streamed JSON Lines (chunks smaller than a
// line, CRLF, a BOM, multi-byte characters across chunks, an over-long line that stops the read
// early, invalid JSON at a known line), JSON arrays and wrappers, CSV/TSV (quotes, embedded line
// breaks, sniffed delimiters, bad records), Parquet written with hyparquet-writer (several row
// groups, snappy), plain text by paragraph and by line, format detection and cancellation.
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { type BadRow, CancelledError, DatasetFormatError, InvalidArgumentError } from '../errors.ts';
import { type ByteSource, memorySource } from '../io/source.ts';
import { type DatasetRow, detectFileFormat, formatFromName, type ReadProgress, readRows, type ReadRowsOptions } from './readers.ts';

const enc = new TextEncoder();
const src = (text: string | Uint8Array, name: string): ByteSource => memorySource(typeof text === 'string' ? enc.encode(text) : text, name);

async function collect(source: ByteSource, options: ReadRowsOptions = {}): Promise<DatasetRow[]> {
  const out: DatasetRow[] = [];
  for await (const r of readRows(source, options)) out.push(r);
  return out;
}

async function failure(p: Promise<unknown>): Promise<Error & { line?: number; file?: string; byteOffset?: number }> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the read to fail');
}

/** A source that counts the bytes handed out. */
function countingSource(bytes: Uint8Array, name: string): ByteSource & { served: number } {
  const inner = memorySource(bytes, name);
  const s = {
    name,
    size: bytes.length,
    served: 0,
    async read(offset: number, length: number) {
      s.served += length;
      return inner.read(offset, length);
    },
  };
  return s;
}

describe('JSON Lines', () => {
  it('streams lines across chunk boundaries, with CRLF, a BOM, blank lines and multi-byte characters', async () => {
    const lines = [
      '\uFEFF{"text": "first"}',
      '',
      '{"text": "second, with a longer body that spans several chunks of seven bytes"}',
      '   ',
      '{"text": "emoji 😀 and é across chunks"}',
      '{"text": "last, no line end"}',
    ];
    const body = lines.join('\r\n');
    const progress: ReadProgress[] = [];
    const rows = await collect(src(body, 'd.jsonl'), { chunkBytes: 7, onProgress: (p) => progress.push(p) });
    expect(rows).toEqual([
      { row: { text: 'first' }, line: 1, rowIndex: 0 },
      { row: { text: 'second, with a longer body that spans several chunks of seven bytes' }, line: 3, rowIndex: 1 },
      { row: { text: 'emoji 😀 and é across chunks' }, line: 5, rowIndex: 2 },
      { row: { text: 'last, no line end' }, line: 6, rowIndex: 3 },
    ]);
    const size = enc.encode(body).length;
    expect(progress.length).toBe(Math.ceil(size / 7));
    expect(progress.at(-1)).toEqual({ bytesRead: size, totalBytes: size });
    for (let i = 1; i < progress.length; i++) expect(progress[i].bytesRead).toBeGreaterThan(progress[i - 1].bytesRead);
  });

  it('reads a file many times its chunk size, with a line spanning chunks', async () => {
    const parts: string[] = [];
    for (let i = 0; i < 3000; i++) parts.push(JSON.stringify({ i, text: 'x'.repeat(i % 97) }));
    parts[1500] = JSON.stringify({ i: 1500, text: 'y'.repeat(5000) });
    const bytes = enc.encode(parts.join('\n') + '\n');
    expect(bytes.length).toBeGreaterThan(100 * 1024);
    const rows = await collect(src(bytes, 'big.jsonl'), { chunkBytes: 1024 });
    expect(rows.length).toBe(3000);
    expect(rows[1500]).toEqual({ row: { i: 1500, text: 'y'.repeat(5000) }, line: 1501, rowIndex: 1500 });
    expect(rows[2999]).toMatchObject({ row: { i: 2999 }, line: 3000, rowIndex: 2999 });
    rows.forEach((r, i) => expect(r.row.i).toBe(i));
  });

  it('stops at a line over maxLineBytes without reading the rest of the file', async () => {
    const bytes = enc.encode('{"a": 1}\n{"a": 2}\n{"a": "' + 'z'.repeat(1_000_000) + '"}\n{"a": 4}\n');
    const source = countingSource(bytes, 'huge.jsonl');
    const err = await failure(collect(source, { chunkBytes: 256, maxLineBytes: 1000, format: 'jsonl' }));
    expect(err).toBeInstanceOf(DatasetFormatError);
    expect(err.line).toBe(3);
    expect(err.file).toBe('huge.jsonl');
    expect(err.byteOffset).toBe(18);
    expect(err.message).toMatch(/^huge\.jsonl:3 \(byte 18\): line 3 is longer than 1000 bytes/);
    expect(source.served).toBeLessThan(1600);
  });

  it('accepts a line of exactly maxLineBytes, CR excluded', async () => {
    const line = JSON.stringify({ t: 'a'.repeat(20) });
    const rows = await collect(src(`${line}\r\n${line}`, 'x.jsonl'), { chunkBytes: 5, maxLineBytes: line.length });
    expect(rows.length).toBe(2);
    await expect(collect(src(`${line}\r\n`, 'x.jsonl'), { maxLineBytes: line.length - 1 })).rejects.toThrow(/line 1 is longer/);
  });

  it('names the file and line of invalid JSON', async () => {
    const body = '{"text": "a"}\n{"text": "b"}\n\n{"text": "c",}\n{"text": "d"}\n';
    const err = await failure(collect(src(body, 'bad.jsonl')));
    expect(err).toBeInstanceOf(DatasetFormatError);
    expect(err.line).toBe(4);
    expect(err.message).toMatch(/^bad\.jsonl:4: invalid JSON: .*; expected one JSON object per line$/);
  });

  it('hands bad lines to onBadRow and goes on', async () => {
    const body = '{"text": "a"}\n[1, 2]\nnot json\n{"text": "b"}\n"str"\n';
    const bad: BadRow[] = [];
    const rows = await collect(src(body, 'mixed.jsonl'), { onBadRow: (r) => bad.push(r) });
    expect(rows.map((r) => [r.row.text, r.line, r.rowIndex])).toEqual([
      ['a', 1, 0],
      ['b', 4, 3],
    ]);
    expect(bad.map((b) => [b.line, b.rowIndex])).toEqual([
      [2, 1],
      [3, 2],
      [5, 4],
    ]);
    expect(bad[0]).toMatchObject({ file: 'mixed.jsonl', message: 'the line holds a list, not a JSON object' });
    expect(bad[1].message).toMatch(/^invalid JSON/);
    expect(bad[2].expected).toMatch(/one JSON object per line/);
  });

  it('reports bytes that are not UTF-8 as a bad line', async () => {
    const bytes = new Uint8Array([...enc.encode('{"t": 1}\n{"t": "'), 0xff, 0xfe, ...enc.encode('"}\n{"t": 3}\n')]);
    const bad: BadRow[] = [];
    const rows = await collect(src(bytes, 'x.jsonl'), { onBadRow: (r) => bad.push(r) });
    expect(rows.map((r) => r.row.t)).toEqual([1, 3]);
    expect(bad).toEqual([{ file: 'x.jsonl', line: 2, rowIndex: 1, message: 'the line is not valid UTF-8 text', expected: 'UTF-8 text' }]);
  });

  it('refuses an empty file and a file of blank lines', async () => {
    const empty = await failure(collect(src('', 'empty.jsonl')));
    expect(empty).toBeInstanceOf(DatasetFormatError);
    expect(empty.message).toBe('empty.jsonl: the file is empty (0 bytes)');
    await expect(collect(src('\n  \r\n\n', 'blank.jsonl'))).rejects.toThrow(/blank\.jsonl: the file holds no rows/);
  });

  it('stops with a CancelledError when the signal aborts', async () => {
    const body = Array.from({ length: 100 }, (_, i) => JSON.stringify({ i })).join('\n');
    const controller = new AbortController();
    const seen: number[] = [];
    const err = await failure(
      (async () => {
        for await (const r of readRows(src(body, 'c.jsonl'), { chunkBytes: 64, signal: controller.signal })) {
          seen.push(r.row.i as number);
          if (seen.length === 3) controller.abort();
        }
      })(),
    );
    expect(err).toBeInstanceOf(CancelledError);
    expect(err.file).toBe('c.jsonl');
    expect(seen.length).toBeLessThan(100);
  });

  it('rejects bad options', async () => {
    await expect(collect(src('{}', 'x.jsonl'), { chunkBytes: 0 })).rejects.toThrow(InvalidArgumentError);
    await expect(collect(src('a,b', 'x.csv'), { delimiter: '::' })).rejects.toThrow(InvalidArgumentError);
  });
});

describe('JSON', () => {
  it('reads a list, {"data": [...]} and {"rows": [...]}', async () => {
    const list = [{ a: 1 }, { a: 2 }];
    for (const body of [list, { data: list }, { rows: list, info: 'x' }]) {
      const rows = await collect(src(JSON.stringify(body, null, 2), 'd.json'));
      expect(rows).toEqual([
        { row: { a: 1 }, rowIndex: 0 },
        { row: { a: 2 }, rowIndex: 1 },
      ]);
    }
  });

  it('caps the size and says how to read bigger files', async () => {
    const err = await failure(collect(src(JSON.stringify([{ a: 'x'.repeat(100) }]), 'big.json'), { maxJsonBytes: 50 }));
    expect(err).toBeInstanceOf(DatasetFormatError);
    expect(err.message).toMatch(/big\.json: the file is \d+ bytes; a JSON file is parsed whole, and at most 50 bytes is accepted/);
    expect((err as InstanceType<typeof DatasetFormatError>).hint).toMatch(/JSON Lines/);
  });

  it('names the line of a JSON syntax error', async () => {
    const err = await failure(collect(src('[\n  {"a": 1},\n  {"a": 2,}\n]\n', 'bad.json')));
    expect(err).toBeInstanceOf(DatasetFormatError);
    expect(err.line).toBe(3);
  });

  it('refuses other shapes, empty lists and non-object items', async () => {
    await expect(collect(src('{"a": 1}', 'o.json'), { format: 'json' })).rejects.toThrow(/expected a list of objects, or an object with a "data" or "rows" list/);
    await expect(collect(src('[]', 'e.json'))).rejects.toThrow(/holds no rows/);
    await expect(collect(src('[{"a": 1}, 5]', 'n.json'))).rejects.toThrow(/row 1 \(0-based\): item 1 of the list is a number/);
  });
});

describe('CSV and TSV', () => {
  it('parses quotes, embedded commas, line breaks and escaped quotes, with CRLF, across small chunks', async () => {
    const body =
      'instruction,input,output\r\n' +
      'Say hi,,"Hi, there!"\r\n' +
      '"Quote ""this""","a\r\nmulti-line\r\ninput",done\r\n' +
      '\r\n' +
      'Plain,x,y\r\n';
    const rows = await collect(src(body, 'd.csv'), { chunkBytes: 5 });
    expect(rows).toEqual([
      { row: { instruction: 'Say hi', input: '', output: 'Hi, there!' }, line: 2, rowIndex: 0 },
      { row: { instruction: 'Quote "this"', input: 'a\nmulti-line\ninput', output: 'done' }, line: 3, rowIndex: 1 },
      { row: { instruction: 'Plain', input: 'x', output: 'y' }, line: 7, rowIndex: 2 },
    ]);
  });

  it('uses a tab for .tsv and sniffs a semicolon', async () => {
    expect(await collect(src('a\tb\n1\t2, 3\n', 'd.tsv'))).toEqual([{ row: { a: '1', b: '2, 3' }, line: 2, rowIndex: 0 }]);
    expect(await collect(src('q;a\nwhy;because, really\nhow;so\n', 'd.csv'))).toEqual([
      { row: { q: 'why', a: 'because, really' }, line: 2, rowIndex: 0 },
      { row: { q: 'how', a: 'so' }, line: 3, rowIndex: 1 },
    ]);
    expect(await collect(src('text\nhello\nworld', 'one-column.csv'))).toEqual([
      { row: { text: 'hello' }, line: 2, rowIndex: 0 },
      { row: { text: 'world' }, line: 3, rowIndex: 1 },
    ]);
  });

  it('keeps a column named __proto__ as a plain column', async () => {
    const [r] = await collect(src('a,__proto__\n1,2\n', 'p.csv'));
    expect(Object.getPrototypeOf(r.row)).toBe(Object.prototype);
    expect(Object.keys(r.row)).toEqual(['a', '__proto__']);
    expect(Object.getOwnPropertyDescriptor(r.row, '__proto__')?.value).toBe('2');
  });

  it('names records with the wrong number of fields', async () => {
    const body = 'a,b\n1,2\n3\n4,5,6\n7,8,\n';
    const err = await failure(collect(src(body, 'f.csv')));
    expect(err).toBeInstanceOf(DatasetFormatError);
    expect(err.message).toBe('f.csv:3: the record has 1 field, the header has 2; expected 2 fields (a, b) separated by ","');
    const bad: BadRow[] = [];
    const rows = await collect(src(body, 'f.csv'), { onBadRow: (r) => bad.push(r) });
    expect(rows.map((r) => r.row)).toEqual([
      { a: '1', b: '2' },
      { a: '7', b: '8' },
    ]);
    expect(bad.map((b) => b.line)).toEqual([3, 4]);
  });

  it('refuses an unclosed quote, a header without records and repeated column names', async () => {
    const unclosed = await failure(collect(src('a,b\n1,2\n"3,4\n5,6\n', 'q.csv')));
    expect(unclosed).toBeInstanceOf(DatasetFormatError);
    expect(unclosed.line).toBe(3);
    expect(unclosed.message).toMatch(/never closed/);
    await expect(collect(src('a,b\n', 'h.csv'))).rejects.toThrow(/header row but no records/);
    await expect(collect(src('a,b,a\n1,2,3\n', 'r.csv'))).rejects.toThrow(/names column "a" twice \(columns 1 and 3\)/);
  });

  it('bounds a record that never ends', async () => {
    const body = 'a,b\n"' + 'x'.repeat(10_000) + '\n';
    const err = await failure(collect(src(body, 'long.csv'), { chunkBytes: 100, maxLineBytes: 1000 }));
    expect(err.message).toMatch(/record starting on line 2 is longer than 1000 bytes/);
  });
});

describe('Parquet', () => {
  const columns = () => [
    { name: 'instruction', data: ['one', 'two', 'three', 'four', 'five'], type: 'STRING' as const },
    { name: 'output', data: ['1', '2', '3', '4', '5'], type: 'STRING' as const },
    { name: 'n', data: [1n, 2n, 3n, 4n, 2n ** 60n], type: 'INT64' as const },
    { name: 'ids', data: [[1, 2], [3], [], [4, 5, 6], [7]] },
    { name: 'messages', data: [[{ role: 'user', content: 'hi' }], [], [], [], []] },
  ];

  it('reads every row group in turn, snappy-compressed, with 64-bit integers as numbers', async () => {
    const buf = new Uint8Array(parquetWriteBuffer({ columnData: columns(), rowGroupSize: 2 }));
    const progress: ReadProgress[] = [];
    const rows = await collect(src(buf, 'train-00000-of-00001.parquet'), { onProgress: (p) => progress.push(p) });
    expect(rows.map((r) => r.rowIndex)).toEqual([0, 1, 2, 3, 4]);
    expect(rows.every((r) => r.line === undefined)).toBe(true);
    expect(rows[0].row).toEqual({ instruction: 'one', output: '1', n: 1, ids: [1, 2], messages: [{ role: 'user', content: 'hi' }] });
    expect(rows[3].row).toMatchObject({ instruction: 'four', ids: [4, 5, 6] });
    expect(rows[4].row.n).toBe((2n ** 60n).toString());
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)!.totalBytes).toBe(buf.length);
  });

  it('is detected by its magic bytes whatever its name, and a damaged file is a typed error', async () => {
    const buf = new Uint8Array(parquetWriteBuffer({ columnData: columns() }));
    expect(await detectFileFormat(src(buf, 'noext'))).toBe('parquet');
    const cut = buf.slice(0, buf.length - 10);
    const err = await failure(collect(src(cut, 'cut.parquet'), { format: 'parquet' }));
    expect(err).toBeInstanceOf(DatasetFormatError);
    expect(err.message).toMatch(/cut\.parquet: not a Parquet file/);
    const damaged = buf.slice();
    damaged.fill(7, damaged.length - 40, damaged.length - 8);
    await expect(collect(src(damaged, 'damaged.parquet'))).rejects.toThrow(DatasetFormatError);
    await expect(detectFileFormat(src('{"a": 1}\n', 'fake.parquet'))).rejects.toThrow(/does not start with the Parquet magic/);
  });

  it('refuses row groups over the size limit', async () => {
    const buf = new Uint8Array(parquetWriteBuffer({ columnData: columns() }));
    await expect(collect(src(buf, 'x.parquet'), { maxRowGroupBytes: 10 })).rejects.toThrow(/row group 0 is .* uncompressed/);
  });
});

describe('plain text', () => {
  const body = 'First paragraph,\r\n  two lines.\r\n\r\n\r\nSecond one.\n   \nThird\n';

  it('makes one example per blank-line-separated paragraph', async () => {
    expect(await collect(src(body, 'notes.txt'))).toEqual([
      { row: { text: 'First paragraph,\n  two lines.' }, line: 1, rowIndex: 0 },
      { row: { text: 'Second one.' }, line: 5, rowIndex: 1 },
      { row: { text: 'Third' }, line: 7, rowIndex: 2 },
    ]);
  });

  it('or one per non-blank line', async () => {
    expect((await collect(src(body, 'notes.txt'), { textUnit: 'line' })).map((r) => [r.row.text, r.line])).toEqual([
      ['First paragraph,', 1],
      ['  two lines.', 2],
      ['Second one.', 5],
      ['Third', 7],
    ]);
  });

  it('bounds a paragraph', async () => {
    const long = Array.from({ length: 100 }, () => 'word word word').join('\n');
    await expect(collect(src(long, 'p.txt'), { maxLineBytes: 200 })).rejects.toThrow(/paragraph starting on line 1 is longer than 200 bytes/);
  });
});

describe('format detection', () => {
  it('maps extensions', () => {
    expect(formatFromName('a/b/train.JSONL')).toBe('jsonl');
    expect(formatFromName('https://x/y/data.ndjson?download=1')).toBe('jsonl');
    expect(formatFromName('d.tab')).toBe('tsv');
    expect(formatFromName('d.pq')).toBe('parquet');
    expect(formatFromName('README.md')).toBe('text');
    expect(formatFromName('data')).toBeNull();
  });

  it('tells JSON Lines named .json from JSON', async () => {
    expect(await detectFileFormat(src('{"a": 1}\n{"a": 2}\n', 'x.json'))).toBe('jsonl');
    expect(await detectFileFormat(src('{"data": [{"a": 1}]}\n', 'x.json'))).toBe('json');
    expect(await detectFileFormat(src('{\n  "data": []\n}', 'x.json'))).toBe('json');
    expect(await detectFileFormat(src('  [{"a": 1}]', 'x.json'))).toBe('json');
    const rows = await collect(src('{"a": 1}\n{"a": 2}\n', 'x.json'));
    expect(rows.map((r) => r.row.a)).toEqual([1, 2]);
  });

  it('sniffs files without a known extension', async () => {
    expect(await detectFileFormat(src('{"a": 1}\n{"a": 2}', 'blob'))).toBe('jsonl');
    expect(await detectFileFormat(src('[{"a": 1}]', 'blob'))).toBe('json');
    expect(await detectFileFormat(src('q,a\nx,y\nz,w\n', 'blob'))).toBe('csv');
    expect(await detectFileFormat(src('q\ta\nx\ty\nz\tw\n', 'blob'))).toBe('tsv');
    expect(await detectFileFormat(src('Once upon a time.\n\nThe end.\n', 'blob'))).toBe('text');
  });

  it('refuses compressed, binary and UTF-16 files', async () => {
    await expect(detectFileFormat(src(new Uint8Array([0x1f, 0x8b, 8, 0]), 'd.jsonl.gz'))).rejects.toThrow(/gzip-compressed/);
    await expect(detectFileFormat(src(new Uint8Array([0x50, 0x4b, 3, 4, 0]), 'd.zip'))).rejects.toThrow(/zip archive/);
    await expect(detectFileFormat(src(new Uint8Array([1, 2, 0, 3]), 'blob'))).rejects.toThrow(/binary data/);
    await expect(detectFileFormat(src(new Uint8Array([0xff, 0xfe, 0x41, 0]), 'd.csv'))).rejects.toThrow(/UTF-16/);
    await expect(detectFileFormat(src('', 'd.csv'))).rejects.toThrow(/empty/);
  });
});
