// `whetstone train --model M --data FILE [--val FILE] --method lora|ia3 --out DIR [...]`: fine-tunes
// an adapter of a registered tuning method (peft/methods.ts) on a dataset file. The dataset is imported as the studio imports it (format
// detection, chat template, loss mask, truncation to --seq-len, optional packing, bad rows listed
// or skipped), the adapter is trained with AdamW on the GPU, and DIR receives adapter_config.json
// and adapter_model.safetensors (PEFT's layout), README.md (the model card, for LoRA), metrics.jsonl (one
// JSON record per optimizer step, written as the run goes) and checkpoints/ (resumable with
// --resume). A live progress line goes to stderr; the last line of stdout is a JSON summary.
// Ctrl-C stops the run, keeping the last checkpoint.

import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type PrepareProgress, prepareDataset } from '../engine/data/dataset.ts';
import { EXAMPLE_FORMATS, type ExampleFormat } from '../engine/data/formats.ts';
import { CancelledError, InvalidArgumentError } from '../engine/errors.ts';
import { formatBytes } from '../engine/gpu/allocator.ts';
import type { ByteSource } from '../engine/io/source.ts';
import { openFileSource } from '../engine/io/source-node.ts';
import { type ScheduleName, isScheduleName } from '../engine/optim/schedule.ts';
import type { LoraConfig } from '../engine/peft/lora/index.ts';
import type { LoraMethodAdapter } from '../engine/peft/lora/method.ts';
import { type MethodOptionValues, findMethod, methodFlags, methodIds, parseMethodOptions } from '../engine/peft/methods.ts';
import { trainedModelCard } from '../engine/train/adapter-files.ts';
import { latestCheckpoint } from '../engine/train/checkpoint.ts';
import { FolderCheckpointStore } from '../engine/train/checkpoint-node.ts';
import { type StepMetrics, type TrainProgress, formatDuration, formatValue } from '../engine/train/metrics.ts';
import { type TrainOptions, train } from '../engine/train/trainer.ts';
import { QUANT_FLAGS, parseQuantFlags } from './quantize.ts';
import { type MemoryPlan, checkPlan, describePlan, planTrainingMemory } from '../engine/plan/memory.ts';
import { type QuantOptions, parseQuantFormat } from '../engine/quant/format.ts';
import { resolveQatOptions } from '../engine/quant/fake-quant.ts';
import { FullFineTune } from '../engine/peft/full/index.ts';
import { intArg, loadCliMethodAdapter, loadCliModel, loadFolderTokenizer, numberArg, openModelArg } from './model-args.ts';

export const TRAIN_USAGE = `train --model DIR --data FILE [--val FILE | --val-fraction F] --method ${methodIds().join('|')} --out DIR
      lora, dora: [--rank 8] [--alpha 8] [--dropout 0] [--targets all-linear|q_proj,v_proj,...] [--rslora]
      ia3: [--targets k_proj,v_proj,down_proj] [--feedforward down_proj]
      prompt: [--virtual-tokens 20] [--prompt-init RANDOM|TEXT|SAMPLE_VOCAB] [--prompt-init-text TEXT]
      prefix: [--virtual-tokens 20] [--prefix-projection [--encoder-hidden N]]
      adapter: [--reduction-factor 16]
      full: every weight (small models; --dtype f32)
        [--qat nf4|fp4|int8|int4 [--block 64]] quantization-aware: the projections fake-quantized in
        every forward (straight-through gradient); also writes OUT/<format>/, the model in that format
      [--lr 2e-4] [--schedule linear|cosine|constant] [--warmup STEPS|RATIO]
      [--epochs 3 | --steps N] [--batch 8] [--grad-accum 1] [--seq-len 1024] [--seed 42]
      [--eval-every N] [--save-every 500] [--resume] [--adapter DIR] [--train-on-prompt] [--packing]
      [--format messages|sharegpt|prompt-completion|alpaca|tokens|text] [--skip-bad-rows]
      [--weight-decay 0] [--max-grad-norm 1] [--dtype f32|bf16] [--checkpoint-blocks]
      qlora: LoRA over a base quantized as it loads: [--quant nf4|fp4|int8|int4] [--double-quant] [--block 64]
      [--plan] print the memory plan and exit; [--max-memory MiB] refuse a run planned above it`;

/** The settings of one `train` invocation, after parsing and checking. */
export interface TrainCommandOptions {
  model: string;
  data: string;
  val: string | null;
  valFraction: number;
  out: string;
  /** The tuning method's registry id. */
  method: string;
  /** The method's option values (peft/methods.ts parseMethodOptions). */
  methodOptions: MethodOptionValues;
  /** The LoRA settings, when the method is lora. */
  lora?: Pick<LoraConfig, 'r' | 'lora_alpha' | 'lora_dropout' | 'target_modules' | 'use_rslora'>;
  train: TrainOptions;
  resume: boolean;
  /** A saved adapter folder to continue training from (its own method and settings). */
  adapter: string | null;
  trainOnPrompt: boolean;
  packing: boolean;
  format: ExampleFormat | undefined;
  skipBadRows: boolean;
  dtype: string | undefined;
  /** QLoRA's quantization of the base (--method qlora, or --quant). */
  quant?: QuantOptions;
  /** Quantization-aware full fine-tuning for this weight format (--qat, with --block). */
  qat?: QuantOptions;
  /** Print the memory plan and stop. */
  plan?: boolean;
  /** Refuse a run whose planned memory exceeds this many bytes. */
  maxMemory?: number | null;
}

/** Flags every method takes; each method's own flags come from the registry. */
const COMMON_OPTIONS = {
  model: { type: 'string' },
  data: { type: 'string' },
  val: { type: 'string' },
  'val-fraction': { type: 'string' },
  method: { type: 'string' },
  out: { type: 'string' },
  lr: { type: 'string' },
  schedule: { type: 'string' },
  warmup: { type: 'string' },
  epochs: { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  'grad-accum': { type: 'string' },
  'seq-len': { type: 'string' },
  seed: { type: 'string' },
  'eval-every': { type: 'string' },
  'save-every': { type: 'string' },
  resume: { type: 'boolean', default: false },
  adapter: { type: 'string' },
  'train-on-prompt': { type: 'boolean', default: false },
  packing: { type: 'boolean', default: false },
  format: { type: 'string' },
  'skip-bad-rows': { type: 'boolean', default: false },
  'weight-decay': { type: 'string' },
  'max-grad-norm': { type: 'string' },
  dtype: { type: 'string' },
  'checkpoint-blocks': { type: 'boolean', default: false },
  ...QUANT_FLAGS,
  qat: { type: 'string' },
  plan: { type: 'boolean', default: false },
  'max-memory': { type: 'string' },
} as const;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...Object.fromEntries([...methodFlags()].map(([flag, type]) => [flag, { type: type === 'boolean' ? ('boolean' as const) : ('string' as const) }])),
};

/** Parses and checks the arguments of `train`; throws InvalidArgumentError naming the flag. */
export function parseTrainArgs(args: string[]): TrainCommandOptions {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true });
  const v = values as { [K in keyof typeof COMMON_OPTIONS]: (typeof COMMON_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string | undefined };
  const need = (name: 'model' | 'data' | 'out', what: string) => {
    const x = v[name];
    if (x === undefined || x === '') throw new InvalidArgumentError(`--${name} is required: ${what}.`);
    return x;
  };
  const model = need('model', 'the folder of a Hugging Face model, or hub:ORG/NAME');
  const data = need('data', 'the dataset file (JSONL, JSON, CSV, TSV, Parquet or text)');
  const out = need('out', 'the folder the adapter, metrics and checkpoints are written to');
  // QLoRA is LoRA over a base quantized as it loads (NF4 unless --quant says otherwise).
  const qlora = v.method === 'qlora';
  const method = findMethod(qlora ? 'lora' : (v.method ?? 'lora'));
  const qat = parseQatFlags(v, qlora ? 'qlora' : method.id);
  const quant = qat ? undefined : parseQuantFlags(v, qlora ? 'nf4' : undefined);
  const methodOptions = parseMethodOptions(method, Object.fromEntries([...methodFlags().keys()].map((f) => [f, (values as Record<string, unknown>)[f]])));
  if (v.val !== undefined && v['val-fraction'] !== undefined) throw new InvalidArgumentError('Give --val FILE or --val-fraction F, not both.');
  if (v.epochs !== undefined && v.steps !== undefined) throw new InvalidArgumentError('Give --epochs or --steps, not both.');
  const valFraction = numberArg('val-fraction', v['val-fraction'], 0);
  if (!(valFraction >= 0 && valFraction < 1)) throw new InvalidArgumentError(`--val-fraction must be at least 0 and below 1; got ${valFraction}.`);
  const schedule = v.schedule ?? 'linear';
  if (!isScheduleName(schedule)) throw new InvalidArgumentError(`--schedule must be constant, linear or cosine; got ${JSON.stringify(schedule)}.`);
  const format = v.format;
  if (format !== undefined && !(EXAMPLE_FORMATS as readonly string[]).includes(format)) {
    throw new InvalidArgumentError(`--format must be one of ${EXAMPLE_FORMATS.join(', ')}; got ${JSON.stringify(format)}.`);
  }
  const lr = numberArg('lr', v.lr, 2e-4);
  if (!(lr > 0)) throw new InvalidArgumentError(`--lr must be positive; got ${lr}.`);
  const warmup = numberArg('warmup', v.warmup, 0);
  if (!(warmup >= 0) || (warmup >= 1 && !Number.isInteger(warmup))) {
    throw new InvalidArgumentError(`--warmup must be a whole number of steps or a ratio below 1; got ${v.warmup}.`);
  }
  const weightDecay = numberArg('weight-decay', v['weight-decay'], 0);
  const maxGradNorm = numberArg('max-grad-norm', v['max-grad-norm'], 1);
  if (!(weightDecay >= 0)) throw new InvalidArgumentError(`--weight-decay must be ≥ 0; got ${weightDecay}.`);
  if (!(maxGradNorm >= 0)) throw new InvalidArgumentError(`--max-grad-norm must be ≥ 0 (0 turns clipping off); got ${maxGradNorm}.`);
  return {
    model,
    data,
    val: v.val ?? null,
    valFraction,
    out,
    method: method.id,
    methodOptions,
    lora: method.id === 'lora' ? (methodOptions as TrainCommandOptions['lora']) : undefined,
    train: {
      lr,
      schedule: schedule as ScheduleName,
      warmup,
      epochs: v.steps === undefined ? intArg('epochs', v.epochs, 3, 1) : undefined,
      maxSteps: v.steps === undefined ? undefined : intArg('steps', v.steps, 1, 1),
      batchSize: intArg('batch', v.batch, 8, 1),
      gradAccum: intArg('grad-accum', v['grad-accum'], 1, 1),
      seqLen: intArg('seq-len', v['seq-len'], 1024, 2),
      seed: intArg('seed', v.seed, 42, 0, 0xffffffff),
      maxGradNorm,
      weightDecay,
      evalEvery: intArg('eval-every', v['eval-every'], 0, 0),
      saveEvery: intArg('save-every', v['save-every'], 500, 0),
      checkpointBlocks: v['checkpoint-blocks'],
    },
    resume: v.resume,
    adapter: v.adapter ?? null,
    trainOnPrompt: v['train-on-prompt'],
    packing: v.packing,
    format: format as ExampleFormat | undefined,
    skipBadRows: v['skip-bad-rows'],
    dtype: v.dtype,
    quant,
    qat,
    plan: v.plan,
    maxMemory: v['max-memory'] === undefined ? null : intArg('max-memory', v['max-memory'], 0, 1) * 2 ** 20,
  };
}

/**
 * The weight format of --qat (with --block for NF4/FP4 blocks and INT4 groups), or undefined without
 * it. Quantization-aware training trains f32 master weights by full fine-tuning, so --qat with another
 * method or with a quantized base (--quant, --double-quant, --method qlora) is refused.
 */
function parseQatFlags(v: { qat?: string; quant?: string; 'double-quant'?: boolean; block?: string }, method: string): QuantOptions | undefined {
  if (v.qat === undefined) return undefined;
  if (method !== 'full') {
    throw new InvalidArgumentError(`--qat trains with fake-quantized weights by full fine-tuning; it does not go with --method ${method}.`, {
      hint: method === 'qlora' ? 'QLoRA trains LoRA over an already quantized base; for quantization-aware training use --method full --qat nf4.' : 'Use --method full --qat nf4 (small models).',
    });
  }
  if (v.quant !== undefined || v['double-quant']) {
    throw new InvalidArgumentError('--qat trains f32 master weights and quantizes them in every forward; it does not go with a quantized base (--quant, --double-quant).', {
      hint: 'Load the f32 model and give the format to --qat alone (with --block for the block or group size).',
    });
  }
  return resolveQatOptions({ format: parseQuantFormat(v.qat, '--qat'), block: v.block === undefined ? undefined : intArg('block', v.block, 64, 1, 4096) });
}

/** The progress line: "step 12/300  epoch 0.12  loss 2.345  lr 1.20e-4  1234 tok/s  ETA 3m05s". */
export function progressLine(p: TrainProgress): string {
  const parts = [`step ${p.step}/${p.totalSteps}`, `epoch ${p.epoch.toFixed(2)}`];
  if (p.phase === 'eval') parts.push(`evaluating ${p.rowsDone ?? 0}/${p.rowsTotal ?? '?'} rows`);
  else if (p.phase === 'checkpoint') parts.push('saving checkpoint');
  if (p.loss !== undefined) parts.push(`loss ${formatValue(p.loss)}`);
  if (p.lr !== undefined) parts.push(`lr ${p.lr.toExponential(2)}`);
  if (p.tokensPerSecond !== undefined) parts.push(`${Math.round(p.tokensPerSecond)} tok/s`);
  parts.push(`ETA ${p.etaMs === null ? '?' : formatDuration(p.etaMs)}`);
  return parts.join('  ');
}

/** Writes the progress line: rewritten in place on a terminal, one line per step otherwise. */
function progressWriter(): { show(p: TrainProgress): void; done(): void } {
  const tty = Boolean(process.stderr.isTTY);
  let width = 0;
  let shown = false;
  return {
    show(p) {
      const line = progressLine(p);
      if (tty) {
        process.stderr.write(`\r${line}${' '.repeat(Math.max(0, width - line.length))}`);
        width = line.length;
        shown = true;
      } else if (p.phase === 'train') {
        process.stderr.write(`${line}\n`);
      }
    },
    done() {
      if (tty && shown) process.stderr.write('\n');
      shown = false;
      width = 0;
    },
  };
}

export async function trainCommand(args: string[]): Promise<number> {
  const o = parseTrainArgs(args);
  const out = resolve(o.out);
  const folder = await openModelArg(o.model);
  const tokenizer = await loadFolderTokenizer(folder);
  const seqLen = Math.min(o.train.seqLen, folder.config.maxPositionEmbeddings);
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const sources: ByteSource[] = [];
  try {
    sources.push(await openFileSource(o.data, basename(o.data)));
    if (o.val) sources.push(await openFileSource(o.val, basename(o.val)));
    const dataset = await prepareDataset(sources[0], {
      tokenizer,
      format: o.format,
      maxLength: seqLen,
      trainOnPrompt: o.trainOnPrompt,
      packing: o.packing,
      valFraction: o.valFraction,
      valSource: o.val ? sources[1] : undefined,
      seed: o.train.seed,
      skipBadRows: o.skipBadRows,
      signal: controller.signal,
      onProgress: (p: PrepareProgress) => {
        if (process.stderr.isTTY) process.stderr.write(`\rreading ${p.file}: ${formatBytes(p.bytesRead)} of ${formatBytes(p.totalBytes)}, ${p.rows} rows   `);
      },
    });
    const s = dataset.stats;
    if (process.stderr.isTTY) process.stderr.write('\n');
    process.stderr.write(
      `dataset: ${s.format}, ${s.trainExamples} training and ${s.validationExamples} validation examples, ${s.tokens} tokens (${s.countedTokens} counted)` +
        `${s.skippedRows > 0 ? `, ${s.skippedRows} bad rows skipped` : ''}${s.packing ? `, packed into ${s.packing.trainSequences} sequences` : ''}\n`,
    );
    for (const w of s.warnings) process.stderr.write(`warning: ${w}\n`);

    // The memory plan names the method. LoRA, QLoRA, DoRA and full fine-tuning are planned from the
    // config before anything loads; the other methods (and a given --adapter, whose method its files
    // tell) once the adapter exists, from its parameter count.
    const planOf = (methodId: string, values: MethodOptionValues, trainableParameters?: number) => {
      const lowRank = methodId === 'lora' || methodId === 'dora';
      return planTrainingMemory(folder.config, {
        method: methodId === 'lora' && o.quant ? 'qlora' : methodId,
        quant: o.quant,
        weightDtype: o.dtype === 'bf16' ? 'bf16' : 'f32',
        rank: lowRank ? (values.r as number) : undefined,
        targets: lowRank ? loraTargets(values.target_modules) : undefined,
        dropout: lowRank ? (values.lora_dropout as number) : undefined,
        batch: o.train.batchSize ?? 8,
        seqLen,
        checkpointBlocks: o.train.checkpointBlocks,
        trainableParameters,
        virtualTokens: methodId === 'prompt' ? Number(values.num_virtual_tokens) : undefined,
        quantAware: o.qat !== undefined && methodId === 'full',
      });
    };
    /** Prints the plan; true when --plan asked for it alone. */
    const showPlan = (plan: MemoryPlan): boolean => {
      const trainable = plan.trainableParameters.toLocaleString('en-US');
      process.stderr.write(`memory plan (${plan.method}${o.quant ? `, ${o.quant.format}` : ''}, batch ${o.train.batchSize ?? 8} × ${seqLen} tokens), ${trainable} trainable values:\n${describePlan(plan)}\n`);
      if (o.plan) process.stdout.write(`${JSON.stringify(plan)}\n`);
      return o.plan === true;
    };
    const early = o.adapter === null && ['lora', 'dora', 'full'].includes(o.method) ? planOf(o.method, o.methodOptions) : null;
    if (early) {
      if (showPlan(early)) return 0;
      checkPlan(early, { maxBufferSize: Infinity, maxStorageBufferBindingSize: Infinity }, o.maxMemory ?? null); // before loading anything
    }
    const { gpu, model } = await loadCliModel(folder, o.dtype, o.quant);
    if (early) checkPlan(early, gpu.device.limits);
    try {
      const baseModel = o.model.startsWith('hub:') ? o.model.slice(4).split('@')[0] : basename(resolve(o.model));
      // A given adapter is trained further as it is (its method and settings); else a new one.
      const method = findMethod(o.method);
      const adapter = o.adapter
        ? await loadCliMethodAdapter(model, o.adapter)
        : await method.create(model, o.methodOptions, { seed: o.train.seed, baseModel: o.model.startsWith('hub:') ? baseModel : o.model, encode: (text) => tokenizer.encode(text), source: folder });
      adapter.training = true;
      if (o.qat) {
        try {
          if (!(adapter instanceof FullFineTune)) throw new InvalidArgumentError(`--qat trains full fine-tunes; the adapter in ${o.adapter} is ${adapter.method}.`);
          adapter.quantAware(o.qat);
        } catch (e) {
          adapter.release();
          throw e;
        }
      }
      if (o.adapter) process.stderr.write(`continuing from the adapter in ${o.adapter} (${adapter.describe()})\n`);
      try {
        if (!early) {
          const values = o.adapter ? adapter.savedConfig : o.methodOptions;
          const plan = planOf(adapter.method, values, adapter.parameterCount);
          if (showPlan(plan)) return 0;
          checkPlan(plan, gpu.device.limits, o.maxMemory ?? null);
        }
        await mkdir(out, { recursive: true });
        const store = new FolderCheckpointStore(join(out, 'checkpoints'));
        const metricsPath = join(out, 'metrics.jsonl');
        const checkpoint = o.resume ? await latestCheckpoint(store) : null;
        // metrics.jsonl holds exactly the steps the run has: a resumed run rewrites it from its checkpoint.
        writeFileSync(metricsPath, (checkpoint?.metrics ?? []).map((m) => `${JSON.stringify(m)}\n`).join(''));
        if (checkpoint) process.stderr.write(`resuming from the checkpoint of step ${checkpoint.step}\n`);
        process.stderr.write(
          `training ${adapter.parameterCount.toLocaleString('en-US')} ${findMethod(adapter.method).label} parameters (${adapter.describe()}) of ${baseModel}${o.train.seqLen > seqLen ? ` (sequence length capped at the model's ${seqLen})` : ''}\n`,
        );
        const progress = progressWriter();
        let result;
        try {
          result = await train({
            model,
            adapter,
            train: dataset.train,
            validation: dataset.validation.length > 0 ? dataset.validation : undefined,
            options: { ...o.train, seqLen },
            checkpoints: store,
            resume: checkpoint ?? false,
            signal: controller.signal,
            onMetrics: (m: StepMetrics) => appendFileSync(metricsPath, `${JSON.stringify(m)}\n`),
            onProgress: (p) => progress.show(p),
          });
        } finally {
          progress.done();
        }

        const files = await adapter.exportFiles();
        // The model card describes LoRA adapters; other methods are written without one.
        const lora = adapter.method === 'lora' ? (adapter as LoraMethodAdapter).lora : null;
        const card = lora && trainedModelCard(lora.config, model.config, {
          baseModel,
          options: { ...o.train, seqLen },
          result,
          precision: o.quant ? `${o.quant.format}${o.quant.doubleQuant ? ' (double-quantized)' : ''} (QLoRA)` : model.weightDtype,
          dataset: { name: basename(o.data), format: s.format, trainExamples: s.trainExamples, validationExamples: s.validationExamples, tokens: s.tokens, countedTokens: s.countedTokens },
          adapterRepo: out,
        });
        if (card) files.set('README.md', new TextEncoder().encode(card));
        const written: { name: string; bytes: number }[] = [];
        for (const [name, bytes] of files) {
          await writeFile(join(out, name), bytes);
          written.push({ name, bytes: bytes.byteLength });
        }
        // A quantization-aware run also writes the model in its format: the weights it trained through.
        if (o.qat && adapter instanceof FullFineTune) {
          const quantized = await adapter.exportQuantizedFiles();
          await mkdir(join(out, o.qat.format), { recursive: true });
          for (const [name, bytes] of quantized.files) {
            await writeFile(join(out, o.qat.format, name), bytes);
            written.push({ name: `${o.qat.format}/${name}`, bytes: bytes.byteLength });
          }
        }
        process.stderr.write(
          `done: ${result.steps} steps in ${formatDuration(result.elapsedMs)}, loss ${result.trainLoss === null ? '?' : formatValue(result.trainLoss)}` +
            `${result.valLoss === null ? '' : `, validation loss ${formatValue(result.valLoss)}`}; adapter written to ${out}\n`,
        );
        process.stdout.write(
          `${JSON.stringify({
            out,
            steps: result.steps,
            totalSteps: result.totalSteps,
            epochs: result.epochs,
            trainLoss: result.trainLoss,
            valLoss: result.valLoss,
            resumedFrom: result.resumedFrom,
            elapsedMs: Math.round(result.elapsedMs),
            files: [...written, { name: 'metrics.jsonl' }, { name: 'checkpoints/' }],
          })}\n`,
        );
        return 0;
      } finally {
        adapter.release();
      }
    } finally {
      model.release();
      gpu.destroy();
    }
  } catch (e) {
    if (e instanceof CancelledError) {
      process.stderr.write(`\n${e.message} Checkpoints are in ${join(out, 'checkpoints')}; run the same command with --resume to continue.\n`);
      return 130;
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', onSigint);
    for (const src of sources) await src.close?.();
  }
}

/** The projections a LoRA target_modules setting selects, for the memory plan (null: all seven). */
function loraTargets(t: unknown): string[] | undefined {
  const all = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  if (t === 'all-linear' || t === undefined || t === null) return undefined;
  if (Array.isArray(t)) return all.filter((p) => t.some((x) => typeof x === 'string' && (x === p || x.endsWith(`.${p}`))));
  if (typeof t === 'string') {
    const re = new RegExp(`^(?:${t})$`); // PEFT matches a regex against the whole module name
    return all.filter((p) => re.test(`model.layers.0.self_attn.${p}`) || re.test(`model.layers.0.mlp.${p}`));
  }
  return undefined;
}
