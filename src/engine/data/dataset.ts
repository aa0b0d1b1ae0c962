// Dataset import: reads one or more files (readers.ts), detects their format (formats.ts),
// tokenizes each row with its loss mask (tokenize.ts), truncates to the sequence length, optionally
// packs (packing.ts), splits train/validation with a seed, and reports statistics. Bad rows stop the
// import with a DatasetRowsError listing them (line or row, what was expected), or are skipped and
// counted with `skipBadRows`; nothing is left out without being counted.
// It does not train, batch or pad, and it keeps nothing beyond the examples it returns.
import { type BadRow, CancelledError, DatasetFormatError, DatasetRowsError, InvalidArgumentError, WhetstoneError } from '../errors.ts';
import type { ByteSource } from '../io/source.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { Rng } from '../random.ts';
import { type ColumnMapping, detectFormat, type Example, type ExampleFormat, type FormatDetection, normalizeRow, type RowError } from './formats.ts';
import { packExamples } from './packing.ts';
import { type DatasetRow, readRows, type ReadRowsOptions } from './readers.ts';
import { createExampleTokenizer, IGNORE_INDEX, type TokenizedExample } from './tokenize.ts';

export interface PrepareDatasetOptions {
  tokenizer: Tokenizer;
  /** The rows' format; detected from the first rows of the first file when absent. */
  format?: ExampleFormat;
  /** Columns to read fields from, e.g. `{ instruction: 'question', output: 'answer' }`. */
  mapping?: ColumnMapping;
  /** Longest sequence in tokens; longer examples are cut to their first maxLength tokens (and counted). */
  maxLength: number;
  /** Count every token toward the loss, not only what the model writes. Default false. */
  trainOnPrompt?: boolean;
  /** Pack examples into sequences of maxLength (best-fit decreasing) with per-token segments and positions. Default false. */
  packing?: boolean;
  /** Share of the examples held out for validation, in [0, 1), drawn with `seed`. Default 0. Not with valSource. */
  valFraction?: number;
  /** Files that hold the validation set instead of a share of the training files. */
  valSource?: ByteSource | readonly ByteSource[];
  /** Seed of the train/validation split. */
  seed: number;
  /** Leave bad rows out (they are counted and listed in the statistics) instead of stopping. Default false. */
  skipBadRows?: boolean;
  /** Reader settings for every file (format of the file, delimiter, text unit, size limits). */
  read?: Omit<ReadRowsOptions, 'signal' | 'onProgress' | 'onBadRow'>;
  /** More chat template variables, e.g. `{ enable_thinking: false }`. */
  templateExtra?: Record<string, unknown>;
  /** The time chat templates read through strftime_now; now when absent. */
  now?: Date;
  /** How many bad rows are kept in the error or the statistics (all are counted). Default 100. */
  maxReportedErrors?: number;
  /** Cancels the import with a CancelledError. */
  signal?: AbortSignal;
  onProgress?: (progress: PrepareProgress) => void;
}

export interface PrepareProgress {
  /** The file being read. */
  file: string;
  /** Bytes read so far over all files, and their total. */
  bytesRead: number;
  totalBytes: number;
  /** Rows read so far over all files. */
  rows: number;
}

/** One training sequence: an example, or several packed ones with their segments and positions. */
export interface TrainingSequence extends TokenizedExample {
  segments?: Int32Array;
  positions?: Int32Array;
}

export interface LengthBin {
  /** Inclusive bounds, in tokens. */
  from: number;
  to: number;
  count: number;
}

export interface DatasetStats {
  format: ExampleFormat;
  /** The column each field was read from. */
  columns: ColumnMapping;
  files: { name: string; bytes: number; rows: number; split: 'train' | 'validation' }[];
  /** Rows read from every file, bad ones included. */
  rows: number;
  /** Examples kept: train and validation, before packing. */
  examples: number;
  trainExamples: number;
  validationExamples: number;
  /** Tokens of the kept examples, after truncation. */
  tokens: number;
  /** Tokens the loss is computed on: labels other than -100, after truncation, leaving out each example's first token (nothing predicts it). */
  countedTokens: number;
  /** Lengths in tokens of the kept examples before truncation: shortest, longest, mean. */
  shortestExample: number;
  longestExample: number;
  meanLength: number;
  /** 16 equal bins over 1..maxLength, then one bin for the longer examples when there are any. */
  lengthHistogram: LengthBin[];
  /** Examples longer than maxLength, cut to it. */
  truncatedRows: number;
  /** Rows whose normalised content equals an earlier row's (they are kept). */
  duplicateRows: number;
  /** Examples left out because no token counted after truncation (for example an answer cut off entirely). */
  noCountedTokenRows: number;
  /** Bad rows left out (only with skipBadRows), and the first of them. */
  skippedRows: number;
  errors: RowError[];
  /** Packed sequences of train and validation, and the share of their maxLength slots that hold tokens. */
  packing: { trainSequences: number; validationSequences: number; fill: number } | null;
  /** Examples whose mask came from character offsets because a token merge crossed a turn boundary. */
  offsetFallbacks: number;
  /** Sentences for the person: default chat template used, rows truncated or left out. */
  warnings: string[];
}

export interface PreparedDataset {
  train: TrainingSequence[];
  validation: TrainingSequence[];
  stats: DatasetStats;
}

/** Rows read before the format is detected. */
const DETECT_ROWS = 64;
const HISTOGRAM_BINS = 16;

interface Kept {
  example: TokenizedExample;
  length: number;
}

/**
 * Imports `sources` (and `valSource`) into training examples. All files share one format, detected
 * from the first rows of the first file unless given. Throws DatasetRowsError when rows are bad
 * and skipBadRows is off (after reading everything, or as soon as maxReportedErrors rows are bad),
 * DatasetFormatError for a file that cannot be read as a whole or that yields no usable example,
 * InvalidArgumentError for bad options, CancelledError when `signal` aborts.
 */
export async function prepareDataset(sources: ByteSource | readonly ByteSource[], options: PrepareDatasetOptions): Promise<PreparedDataset> {
  const o = checkOptions(options);
  const trainSources = toList(sources);
  const valSources = options.valSource === undefined ? [] : toList(options.valSource);
  if (trainSources.length === 0) throw new InvalidArgumentError('no dataset file was given');

  const exampleTokenizer = createExampleTokenizer(o.tokenizer, { trainOnPrompt: o.trainOnPrompt, templateExtra: o.templateExtra, now: o.now });
  const totalBytes = [...trainSources, ...valSources].reduce((n, s) => n + s.size, 0);
  const errors: RowError[] = [];
  let errorTotal = 0;
  let detection: FormatDetection | null = null;
  let doneBytes = 0;
  let rows = 0;
  let truncated = 0;
  let duplicates = 0;
  let noCounted = 0;
  let usedChat = false;
  const seen = new Set<number>();
  const files: DatasetStats['files'] = [];
  const kept: { train: Kept[]; validation: Kept[] } = { train: [], validation: [] };

  const addError = (row: BadRow): void => {
    errorTotal++;
    if (errors.length < o.maxReportedErrors) errors.push(row);
    if (!o.skipBadRows && errorTotal >= o.maxReportedErrors) {
      throw badRowsError(errors, errorTotal, `reading stopped at ${where(row)} of ${row.file}`);
    }
  };

  const handle = (r: DatasetRow, file: string, split: 'train' | 'validation', d: FormatDetection): void => {
    const at = { file, line: r.line, rowIndex: r.rowIndex };
    const normal = normalizeRow(r.row, d, { requireAssistant: !o.trainOnPrompt });
    if (!normal.ok) {
      addError({ ...at, ...normal.problem });
      return;
    }
    const example = normal.example;
    if (example.kind === 'chat') usedChat = true;
    let tokenized: TokenizedExample;
    try {
      tokenized = exampleTokenizer.tokenize(example);
    } catch (e) {
      if (!(e instanceof WhetstoneError) || e instanceof CancelledError) throw e;
      addError({ ...at, message: e.message, expected: expectedFor(e, example) });
      return;
    }
    const hash = hashString(JSON.stringify(example));
    if (seen.has(hash)) duplicates++;
    else seen.add(hash);
    const length = tokenized.inputIds.length;
    if (length > o.maxLength) {
      truncated++;
      tokenized = { inputIds: tokenized.inputIds.slice(0, o.maxLength), labels: tokenized.labels.slice(0, o.maxLength) };
    }
    if (countedOf(tokenized.labels) === 0) {
      noCounted++;
      return;
    }
    kept[split].push({ example: tokenized, length });
  };

  const readFile = async (source: ByteSource, split: 'train' | 'validation'): Promise<void> => {
    const before = rows;
    const sample: DatasetRow[] = [];
    const detect = (): FormatDetection => {
      detection = detectFormat(
        sample.map((s) => s.row),
        { format: o.format, mapping: o.mapping, file: source.name },
      );
      return detection;
    };
    const reader = readRows(source, {
      ...o.read,
      signal: o.signal,
      onBadRow: (row) => {
        rows++;
        addError(row);
      },
      onProgress: (p) => o.onProgress?.({ file: source.name, bytesRead: doneBytes + p.bytesRead, totalBytes, rows }),
    });
    for await (const r of reader) {
      rows++;
      if (rows % 256 === 0 && o.signal?.aborted) throw new CancelledError('The dataset import was cancelled.', { file: source.name });
      if (detection === null) {
        sample.push(r);
        if (sample.length < DETECT_ROWS) continue;
        const found = detect();
        for (const s of sample.splice(0)) handle(s, source.name, split, found);
        continue;
      }
      handle(r, source.name, split, detection);
    }
    if (sample.length > 0) {
      const found = detection ?? detect();
      for (const s of sample) handle(s, source.name, split, found);
    }
    doneBytes += source.size;
    files.push({ name: source.name, bytes: source.size, rows: rows - before, split });
  };

  for (const s of trainSources) await readFile(s, 'train');
  for (const s of valSources) await readFile(s, 'validation');

  if (errorTotal > 0 && !o.skipBadRows) throw badRowsError(errors, errorTotal, null);
  const d = detection as FormatDetection | null;
  if (d === null) throw new DatasetFormatError('the dataset holds no rows', { file: trainSources[0].name });

  if (valSources.length === 0 && o.valFraction > 0) {
    const all = kept.train;
    if (all.length < 2) {
      throw new InvalidArgumentError(`a validation share needs at least 2 examples; the dataset has ${all.length}`);
    }
    const nVal = Math.min(all.length - 1, Math.max(1, Math.round(all.length * o.valFraction)));
    const order = all.map((_, i) => i);
    const rng = new Rng(o.seed);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const isVal = new Uint8Array(all.length);
    for (let k = 0; k < nVal; k++) isVal[order[k]] = 1;
    kept.train = all.filter((_, i) => !isVal[i]);
    kept.validation = all.filter((_, i) => isVal[i]);
  }
  if (kept.train.length === 0) {
    throw new DatasetFormatError(
      `no usable training example is left (${errorTotal} bad row${errorTotal === 1 ? '' : 's'} skipped, ${noCounted} with no counted token after truncation)`,
      { file: trainSources[0].name, hint: 'Check the format and column mapping, and raise the sequence length if answers are cut off.' },
    );
  }

  const all = [...kept.train, ...kept.validation];
  const lengths = all.map((k) => k.length);
  const tokens = all.reduce((n, k) => n + k.example.inputIds.length, 0);
  const counted = all.reduce((n, k) => n + countedOf(k.example.labels), 0);

  let train: TrainingSequence[] = kept.train.map((k) => k.example);
  let validation: TrainingSequence[] = kept.validation.map((k) => k.example);
  let packing: DatasetStats['packing'] = null;
  if (o.packing) {
    train = packExamples(train, o.maxLength);
    validation = packExamples(validation, o.maxLength);
    const sequences = train.length + validation.length;
    packing = { trainSequences: train.length, validationSequences: validation.length, fill: sequences === 0 ? 0 : tokens / (sequences * o.maxLength) };
  }

  const warnings: string[] = [];
  if (usedChat && exampleTokenizer.warning !== null) warnings.push(exampleTokenizer.warning);
  if (truncated > 0) warnings.push(`${truncated} example${truncated === 1 ? ' is' : 's are'} longer than ${o.maxLength} tokens and ${truncated === 1 ? 'was' : 'were'} cut to it.`);
  if (noCounted > 0) {
    warnings.push(`${noCounted} example${noCounted === 1 ? '' : 's'} had no token left to learn after truncation and ${noCounted === 1 ? 'was' : 'were'} left out.`);
  }
  if (o.skipBadRows && errorTotal > 0) warnings.push(`${errorTotal} bad row${errorTotal === 1 ? ' was' : 's were'} skipped.`);

  const stats: DatasetStats = {
    format: d.format,
    columns: d.columns,
    files,
    rows,
    examples: all.length,
    trainExamples: kept.train.length,
    validationExamples: kept.validation.length,
    tokens,
    countedTokens: counted,
    shortestExample: lengths.reduce((a, b) => Math.min(a, b), Infinity),
    longestExample: lengths.reduce((a, b) => Math.max(a, b), 0),
    meanLength: lengths.reduce((a, b) => a + b, 0) / lengths.length,
    lengthHistogram: histogram(lengths, o.maxLength),
    truncatedRows: truncated,
    duplicateRows: duplicates,
    noCountedTokenRows: noCounted,
    skippedRows: o.skipBadRows ? errorTotal : 0,
    errors,
    packing,
    offsetFallbacks: exampleTokenizer.offsetFallbacks,
    warnings,
  };
  return { train, validation, stats };
}

interface CheckedOptions extends PrepareDatasetOptions {
  trainOnPrompt: boolean;
  packing: boolean;
  valFraction: number;
  skipBadRows: boolean;
  maxReportedErrors: number;
}

function checkOptions(options: PrepareDatasetOptions): CheckedOptions {
  const { maxLength, seed } = options;
  if (options.tokenizer === undefined || options.tokenizer === null) throw new InvalidArgumentError('a tokenizer is needed to prepare a dataset');
  if (!Number.isSafeInteger(maxLength) || maxLength < 2 || maxLength > 1 << 20) {
    throw new InvalidArgumentError(`maxLength must be an integer from 2 to ${1 << 20}, got ${maxLength}`);
  }
  if (!Number.isSafeInteger(seed)) throw new InvalidArgumentError(`seed must be an integer, got ${seed}`);
  const valFraction = options.valFraction ?? 0;
  if (typeof valFraction !== 'number' || !(valFraction >= 0 && valFraction < 1)) {
    throw new InvalidArgumentError(`valFraction must be at least 0 and below 1, got ${valFraction}`);
  }
  if (valFraction > 0 && options.valSource !== undefined) {
    throw new InvalidArgumentError('give either a validation file or a validation share, not both');
  }
  const maxReportedErrors = options.maxReportedErrors ?? 100;
  if (!Number.isSafeInteger(maxReportedErrors) || maxReportedErrors < 1) {
    throw new InvalidArgumentError(`maxReportedErrors must be a positive integer, got ${maxReportedErrors}`);
  }
  return {
    ...options,
    trainOnPrompt: options.trainOnPrompt ?? false,
    packing: options.packing ?? false,
    valFraction,
    skipBadRows: options.skipBadRows ?? false,
    maxReportedErrors,
  };
}

function toList(s: ByteSource | readonly ByteSource[]): ByteSource[] {
  return Array.isArray(s) ? [...(s as readonly ByteSource[])] : [s as ByteSource];
}

function where(row: BadRow): string {
  return row.line !== undefined ? `line ${row.line}` : `row ${row.rowIndex} (0-based)`;
}

function badRowsError(errors: RowError[], total: number, stopped: string | null): DatasetRowsError {
  const shown = errors.slice(0, 5).map((e) => `${e.file ?? ''}${e.file ? ' ' : ''}${where(e)}: ${e.message} (expected ${e.expected})`);
  const more = total > shown.length ? `; and ${total - shown.length} more` : '';
  const count = stopped === null ? `${total} row${total === 1 ? ' is' : 's are'}` : `at least ${total} rows are`;
  const tail = stopped === null ? '' : ` (${stopped})`;
  return new DatasetRowsError(`${count} not usable${tail}: ${shown.join('; ')}${more}`, errors, total, { file: errors[0]?.file, line: errors[0]?.line });
}

function expectedFor(e: WhetstoneError, example: Example): string {
  if (e.name === 'ChatTemplateError') return 'a conversation the chat template accepts (roles, their order, a leading system message)';
  if (example.kind === 'tokens') return 'token ids inside the vocabulary';
  return 'text the tokenizer can encode';
}

/** Labels that count, leaving out position 0 (nothing before it predicts it). */
function countedOf(labels: Int32Array): number {
  let n = 0;
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) n++;
  return n;
}

function histogram(lengths: readonly number[], maxLength: number): LengthBin[] {
  const width = Math.ceil(maxLength / HISTOGRAM_BINS);
  const bins: LengthBin[] = [];
  for (let from = 1; from <= maxLength; from += width) bins.push({ from, to: Math.min(maxLength, from + width - 1), count: 0 });
  let longest = 0;
  let over = 0;
  for (const n of lengths) {
    if (n > maxLength) {
      over++;
      longest = Math.max(longest, n);
    } else bins[Math.max(0, Math.ceil(n / width) - 1)].count++;
  }
  if (over > 0) bins.push({ from: maxLength + 1, to: longest, count: over });
  return bins;
}

/** A 53-bit hash of a string (cyrb53), for counting duplicate rows without keeping them. */
function hashString(s: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
