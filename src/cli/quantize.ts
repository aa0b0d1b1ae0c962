// `whetstone quantize --model M --to nf4|fp4|int8|int4 [--double-quant] [--block N] [--asymmetric]
// --out DIR [--data FILE] [--report FILE]`: post-training quantization of a model folder into a
// Hugging Face folder. NF4/FP4 use the serialization transformers + bitsandbytes load (packed U8
// weights with absmax, quant_map, nested_* and the quant_state JSON; quantization_config in
// config.json), INT8 bitsandbytes' LLM.int8 layout (int8 weight + SCB); INT4 groups this engine's
// own layout. Only the projection weights are quantized; everything else is copied. The folder is
// written under a temporary name and renamed when complete, and an existing non-empty DIR is
// refused, so nothing is overwritten. The report (stdout's last line, JSON; also --report FILE)
// holds every quantized layer's relative error and, with --data (JSONL rows of {"text"} or
// {"input_ids", "labels"}), the evaluation loss before and after.

import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../engine/errors.ts';
import { formatBytes } from '../engine/gpu/allocator.ts';
import { openNodeGpu } from '../engine/gpu/node.ts';
import { CONFIG_FILE, GENERATION_CONFIG_FILE, type ModelFolder, SINGLE_WEIGHTS_FILE } from '../engine/io/model-folder.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { type ForwardOptions, type LlamaModel, type TokenRow, evaluateLoss, loadModel } from '../engine/model/llama.ts';
import { calibrateInt8Activations, dynamicInt8Activations, staticInt8Activations } from '../engine/quant/activation.ts';
import { type QuantOptions, parseQuantFormat, resolveQuantOptions } from '../engine/quant/format.ts';
import { type LayerError, quantizeFolder } from '../engine/quant/quantize-folder.ts';
import { parseModelConfig } from '../engine/model/config.ts';
import { HUB_CATALOG } from '../worker/catalog.ts';
import { planTable } from '../worker/memory-estimate.ts';
import { readEvalRows } from './eval.ts';
import { intArg, loadFolderTokenizer, openModelArg } from './model-args.ts';

export const QUANTIZE_USAGE = `quantize --model DIR --to nf4|fp4|int8|int4 --out DIR [--double-quant] [--block N] [--asymmetric]
           [--data FILE] [--report FILE]      (or: quantize --plan-table)`;

/** The flags that quantize a model's projections as it loads (train --method qlora, eval, generate). */
export const QUANT_FLAGS = {
  quant: { type: 'string' },
  'double-quant': { type: 'boolean', default: false },
  block: { type: 'string' },
} as const;

/**
 * The QuantOptions that --quant nf4|fp4|int8|int4 [--double-quant] [--block N] ask for, or undefined
 * without --quant. `fallback` is used when --quant is absent but quantization is implied (qlora).
 */
export function parseQuantFlags(v: { quant?: string; 'double-quant'?: boolean; block?: string }, fallback?: QuantOptions['format']): QuantOptions | undefined {
  const name = v.quant ?? fallback;
  if (name === undefined) {
    if (v['double-quant'] || v.block !== undefined) throw new InvalidArgumentError('--double-quant and --block go with --quant nf4|fp4|int8|int4 (or --method qlora).');
    return undefined;
  }
  const format = parseQuantFormat(name, '--quant');
  return resolveQuantOptions({ format, block: v.block === undefined ? undefined : intArg('block', v.block, 64, 1, 4096), doubleQuant: v['double-quant'] });
}

/** eval's flags for INT8 activations at run time: --act-int8 dynamic|static [--calib FILE]. */
export const ACT_INT8_FLAGS = {
  'act-int8': { type: 'string' },
  calib: { type: 'string' },
} as const;

/**
 * The forward options of INT8 activations when --act-int8 asks for them: dynamic (per token) or
 * static (steps calibrated on `model` over --calib FILE, JSONL rows as eval reads them); {} otherwise.
 * Combine them with an adapter's options in one withForwardOptions (views do not nest).
 */
export async function activationInt8Options(model: LlamaModel, v: { 'act-int8'?: string; calib?: string }, encode: ((text: string) => number[]) | null): Promise<ForwardOptions> {
  const mode = v['act-int8'];
  if (mode === undefined) {
    if (v.calib !== undefined) throw new InvalidArgumentError('--calib goes with --act-int8 static.');
    return {};
  }
  if (mode === 'dynamic') {
    if (v.calib !== undefined) throw new InvalidArgumentError('--calib goes with --act-int8 static; dynamic scales need no calibration.');
    return { projectionInput: dynamicInt8Activations() };
  }
  if (mode !== 'static') throw new InvalidArgumentError(`--act-int8 must be dynamic or static; got ${JSON.stringify(mode)}.`);
  if (!v.calib) throw new InvalidArgumentError('--act-int8 static needs --calib FILE: JSONL rows to calibrate the activation scales on.');
  const rows = await readEvalRows(v.calib, { vocabSize: model.config.vocabSize, contextLength: model.config.maxPositionEmbeddings, encode });
  const steps = await calibrateInt8Activations(model, rows);
  process.stderr.write(`calibrated INT8 activation scales of ${steps.size} projections on ${rows.length} rows\n`);
  return { projectionInput: staticInt8Activations(steps) };
}

export interface QuantizeReport {
  model: string;
  out: string;
  quant: Required<QuantOptions>;
  bytesBefore: number;
  bytesAfter: number;
  layers: LayerError[];
  /** Mean relative error over the quantized layers. */
  meanRelError: number;
  evalLoss?: { before: number; after: number; tokens: number };
}

export async function quantizeCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      to: { type: 'string' },
      out: { type: 'string' },
      'double-quant': { type: 'boolean', default: false },
      block: { type: 'string' },
      asymmetric: { type: 'boolean', default: false },
      data: { type: 'string' },
      report: { type: 'string' },
      'plan-table': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values['plan-table']) {
    console.log(planTable(HUB_CATALOG, (raw) => parseModelConfig(raw)));
    return 0;
  }
  if (!values.to) throw new InvalidArgumentError('--to is required: nf4, fp4, int8 or int4.');
  if (!values.out) throw new InvalidArgumentError('--out DIR is required: the folder the quantized model is written to.');
  const format = parseQuantFormat(values.to, '--to');
  const quant = resolveQuantOptions({
    format,
    block: values.block === undefined ? undefined : intArg('block', values.block, 64, 1, 4096),
    doubleQuant: values['double-quant'],
    symmetric: !values.asymmetric,
  });
  if (values.asymmetric && format !== 'int4') throw new InvalidArgumentError('--asymmetric applies to int4 only.');
  const out = resolve(values.out);
  await refuseNonEmpty(out);
  const folder = await openModelArg(values.model);

  const tmp = join(dirname(out), `.${out.split('/').pop()}.partial-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  let report: QuantizeReport;
  try {
    const q = quantizeFolder(folder, quant, {
      onProgress: (p) => {
        if (process.stderr.isTTY) process.stderr.write(`\rquantizing: ${p.done}/${p.total} tensors   `);
      },
    });
    await writeStream(join(tmp, SINGLE_WEIGHTS_FILE), q.weights);
    if (process.stderr.isTTY) process.stderr.write('\n');
    await writeFile(join(tmp, CONFIG_FILE), `${JSON.stringify(q.config, null, 2)}\n`);
    await copySideFiles(folder, tmp);
    const layers = q.report;
    report = {
      model: values.model as string,
      out,
      quant,
      bytesBefore: folder.weightBytes,
      bytesAfter: q.totalBytes,
      layers,
      meanRelError: layers.reduce((a, l) => a + l.relError, 0) / Math.max(1, layers.length),
    };
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  process.stderr.write(`wrote ${out}: ${formatBytes(report.bytesBefore)} of weights → ${formatBytes(report.bytesAfter)}; mean relative error ${report.meanRelError.toExponential(3)}\n`);
  if (values.data) report.evalLoss = await evalBeforeAfter(folder, out, values.data);
  if (values.report) await writeFile(values.report, `${JSON.stringify(report, null, 2)}\n`);
  console.log(JSON.stringify(report));
  return 0;
}

async function refuseNonEmpty(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  if (names.length > 0) throw new InvalidArgumentError(`${dir} already exists and is not empty; choose a new --out folder (nothing is overwritten).`);
}

async function writeStream(path: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  const stream = createWriteStream(path);
  const done = new Promise<void>((res, rej) => {
    stream.once('finish', res);
    stream.once('error', rej);
  });
  try {
    for await (const c of chunks) {
      if (!stream.write(c)) await new Promise<void>((res) => stream.once('drain', res));
    }
  } finally {
    stream.end();
  }
  await done;
}

/** Copies the tokenizer files and generation_config.json of a folder on disk. */
async function copySideFiles(folder: ModelFolder, dir: string): Promise<void> {
  const names = [...folder.tokenizerFiles, ...(folder.generationConfig ? [GENERATION_CONFIG_FILE] : [])];
  for (const name of names) {
    const src = await folder.files.open(name);
    try {
      const bytes = await src.read(0, src.size);
      await writeFile(join(dir, name), bytes);
    } finally {
      await src.close?.();
    }
  }
}

/** The evaluation loss of the original model (f32) and of the written quantized folder on `data`. */
async function evalBeforeAfter(folder: ModelFolder, out: string, data: string): Promise<{ before: number; after: number; tokens: number }> {
  const tokenizer = folder.tokenizerFiles.includes('tokenizer.json') ? await loadFolderTokenizer(folder) : null;
  const rows: TokenRow[] = await readEvalRows(data, {
    vocabSize: folder.config.vocabSize,
    contextLength: folder.config.maxPositionEmbeddings,
    encode: tokenizer ? (t) => tokenizer.encode(t) : null,
  });
  const gpu = await openNodeGpu();
  try {
    const original = await loadModel(gpu, folder);
    const before = await evaluateLoss(original, rows);
    original.release();
    const quantized = await loadModel(gpu, await openModelDirectory(out));
    const after = await evaluateLoss(quantized, rows);
    quantized.release();
    return { before: before.loss, after: after.loss, tokens: after.tokens };
  } finally {
    gpu.destroy();
  }
}
