// Full fine-tuning for small models: every weight of the model trainable, as f32 master copies on the
// GPU (the loaded model stays as it was, so disabling gives the base model back), each with an f32
// gradient buffer; AdamW's two moments come from the optimizer. The forward uses the copies as
// parameter overrides. Before copying, the memory check estimates weights + copies + gradients +
// AdamW state (5 × 4 bytes per value) and refuses a model over the budget with a typed error. Saved
// as a Hugging Face model folder (config.json, model.safetensors in f32, the tokenizer and
// generation files of the source folder) that loadModel opens like any other model.
// Quantization-aware training (quantAware): each projection weight (q/k/v/o, gate/up/down) also
// has a working copy Ŵ = decode(encode(W)) in a weight format (kernels/fake_quant.ts), refreshed
// whenever the trainer changes the master weights (paramsChanged, recorded after each optimizer
// update); the forward multiplies by Ŵ, and Ŵ's gradient accumulates into W's gradient buffer (the
// straight-through estimator). exportQuantizedFiles writes the model quantized with the same codec,
// whose weights decode to exactly the Ŵ the forward used.

import { Tape, type Var } from '../../autograd/tape.ts';
import { AdapterConfigError, InvalidArgumentError, MissingFileError } from '../../errors.ts';
import { formatBytes } from '../../gpu/allocator.ts';
import { readTensor } from '../../gpu/readback.ts';
import { Batch } from '../../gpu/batch.ts';
import { type Tensor, createTensor, tensorFromArray } from '../../gpu/tensor.ts';
import { affine } from '../../kernels/elementwise.ts';
import { fakeQuantize } from '../../kernels/fake_quant.ts';
import type { QuantOptions } from '../../quant/format.ts';
import { type QuantizedFiles, isFakeQuantized, quantizeFolderFiles, resolveQatOptions, straightThrough } from '../../quant/fake-quant.ts';
import { QuantizedTensor } from '../../quant/tensor.ts';
import type { AdapterDType } from '../../io/export-peft.ts';
import { encodeFloats } from '../../io/export-peft.ts';
import { CONFIG_FILE, type FileSet, GENERATION_CONFIG_FILE, SINGLE_WEIGHTS_FILE, TOKENIZER_FILES, openModelFolder, streamWeights } from '../../io/model-folder.ts';
import { type TensorToWrite, writeSafetensors } from '../../io/safetensors.ts';
import type { ForwardOptions, LlamaModel } from '../../model/llama.ts';
import type { PeftAdapter, SavedFiles } from '../adapter.ts';
import { AdapterParams } from '../params.ts';

/** Bytes full fine-tuning may plan for by default (weights, copies, gradients, AdamW moments). */
export const FULL_FINE_TUNE_BUDGET_BYTES = 4 * 1024 ** 3;

/** Where a full fine-tune's export takes config.json and the tokenizer files from. */
export interface FullSource {
  rawConfig: Record<string, unknown>;
  files?: FileSet;
}

/**
 * The bytes full fine-tuning of `model` needs: 4 bytes × values × (weights, copies, gradients, 2
 * AdamW moments), plus 4 bytes per projection value for the fake-quantized copies when `qat`.
 */
export function fullFineTuneBytes(model: LlamaModel, qat = false): number {
  let values = 0;
  let projections = 0;
  const seen = new Set<Tensor>(); // a tensor shared by several names counts once
  for (const [name, t] of Object.entries(model.params)) {
    if (seen.has(t)) continue;
    seen.add(t);
    values += t.numel;
    if (isFakeQuantized(name, t.shape)) projections += t.numel;
  }
  return values * 4 * 5 + (qat ? projections * 4 : 0);
}

/**
 * Throws InvalidArgumentError (with the estimate) when full fine-tuning `model` (quantization-aware
 * when `qat`) needs more than `budget` bytes, or its weights are not f32.
 */
export function checkFullFineTune(model: LlamaModel, budget = FULL_FINE_TUNE_BUDGET_BYTES, qat = false): void {
  const need = fullFineTuneBytes(model, qat);
  if (need > budget) {
    throw new InvalidArgumentError(`Full fine-tuning this model needs about ${formatBytes(need)} of GPU memory (weights, f32 master copies, ${qat ? 'the quantized values of the projections, ' : ''}gradients and AdamW state) before activations; the budget is ${formatBytes(budget)}.`, {
      hint: 'Use LoRA, DoRA or IA3 for a model this size, or a smaller model.',
    });
  }
  const stored = Object.entries(model.params).find(([, t]) => t.dtype !== 'f32');
  if (model.weightDtype !== 'f32' || stored) {
    throw new InvalidArgumentError(`Full fine-tuning trains f32 weights; ${stored ? `"${stored[0]}" is stored as ${stored[1].dtype}` : `the projections are stored as ${model.weightDtype}`}.`, {
      hint: 'Load the model with --dtype f32 and without quantization.',
    });
  }
  const names = Object.keys(model.params);
  if (new Set(Object.values(model.params)).size !== names.length) {
    throw new InvalidArgumentError('This model shares weights between layers; full fine-tuning trains each named weight on its own and does not support that.');
  }
}

export class FullFineTune extends AdapterParams implements PeftAdapter {
  readonly method = 'full';
  training: boolean;
  enabled = true;
  readonly model: LlamaModel;
  readonly source: FullSource | null;
  /** The format quantization-aware training trains for (quantAware), or null. */
  private qat: Required<QuantOptions> | null = null;
  /** Ŵ of each fake-quantized weight, by name, while quantization-aware. */
  private readonly fakes = new Map<string, Tensor>(); // each (out, in) f32

  /** Copies of the model's weights (or `values`, by name) as trainable f32 tensors. */
  constructor(model: LlamaModel, source: FullSource | null, training: boolean, values?: ReadonlyMap<string, Float32Array>) {
    super('The full fine-tune');
    this.model = model;
    this.source = source;
    this.training = training;
    const gpu = model.gpu;
    this.buildParams(gpu, 'full.copy', (b) => {
      for (const [name, t] of Object.entries(model.params)) {
        const given = values?.get(name);
        if (values && !given) throw new AdapterConfigError(`The saved model has no weight "${name}".`);
        if (given && given.length !== t.numel) throw new AdapterConfigError(`The saved weight "${name}" has ${given.length} values; the model's has ${t.numel}.`);
        const value = given ? tensorFromArray(gpu, given, t.shape, 'f32', { label: name }) : createTensor(gpu, t.shape, 'f32', { label: name });
        if (!given) affine(b, t, value, 1);
        const grad = createTensor(gpu, t.shape, 'f32', { label: `${name}.grad` });
        this.params.push({ name, value, grad });
      }
    });
  }

  get savedConfig(): Record<string, unknown> {
    return { ...(this.source?.rawConfig ?? {}), torch_dtype: 'float32' };
  }

  describe(): string {
    const q = this.qat;
    return `all ${this.params.length} weights${q ? `, ${this.fakes.size} projections trained through ${q.format}${q.format === 'int8' ? '' : ` (${q.format === 'int4' ? 'group' : 'block'} ${q.block})`}` : ''}`;
  }

  /** The fake-quantized working copies by weight name (empty unless quantization-aware). */
  get fakeQuantized(): ReadonlyMap<string, Tensor> {
    return this.fakes;
  }

  /** The weight format quantization-aware training trains for, or null. */
  get quantAwareFormat(): Required<QuantOptions> | null {
    return this.qat ? { ...this.qat } : null;
  }

  /**
   * Turns on quantization-aware training for the format `options` (no double quantization): every
   * projection weight gets its fake-quantized working copy, computed now and refreshed by
   * paramsChanged(). Once on, it stays on with the same format.
   */
  quantAware(options: QuantOptions): void {
    this.assertLive();
    const o = resolveQatOptions(options);
    if (this.qat) {
      if (JSON.stringify(this.qat) === JSON.stringify(o)) return;
      throw new InvalidArgumentError(`This full fine-tune already trains for ${this.qat.format}; it cannot switch to ${o.format}.`);
    }
    const quantized = Object.entries(this.model.params).find(([, t]) => t instanceof QuantizedTensor);
    if (quantized) {
      throw new InvalidArgumentError(`Quantization-aware training trains f32 master weights; "${quantized[0]}" is stored quantized.`, { hint: 'Load the original (unquantized) model.' });
    }
    const gpu = this.model.gpu;
    const b = new Batch(gpu, 'full.qat');
    try {
      for (const p of this.params) {
        if (!isFakeQuantized(p.name, p.value.shape)) continue;
        const fake = createTensor(gpu, p.value.shape, 'f32', { label: `${p.name}.fake_quant` });
        this.fakes.set(p.name, fake);
        fakeQuantize(b, p.value, fake, o);
      }
      b.submit();
    } catch (e) {
      for (const t of this.fakes.values()) t.release();
      this.fakes.clear();
      throw e;
    }
    this.qat = o;
  }

  /** Recomputes the fake-quantized copies from the master weights (recorded in `b`); the trainer calls it after every update. */
  paramsChanged(b: Batch): void {
    this.assertLive();
    if (!this.qat) return;
    for (const p of this.params) {
      const fake = this.fakes.get(p.name);
      if (fake) fakeQuantize(b, p.value, fake, this.qat);
    }
  }

  forwardOptions(tape: Tape, leaves: Map<string, Var>): ForwardOptions {
    if (!this.enabled) return {};
    const params = Object.fromEntries(leaves);
    for (const [name, fake] of this.fakes) {
      const master = leaves.get(name);
      if (master) params[name] = straightThrough(tape, master, fake);
    }
    return { params };
  }

  inferenceOptions(): ForwardOptions {
    return this.forwardOptions(new Tape(), this.leaves(new Tape(), false));
  }

  /** A Hugging Face model folder: config.json (torch_dtype float32), model.safetensors (f32), and the source's tokenizer and generation files. */
  async exportFiles(options: { dtype?: AdapterDType } = {}): Promise<SavedFiles> {
    this.assertLive();
    if (!this.source) throw new InvalidArgumentError('The full fine-tune was made without its source folder, so config.json cannot be written; create it with `source`.');
    const dtype = options.dtype ?? 'f32';
    const tensors: TensorToWrite[] = [];
    for (const p of this.params) tensors.push({ name: p.name, shape: p.value.shape, ...encodeFloats(await readTensor(p.value as Tensor & { dtype: 'f32' }), dtype) });
    const torchDtype = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype];
    const out: SavedFiles = new Map([
      [CONFIG_FILE, new TextEncoder().encode(`${JSON.stringify({ ...this.source.rawConfig, torch_dtype: torchDtype }, null, 2)}\n`)],
      [SINGLE_WEIGHTS_FILE, writeSafetensors(tensors, { format: 'pt' })],
    ]);
    const files = this.source.files;
    if (files) {
      const listed = new Set(files.list());
      for (const name of [GENERATION_CONFIG_FILE, ...TOKENIZER_FILES]) {
        if (!listed.has(name)) continue;
        const src = await files.open(name);
        try {
          out.set(name, await src.read(0, src.size));
        } finally {
          await src.close?.();
        }
      }
    }
    return out;
  }

  /**
   * The model quantized with the format quantization-aware training trained for, as
   * `whetstone quantize` writes it (config.json with quantization_config, model.safetensors with
   * the projections in the format's layout, the other tensors f32, the tokenizer files); its
   * projections decode to exactly the weights the forward passes used.
   */
  async exportQuantizedFiles(): Promise<QuantizedFiles> {
    if (!this.qat) throw new InvalidArgumentError('This full fine-tune is not quantization-aware; quantize its exported folder with `whetstone quantize` instead.');
    return quantizeFolderFiles(await this.exportFiles(), this.qat);
  }

  protected override releaseOthers(): void {
    for (const t of this.fakes.values()) t.release();
    this.fakes.clear();
  }
}

/**
 * Full fine-tuning of `model` (after the memory check), starting from its weights. Starts in
 * training mode; with `qat`, quantization-aware for that weight format.
 */
export function createFullFineTune(model: LlamaModel, options: { source?: FullSource | null; budgetBytes?: number; qat?: QuantOptions } = {}): FullFineTune {
  model.assertLive();
  if (options.qat) resolveQatOptions(options.qat);
  checkFullFineTune(model, options.budgetBytes, Boolean(options.qat));
  const full = new FullFineTune(model, options.source ?? null, true);
  if (options.qat) {
    try {
      full.quantAware(options.qat);
    } catch (e) {
      full.release();
      throw e;
    }
  }
  return full;
}

/** Loads a fine-tuned model folder's weights as a full fine-tune of `model` (the same architecture and sizes; training off). */
export async function loadFullFineTune(model: LlamaModel, files: FileSet): Promise<FullFineTune> {
  model.assertLive();
  checkFullFineTune(model, Number.POSITIVE_INFINITY);
  if (!files.list().includes(CONFIG_FILE)) throw new MissingFileError(`${CONFIG_FILE} is missing; a fine-tuned model folder holds it.`, { file: CONFIG_FILE });
  const folder = await openModelFolder(files);
  const values = new Map<string, Float32Array>();
  for await (const w of streamWeights(folder)) values.set(w.name, w.data);
  return new FullFineTune(model, { rawConfig: folder.rawConfig, files }, false, values);
}
