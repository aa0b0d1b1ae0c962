// `whetstone eval --model DIR --data FILE [--adapter DIR] [--json]`: the causal-LM loss and perplexity
// of a model (with an adapter on top when --adapter is given: any registered method, detected from its
// saved files, e.g. a PEFT LoRA or IA3 folder) on a dataset file. JSONL rows
// `{"text": "..."}` (tokenized with the model's tokenizer, special tokens added as the tokenizer adds
// them, every token counted) or `{"input_ids": [...], "labels"?: [...]}` (labels aligned with
// input_ids, -100 not counted) are read directly. Every other file or row format the trainer takes
// (Alpaca, ShareGPT, messages, prompt/completion; JSON, CSV/TSV, Parquet, text; or --format) goes
// through the trainer's dataset pipeline with the same chat templates and loss masks, so the loss is
// the one training optimises. A bad row stops the run with a typed error that names the file and
// line. With --json the last line of output is {"loss", "tokens", "ppl"}.

import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { DatasetFormatError, DatasetRowsError, FileReadError, InvalidArgumentError } from '../engine/errors.ts';
import { prepareDataset } from '../engine/data/dataset.ts';
import type { ExampleFormat } from '../engine/data/formats.ts';
import { openFileSource } from '../engine/io/source-node.ts';
import { IGNORE_INDEX, type TokenRow, evaluateLoss } from '../engine/model/llama.ts';
import type { Tokenizer } from '../engine/model/tokenizer.ts';
import { withForwardOptions } from '../engine/peft/adapter.ts';
import { evaluateRows, tokenRowToRow } from '../engine/train/evaluate.ts';
import { ACT_INT8_FLAGS, QUANT_FLAGS, activationInt8Options, parseQuantFlags } from './quantize.ts';
import { intArg, loadCliMethodAdapter, loadCliModel, loadFolderTokenizer, openModelArg } from './model-args.ts';

/** Longest JSONL line accepted, in UTF-16 code units. */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;

export interface EvalRowContext {
  /** The data file, named in errors. */
  file: string;
  vocabSize: number;
  /** Longest row accepted (the model's max_position_embeddings). */
  contextLength: number;
  /** Tokenizes a text row; null when the model has no tokenizer. */
  encode: ((text: string) => number[]) | null;
}

const EXPECTED_ROW = '{"text": "..."} or {"input_ids": [token ids], "labels": [same length, -100 not counted]}';

/**
 * Parses one JSONL line (1-based `line`; `rowIndex`: 0-based among the file's rows) into a row, or
 * null for a blank line. Throws DatasetFormatError for a line that is not JSON or is too long, and
 * DatasetRowsError for JSON that is not a valid row; both name the file and line.
 */
export function parseEvalRow(text: string, line: number, rowIndex: number, ctx: EvalRowContext): TokenRow | null {
  const bad = (message: string, hint = `Fix the row on that line; each row is ${EXPECTED_ROW}.`) =>
    new DatasetRowsError(message, [{ file: ctx.file, line, rowIndex, message, expected: EXPECTED_ROW }], 1, { file: ctx.file, line, hint });
  if (text.trim() === '') return null;
  if (text.length > MAX_LINE_CHARS) {
    throw new DatasetFormatError(`The line is ${text.length} characters long; at most ${MAX_LINE_CHARS} are accepted.`, { file: ctx.file, line });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new DatasetFormatError(`The line is not valid JSON: ${(e as Error).message}`, { file: ctx.file, line });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad(`Expected a JSON object with "text" or "input_ids"; got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}.`);
  }
  const row = value as Record<string, unknown>;
  const hasText = row.text !== undefined;
  const hasIds = row.input_ids !== undefined;
  if (hasText && hasIds) throw bad('The row has both "text" and "input_ids"; give one of them.');
  const V = ctx.vocabSize;
  let inputIds: number[];
  let labels: number[] | null = null;
  if (hasText) {
    if (typeof row.text !== 'string') throw bad(`"text" must be a string; got ${JSON.stringify(row.text)}.`);
    if (row.labels !== undefined) throw bad('"labels" go with "input_ids"; a "text" row counts every token.');
    if (!ctx.encode) throw bad('A "text" row needs the model\'s tokenizer, and the model folder has no tokenizer.json.', 'Give the rows as "input_ids", or add the tokenizer files to the model folder.');
    inputIds = ctx.encode(row.text);
    if (inputIds.length === 0) throw bad('"text" encodes to no tokens.');
    const outside = inputIds.findIndex((id) => id >= V);
    if (outside >= 0) throw bad(`The tokenizer gave id ${inputIds[outside]}, outside the model's vocabulary of ${V}.`);
  } else if (hasIds) {
    inputIds = idList(row.input_ids, '"input_ids"', V, false, bad);
    if (inputIds.length === 0) throw bad('"input_ids" is empty.');
    if (row.labels !== undefined && row.labels !== null) {
      labels = idList(row.labels, '"labels"', V, true, bad);
      if (labels.length !== inputIds.length) throw bad(`"labels" has ${labels.length} entries but "input_ids" has ${inputIds.length}; they must be aligned.`);
    }
  } else {
    throw bad(`Expected "text" or "input_ids"; the row has ${Object.keys(row).length ? Object.keys(row).map((k) => JSON.stringify(k)).join(', ') : 'no keys'}.`);
  }
  if (inputIds.length > ctx.contextLength) {
    throw bad(`The row has ${inputIds.length} tokens, more than the model's context length of ${ctx.contextLength}.`, 'Split long documents into rows that fit the context.');
  }
  return { inputIds, labels };
}

function idList(v: unknown, what: string, V: number, allowIgnore: boolean, bad: (m: string) => Error): number[] {
  if (!Array.isArray(v)) throw bad(`${what} must be a list of integers; got ${JSON.stringify(v)}.`);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    const ok = Number.isInteger(x) && ((x >= 0 && x < V) || (allowIgnore && x === IGNORE_INDEX));
    if (!ok) throw bad(`${what}[${i}] is ${JSON.stringify(x)}; expected ${allowIgnore ? `${IGNORE_INDEX} or ` : ''}a token id from 0 to ${V - 1}.`);
  }
  return v as number[];
}

/** Reads every row of a JSONL file, line by line. */
export async function readEvalRows(path: string, ctx: Omit<EvalRowContext, 'file'>): Promise<TokenRow[]> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('ready', () => resolve());
    stream.once('error', reject);
  });
  try {
    await opened;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileReadError(code === 'ENOENT' ? 'The data file does not exist.' : `The data file could not be read: ${(e as Error).message}`, { file: path, cause: e });
  }
  const rows: TokenRow[] = [];
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      const row = parseEvalRow(text, line, rows.length, { ...ctx, file: path });
      if (row) rows.push(row);
    }
  } finally {
    lines.close();
    stream.destroy();
  }
  return rows;
}

/**
 * Whether the file is JSONL whose first row is a plain `text` or `input_ids` row: those are read
 * by readEvalRows; anything else goes through the dataset pipeline.
 */
export async function isPlainEvalFile(path: string): Promise<boolean> {
  if (!/\.jsonl$/i.test(path)) return false;
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    throw new FileReadError(`The data file could not be opened: ${(e as Error).message}`, { file: path, cause: e });
  }
  try {
    const head = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const first = head.subarray(0, bytesRead).toString('utf8').split(/\r?\n/).find((l) => l.trim() !== '');
    if (first === undefined) return true;
    const row = JSON.parse(first) as unknown;
    return row !== null && typeof row === 'object' && ('text' in row || 'input_ids' in row) && Object.keys(row).every((k) => ['text', 'input_ids', 'labels'].includes(k));
  } catch {
    // Not JSON on the first line: the plain reader reports it with its line number.
    return true;
  } finally {
    await handle.close();
  }
}

/** Rows of any dataset format, rendered and masked exactly as training renders and masks them. */
async function readDatasetRows(path: string, tokenizer: Tokenizer, o: { format?: string; trainOnPrompt: boolean; skipBadRows: boolean; maxLength: number }): Promise<TokenRow[]> {
  const source = await openFileSource(path, basename(path));
  try {
    const prepared = await prepareDataset(source, {
      tokenizer,
      format: o.format as ExampleFormat | undefined,
      maxLength: o.maxLength,
      trainOnPrompt: o.trainOnPrompt,
      valFraction: 0,
      seed: 0,
      skipBadRows: o.skipBadRows,
    });
    for (const w of prepared.stats.warnings) process.stderr.write(`warning: ${w}\n`);
    return prepared.train.map((e) => ({ inputIds: Array.from(e.inputIds), labels: Array.from(e.labels) }));
  } finally {
    await source.close?.();
  }
}

export async function evalCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      adapter: { type: 'string' },
      json: { type: 'boolean', default: false },
      dtype: { type: 'string' },
      ...QUANT_FLAGS,
      ...ACT_INT8_FLAGS,
      'batch-tokens': { type: 'string' },
      format: { type: 'string' },
      'train-on-prompt': { type: 'boolean', default: false },
      'skip-bad-rows': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const folder = await openModelArg(values.model);
  if (!values.data) throw new InvalidArgumentError('--data FILE is required: a JSONL file of {"text": ...} or {"input_ids": [...], "labels": [...]} rows.');
  const batchTokens = intArg('batch-tokens', values['batch-tokens'], 2048, 1);
  const tokenizer = folder.tokenizerFiles.includes('tokenizer.json') ? await loadFolderTokenizer(folder) : null;
  const plain = values.format === undefined && (!tokenizer || (await isPlainEvalFile(values.data)));
  const rows = plain
    ? await readEvalRows(values.data, {
        vocabSize: folder.config.vocabSize,
        contextLength: folder.config.maxPositionEmbeddings,
        encode: tokenizer ? (text) => tokenizer.encode(text) : null,
      })
    : await readDatasetRows(values.data, tokenizer!, {
        format: values.format,
        trainOnPrompt: values['train-on-prompt'],
        skipBadRows: values['skip-bad-rows'],
        maxLength: folder.config.maxPositionEmbeddings,
      });
  if (rows.length === 0) throw new InvalidArgumentError('The data file has no rows.', { file: values.data });
  const { gpu, model } = await loadCliModel(folder, values.dtype, parseQuantFlags(values));
  try {
    const adapter = values.adapter === undefined ? null : await loadCliMethodAdapter(model, values.adapter);
    let result;
    try {
      // INT8 activations (--act-int8) quantize the projections' inputs, under an adapter's hooks.
      const actq = await activationInt8Options(model, values, tokenizer ? (t) => tokenizer.encode(t) : null);
      if (actq.projectionInput && (adapter?.adaptRows || adapter?.inferenceOptions().projectionInput)) {
        throw new InvalidArgumentError('--act-int8 works with LoRA adapters or none; this adapter rewrites rows or projection inputs itself.');
      }
      const options = { ...adapter?.inferenceOptions(), ...actq };
      // An adapter that rewrites rows (prompt tuning's virtual tokens) is evaluated on rows it rewrote.
      result = adapter?.adaptRows
        ? await evaluateRows(model, adapter, rows.map(tokenRowToRow), { batchTokens })
        : await evaluateLoss(adapter || actq.projectionInput ? withForwardOptions(model, options) : model, rows, { batchTokens });
    } finally {
      adapter?.release();
    }
    const { loss, tokens } = result;
    if (tokens === 0) throw new InvalidArgumentError('No token is counted: every label is -100 or every row has a single token.', { file: values.data });
    const ppl = Math.exp(loss);
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ loss, tokens, ppl })}\n`);
    } else {
      process.stdout.write(`loss ${loss.toFixed(6)}  ppl ${ppl.toFixed(4)}  tokens ${tokens}  rows ${rows.length}\n`);
    }
    return 0;
  } finally {
    model.release();
    gpu.destroy();
  }
}
