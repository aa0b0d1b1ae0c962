// What the compression commands (prune, share, distill, compress-report) share: reading a data file
// as token rows the way `eval` and `train` read it (plain {"text"} / {"input_ids"} JSONL, or any
// dataset format through the chat template and loss mask), checking the output folder so nothing the
// user had is overwritten, writing a model folder, and parsing list flags.

import { readdir } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { prepareDataset } from '../engine/data/dataset.ts';
import type { ExampleFormat } from '../engine/data/formats.ts';
import { InvalidArgumentError } from '../engine/errors.ts';
import type { ExportedFile } from '../engine/compress/folder.ts';
import { writeFolderFiles } from '../engine/compress/folder-node.ts';
import type { ModelFolder } from '../engine/io/model-folder.ts';
import { openFileSource } from '../engine/io/source-node.ts';
import type { TokenRow } from '../engine/model/llama.ts';
import { isPlainEvalFile, readEvalRows } from './eval.ts';
import { loadFolderTokenizer } from './model-args.ts';

/** Rows of a data file, tokenized with the folder's tokenizer, each at most `maxLength` tokens. */
export async function readTokenRows(path: string, folder: ModelFolder, o: { maxLength?: number; format?: string } = {}): Promise<TokenRow[]> {
  const tokenizer = folder.tokenizerFiles.includes('tokenizer.json') ? await loadFolderTokenizer(folder) : null;
  const maxLength = Math.min(o.maxLength ?? folder.config.maxPositionEmbeddings, folder.config.maxPositionEmbeddings);
  let rows: TokenRow[];
  if (o.format === undefined && (!tokenizer || (await isPlainEvalFile(path)))) {
    rows = await readEvalRows(path, {
      vocabSize: folder.config.vocabSize,
      contextLength: folder.config.maxPositionEmbeddings,
      encode: tokenizer ? (text) => tokenizer.encode(text) : null,
    });
    rows = rows.map((r) => ({ inputIds: r.inputIds.slice(0, maxLength), labels: r.labels?.slice(0, maxLength) ?? null }));
  } else {
    const source = await openFileSource(path, basename(path));
    try {
      const prepared = await prepareDataset(source, {
        tokenizer: tokenizer!,
        format: o.format as ExampleFormat | undefined,
        maxLength,
        trainOnPrompt: false,
        valFraction: 0,
        seed: 0,
        skipBadRows: false,
      });
      for (const w of prepared.stats.warnings) process.stderr.write(`warning: ${w}\n`);
      rows = prepared.train.map((e) => ({ inputIds: Array.from(e.inputIds), labels: Array.from(e.labels) }));
    } finally {
      await source.close?.();
    }
  }
  if (rows.length === 0) throw new InvalidArgumentError('The data file has no rows.', { file: path });
  return rows;
}

/** Refuses an output folder that already holds files, or that is the input folder. */
export async function checkOutDir(out: string | undefined, inputs: readonly (string | undefined)[]): Promise<string> {
  if (!out) throw new InvalidArgumentError('--out DIR is required: the folder the new model is written to.');
  const abs = resolve(out);
  for (const i of inputs) {
    if (i && resolve(i) === abs) throw new InvalidArgumentError(`--out ${out} is the input model folder; write the new model elsewhere.`);
  }
  const existing = await readdir(abs).catch(() => [] as string[]);
  if (existing.length > 0) {
    throw new InvalidArgumentError(`--out ${out} already holds files (${existing.slice(0, 3).join(', ')}${existing.length > 3 ? ', …' : ''}); nothing is overwritten.`, {
      hint: 'Choose a new or empty folder.',
    });
  }
  return abs;
}

/** Writes the folder and returns its total size in bytes. */
export async function writeModelFolder(dir: string, files: readonly ExportedFile[]): Promise<number> {
  const written = await writeFolderFiles(dir, files);
  return written.reduce((a, w) => a + w.bytes, 0);
}

/** A comma-separated list of non-negative integers. */
export function intList(name: string, value: string | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((s) => s.trim());
  const out = parts.map(Number);
  if (parts.some((p) => p === '') || out.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new InvalidArgumentError(`--${name} must be a comma-separated list of non-negative integers; got ${JSON.stringify(value)}.`);
  }
  return out;
}

/** One of `choices`, or `fallback` when absent. */
export function choiceArg<T extends string>(name: string, value: string | undefined, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`--${name} must be one of ${choices.join(', ')}; got ${JSON.stringify(value)}.`);
  return value as T;
}
