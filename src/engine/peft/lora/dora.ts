// DoRA (PEFT's LoRA with use_dora: true) on a loaded Llama-family model: per adapted projection the
// LoRA factors lora_A (r, in) and lora_B (out, r) plus a magnitude vector m (out), all trainable
// f32. As PEFT's DoraLinearLayer computes it, with c = m / ‖W + s·B·A‖ (the norm of each output row,
// computed every forward and detached, so no gradient flows through it):
//   y = bias + c ⊙ (x·Wᵀ + s·(x·Aᵀ)·Bᵀ)
// and, while training with lora_dropout, base(x) + (c − 1) ⊙ (x_d·Wᵀ) + c ⊙ s·(x_d·Aᵀ)·Bᵀ with
// x_d = dropout(x) (PEFT recomputes the base output on the dropped input there). A new adapter
// starts with B = 0 and m = ‖W‖, so it computes the base model. Needs f32 projection weights (the
// norm is taken of W itself). Merging writes c ⊙ (W + s·B·A) into W; unmerging divides back.

import { add, addBias, dropout, linear, scaleColumns, scratch } from '../../autograd/ops.ts';
import { Tape, type Var } from '../../autograd/tape.ts';
import { AdapterConfigError, InvalidArgumentError } from '../../errors.ts';
import { Batch } from '../../gpu/batch.ts';
import { readTensor } from '../../gpu/readback.ts';
import { type Tensor, createTensor, writeTensor } from '../../gpu/tensor.ts';
import { affine, fill, mul } from '../../kernels/elementwise.ts';
import { matmul } from '../../kernels/matmul.ts';
import { rmsnorm } from '../../kernels/rmsnorm.ts';
import { type AdapterDType, type DoraModuleTensors, exportPeftDora, importPeftDora, savedLoraConfig } from '../../io/export-peft.ts';
import type { FileSet } from '../../io/model-folder.ts';
import type { ForwardOptions, LlamaModel } from '../../model/llama.ts';
import { Rng } from '../../random.ts';
import { fmix32 } from '../../reference/dropout.ts';
import type { PeftAdapter, SavedFiles } from '../adapter.ts';
import { AdapterParams, type TrainableParam, uploadParam } from '../params.ts';
import { type LoraConfig, type LoraModuleSpec, checkLoraTensors, expectedLoraModules, parseLoraConfig } from './config.ts';
import { loraTerm } from './layer.ts';

type Param = TrainableParam;

interface DoraModule {
  spec: LoraModuleSpec;
  index: number;
  A: Param; // (r, in)
  B: Param; // (out, r)
  m: Param; // (out)
  /** −bias (out) for a projection with a bias, to take it out before scaling. */
  negBias: Tensor | null;
}

function dropoutSeed(seed: number, step: number, index: number): number {
  const s = fmix32((fmix32(seed >>> 0) ^ (step >>> 0)) >>> 0);
  return fmix32((s ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0);
}

/**
 * c = m ⊙ 1/‖W + s·B·A‖ per output row (out), the norm computed from the current A and B without
 * a gradient (PEFT detaches it); the op's only differentiable input is m: dm = dc ⊙ 1/‖·‖.
 */
function doraScale(tape: Tape, b: Batch, m: Var, A: Tensor, B: Tensor, W: Tensor, s: number): Var {
  const [out, inF] = W.shape;
  const full = scratch(b, [out, inF], 'dora.weight'); // (out, in) = W + s·B·A
  affine(b, W, full, 1);
  matmul(b, B, A, full, { transB: false, alpha: s, accumulate: true });
  const ones = scratch(b, [inF], 'dora.ones'); // (in)
  fill(b, ones, 1);
  const normed = scratch(b, [out, inF], 'dora.normed'); // (out, in), unused
  const rstd = scratch(b, [out], 'dora.rstd'); // (out) = 1 / sqrt(mean of squares)
  rmsnorm(b, full, ones, normed, rstd, 0);
  full.release();
  normed.release();
  ones.release();
  const inv = scratch(b, [out], 'dora.invNorm'); // (out) = 1 / ‖row‖ = rstd / sqrt(in)
  affine(b, rstd, inv, 1 / Math.sqrt(inF));
  rstd.release();
  const c = scratch(b, [out], 'dora.scale'); // (out)
  mul(b, m.value, inv, c);
  return tape.record('doraScale', [m], [c], [inv], (bb, [dc], needs) => {
    if (!needs[0]) return [null];
    const dm = scratch(bb, [out], 'dora.dm'); // (out)
    mul(bb, dc!, inv, dm);
    return [dm];
  })[0];
}

export class DoraAdapter extends AdapterParams implements PeftAdapter {
  readonly method = 'dora';
  config: LoraConfig;
  readonly modules: string[];
  training: boolean;
  enabled = true;
  seed: number;
  readonly model: LlamaModel;
  private readonly byPath = new Map<string, DoraModule>();
  private mergedInto: LlamaModel | null = null;

  constructor(model: LlamaModel, config: LoraConfig, specs: LoraModuleSpec[], tensors: ReadonlyMap<string, DoraModuleTensors>, options: { seed: number; training: boolean }) {
    super('The DoRA adapter');
    this.model = model;
    this.config = config;
    this.seed = options.seed;
    this.training = options.training;
    this.modules = specs.map((s) => s.path);
    const gpu = model.gpu;
    this.buildParams(gpu, 'dora.init', (b) => {
      specs.forEach((spec, index) => {
        const t = tensors.get(spec.path) as DoraModuleTensors;
        const param = (suffix: string, data: Float32Array, shape: number[]): Param => {
          const name = `${spec.path}.${suffix}`;
          const p = uploadParam(gpu, name, data, shape);
          this.params.push(p);
          return p;
        };
        const A = param('lora_A.weight', t.A, [spec.r, spec.inFeatures]);
        const B = param('lora_B.weight', t.B, [spec.outFeatures, spec.r]);
        const m = param('lora_magnitude_vector', t.m, [spec.outFeatures]);
        const bias = model.params[`${spec.path}.bias`];
        let negBias: Tensor | null = null;
        if (bias) {
          negBias = createTensor(gpu, [spec.outFeatures], 'f32', { label: `${spec.path}.negBias` });
          affine(b, bias, negBias, -1);
        }
        this.byPath.set(spec.path, { spec, index, A, B, m, negBias });
      });
    });
  }

  get savedConfig(): Record<string, unknown> {
    return savedLoraConfig(this.config, this.model.config) as unknown as Record<string, unknown>;
  }

  describe(): string {
    return `r ${this.config.r}, alpha ${this.config.lora_alpha}, ${this.modules.length} modules with magnitudes`;
  }

  forwardOptions(_tape: Tape, leaves: Map<string, Var>, step = 0): ForwardOptions {
    if (!this.enabled) return {};
    const dropoutOn = this.training;
    return {
      projection: (t, b, module, x, y) => {
        const m = this.byPath.get(module);
        if (!m || this.mergedInto) return y;
        const get = (p: Param) => {
          const v = leaves.get(p.name);
          if (!v) throw new InvalidArgumentError(`The leaves lack ${p.name}; make them with leaves().`);
          return v;
        };
        const A = get(m.A);
        const B = get(m.B);
        const W = this.model.params[`${module}.weight`];
        const s = m.spec.scaling;
        const c = doraScale(t, b, get(m.m), A.value, B.value, W, s); // (out)
        const p = dropoutOn ? this.config.lora_dropout : 0;
        if (p === 0) {
          const sl = loraTerm(t, b, x, A, B, { scale: s }); // (N, out)
          const bias = this.model.params[`${module}.bias`];
          const z = m.negBias ? addBias(t, b, y, t.leaf(m.negBias)) : y; // (N, out) = x·Wᵀ
          const out = scaleColumns(t, b, add(t, b, z, sl), c); // (N, out)
          return bias ? addBias(t, b, out, t.leaf(bias)) : out;
        }
        const xd = dropout(t, b, x, p, dropoutSeed(this.seed, step, m.index)); // (N, in)
        const sl = loraTerm(t, b, xd, A, B, { scale: s }); // (N, out)
        const w = t.leaf(W);
        const baseD = linear(t, b, xd, w); // (N, out)
        const rest = add(t, b, y, linear(t, b, xd, w, -1)); // (N, out) = y − x_d·Wᵀ
        return add(t, b, rest, scaleColumns(t, b, add(t, b, baseD, sl), c)); // (N, out)
      },
    };
  }

  inferenceOptions(): ForwardOptions {
    const wasTraining = this.training;
    this.training = false;
    try {
      return this.forwardOptions(new Tape(), this.leaves(new Tape(), false));
    } finally {
      this.training = wasTraining;
    }
  }

  async toTensors(): Promise<Map<string, DoraModuleTensors>> {
    this.assertLive();
    const out = new Map<string, DoraModuleTensors>();
    const read = (p: Param) => readTensor(p.value as Tensor & { dtype: 'f32' });
    for (const path of this.modules) {
      const m = this.byPath.get(path) as DoraModule;
      out.set(path, { A: await read(m.A), B: await read(m.B), m: await read(m.m) });
    }
    return out;
  }

  async exportFiles(options: { dtype?: AdapterDType } = {}): Promise<SavedFiles> {
    return exportPeftDora({ config: this.config, tensors: await this.toTensors(), modelConfig: this.model.config, dtype: options.dtype });
  }

  /** W ← c ⊙ (W + s·B·A) for every adapted projection, as PEFT's DoRA merge (the bias is unchanged). */
  async merge(model: LlamaModel): Promise<void> {
    this.checkModel(model);
    if (this.mergedInto) throw new InvalidArgumentError('The adapter is already merged; unmerge it first.');
    await this.rewrite(model, false);
    this.mergedInto = model;
  }

  /** W ← W / c − s·B·A with the c of the merge: the original weights up to f32 rounding. */
  async unmerge(model: LlamaModel): Promise<void> {
    if (this.mergedInto !== model) throw new InvalidArgumentError(this.mergedInto ? 'The adapter is merged into another model.' : 'The adapter is not merged.');
    await this.rewrite(model, true);
    this.mergedInto = null;
  }

  private mergeScale = new Map<string, Float64Array>();

  private async rewrite(model: LlamaModel, undo: boolean): Promise<void> {
    const tensors = await this.toTensors();
    for (const path of this.modules) {
      const spec = (this.byPath.get(path) as DoraModule).spec;
      const t = tensors.get(path) as DoraModuleTensors;
      const w = model.params[`${path}.weight`];
      const W = await readTensor(w as Tensor & { dtype: 'f32' }); // (out, in)
      const { outFeatures: O, inFeatures: I, r, scaling: s } = spec;
      const delta = (o: number, i: number) => {
        let acc = 0;
        for (let j = 0; j < r; j++) acc += t.B[o * r + j] * t.A[j * I + i];
        return s * acc;
      };
      if (!undo) {
        const scale = new Float64Array(O);
        for (let o = 0; o < O; o++) {
          const row = new Float64Array(I);
          let sq = 0;
          for (let i = 0; i < I; i++) {
            row[i] = W[o * I + i] + delta(o, i);
            sq += row[i] * row[i];
          }
          scale[o] = t.m[o] / Math.sqrt(sq);
          for (let i = 0; i < I; i++) W[o * I + i] = scale[o] * row[i];
        }
        this.mergeScale.set(path, scale);
      } else {
        const scale = this.mergeScale.get(path) as Float64Array;
        for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) W[o * I + i] = W[o * I + i] / scale[o] - delta(o, i);
      }
      writeTensor(w, W);
    }
    if (undo) this.mergeScale.clear();
    await model.gpu.sync();
  }

  checkModel(model: LlamaModel): void {
    model.assertLive();
    this.assertLive();
    if (model.params !== this.model.params) throw new InvalidArgumentError('The DoRA adapter was made for another model (its norms are taken of that model’s weights).');
  }

  /** The −bias buffers of projections with a bias. */
  protected override releaseOthers(): void {
    for (const m of this.byPath.values()) m.negBias?.release();
  }
}

/** Refuses what these DoRA layers do not compute: 16-bit weights, and LoRA features beyond the factors. */
function checkDora(model: LlamaModel, config: LoraConfig, specs: LoraModuleSpec[]): void {
  if (!config.use_dora) throw new AdapterConfigError('Key "use_dora" is false; DoRA needs "use_dora": true.');
  const refuse = (key: keyof LoraConfig, why: string) => {
    throw new AdapterConfigError(`Key "${key}" is ${JSON.stringify(config[key])}: ${why}, which Whetstone's DoRA does not support.`);
  };
  if (config.lora_bias) refuse('lora_bias', 'it adds a bias to lora_B');
  if (config.bias !== 'none') refuse('bias', 'it trains the base biases');
  if (config.modules_to_save !== null && config.modules_to_save.length > 0) refuse('modules_to_save', 'it trains whole modules');
  if (config.trainable_token_indices !== null) refuse('trainable_token_indices', 'it trains embedding rows');
  if (config.layer_replication !== null) refuse('layer_replication', 'it changes the layer stack');
  if (config.use_qalora) refuse('use_qalora', 'QA-LoRA pools the input groupwise');
  for (const s of specs) {
    const w = model.params[`${s.path}.weight`];
    if (w.dtype !== 'f32') {
      throw new InvalidArgumentError(`DoRA needs f32 projection weights: "${s.path}.weight" is stored as ${w.dtype}.`, { hint: 'Load the model with f32 weights (--dtype f32) for DoRA.' });
    }
  }
}

/** Row norms of W + s·B·A (float64), PEFT's initial magnitude. */
async function rowNorms(model: LlamaModel, spec: LoraModuleSpec, A: Float32Array, B: Float32Array): Promise<Float32Array> {
  const W = await readTensor(model.params[`${spec.path}.weight`] as Tensor & { dtype: 'f32' });
  const { outFeatures: O, inFeatures: I, r, scaling: s } = spec;
  const out = new Float32Array(O);
  for (let o = 0; o < O; o++) {
    let sq = 0;
    for (let i = 0; i < I; i++) {
      let d = 0;
      for (let j = 0; j < r; j++) d += B[o * r + j] * A[j * I + i];
      const v = W[o * I + i] + s * d;
      sq += v * v;
    }
    out[o] = Math.sqrt(sq);
  }
  return out;
}

/**
 * A new DoRA adapter: lora_A kaiming-uniform (U(−1/√in, 1/√in)), lora_B zero, and the magnitude
 * ‖W + s·B·A‖ = ‖W‖ per output row, as PEFT initializes it, so the model starts unchanged.
 * Starts in training mode.
 */
export async function createDora(model: LlamaModel, config: LoraConfig, options: { seed: number }): Promise<DoraAdapter> {
  model.assertLive();
  const c = parseLoraConfig({ ...config, use_dora: true } as unknown as Record<string, unknown>);
  const specs = expectedLoraModules(c, model.config);
  checkDora(model, c, specs);
  if (c.init_lora_weights !== true) throw new AdapterConfigError(`Key "init_lora_weights" is ${JSON.stringify(c.init_lora_weights)}; DoRA here starts from PEFT's default (true).`);
  const rng = new Rng(options.seed);
  const tensors = new Map<string, DoraModuleTensors>();
  for (const s of specs) {
    const bound = 1 / Math.sqrt(s.inFeatures);
    const A = rng.fill(s.r * s.inFeatures, (r) => r.uniform(-bound, bound)); // (r, in)
    const B = new Float32Array(s.outFeatures * s.r); // (out, r)
    tensors.set(s.path, { A, B, m: await rowNorms(model, s, A, B) });
  }
  return new DoraAdapter(model, c, specs, tensors, { seed: options.seed, training: true });
}

/** Loads a PEFT DoRA adapter folder (use_dora true, lora_magnitude_vector per module) onto `model` (training off). */
export async function loadDora(model: LlamaModel, files: FileSet | Map<string, Uint8Array>, options: { seed?: number } = {}): Promise<DoraAdapter> {
  model.assertLive();
  const imported = await importPeftDora(files, model.config);
  const specs = checkLoraTensors(imported.config, model.config, imported.tensors);
  checkDora(model, imported.config, specs);
  return new DoraAdapter(model, imported.config, specs, imported.tensors, { seed: options.seed ?? 0, training: false });
}
