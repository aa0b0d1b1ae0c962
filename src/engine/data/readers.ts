// Dataset file readers: turn a ByteSource holding JSON Lines, JSON, CSV/TSV, Parquet or plain text
// into an async stream of rows (`{ row, line?, rowIndex }`), with progress in bytes, cancellation
// through an AbortSignal, and typed errors that name the file and the line (or row) at fault.
// Memory stays bounded: JSONL, CSV and text are read in chunks of `chunkBytes` and cut into lines
// or records no longer than `maxLineBytes`; Parquet is read one row group at a time; only JSON is
// parsed whole, and only up to `maxJsonBytes`. The Parquet libraries (hyparquet and its
// decompressors, which compile a small WebAssembly module) load on the first Parquet file.
// It does not know what the columns mean (formats.ts does) and it does not tokenize.
import type { AsyncBuffer, FileMetaData } from 'hyparquet';
import Papa from 'papaparse';
import { type BadRow, CancelledError, DatasetFormatError, InvalidArgumentError } from '../errors.ts';
import type { ByteSource } from '../io/source.ts';

export type DatasetFileFormat = 'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet' | 'text';

export const DATASET_FILE_FORMATS: readonly DatasetFileFormat[] = ['jsonl', 'json', 'csv', 'tsv', 'parquet', 'text'];

/** One row of a dataset file. */
export interface DatasetRow {
  /** The row's columns: a parsed JSON object, CSV fields by header name, Parquet columns, or `{ text }`. */
  row: Record<string, unknown>;
  /** 1-based line where the row starts (JSONL, CSV/TSV, text); absent for JSON and Parquet. */
  line?: number;
  /** 0-based position of the row in the file, counting bad rows and not counting blank lines. */
  rowIndex: number;
}

export interface ReadProgress {
  bytesRead: number;
  totalBytes: number;
}

export interface ReadRowsOptions {
  /** The file's format; found from the name and the first bytes when absent (see detectFileFormat). */
  format?: DatasetFileFormat;
  /** Cancels the read with a CancelledError at the next chunk or row. */
  signal?: AbortSignal;
  /** Called after each read from the source. */
  onProgress?: (progress: ReadProgress) => void;
  /**
   * Receives rows that cannot be parsed (invalid JSON on a line, a line that is not a JSON object, a
   * CSV record with the wrong number of fields, text that is not UTF-8); the read goes on without
   * them. Without it, the first such row throws a DatasetFormatError naming its line.
   */
  onBadRow?: (row: BadRow) => void;
  /** Bytes per read from the source. Default 1 MiB. */
  chunkBytes?: number;
  /** The longest line (JSONL), record (CSV) or paragraph (text) accepted, in bytes. Default 16 MiB. */
  maxLineBytes?: number;
  /** The largest JSON file accepted (JSON is parsed whole). Default 256 MiB. */
  maxJsonBytes?: number;
  /** The largest Parquet row group accepted, uncompressed. Default 1 GiB. */
  maxRowGroupBytes?: number;
  /** CSV/TSV delimiter (one character); by default a tab for .tsv and otherwise sniffed from the first records. */
  delimiter?: string;
  /**
   * Plain text: 'paragraph' (default) makes one example of each run of non-blank lines, the runs
   * being separated by one or more blank (empty or whitespace-only) lines; 'line' makes one
   * example of each non-blank line. Lines keep their own spaces; a paragraph's lines are joined
   * with '\n' (CRLF line ends become '\n').
   */
  textUnit?: 'paragraph' | 'line';
}

export const DEFAULT_CHUNK_BYTES = 1 << 20;
export const DEFAULT_MAX_LINE_BYTES = 16 << 20;
export const DEFAULT_MAX_JSON_BYTES = 256 << 20;
export const DEFAULT_MAX_ROW_GROUP_BYTES = 1 << 30;

/** Bytes read to sniff a file's format. */
const SNIFF_BYTES = 64 << 10;
/** How far the sniffer looks for the end of the first line when telling JSON from JSON Lines. */
const SNIFF_LINE_BYTES = 1 << 20;

/** The format an extension names (`.jsonl`, `.ndjson`, `.json`, `.csv`, `.tsv`, `.tab`, `.parquet`, `.pq`, `.txt`, `.text`, `.md`), or null. */
export function formatFromName(name: string): DatasetFileFormat | null {
  const base = name.replace(/[?#].*$/, '').toLowerCase();
  const m = /\.([a-z]+)$/.exec(base);
  switch (m?.[1]) {
    case 'jsonl':
    case 'ndjson':
    case 'jsonlines':
      return 'jsonl';
    case 'json':
      return 'json';
    case 'csv':
      return 'csv';
    case 'tsv':
    case 'tab':
      return 'tsv';
    case 'parquet':
    case 'pq':
      return 'parquet';
    case 'txt':
    case 'text':
    case 'md':
      return 'text';
    default:
      return null;
  }
}

/**
 * Finds a file's format. The Parquet magic (`PAR1`) wins over any name. A `.json` file whose first
 * line is a whole JSON object followed by more lines is JSON Lines (many "json" exports are). Other
 * extensions are trusted. Without a known extension the content decides: `[` starts JSON, `{`
 * JSON or JSON Lines as above, records with a consistent comma or tab count CSV or TSV, anything
 * else is text. Throws DatasetFormatError for an empty file, a gzip/zip archive, a UTF-16 file,
 * binary content, and a `.parquet` name on a file that is not Parquet.
 */
export async function detectFileFormat(source: ByteSource, signal?: AbortSignal): Promise<DatasetFileFormat> {
  const file = source.name;
  if (source.size === 0) throw emptyFile(file);
  checkAbort(signal, file);
  const head = await source.read(0, Math.min(source.size, SNIFF_BYTES));
  if (head[0] === 0x1f && head[1] === 0x8b) {
    throw new DatasetFormatError('the file is gzip-compressed; decompress it first (gunzip, or 7-Zip on Windows)', { file });
  }
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    throw new DatasetFormatError('the file is a zip archive; extract the dataset file from it first', { file });
  }
  const isParquet = head.length >= 4 && head[0] === 0x50 && head[1] === 0x41 && head[2] === 0x52 && head[3] === 0x31;
  if (isParquet) return 'parquet';
  const byName = formatFromName(file);
  if (byName === 'parquet') {
    throw new DatasetFormatError('the file is named .parquet but does not start with the Parquet magic bytes "PAR1"', { file });
  }
  if ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff)) {
    throw new DatasetFormatError('the file is UTF-16 text; save it as UTF-8', { file });
  }
  if (byName === 'jsonl' || byName === 'csv' || byName === 'tsv' || byName === 'text') return byName;
  if (head.includes(0)) {
    throw new DatasetFormatError('the file holds binary data, not JSON, JSON Lines, CSV, Parquet or text', {
      file,
      hint: 'Datasets are read from .jsonl, .json, .csv, .tsv, .parquet and .txt files.',
    });
  }
  const text = new TextDecoder('utf-8').decode(head);
  const first = /\S/.exec(text);
  if (first?.[0] === '[') return 'json';
  if (first?.[0] === '{') return sniffJsonOrJsonl(source, head, byName, signal);
  if (byName === 'json') return 'json';
  const complete = source.size <= head.length ? text : text.slice(0, Math.max(0, text.lastIndexOf('\n')));
  const guess = Papa.parse<string[]>(complete, { preview: 20, delimitersToGuess: [',', '\t'], skipEmptyLines: true });
  const undetectable = guess.errors.some((e) => e.code === 'UndetectableDelimiter');
  if (!undetectable && guess.data.length >= 2 && guess.data.every((r) => r.length === guess.data[0].length && r.length > 1)) {
    return guess.meta.delimiter === '\t' ? 'tsv' : 'csv';
  }
  return 'text';
}

async function sniffJsonOrJsonl(
  source: ByteSource,
  head: Uint8Array,
  byName: DatasetFileFormat | null,
  signal?: AbortSignal,
): Promise<DatasetFileFormat> {
  let bytes = head;
  let nl = bytes.indexOf(0x0a);
  if (nl < 0 && source.size > bytes.length) {
    checkAbort(signal, source.name);
    bytes = await source.read(0, Math.min(source.size, SNIFF_LINE_BYTES));
    nl = bytes.indexOf(0x0a);
  }
  if (nl < 0 && source.size > bytes.length) return byName ?? 'json';
  const firstLine = new TextDecoder('utf-8').decode(nl < 0 ? bytes : bytes.subarray(0, nl));
  let value: unknown;
  try {
    value = JSON.parse(firstLine);
  } catch {
    return 'json';
  }
  if (!isPlainObject(value)) return 'json';
  const restHasContent = nl >= 0 && (nl + 1 < bytes.length ? /\S/.test(new TextDecoder('utf-8').decode(bytes.subarray(nl + 1))) : source.size > nl + 1);
  if (restHasContent) return 'jsonl';
  const wrapper = Array.isArray(value.data) || Array.isArray(value.rows);
  return wrapper ? 'json' : 'jsonl';
}

/**
 * Reads the rows of a dataset file, in file order. Throws DatasetFormatError (naming the file and,
 * where there is one, the line) for an empty file, a file with no rows, a line or record over
 * `maxLineBytes`, a JSON file over `maxJsonBytes` or of the wrong shape, a CSV header with a
 * repeated name or a quote that is never closed, and a damaged Parquet file; bad rows throw too
 * unless `onBadRow` takes them. Throws CancelledError when `signal` aborts.
 */
export async function* readRows(source: ByteSource, options: ReadRowsOptions = {}): AsyncGenerator<DatasetRow> {
  const opts = resolveOptions(options);
  if (source.size === 0) throw emptyFile(source.name);
  const format = options.format ?? (await detectFileFormat(source, options.signal));
  if (!DATASET_FILE_FORMATS.includes(format)) {
    throw new InvalidArgumentError(`unknown dataset file format "${String(format)}"; expected one of ${DATASET_FILE_FORMATS.join(', ')}`);
  }
  const ctx = new ReadContext(source, opts);
  switch (format) {
    case 'jsonl':
      yield* readJsonl(ctx);
      break;
    case 'json':
      yield* readJson(ctx);
      break;
    case 'csv':
    case 'tsv':
      yield* readCsv(ctx, format);
      break;
    case 'parquet':
      yield* readParquet(ctx);
      break;
    case 'text':
      yield* readText(ctx);
      break;
  }
}

interface ResolvedOptions {
  signal?: AbortSignal;
  onProgress?: (progress: ReadProgress) => void;
  onBadRow?: (row: BadRow) => void;
  chunkBytes: number;
  maxLineBytes: number;
  maxJsonBytes: number;
  maxRowGroupBytes: number;
  delimiter?: string;
  textUnit: 'paragraph' | 'line';
}

function resolveOptions(o: ReadRowsOptions): ResolvedOptions {
  const positive = (name: string, v: number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`);
    return v;
  };
  if (o.delimiter !== undefined && (typeof o.delimiter !== 'string' || o.delimiter.length !== 1 || /["\r\n]/.test(o.delimiter))) {
    throw new InvalidArgumentError(`the CSV delimiter must be one character other than a quote or a line break, got ${JSON.stringify(o.delimiter)}`);
  }
  if (o.textUnit !== undefined && o.textUnit !== 'paragraph' && o.textUnit !== 'line') {
    throw new InvalidArgumentError(`textUnit must be "paragraph" or "line", got ${JSON.stringify(o.textUnit)}`);
  }
  return {
    signal: o.signal,
    onProgress: o.onProgress,
    onBadRow: o.onBadRow,
    chunkBytes: positive('chunkBytes', o.chunkBytes, DEFAULT_CHUNK_BYTES),
    maxLineBytes: positive('maxLineBytes', o.maxLineBytes, DEFAULT_MAX_LINE_BYTES),
    maxJsonBytes: positive('maxJsonBytes', o.maxJsonBytes, DEFAULT_MAX_JSON_BYTES),
    maxRowGroupBytes: positive('maxRowGroupBytes', o.maxRowGroupBytes, DEFAULT_MAX_ROW_GROUP_BYTES),
    delimiter: o.delimiter,
    textUnit: o.textUnit ?? 'paragraph',
  };
}

/** The source, the options, and the bookkeeping every reader shares. */
class ReadContext {
  bytesRead = 0;
  constructor(
    readonly source: ByteSource,
    readonly opts: ResolvedOptions,
  ) {}

  get file(): string {
    return this.source.name;
  }

  checkAbort(): void {
    checkAbort(this.opts.signal, this.file);
  }

  progress(bytes: number): void {
    this.bytesRead = Math.min(this.source.size, this.bytesRead + bytes);
    this.opts.onProgress?.({ bytesRead: this.bytesRead, totalBytes: this.source.size });
  }

  /** Hands a bad row to onBadRow, or throws it as a DatasetFormatError. */
  bad(where: { line?: number; rowIndex: number }, message: string, expected: string): void {
    const row: BadRow = { file: this.file, line: where.line, rowIndex: where.rowIndex, message, expected };
    if (this.opts.onBadRow) {
      this.opts.onBadRow(row);
      return;
    }
    const at = where.line === undefined ? `row ${where.rowIndex} (0-based): ` : '';
    throw new DatasetFormatError(`${at}${message}; expected ${expected}`, { file: this.file, line: where.line });
  }
}

function checkAbort(signal: AbortSignal | undefined, file: string): void {
  if (signal?.aborted) throw new CancelledError('Reading the dataset was cancelled.', { file });
}

function emptyFile(file: string): Error {
  return new DatasetFormatError('the file is empty (0 bytes)', { file, hint: 'Choose the dataset file itself; it may not have finished downloading.' });
}

function noRows(file: string, what: string): Error {
  return new DatasetFormatError(`the file holds no rows (${what})`, { file });
}

/** One line of a file, without its line end; `text` is null when the bytes are not UTF-8. */
interface Line {
  text: string | null;
  /** 1-based. */
  line: number;
  byteOffset: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Splits a source into lines on '\n' (a '\r' before it is dropped), reading `chunkBytes` at a time.
 * A line never holds more than `maxLineBytes` in memory: the read stops with a DatasetFormatError
 * as soon as one grows past it. A UTF-8 byte-order mark at the start is dropped.
 */
async function* readLines(ctx: ReadContext, what: string): AsyncGenerator<Line> {
  const { source, opts } = ctx;
  let pieces: Uint8Array[] = [];
  let pendingBytes = 0;
  let line = 1;
  let lineStart = 0;

  const finish = (bytes: Uint8Array): Line => {
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    let start = 0;
    if (lineStart === 0 && end >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
    let text: string | null;
    try {
      text = utf8.decode(bytes.subarray(start, end));
    } catch {
      text = null;
    }
    return { text, line, byteOffset: lineStart };
  };
  const tooLong = (): Error =>
    new DatasetFormatError(`line ${line} is longer than ${formatBytes(opts.maxLineBytes)}, the longest ${what} accepted`, {
      file: source.name,
      line,
      byteOffset: lineStart,
      hint: 'Check that the file really has one row per line (a file with "\\r" line ends only, or one huge JSON document, has none), or raise the line limit.',
    });

  for (let offset = 0; offset < source.size; ) {
    ctx.checkAbort();
    const n = Math.min(opts.chunkBytes, source.size - offset);
    const chunk = await source.read(offset, n);
    ctx.progress(n);
    let pos = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, pos);
      if (nl < 0) {
        const rest = chunk.subarray(pos);
        if (pendingBytes + rest.length > opts.maxLineBytes + 1) throw tooLong();
        if (rest.length > 0) {
          pieces.push(rest);
          pendingBytes += rest.length;
        }
        break;
      }
      const part = chunk.subarray(pos, nl);
      const lineBytes = pendingBytes + part.length;
      const crlf = lineBytes > 0 && (part.length > 0 ? part[part.length - 1] === 0x0d : pieces[pieces.length - 1][pieces[pieces.length - 1].length - 1] === 0x0d);
      if (lineBytes - (crlf ? 1 : 0) > opts.maxLineBytes) throw tooLong();
      yield finish(pieces.length === 0 ? part : concat([...pieces, part], lineBytes));
      pieces = [];
      pendingBytes = 0;
      pos = nl + 1;
      line++;
      lineStart = offset + pos;
    }
    offset += n;
  }
  if (pendingBytes > 0) {
    const bytes = concat(pieces, pendingBytes);
    const crlf = bytes[bytes.length - 1] === 0x0d;
    if (bytes.length - (crlf ? 1 : 0) > opts.maxLineBytes) throw tooLong();
    yield finish(bytes);
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function* readJsonl(ctx: ReadContext): AsyncGenerator<DatasetRow> {
  let rowIndex = 0;
  for await (const l of readLines(ctx, 'JSON Lines line')) {
    if (l.text !== null && isBlank(l.text)) continue;
    const where = { line: l.line, rowIndex: rowIndex++ };
    if (l.text === null) {
      ctx.bad(where, 'the line is not valid UTF-8 text', 'UTF-8 text');
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(l.text);
    } catch (e) {
      ctx.bad(where, `invalid JSON: ${errorText(e)}`, 'one JSON object per line');
      continue;
    }
    if (!isPlainObject(value)) {
      ctx.bad(where, `the line holds ${describeJson(value)}, not a JSON object`, 'one JSON object per line, such as {"instruction": "...", "output": "..."}');
      continue;
    }
    yield { row: value, line: l.line, rowIndex: where.rowIndex };
  }
  if (rowIndex === 0) throw noRows(ctx.file, 'every line is blank');
}

async function* readJson(ctx: ReadContext): AsyncGenerator<DatasetRow> {
  const { source, opts } = ctx;
  if (source.size > opts.maxJsonBytes) {
    throw new DatasetFormatError(
      `the file is ${formatBytes(source.size)}; a JSON file is parsed whole, and at most ${formatBytes(opts.maxJsonBytes)} is accepted`,
      { file: source.name, hint: 'Convert it to JSON Lines (one object per line), which is read in pieces of any total size.' },
    );
  }
  const bytes = new Uint8Array(source.size);
  for (let offset = 0; offset < source.size; ) {
    ctx.checkAbort();
    const n = Math.min(opts.chunkBytes, source.size - offset);
    bytes.set(await source.read(offset, n), offset);
    ctx.progress(n);
    offset += n;
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    throw new DatasetFormatError('the file is not valid UTF-8 text', { file: source.name, cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const pos = /position (\d+)/.exec(errorText(e));
    const line = pos ? lineOf(text, Number(pos[1])) : undefined;
    throw new DatasetFormatError(`invalid JSON: ${errorText(e)}`, {
      file: source.name,
      line,
      cause: e,
      hint: 'Fix the JSON at that place; a file with one JSON object per line should be named .jsonl.',
    });
  }
  let items: unknown[];
  if (Array.isArray(value)) items = value;
  else if (isPlainObject(value) && Array.isArray(value.data)) items = value.data;
  else if (isPlainObject(value) && Array.isArray(value.rows)) items = value.rows;
  else {
    throw new DatasetFormatError(`the file holds ${describeJson(value)}; expected a list of objects, or an object with a "data" or "rows" list`, {
      file: source.name,
    });
  }
  if (items.length === 0) throw noRows(source.name, 'the list is empty');
  for (let i = 0; i < items.length; i++) {
    if (i % 1024 === 0) ctx.checkAbort();
    const item = items[i];
    if (!isPlainObject(item)) {
      ctx.bad({ rowIndex: i }, `item ${i} of the list is ${describeJson(item)}, not an object`, 'a list of JSON objects');
      continue;
    }
    yield { row: item, rowIndex: i };
  }
}

function lineOf(text: string, pos: number): number {
  let line = 1;
  const end = Math.min(pos, text.length);
  for (let i = text.indexOf('\n'); i >= 0 && i < end; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/**
 * Finds record boundaries in CSV text: line breaks outside quoted fields. A quote opens a quoted
 * field only at the start of a field; inside one, `""` is a literal quote. The state carries over
 * from one call to the next, so text can arrive in pieces.
 */
class RecordScanner {
  private inQuotes = false;
  private fieldStart = true;
  private justClosed = false;
  private readonly delim: number;

  constructor(delimiter: string) {
    this.delim = delimiter.charCodeAt(0);
  }

  get insideQuotes(): boolean {
    return this.inQuotes;
  }

  /** Indexes just past each '\n' that ends a record in text[from..]. */
  scan(text: string, from: number): number[] {
    const ends: number[] = [];
    for (let i = from; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.inQuotes) {
        if (c === 0x22) {
          this.inQuotes = false;
          this.justClosed = true;
        }
        continue;
      }
      if (c === 0x22) {
        if (this.justClosed || this.fieldStart) this.inQuotes = true;
        this.justClosed = false;
        this.fieldStart = false;
        continue;
      }
      this.justClosed = false;
      if (c === 0x0a) {
        ends.push(i + 1);
        this.fieldStart = true;
      } else {
        this.fieldStart = c === this.delim;
      }
    }
    return ends;
  }
}

/** CSV/TSV with a header row; every value is a string. Line ends may be '\n' or '\r\n' ('\r\n' inside quotes becomes '\n'). */
async function* readCsv(ctx: ReadContext, format: 'csv' | 'tsv'): AsyncGenerator<DatasetRow> {
  const { source, opts } = ctx;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let delimiter = opts.delimiter ?? (format === 'tsv' ? '\t' : undefined);
  let scanner: RecordScanner | null = null;
  let buffer = '';
  let scanned = 0;
  let pendingCR = false;
  let line = 1;
  let header: string[] | null = null;
  let rowIndex = 0;
  const rows: DatasetRow[] = [];

  const record = (text: string, startLine: number): void => {
    if (text.endsWith('\n')) text = text.slice(0, -1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (isBlank(text)) return;
    const parsed = Papa.parse<string[]>(text, { delimiter, newline: '\n', quoteChar: '"', header: false, skipEmptyLines: false });
    if (header === null) {
      if (parsed.errors.length > 0 || parsed.data.length !== 1) {
        throw new DatasetFormatError(`the header row cannot be parsed: ${parsed.errors[0]?.message ?? 'it spans several records'}`, {
          file: source.name,
          line: startLine,
        });
      }
      header = readHeader(parsed.data[0], source.name, startLine);
      return;
    }
    const where = { line: startLine, rowIndex: rowIndex++ };
    if (parsed.errors.length > 0 || parsed.data.length !== 1) {
      ctx.bad(where, `the record cannot be parsed: ${parsed.errors[0]?.message ?? 'it holds several records'}`, `fields separated by ${JSON.stringify(delimiter)}, quoted with "`);
      return;
    }
    let fields = parsed.data[0];
    if (fields.length > header.length && fields.slice(header.length).every((f) => f === '')) fields = fields.slice(0, header.length);
    if (fields.length !== header.length) {
      ctx.bad(
        where,
        `the record has ${fields.length} field${fields.length === 1 ? '' : 's'}, the header has ${header.length}`,
        `${header.length} fields (${header.join(', ')}) separated by ${JSON.stringify(delimiter)}`,
      );
      return;
    }
    const names = header;
    const row: Record<string, unknown> = Object.fromEntries(names.map((name, i) => [name, fields[i]]));
    rows.push({ row, line: startLine, rowIndex: where.rowIndex });
  };

  const drain = (final: boolean): void => {
    if (scanner === null) return;
    const ends = scanner.scan(buffer, scanned);
    let start = 0;
    for (const end of ends) {
      const text = buffer.slice(start, end);
      record(text, line);
      line += countNewlines(text);
      start = end;
    }
    buffer = buffer.slice(start);
    scanned = buffer.length;
    if (final && buffer.length > 0) {
      if (scanner.insideQuotes) {
        throw new DatasetFormatError('a quoted field in the record starting on this line is never closed', {
          file: source.name,
          line,
          hint: 'Check the quotes of that record: a quote inside a quoted field is written twice ("").',
        });
      }
      record(buffer, line);
      buffer = '';
    }
    if (buffer.length > opts.maxLineBytes) {
      throw new DatasetFormatError(`the record starting on line ${line} is longer than ${formatBytes(opts.maxLineBytes)}, the longest record accepted`, {
        file: source.name,
        line,
        hint: scanner.insideQuotes ? 'A quoted field is probably never closed; check the quotes of that record.' : undefined,
      });
    }
  };

  for (let offset = 0; offset < source.size; ) {
    ctx.checkAbort();
    const n = Math.min(opts.chunkBytes, source.size - offset);
    const chunk = await source.read(offset, n);
    ctx.progress(n);
    let text: string;
    try {
      text = decoder.decode(chunk, { stream: true });
    } catch (e) {
      throw new DatasetFormatError(`the file is not valid UTF-8 text (in bytes ${offset}..${offset + n})`, { file: source.name, byteOffset: offset, cause: e });
    }
    offset += n;
    if (pendingCR) text = '\r' + text;
    pendingCR = text.endsWith('\r') && offset < source.size;
    if (pendingCR) text = text.slice(0, -1);
    buffer += text.replace(/\r\n/g, '\n');
    if (scanner === null) {
      if (delimiter === undefined) {
        if (!buffer.includes('\n') && offset < source.size && buffer.length <= opts.maxLineBytes) continue;
        delimiter = sniffDelimiter(buffer, offset >= source.size);
      }
      scanner = new RecordScanner(delimiter);
    }
    drain(false);
    for (const r of rows) yield r;
    rows.length = 0;
  }
  try {
    buffer += decoder.decode();
  } catch (e) {
    throw new DatasetFormatError('the file ends inside a UTF-8 character', { file: source.name, byteOffset: source.size, cause: e });
  }
  if (scanner === null) {
    delimiter ??= sniffDelimiter(buffer, true);
    scanner = new RecordScanner(delimiter);
  }
  drain(true);
  for (const r of rows) yield r;
  if (header === null) throw noRows(source.name, 'there is no header row');
  if (rowIndex === 0) throw noRows(source.name, 'there is a header row but no records under it');
}

function readHeader(fields: string[], file: string, line: number): string[] {
  const names = fields.map((f, i) => f.trim() || `column_${i + 1}`);
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const before = seen.get(name);
    if (before !== undefined) {
      throw new DatasetFormatError(`the header names column "${name}" twice (columns ${before + 1} and ${i + 1})`, {
        file,
        line,
        hint: 'Give every column a distinct name in the first row.',
      });
    }
    seen.set(name, i);
  });
  return names;
}

/** The delimiter of the first complete records: comma, tab, semicolon or bar; comma when none fits. */
function sniffDelimiter(text: string, complete: boolean): string {
  const sample = complete ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  const guess = Papa.parse<string[]>(sample.slice(0, SNIFF_BYTES), { preview: 20, delimitersToGuess: [',', '\t', ';', '|'], skipEmptyLines: true });
  if (guess.errors.some((e) => e.code === 'UndetectableDelimiter')) return ',';
  return guess.meta.delimiter || ',';
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

async function* readParquet(ctx: ReadContext): AsyncGenerator<DatasetRow> {
  const { source, opts } = ctx;
  const file = source.name;
  if (source.size < 12) throw new DatasetFormatError(`the file is ${source.size} bytes, too short for Parquet (at least 12)`, { file });
  const magic = (bytes: Uint8Array) => bytes[0] === 0x50 && bytes[1] === 0x41 && bytes[2] === 0x52 && bytes[3] === 0x31;
  if (!magic(await source.read(0, 4)) || !magic(await source.read(source.size - 4, 4))) {
    throw new DatasetFormatError('not a Parquet file: it does not start and end with "PAR1" (is it complete?)', { file });
  }
  const { parquetMetadataAsync, parquetReadObjects } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const buffer: AsyncBuffer = {
    byteLength: source.size,
    slice: async (start: number, end: number = source.size): Promise<ArrayBuffer> => {
      ctx.checkAbort();
      const bytes = await source.read(start, end - start);
      ctx.progress(bytes.length);
      return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : (bytes.slice().buffer as ArrayBuffer);
    },
  };
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    if (e instanceof CancelledError) throw e;
    throw new DatasetFormatError(`the Parquet footer cannot be read: ${errorText(e)}`, { file, cause: e });
  }
  let rowStart = 0;
  let total = 0;
  for (let g = 0; g < metadata.row_groups.length; g++) {
    ctx.checkAbort();
    const group = metadata.row_groups[g];
    const count = Number(group.num_rows);
    const bytes = Number(group.total_byte_size);
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new DatasetFormatError(`row group ${g} claims ${String(group.num_rows)} rows`, { file });
    }
    if (bytes > opts.maxRowGroupBytes) {
      throw new DatasetFormatError(
        `row group ${g} is ${formatBytes(bytes)} uncompressed; row groups are read whole, and at most ${formatBytes(opts.maxRowGroupBytes)} is accepted`,
        { file, hint: 'Write the file again with smaller row groups (pyarrow: row_group_size), or raise the row group limit.' },
      );
    }
    if (count === 0) continue;
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, rowStart, rowEnd: rowStart + count, compressors });
    } catch (e) {
      if (e instanceof CancelledError) throw e;
      throw new DatasetFormatError(`row group ${g} (rows ${rowStart}..${rowStart + count - 1}) cannot be read: ${errorText(e)}`, { file, cause: e });
    }
    for (let i = 0; i < rows.length; i++) {
      if (i % 1024 === 0) ctx.checkAbort();
      yield { row: plainValue(rows[i]) as Record<string, unknown>, rowIndex: rowStart + i };
    }
    rowStart += count;
    total += rows.length;
  }
  if (total === 0) throw noRows(file, 'the Parquet file has no rows');
}

/** Parquet values as JSON-like data: 64-bit integers become numbers (or decimal strings past 2^53). */
function plainValue(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof BigInt64Array || v instanceof BigUint64Array) return Array.from(v as ArrayLike<bigint>, plainValue);
  if (Array.isArray(v)) return v.map(plainValue);
  if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainValue(x)]));
  return v;
}

async function* readText(ctx: ReadContext): AsyncGenerator<DatasetRow> {
  const { opts } = ctx;
  let rowIndex = 0;
  if (opts.textUnit === 'line') {
    for await (const l of readLines(ctx, 'line')) {
      if (l.text !== null && isBlank(l.text)) continue;
      const where = { line: l.line, rowIndex: rowIndex++ };
      if (l.text === null) ctx.bad(where, 'the line is not valid UTF-8 text', 'UTF-8 text');
      else yield { row: { text: l.text }, line: l.line, rowIndex: where.rowIndex };
    }
  } else {
    let lines: string[] = [];
    let chars = 0;
    let firstLine = 0;
    let valid = true;
    const flush = (): DatasetRow | null => {
      if (lines.length === 0) return null;
      const where = { line: firstLine, rowIndex: rowIndex++ };
      const text = lines.join('\n');
      const ok = valid;
      lines = [];
      chars = 0;
      valid = true;
      if (!ok) {
        ctx.bad(where, 'the paragraph is not valid UTF-8 text', 'UTF-8 text');
        return null;
      }
      return { row: { text }, line: where.line, rowIndex: where.rowIndex };
    };
    for await (const l of readLines(ctx, 'line')) {
      if (l.text !== null && isBlank(l.text)) {
        const row = flush();
        if (row) yield row;
        continue;
      }
      if (lines.length === 0) firstLine = l.line;
      if (l.text === null) valid = false;
      const text = l.text ?? '';
      chars += text.length + 1;
      if (chars > opts.maxLineBytes) {
        throw new DatasetFormatError(`the paragraph starting on line ${firstLine} is longer than ${formatBytes(opts.maxLineBytes)}, the longest paragraph accepted`, {
          file: ctx.file,
          line: firstLine,
          hint: 'Separate examples with blank lines, or read the file one line per example.',
        });
      }
      lines.push(text);
    }
    const row = flush();
    if (row) yield row;
  }
  if (rowIndex === 0) throw noRows(ctx.file, 'every line is blank');
}

function isBlank(text: string): boolean {
  return !/\S/.test(text);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof Date);
}

function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return 'an object';
}

function formatBytes(n: number): string {
  if (n >= 1 << 30 && n % (1 << 30) === 0) return `${n / (1 << 30)} GiB`;
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${n} bytes`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
