// IA3 on a loaded Llama-family model: one learned scaling vector `ia3_l` per adapted projection, on
// the GPU in f32 with a gradient buffer (the base weights stay frozen). A module whose output is
// scaled (k_proj, v_proj by default) computes base(x) ⊙ l, bias included, as PEFT's IA3 Linear does;
// a feed-forward module (down_proj by default) computes base(x ⊙ l). Vectors start at 1, so a new
// adapter leaves the model unchanged. Merging scales W's rows (and the bias) or W's columns in place
// on f32 weights; unmerging divides them back. Reading and writing PEFT files is io/export-peft.ts.

import { scaleColumns } from '../../autograd/ops.ts';
import { Tape, type Var } from '../../autograd/tape.ts';
import { AdapterMismatchError, InvalidArgumentError } from '../../errors.ts';
import type { Gpu } from '../../gpu/device.ts';
import { readTensor } from '../../gpu/readback.ts';
import { type Tensor, writeTensor } from '../../gpu/tensor.ts';
import { type AdapterDType, exportPeftIa3, importPeftIa3 } from '../../io/export-peft.ts';
import type { FileSet } from '../../io/model-folder.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { ForwardOptions, LlamaModel } from '../../model/llama.ts';
import { Rng } from '../../random.ts';
import type { PeftAdapter, SavedFiles } from '../adapter.ts';
import { AdapterParams, uploadParam } from '../params.ts';
import { type Ia3Config, type Ia3ModuleSpec, type Ia3Tensors, checkIa3Tensors, expectedIa3Modules, parseIa3Config, savedIa3Config } from './config.ts';

/** One trainable vector. */
export interface Ia3Param {
  /** PEFT's key without `base_model.model.`, e.g. "model.layers.0.self_attn.k_proj.ia3_l". */
  name: string;
  value: Tensor; // (size) f32
  grad: Tensor; // (size) f32
}

interface Ia3Module {
  spec: Ia3ModuleSpec;
  param: Ia3Param;
}

export class Ia3Adapter extends AdapterParams<Ia3Param> implements PeftAdapter {
  readonly method = 'ia3';
  config: Ia3Config;
  /** Adapted module paths in module order. */
  readonly modules: string[];
  training: boolean;
  enabled = true;
  readonly gpu: Gpu;
  readonly modelConfig: ModelConfig;
  private readonly byPath: Map<string, Ia3Module>;
  private mergedInto: LlamaModel | null = null;

  constructor(gpu: Gpu, modelConfig: ModelConfig, config: Ia3Config, specs: Ia3ModuleSpec[], tensors: Ia3Tensors, training: boolean) {
    super('The IA3 adapter');
    this.gpu = gpu;
    this.modelConfig = modelConfig;
    this.config = config;
    this.training = training;
    this.modules = specs.map((s) => s.path);
    this.byPath = new Map();
    this.buildParams(gpu, 'ia3.zeroGrads', () => {
      for (const spec of specs) {
        const name = `${spec.path}.ia3_l`;
        const param = uploadParam(gpu, name, tensors.get(spec.path) as Float32Array, [spec.size]);
        this.params.push(param);
        this.byPath.set(spec.path, { spec, param });
      }
    });
  }

  get savedConfig(): Record<string, unknown> {
    return savedIa3Config(this.config, this.modelConfig) as unknown as Record<string, unknown>;
  }

  get merged(): boolean {
    return this.mergedInto !== null;
  }

  describe(): string {
    const ff = [...this.byPath.values()].filter((m) => m.spec.feedforward).length;
    return `${this.modules.length} modules, ${ff} of them feed-forward`;
  }

  moduleSpec(path: string): Ia3ModuleSpec {
    const m = this.byPath.get(path);
    if (!m) throw new InvalidArgumentError(`Module "${path}" is not adapted; adapted modules are e.g. "${this.modules[0]}".`);
    return m.spec;
  }

  /** Output scaling of the non-feed-forward modules and input scaling of the feed-forward ones, with `leaves`. While merged, nothing. */
  forwardOptions(_tape: Tape, leaves: Map<string, Var>): ForwardOptions {
    if (!this.enabled) return {};
    const vector = (m: Ia3Module) => {
      const l = leaves.get(m.param.name);
      if (!l) throw new InvalidArgumentError(`The leaves lack ${m.param.name}; make them with leaves().`);
      return l;
    };
    return {
      projection: (t, b, module, _x, y) => {
        const m = this.byPath.get(module);
        if (!m || m.spec.feedforward || this.mergedInto) return y;
        return scaleColumns(t, b, y, vector(m)); // (N, out)
      },
      projectionInput: (t, b, module, x) => {
        const m = this.byPath.get(module);
        if (!m || !m.spec.feedforward || this.mergedInto) return x;
        return scaleColumns(t, b, x, vector(m)); // (N, in)
      },
    };
  }

  inferenceOptions(): ForwardOptions {
    return this.forwardOptions(new Tape(), this.leaves(new Tape(), false));
  }

  /** The vectors read back, by module path. */
  async toTensors(): Promise<Map<string, Float32Array>> {
    this.assertLive();
    const out = new Map<string, Float32Array>();
    for (const path of this.modules) out.set(path, await readTensor((this.byPath.get(path) as Ia3Module).param.value as Tensor & { dtype: 'f32' }));
    return out;
  }

  async exportFiles(options: { dtype?: AdapterDType } = {}): Promise<SavedFiles> {
    return exportPeftIa3({ config: this.config, tensors: await this.toTensors(), modelConfig: this.modelConfig, dtype: options.dtype });
  }

  /**
   * Scales the model's f32 weights in place as PEFT's merge does: W's rows and the bias by l for an
   * output-scaled module, W's columns by l for a feed-forward one. The hooks then add nothing.
   */
  async merge(model: LlamaModel): Promise<void> {
    this.checkModel(model);
    if (this.mergedInto) throw new InvalidArgumentError('The adapter is already merged; unmerge it first.');
    await this.rescale(model, (l) => l);
    this.mergedInto = model;
  }

  /** Undoes merge: divides by the same vectors (PEFT's unmerge), equal to the original weights up to f32 rounding. */
  async unmerge(model: LlamaModel): Promise<void> {
    this.checkModel(model);
    if (this.mergedInto !== model) throw new InvalidArgumentError(this.mergedInto ? 'The adapter is merged into another model.' : 'The adapter is not merged.');
    await this.rescale(model, (l) => 1 / (l + 1e-8));
    this.mergedInto = null;
  }

  private async rescale(model: LlamaModel, factor: (l: number) => number): Promise<void> {
    const vectors = await this.toTensors();
    for (const path of this.modules) {
      const spec = this.moduleSpec(path);
      const l = vectors.get(path) as Float32Array;
      const w = model.params[`${path}.weight`];
      if (w.dtype !== 'f32') {
        throw new InvalidArgumentError(`Cannot merge the adapter: "${path}.weight" is stored as ${w.dtype}; merging works on f32 weights.`, {
          hint: 'Load the model with f32 weights (--dtype f32) to merge, or use the adapter unmerged.',
        });
      }
      const values = await readTensor(w as Tensor & { dtype: 'f32' }); // (out, in)
      const { outFeatures: O, inFeatures: I } = spec;
      for (let o = 0; o < O; o++) {
        for (let i = 0; i < I; i++) values[o * I + i] *= factor(spec.feedforward ? l[i] : l[o]);
      }
      writeTensor(w, values);
      const bias = model.params[`${path}.bias`];
      if (bias && !spec.feedforward) {
        const bv = await readTensor(bias as Tensor & { dtype: 'f32' }); // (out)
        for (let o = 0; o < O; o++) bv[o] *= factor(l[o]);
        writeTensor(bias, bv);
      }
    }
    await model.gpu.sync();
  }

  checkModel(model: LlamaModel): void {
    model.assertLive();
    this.assertLive();
    for (const m of this.byPath.values()) {
      const w = model.params[`${m.spec.path}.weight`];
      if (!w || w.shape[0] !== m.spec.outFeatures || w.shape[1] !== m.spec.inFeatures) {
        throw new AdapterMismatchError(`Module "${m.spec.path}" is (out=${m.spec.outFeatures}, in=${m.spec.inFeatures}) in the adapter but ${w ? `[${w.shape.join(', ')}]` : 'absent'} in the model.`);
      }
    }
  }
}

export interface CreateIa3Options {
  /** Seed of the random initialization (init_ia3_weights false); unused otherwise. */
  seed?: number;
}

/**
 * A new IA3 adapter for `model`: vectors of ones (init_ia3_weights true, PEFT's default, so the
 * model starts unchanged), or standard-normal values when init_ia3_weights is false (PEFT's
 * IA3Layer.update_layer draws torch.randn and only resets to ones when asked). Starts in training mode.
 */
export function createIa3(model: LlamaModel, config: Ia3Config, options: CreateIa3Options = {}): Ia3Adapter {
  model.assertLive();
  const c = parseIa3Config(config);
  const specs = expectedIa3Modules(c, model.config);
  const rng = new Rng(options.seed ?? 0);
  const tensors = new Map(specs.map((s) => [s.path, c.init_ia3_weights ? new Float32Array(s.size).fill(1) : rng.fill(s.size, (r) => r.normal())]));
  return new Ia3Adapter(model.gpu, model.config, c, specs, tensors, true);
}

/** Loads a PEFT IA3 adapter folder onto `model` (training off). */
export async function loadIa3(model: LlamaModel, files: FileSet | Map<string, Uint8Array>): Promise<Ia3Adapter> {
  model.assertLive();
  const imported = await importPeftIa3(files, model.config);
  const specs = checkIa3Tensors(imported.config, model.config, imported.tensors);
  return new Ia3Adapter(model.gpu, model.config, imported.config, specs, imported.tensors, false);
}
