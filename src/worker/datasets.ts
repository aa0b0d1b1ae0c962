// The worker's dataset import: looks at the first rows of a file (its file type, its columns, the
// example format they fit), imports it with the engine's prepareDataset (tokenized with the loaded
// model's tokenizer), and renders a preview of the first examples token by token with whether each
// token counts toward the loss. Everything returned is plain data for the studio; errors come back
// as values, so a broken file leaves the worker ready for the next one.

import { type SerializedError, describeError } from '../engine/errors.ts';
import { type DatasetStats, type PrepareProgress, prepareDataset } from '../engine/data/dataset.ts';
import { type ColumnMapping, type ExampleFormat, type FormatDetection, detectFormat } from '../engine/data/formats.ts';
import { type DatasetFileFormat, detectFileFormat, readRows } from '../engine/data/readers.ts';
import { IGNORE_INDEX, type TokenizedExample } from '../engine/data/tokenize.ts';
import { type ByteSource, blobSource } from '../engine/io/source.ts';
import { StreamDecoder, type Tokenizer } from '../engine/model/tokenizer.ts';

/** Rows looked at to list the columns and detect the format (as prepareDataset does). */
const SAMPLE_ROWS = 64;
/** Tokens shown per preview example; longer examples are clipped in the preview only. */
const PREVIEW_TOKENS = 768;

export interface DatasetImportOptions {
  /** The file's type; detected from its name and first bytes when absent. */
  fileFormat?: DatasetFileFormat;
  /** The rows' example format; detected from the first rows when absent. */
  format?: ExampleFormat;
  /** Field → column, e.g. `{ instruction: 'question', output: 'answer' }`. */
  mapping?: ColumnMapping;
  /** Longest example in tokens; longer ones are cut (and counted). Default 512. */
  maxLength?: number;
  /** Count prompt tokens toward the loss too. Default false. */
  trainOnPrompt?: boolean;
  /** Leave bad rows out (they are counted and listed) instead of stopping. Default false. */
  skipBadRows?: boolean;
  /** Examples rendered in the preview. Default 4. */
  previewCount?: number;
}

export interface DatasetInspection {
  file: string;
  bytes: number;
  fileFormat: DatasetFileFormat;
  detectedFileFormat: DatasetFileFormat;
  /** Column names of the first rows, in order of appearance. */
  columns: string[];
  /** The format and columns used (the override applied), or null when no format fits. */
  detection: FormatDetection | null;
  /** The format the rows fit on their own, or null when none does. */
  detectedFormat: ExampleFormat | null;
}

/** A run of tokens that decodes to `text` (a token that ends inside a character joins the next). */
export interface PreviewPiece {
  text: string;
  ids: number[];
  /** Whether these tokens count toward the loss. */
  counted: boolean;
  /** An added special token such as <|im_start|>. */
  special: boolean;
}

export interface PreviewExample {
  /** 0-based among the imported examples. */
  index: number;
  tokens: number;
  countedTokens: number;
  pieces: PreviewPiece[];
  /** The preview shows only the first PREVIEW_TOKENS tokens. */
  clipped: boolean;
}

export interface DatasetImport {
  /** Null when the file could not be read at all. */
  inspection: DatasetInspection | null;
  /** Null when the import failed (see error). */
  stats: DatasetStats | null;
  preview: PreviewExample[];
  /** The model whose tokenizer was used. */
  tokenizerName: string | null;
  maxLength: number;
  /** Why the import failed: a DatasetRowsError carries `rows` (with line numbers) and `total`. */
  error: (SerializedError & { rows?: unknown[]; total?: number }) | null;
}

export interface DatasetImportContext {
  tokenizer: () => Promise<{ tokenizer: Tokenizer; name: string }>;
  signal: AbortSignal;
  onProgress?: (p: PrepareProgress) => void;
}

export async function importDataset(file: Blob & { name?: string }, options: DatasetImportOptions, ctx: DatasetImportContext): Promise<DatasetImport> {
  const maxLength = options.maxLength ?? 512;
  const out: DatasetImport = { inspection: null, stats: null, preview: [], tokenizerName: null, maxLength, error: null };
  const source = blobSource(file, file.name || 'dataset');
  try {
    out.inspection = await inspect(source, options, ctx.signal);
    const { tokenizer, name } = await ctx.tokenizer();
    out.tokenizerName = name;
    const prepared = await prepareDataset(source, {
      tokenizer,
      format: options.format,
      mapping: options.mapping,
      maxLength,
      trainOnPrompt: options.trainOnPrompt,
      skipBadRows: options.skipBadRows,
      read: { format: out.inspection.fileFormat },
      seed: 0,
      signal: ctx.signal,
      onProgress: ctx.onProgress,
    });
    out.stats = prepared.stats;
    out.preview = prepared.train.slice(0, options.previewCount ?? 4).map((ex, i) => renderExample(tokenizer, ex, i));
  } catch (e) {
    out.error = describeError(e);
  }
  return out;
}

/** The file type, the columns of the first rows, and the format they fit. */
async function inspect(source: ByteSource, options: DatasetImportOptions, signal: AbortSignal): Promise<DatasetInspection> {
  const detectedFileFormat = await detectFileFormat(source, signal);
  const fileFormat = options.fileFormat ?? detectedFileFormat;
  const rows: Record<string, unknown>[] = [];
  const columns: string[] = [];
  const seen = new Set<string>();
  for await (const r of readRows(source, { format: fileFormat, signal, onBadRow: () => undefined })) {
    rows.push(r.row);
    for (const k of Object.keys(r.row)) {
      if (!seen.has(k)) {
        seen.add(k);
        columns.push(k);
      }
    }
    if (rows.length >= SAMPLE_ROWS) break;
  }
  const tryDetect = (o: { format?: ExampleFormat; mapping?: ColumnMapping }): FormatDetection | null => {
    try {
      return detectFormat(rows, { ...o, file: source.name });
    } catch {
      return null;
    }
  };
  const detectedFormat = tryDetect({ mapping: options.mapping })?.format ?? tryDetect({})?.format ?? null;
  const detection = tryDetect({ format: options.format, mapping: options.mapping });
  return { file: source.name, bytes: source.size, fileFormat, detectedFileFormat, columns, detection, detectedFormat };
}

/** The example's tokens as decoded pieces, each marked counted or not (position 0 never counts: nothing predicts it). */
export function renderExample(tokenizer: Tokenizer, ex: TokenizedExample, index: number): PreviewExample {
  const n = Math.min(ex.inputIds.length, PREVIEW_TOKENS);
  const decoder = new StreamDecoder(tokenizer);
  const pieces: PreviewPiece[] = [];
  let pending: number[] = [];
  let pendingCounted = false;
  let countedTokens = 0;
  for (let t = 0; t < ex.labels.length; t++) if (t > 0 && ex.labels[t] !== IGNORE_INDEX) countedTokens++;
  const push = (text: string, special: boolean) => {
    const last = pieces[pieces.length - 1];
    if (text === '' && last) {
      last.ids.push(...pending);
    } else {
      pieces.push({ text, ids: pending, counted: pendingCounted, special });
    }
    pending = [];
    pendingCounted = false;
  };
  for (let t = 0; t < n; t++) {
    const id = ex.inputIds[t];
    pending.push(id);
    pendingCounted ||= t > 0 && ex.labels[t] !== IGNORE_INDEX;
    const text = decoder.push(id);
    if (text !== '') push(text, tokenizer.isSpecialId(id));
  }
  if (pending.length > 0) push(decoder.flush(), false);
  return { index, tokens: ex.inputIds.length, countedTokens, pieces, clipped: n < ex.inputIds.length };
}
