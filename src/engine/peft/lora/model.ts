// LoRA on a loaded Llama-family model: the adapter's parameters on the GPU (lora_A (r, in) and
// lora_B (out, r) per adapted projection, each with an f32 gradient buffer; the base weights stay
// frozen and get none), injected by module name through the model's projection hook, created with
// PEFT's initialization or loaded from a PEFT folder, merged into and unmerged from f32 projection
// weights in place, and exported as a merged Hugging Face model folder. The op itself is layer.ts;
// config.ts resolves targets, ranks and scales; reading and writing adapter files is io/export-peft.ts.

import { add } from '../../autograd/ops.ts';
import { Tape, type Var } from '../../autograd/tape.ts';
import { folderFiles } from '../../compress/folder.ts';
import { AdapterConfigError, AdapterMismatchError, InvalidArgumentError } from '../../errors.ts';
import { Batch } from '../../gpu/batch.ts';
import type { Gpu } from '../../gpu/device.ts';
import { readTensor } from '../../gpu/readback.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { matmul } from '../../kernels/matmul.ts';
import { importPeftLora } from '../../io/export-peft.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../io/half.ts';
import type { FileSet, ModelFolder } from '../../io/model-folder.ts';
import { type LazyTensorToWrite, type SafetensorsDType, safetensorsLayout, streamSafetensors } from '../../io/safetensors.ts';
import type { ModelConfig } from '../../model/config.ts';
import { type ForwardOptions, LlamaModel, type ModelInputs, type ProjectionHook } from '../../model/llama.ts';
import { Rng } from '../../random.ts';
import { fmix32 } from '../../reference/dropout.ts';
import { type QuantizedMatrix, dequantizeMatrix } from '../../quant/format.ts';
import { DYNAMIC_MAP } from '../../quant/tables.ts';
import { QuantizedTensor } from '../../quant/tensor.ts';
import { AdapterParams, uploadParam } from '../params.ts';
import { type LoraConfig, type LoraModuleSpec, type LoraTensors, checkLoraTensors, expectedLoraModules, parseLoraConfig } from './config.ts';
import { loraTerm } from './layer.ts';

/** How lora_A starts: PEFT's default kaiming-uniform (init_lora_weights true) or N(0, 1/r²) ("gaussian"). */
export type LoraInit = 'kaiming' | 'gaussian';

/** One trainable tensor of the adapter. */
export interface LoraParam {
  /** PEFT's key without the `base_model.model.` prefix, e.g. "model.layers.0.self_attn.q_proj.lora_A.weight". */
  name: string;
  value: Tensor; // (r, in) for lora_A, (out, r) for lora_B, f32
  grad: Tensor; // same shape, f32
}

/** One adapted projection: its spec (path, sizes, r, alpha, scale), its factors and its index for dropout seeds. */
interface LoraModule {
  spec: LoraModuleSpec;
  index: number;
  A: LoraParam;
  B: LoraParam;
}

export interface CreateLoraOptions {
  /** Seed of the initialization and of the dropout masks. */
  seed: number;
  /** lora_A's initialization; by default the config's init_lora_weights decides (true → 'kaiming', "gaussian" → 'gaussian'). */
  init?: LoraInit;
}

export interface LoadLoraOptions {
  /** Seed of the dropout masks when training continues. Default 0. */
  seed?: number;
}

/** The config values whose extra tensors or changed forward pass these LoRA layers do not compute. */
function checkSupported(config: LoraConfig): void {
  const refuse = (key: keyof LoraConfig, why: string) => {
    throw new AdapterConfigError(`Key "${key}" is ${JSON.stringify(config[key])}: ${why}, which Whetstone's LoRA does not support.`);
  };
  if (config.use_dora) refuse('use_dora', 'DoRA adds magnitude vectors');
  if (config.lora_bias) refuse('lora_bias', 'it adds a bias to lora_B');
  if (config.bias !== 'none') refuse('bias', 'it trains the base biases');
  if (config.modules_to_save !== null && config.modules_to_save.length > 0) refuse('modules_to_save', 'it trains whole modules');
  if (config.trainable_token_indices !== null) refuse('trainable_token_indices', 'it trains embedding rows');
  if (config.target_parameters !== null && config.target_parameters.length > 0) refuse('target_parameters', 'it adapts parameters');
  if (config.layer_replication !== null) refuse('layer_replication', 'it changes the layer stack');
  if (config.alora_invocation_tokens !== null) refuse('alora_invocation_tokens', 'activated LoRA applies only after the invocation tokens');
  if (config.use_qalora) refuse('use_qalora', 'QA-LoRA pools the input groupwise');
  for (const key of ['velora_config', 'monteclora_config', 'use_bdlora', 'arrow_config'] as const) {
    if (config[key] !== null) refuse(key, 'it selects another LoRA variant');
  }
}

/** The init of lora_A that `config` and `options` ask for, and whether lora_B starts random too (init_lora_weights false). */
function initOf(config: LoraConfig, init: LoraInit | undefined): { a: LoraInit; randomB: boolean } {
  const w = config.init_lora_weights;
  if (init !== undefined) {
    if (init !== 'kaiming' && init !== 'gaussian') throw new InvalidArgumentError(`init must be "kaiming" or "gaussian"; got ${JSON.stringify(init)}.`);
    return { a: init, randomB: w === false };
  }
  if (w === true) return { a: 'kaiming', randomB: false };
  if (w === false) return { a: 'kaiming', randomB: true };
  if (w === 'gaussian') return { a: 'gaussian', randomB: false };
  throw new AdapterConfigError(
    `Key "init_lora_weights" is ${JSON.stringify(w)}: that initialization is not supported; use true (kaiming-uniform A, zero B), "gaussian" or false.`,
  );
}

/** A u32 dropout seed for one module at one step, from the adapter's seed. */
function dropoutSeed(seed: number, step: number, index: number): number {
  const s = fmix32((fmix32(seed >>> 0) ^ (step >>> 0)) >>> 0);
  return fmix32((s ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0);
}

/**
 * A LoRA adapter on the GPU for one model. `params` lists lora_A then lora_B of every adapted
 * module in module order; gradients accumulate into their `grad` buffers (zeroGrads() clears
 * them). The model's forward applies the adapter through hook().
 */
export class LoraAdapter extends AdapterParams<LoraParam> {
  config: LoraConfig;
  /** The adapted module paths, in module order (e.g. "model.layers.0.self_attn.q_proj"). */
  modules: string[];
  /** Dropout on (lora_dropout of the config); leaves() gives gradient buffers by default when true. */
  training: boolean;
  /** Multiplies every module's scale; 1 by default, 0 gives the base model. */
  strength = 1;
  /** Seed of the dropout masks. */
  seed: number;
  readonly gpu: Gpu;
  readonly modelConfig: ModelConfig;
  private readonly byPath: Map<string, LoraModule>;
  private mergedInto: { model: LlamaModel; scale: number[] } | null = null;

  constructor(gpu: Gpu, modelConfig: ModelConfig, config: LoraConfig, specs: LoraModuleSpec[], tensors: LoraTensors, options: { seed: number; training: boolean }) {
    super('The LoRA adapter');
    this.gpu = gpu;
    this.modelConfig = modelConfig;
    this.config = config;
    this.seed = options.seed;
    this.training = options.training;
    this.modules = specs.map((s) => s.path);
    this.byPath = new Map();
    this.buildParams(gpu, 'lora.zeroGrads', () => {
      specs.forEach((spec, index) => {
        const pair = tensors.get(spec.path);
        if (!pair) throw new AdapterMismatchError(`Module "${spec.path}" is adapted by the config but no tensors are given for it.`);
        const param = (which: 'A' | 'B', data: Float32Array, shape: number[]): LoraParam => {
          const name = `${spec.path}.lora_${which}.weight`;
          const p = uploadParam(gpu, name, data, shape);
          this.params.push(p);
          return p;
        };
        const A = param('A', pair.A, [spec.r, spec.inFeatures]); // (r, in)
        const B = param('B', pair.B, [spec.outFeatures, spec.r]); // (out, r)
        this.byPath.set(spec.path, { spec, index, A, B });
      });
    });
  }

  /** Whether the factors are currently merged into a model's weights (the hook then adds nothing). */
  get merged(): boolean {
    return this.mergedInto !== null;
  }

  /** The spec (sizes, r, alpha, scale) of an adapted module. */
  moduleSpec(path: string): LoraModuleSpec {
    const m = this.byPath.get(path);
    if (!m) throw new InvalidArgumentError(`Module "${path}" is not adapted; adapted modules are e.g. "${this.modules[0]}".`);
    return m.spec;
  }

  /**
   * The projection hook that adds scale · strength · dropout(x) · Aᵀ · Bᵀ to every adapted module's
   * output, A and B taken from `leaves` (made by leaves() on the tape the forward records on).
   * Dropout (lora_dropout) applies while `training`; its masks depend on the adapter's seed, `step`
   * and the module, so a recomputed forward (gradient checkpointing) draws the same ones: give each
   * forward pass of a run its own step. While the adapter is merged or its strength is 0 the hook
   * returns the base output unchanged.
   */
  hook(_tape: Tape, leaves: Map<string, Var>, step = 0): ProjectionHook {
    if (!Number.isInteger(step) || step < 0 || step > 0xffffffff) throw new InvalidArgumentError(`step must be an integer in [0, 2³²); got ${step}.`);
    return this.projectionHook(leaves, step, () => this.training);
  }

  /** A hook for inference: no gradients and no dropout, whatever `training` says. */
  inference(): ProjectionHook {
    return this.projectionHook(this.leaves(new Tape(), false), 0, () => false);
  }

  private projectionHook(leaves: Map<string, Var>, step: number, dropoutOn: () => boolean): ProjectionHook {
    return (t, b, module, x, y) => {
      const m = this.byPath.get(module);
      if (!m || this.mergedInto !== null || this.strength === 0) return y;
      const A = leaves.get(m.A.name);
      const B = leaves.get(m.B.name);
      if (!A || !B) throw new InvalidArgumentError(`The leaves given to hook() lack ${A ? m.B.name : m.A.name}; make them with leaves().`);
      const p = dropoutOn() ? this.config.lora_dropout : 0;
      const term = loraTerm(t, b, x, A, B, { scale: m.spec.scaling * this.strength, dropout: p, seed: dropoutSeed(this.seed, step, m.index) }); // (N, out)
      return add(t, b, y, term); // (N, out)
    };
  }

  /** The factors, read back from the GPU, by module path (for export-peft.ts and export-gguf.ts). */
  async toTensors(): Promise<LoraTensors> {
    this.assertLive();
    const out = new Map<string, { A: Float32Array; B: Float32Array }>();
    for (const path of this.modules) {
      const m = this.byPath.get(path) as LoraModule;
      out.set(path, { A: await readTensor(m.A.value as Tensor & { dtype: 'f32' }), B: await readTensor(m.B.value as Tensor & { dtype: 'f32' }) });
    }
    return out;
  }

  /** The model the factors are merged into, or null. */
  get mergedModel(): LlamaModel | null {
    return this.mergedInto?.model ?? null;
  }

  /** See mergeLora. */
  mergeInto(model: LlamaModel): void {
    this.checkModel(model);
    if (this.mergedInto) throw new InvalidArgumentError('The adapter is already merged; unmerge it first.');
    const modules = this.moduleList();
    const weights = modules.map((m) => f32Weight(model, m.spec.path, 'merge'));
    const scale = modules.map((m) => m.spec.scaling * this.strength);
    const b = new Batch(model.gpu, 'lora.merge');
    modules.forEach((m, i) => matmul(b, m.B.value, m.A.value, weights[i], { transB: false, alpha: scale[i], accumulate: true })); // W (out, in) += s · B · A
    b.submit();
    this.mergedInto = { model, scale };
  }

  /** See unmergeLora. */
  unmergeFrom(model: LlamaModel): void {
    this.checkModel(model);
    const state = this.mergedInto;
    if (!state) throw new InvalidArgumentError('The adapter is not merged.');
    if (state.model !== model) throw new InvalidArgumentError('The adapter is merged into another model.');
    const modules = this.moduleList();
    const weights = modules.map((m) => f32Weight(model, m.spec.path, 'unmerge'));
    const b = new Batch(model.gpu, 'lora.unmerge');
    modules.forEach((m, i) => matmul(b, m.B.value, m.A.value, weights[i], { transB: false, alpha: -state.scale[i], accumulate: true })); // W (out, in) −= s · B · A
    b.submit();
    this.mergedInto = null;
  }

  /** Throws unless the adapter is live and was made for a model shaped like `model`. */
  checkModel(model: LlamaModel): void {
    model.assertLive();
    this.assertLive();
    for (const m of this.moduleList()) {
      const w = model.params[`${m.spec.path}.weight`];
      if (!w || w.shape[0] !== m.spec.outFeatures || w.shape[1] !== m.spec.inFeatures) {
        throw new AdapterMismatchError(
          `Module "${m.spec.path}" is (out=${m.spec.outFeatures}, in=${m.spec.inFeatures}) in the adapter but ${w ? `[${w.shape.join(', ')}]` : 'absent'} in the model.`,
        );
      }
    }
  }

  private moduleList(): LoraModule[] {
    return this.modules.map((p) => this.byPath.get(p) as LoraModule);
  }
}

/**
 * A new LoRA adapter for `model`: the modules config.target_modules selects (with
 * layers_to_transform, exclude_modules, rank_pattern and alpha_pattern), lora_A initialized as PEFT
 * does (kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in), or N(0, 1/r²) for "gaussian"), lora_B
 * zero (so the adapted model starts as the base model), or kaiming-uniform (U(−1/√r, 1/√r)) too when
 * init_lora_weights is false. The adapter starts in training mode. Throws AdapterConfigError for a
 * config asking for what these layers do not compute (DoRA, biases, modules_to_save, ...).
 */
export function createLora(model: LlamaModel, config: LoraConfig, options: CreateLoraOptions): LoraAdapter {
  model.assertLive();
  const c = parseLoraConfig(config as unknown as Record<string, unknown>);
  checkSupported(c);
  const init = initOf(c, options.init);
  if (!Number.isInteger(options.seed) || options.seed < 0 || options.seed > 0xffffffff) {
    throw new InvalidArgumentError(`seed must be an integer in [0, 2³²); got ${options.seed}.`);
  }
  const specs = expectedLoraModules(c, model.config);
  const rng = new Rng(options.seed);
  const tensors = new Map<string, { A: Float32Array; B: Float32Array }>();
  for (const s of specs) {
    const bound = 1 / Math.sqrt(s.inFeatures);
    const std = 1 / s.r;
    const A = init.a === 'kaiming' ? rng.fill(s.r * s.inFeatures, (r) => r.uniform(-bound, bound)) : rng.fill(s.r * s.inFeatures, (r) => std * r.normal()); // (r, in)
    const boundB = 1 / Math.sqrt(s.r);
    const B = init.randomB ? rng.fill(s.outFeatures * s.r, (r) => r.uniform(-boundB, boundB)) : new Float32Array(s.outFeatures * s.r); // (out, r)
    tensors.set(s.path, { A, B });
  }
  return new LoraAdapter(model.gpu, model.config, c, specs, tensors, { seed: options.seed, training: true });
}

/**
 * Loads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, F32/F16/BF16)
 * onto `model`, to generate with it or to continue training it. The adapter starts with training
 * off. Throws AdapterConfigError for an unsupported config and AdapterMismatchError when its
 * modules or shapes do not fit the model.
 */
export async function loadLora(model: LlamaModel, files: Map<string, Uint8Array> | FileSet, options: LoadLoraOptions = {}): Promise<LoraAdapter> {
  model.assertLive();
  const imported = await importPeftLora(files, model.config);
  checkSupported(imported.config);
  const specs = checkLoraTensors(imported.config, model.config, imported.tensors);
  return new LoraAdapter(model.gpu, model.config, imported.config, specs, imported.tensors, { seed: options.seed ?? 0, training: false });
}

/** The f32 weight of an adapted module, or a typed error for 16-bit storage. */
function f32Weight(model: LlamaModel, path: string, what: string): Tensor {
  const w = model.params[`${path}.weight`];
  if (w.dtype !== 'f32') {
    throw new InvalidArgumentError(`Cannot ${what} the adapter: "${path}.weight" is stored as ${w.dtype} on the GPU, and merging is done on f32 weights.`, {
      hint: 'Load the model with f32 weights (dtype "f32", or --dtype f32) to merge, or use the adapter unmerged; exportMergedModel works with either.',
    });
  }
  return w;
}

/**
 * W += scale · strength · B · A in place on the GPU for every adapted projection (PEFT's merge):
 * the model then computes what model + adapter computed, and the adapter's hook adds nothing until
 * unmergeLora. Needs f32 projection weights; throws InvalidArgumentError for weights stored in 16 bits.
 */
export function mergeLora(model: LlamaModel, adapter: LoraAdapter): void {
  adapter.mergeInto(model);
}

/** Undoes mergeLora: W −= the same scale · B · A (equal to the original weights up to f32 rounding). */
export function unmergeLora(model: LlamaModel, adapter: LoraAdapter): void {
  adapter.unmergeFrom(model);
}

/** A view of `base` whose forward, loss and logits apply `projection`; it owns nothing. */
class AdaptedModel extends LlamaModel {
  private readonly base: LlamaModel;
  private readonly projection: ProjectionHook;

  constructor(base: LlamaModel, projection: ProjectionHook) {
    super(base.gpu, base.config, base.params, base.weightDtype, base.invFreq);
    this.base = base;
    this.projection = projection;
  }

  override forward(tape: Tape, b: Batch, inputs: ModelInputs, options: ForwardOptions = {}): Var {
    return super.forward(tape, b, inputs, { ...options, projection: options.projection ?? this.projection });
  }

  override loss(tape: Tape, b: Batch, inputs: ModelInputs, options: ForwardOptions = {}): Var {
    return super.loss(tape, b, inputs, { ...options, projection: options.projection ?? this.projection });
  }

  /** The weights belong to the base model: releasing the view frees nothing. */
  override release(): void {}

  override assertLive(): void {
    this.base.assertLive();
  }
}

/**
 * `model` with the adapter applied for inference (no dropout, no gradients): a LlamaModel view whose
 * forward, loss and logits — and so evaluateLoss and generate — include the adapter. It shares the
 * base model's weights; releasing it frees nothing.
 */
export function withAdapter(model: LlamaModel, adapter: LoraAdapter): LlamaModel {
  adapter.checkModel(model);
  return new AdaptedModel(model, adapter.inference());
}

// ---------------------------------------------------------------------------------------------
// Merged export

/** One file of an exported folder, produced as a stream of byte chunks. */
export interface ExportedFile {
  name: string;
  /** Size in bytes. */
  bytes: number;
  chunks(): AsyncGenerator<Uint8Array>;
}

/** What a merged export copies from the folder the model was loaded from. */
export type MergedModelSource = Pick<ModelFolder, 'files' | 'rawConfig' | 'weights'>;

export interface ExportMergedOptions {
  /** Storage of every floating-point tensor; by default each keeps its dtype in the source checkpoint (F64 is written as F32). */
  dtype?: 'f32' | 'f16' | 'bf16';
}

const DTYPE_NAMES: Record<'f32' | 'f16' | 'bf16', { st: SafetensorsDType; torch: string }> = {
  f32: { st: 'F32', torch: 'float32' },
  f16: { st: 'F16', torch: 'float16' },
  bf16: { st: 'BF16', torch: 'bfloat16' },
};

/**
 * A quantized weight's values, decoded on the CPU: its codes and quantization state read back and
 * dequantized with the codec's reference decoder (quant/format.ts), as loading decodes a quantized
 * embedding. A double-quantized weight whose map is bitsandbytes' standard one decodes through it.
 */
async function dequantizeOnCpu(t: QuantizedTensor): Promise<Float32Array> {
  const [rows, cols] = t.shape as [number, number];
  const codes = await readTensor(t.codes as Tensor & { dtype: 'u8' });
  const scales = await readTensor(t.scales as Tensor & { dtype: 'f32' });
  const hasAux = t.doubleQuant || t.zeros;
  const aux = hasAux ? await readTensor(t.aux as Tensor & { dtype: 'u8' }) : null;
  let dmap = t.doubleQuant ? await readTensor(t.dmap as Tensor & { dtype: 'f32' }) : null;
  if (dmap && dmap.length === DYNAMIC_MAP.length && dmap.every((x, i) => x === DYNAMIC_MAP[i])) dmap = DYNAMIC_MAP;
  const m: QuantizedMatrix = { format: t.format, shape: [rows, cols], block: t.block, doubleQuant: t.doubleQuant, codes, scales, aux, dmap, offset: t.offset };
  return dequantizeMatrix(m);
}

/** A tensor's values as f32, read from the GPU whatever its storage (a quantized weight is dequantized). */
async function readAsF32(t: Tensor): Promise<Float32Array> {
  if (t instanceof QuantizedTensor) return dequantizeOnCpu(t);
  if (t.dtype === 'f32') return readTensor(t as Tensor & { dtype: 'f32' });
  if (t.dtype === 'bf16') return bf16ToF32(await readTensor(t as Tensor & { dtype: 'bf16' }));
  if (t.dtype === 'f16') return f16ToF32(await readTensor(t as Tensor & { dtype: 'f16' }));
  throw new InvalidArgumentError(`Weight ${t.describe()} is not a float tensor.`);
}

function encode(values: Float32Array, dtype: SafetensorsDType): ArrayBufferView {
  if (dtype === 'F32') return values;
  if (dtype === 'BF16') return f32ToBf16(values);
  return f32ToF16(values);
}

/**
 * The model with the adapter merged, as a Hugging Face folder: config.json (the source's, with
 * torch_dtype updated when `dtype` changes it), model.safetensors (every weight of the model, the
 * adapted projections as W + scale · strength · B · A computed in float64 and rounded once, in the
 * checkpoint's dtype unless `dtype` says otherwise), and the tokenizer and generation files copied
 * from `source` (the folder the model was loaded from). Works with f32, bf16 and quantized weight
 * storage (quantized weights are dequantized on the CPU, written in f32 unless `dtype` says
 * otherwise, and config.json loses its quantization_config) and leaves the model unchanged; tensors
 * are read and converted one at a time as the stream reaches them. It loads back with loadModel.
 */
export async function exportMergedModel(model: LlamaModel, adapter: LoraAdapter, source: MergedModelSource, options: ExportMergedOptions = {}): Promise<ExportedFile[]> {
  adapter.checkModel(model);
  checkExportDtype(options);
  const factors = await adapter.toTensors();
  const merged = adapter.mergedModel;
  if (merged && merged !== model) throw new InvalidArgumentError('The adapter is merged into another model.');
  const deltas = new Map(adapter.modules.map((path) => [`${path}.weight`, { spec: adapter.moduleSpec(path), pair: factors.get(path) as { A: Float32Array; B: Float32Array } }]));
  return modelFolderFiles(model, source, options, (name, w) => {
    const d = deltas.get(name);
    // Weights already merged on the GPU hold the adapter; the others get it added here.
    if (!d || merged) return;
    const { spec, pair } = d;
    const s = spec.scaling * adapter.strength;
    const row = new Float64Array(spec.r);
    for (let o = 0; o < spec.outFeatures; o++) {
      for (let j = 0; j < spec.r; j++) row[j] = s * pair.B[o * spec.r + j];
      for (let i = 0; i < spec.inFeatures; i++) {
        let acc = 0;
        for (let j = 0; j < spec.r; j++) acc += row[j] * pair.A[j * spec.inFeatures + i];
        w[o * spec.inFeatures + i] = w[o * spec.inFeatures + i] + acc;
      }
    }
  });
}

/** An adapter that folds into the model's weights on the GPU (DoRA, IA3: PeftAdapter's merge and unmerge). */
export interface InPlaceMergeable {
  readonly method: string;
  merge?(model: LlamaModel): Promise<void>;
  unmerge?(model: LlamaModel): Promise<void>;
}

/**
 * The model with an in-place-merging adapter (DoRA, IA3) merged, as the same Hugging Face folder as
 * exportMergedModel writes. The adapter is merged into `model` when model.safetensors starts to
 * stream and unmerged when it ends, so the model is back to its weights up to f32 rounding of the
 * unmerge afterwards. Needs f32 projection weights: a quantized or 16-bit base is refused with a
 * typed error (those merges rewrite the stored weights).
 */
export async function exportInPlaceMerged(model: LlamaModel, adapter: InPlaceMergeable, source: MergedModelSource, options: ExportMergedOptions = {}): Promise<ExportedFile[]> {
  model.assertLive();
  checkExportDtype(options);
  const merge = adapter.merge?.bind(adapter);
  const unmerge = adapter.unmerge?.bind(adapter);
  if (!merge || !unmerge) {
    throw new InvalidArgumentError(`${adapter.method} adapters have no merge: they change the forward pass itself, so there is no merged model.`, {
      hint: 'Export the adapter files instead (--format peft).',
    });
  }
  const quantized = model.quantization;
  if (quantized || model.weightDtype !== 'f32') {
    throw new InvalidArgumentError(
      `Merging a ${adapter.method} adapter rewrites the projection weights in f32, and this model stores them ${quantized ? `quantized (${quantized})` : `in ${model.weightDtype}`}.`,
      { hint: 'Load the base model from its unquantized folder with f32 weights (no --quant, --dtype f32) to export it merged; LoRA adapters merge onto a quantized base.' },
    );
  }
  return modelFolderFiles(model, source, options, undefined, { before: () => merge(model), after: () => unmerge(model) });
}

function checkExportDtype(options: ExportMergedOptions): void {
  if (options.dtype !== undefined && !(options.dtype in DTYPE_NAMES)) {
    throw new InvalidArgumentError(`dtype must be "f32", "f16" or "bf16"; got ${JSON.stringify(options.dtype)}.`);
  }
}

/**
 * The model's weights as a Hugging Face folder (see exportMergedModel): each tensor read as f32,
 * changed in place by `edit` when given, and encoded as it streams; `around` runs before the
 * weights stream and after they end (or fail).
 */
async function modelFolderFiles(
  model: LlamaModel,
  source: MergedModelSource,
  options: ExportMergedOptions,
  edit?: (name: string, w: Float32Array) => void,
  around?: { before(): Promise<void>; after(): Promise<void> },
): Promise<ExportedFile[]> {
  const sourceDtype = new Map(source.weights.map((w) => [w.name, w.dtype]));
  const storage = (name: string): SafetensorsDType => {
    if (options.dtype) return DTYPE_NAMES[options.dtype].st;
    const d = sourceDtype.get(name);
    return d === 'BF16' || d === 'F16' ? d : 'F32';
  };

  const tensors: LazyTensorToWrite[] = Object.entries(model.params).map(([name, t]) => ({
    name,
    dtype: storage(name),
    shape: t.shape,
    data: async () => {
      const w = await readAsF32(t); // (out, in) for a projection
      edit?.(name, w);
      return encode(w, storage(name));
    },
  }));
  const metadata = { format: 'pt' };
  const layout = safetensorsLayout(tensors, metadata);
  const weights = around
    ? async function* () {
        await around.before();
        try {
          yield* streamSafetensors(tensors, metadata);
        } finally {
          await around.after();
        }
      }
    : () => streamSafetensors(tensors, metadata);

  const rawConfig: Record<string, unknown> = { ...source.rawConfig };
  // The weights are written dequantized: the folder is no longer a quantized checkpoint.
  if (model.quantization) delete rawConfig.quantization_config;
  if (options.dtype) {
    if ('dtype' in rawConfig) rawConfig.dtype = DTYPE_NAMES[options.dtype].torch;
    if ('torch_dtype' in rawConfig || !('dtype' in rawConfig)) rawConfig.torch_dtype = DTYPE_NAMES[options.dtype].torch;
  }
  return folderFiles(rawConfig, { name: 'model.safetensors', bytes: layout.totalBytes, chunks: weights }, source);
}

/** Collects exported files into memory (small models, tests, zipping in the browser). */
export async function exportedBytes(files: readonly ExportedFile[]): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const f of files) {
    const bytes = new Uint8Array(f.bytes);
    let at = 0;
    for await (const chunk of f.chunks()) {
      bytes.set(chunk, at);
      at += chunk.byteLength;
    }
    if (at !== f.bytes) throw new InvalidArgumentError(`Export of ${f.name} produced ${at} bytes; ${f.bytes} were announced.`);
    out.set(f.name, bytes);
  }
  return out;
}
