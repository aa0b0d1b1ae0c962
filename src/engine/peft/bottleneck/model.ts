// Bottleneck (Houlsby) adapters on a loaded Llama-family model: after the attention output (o_proj)
// and after the MLP output (down_proj) of every layer, y ← y + scaling · up(swish(down(y))), with
// down = Linear(hidden, r) and up = Linear(r, hidden), both with biases, before the block's residual
// add (AdapterHub's sequential bottleneck with residual_before_ln and no extra layer norms). up
// starts at zero, so a new adapter computes the base model; down starts N(0, 0.02²) (AdapterHub's
// "bert" init), its bias 0. The base model is frozen. Files: config.ts's layout, read and written here.

import { add, addBias, linear, scratch } from '../../autograd/ops.ts';
import { Tape, type Var } from '../../autograd/tape.ts';
import { AdapterMismatchError, InvalidArgumentError, MissingFileError } from '../../errors.ts';
import { Batch } from '../../gpu/batch.ts';
import { readTensor } from '../../gpu/readback.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { fill } from '../../kernels/elementwise.ts';
import { swiglu, swigluBackward } from '../../kernels/swiglu.ts';
import { type AdapterDType, ADAPTER_CONFIG_NAME, asFileSet, encodeFloats, readAdapterConfigJson } from '../../io/export-peft.ts';
import type { FileSet } from '../../io/model-folder.ts';
import { type TensorToWrite, readSafetensorsIndex, readTensorF32, writeSafetensors } from '../../io/safetensors.ts';
import type { ForwardOptions, LlamaModel } from '../../model/llama.ts';
import { Rng } from '../../random.ts';
import type { PeftAdapter, SavedFiles } from '../adapter.ts';
import { AdapterParams, uploadParam } from '../params.ts';
import { BOTTLENECK_WEIGHTS_NAME, type BottleneckConfig, type BottleneckSite, bottleneckSites, bottleneckSize, parseBottleneckConfig, serializeBottleneckConfig } from './config.ts';

/** The four tensors of one site by suffix, and their shapes for hidden C and bottleneck r. */
const PARTS = [
  ['adapter_down.0.weight', (C: number, r: number) => [r, C]],
  ['adapter_down.0.bias', (_C: number, r: number) => [r]],
  ['adapter_up.weight', (C: number, r: number) => [C, r]],
  ['adapter_up.bias', (C: number) => [C]],
] as const;

/** silu(x) = x · sigmoid(x) (swish), as swiglu(x, 1): backward through the swiglu kernels. */
function silu(tape: Tape, b: Batch, x: Var): Var {
  const ones = scratch(b, x.value.shape, 'silu.ones');
  fill(b, ones, 1);
  const out = scratch(b, x.value.shape, 'silu');
  swiglu(b, x.value, ones, out);
  return tape.record('silu', [x], [out], [ones], (bb, [dy]) => {
    const dx = scratch(bb, x.value.shape, 'silu.dx');
    const dOnes = scratch(bb, x.value.shape, 'silu.dOnes');
    swigluBackward(bb, x.value, ones, dy!, dx, dOnes);
    dOnes.release();
    return [dx];
  })[0];
}

export class BottleneckAdapter extends AdapterParams implements PeftAdapter {
  readonly method = 'adapter';
  config: BottleneckConfig;
  training: boolean;
  enabled = true;
  readonly model: LlamaModel;
  readonly sites: BottleneckSite[];
  private readonly byModule = new Map<string, BottleneckSite>();

  constructor(model: LlamaModel, config: BottleneckConfig, tensors: ReadonlyMap<string, Float32Array>, training: boolean) {
    super('The bottleneck adapter');
    this.model = model;
    this.config = config;
    this.training = training;
    const C = model.config.hiddenSize;
    const r = bottleneckSize(config, model.config);
    this.sites = bottleneckSites(config, model.config);
    this.buildParams(model.gpu, 'bottleneck.zeroGrads', () => {
      for (const site of this.sites) {
        this.byModule.set(site.module, site);
        for (const [suffix, shapeOf] of PARTS) {
          const name = `${site.prefix}.${suffix}`;
          const shape = [...shapeOf(C, r)];
          const data = tensors.get(name);
          if (!data) throw new AdapterMismatchError(`Tensor "${name}" is missing from the bottleneck adapter.`);
          if (data.length !== shape.reduce((a, d) => a * d, 1)) throw new AdapterMismatchError(`Tensor "${name}" must be [${shape.join(', ')}]; got ${data.length} values.`);
          this.params.push(uploadParam(model.gpu, name, data, shape));
        }
      }
    });
  }

  get savedConfig(): Record<string, unknown> {
    return JSON.parse(serializeBottleneckConfig(this.config, this.model.config)) as Record<string, unknown>;
  }

  describe(): string {
    return `${this.sites.length} adapters of bottleneck ${bottleneckSize(this.config, this.model.config)}`;
  }

  forwardOptions(_tape: Tape, leaves: Map<string, Var>): ForwardOptions {
    if (!this.enabled) return {};
    const get = (name: string) => {
      const v = leaves.get(name);
      if (!v) throw new InvalidArgumentError(`The leaves lack ${name}; make them with leaves().`);
      return v;
    };
    return {
      projection: (t, b, module, _x, y) => {
        const site = this.byModule.get(module);
        if (!site) return y;
        const p = site.prefix;
        const down = addBias(t, b, linear(t, b, y, get(`${p}.adapter_down.0.weight`)), get(`${p}.adapter_down.0.bias`)); // (N, r)
        const up = addBias(t, b, linear(t, b, silu(t, b, down), get(`${p}.adapter_up.weight`)), get(`${p}.adapter_up.bias`)); // (N, C)
        return add(t, b, y, up); // (N, C)
      },
    };
  }

  inferenceOptions(): ForwardOptions {
    return this.forwardOptions(new Tape(), this.leaves(new Tape(), false));
  }

  async exportFiles(options: { dtype?: AdapterDType } = {}): Promise<SavedFiles> {
    this.assertLive();
    const out: TensorToWrite[] = [];
    for (const p of this.params) out.push({ name: p.name, shape: p.value.shape, ...encodeFloats(await readTensor(p.value as Tensor & { dtype: 'f32' }), options.dtype ?? 'f32') });
    return new Map([
      [ADAPTER_CONFIG_NAME, new TextEncoder().encode(serializeBottleneckConfig(this.config, this.model.config))],
      [BOTTLENECK_WEIGHTS_NAME, writeSafetensors(out, { format: 'pt' })],
    ]);
  }
}

/** A new bottleneck adapter: adapter_up zero (the model starts unchanged), adapter_down N(0, 0.02²), biases 0. Starts in training mode. */
export function createBottleneck(model: LlamaModel, config: BottleneckConfig, options: { seed: number }): BottleneckAdapter {
  model.assertLive();
  const c = parseBottleneckConfig(config);
  const C = model.config.hiddenSize;
  const r = bottleneckSize(c, model.config);
  const rng = new Rng(options.seed);
  const tensors = new Map<string, Float32Array>();
  for (const site of bottleneckSites(c, model.config)) {
    tensors.set(`${site.prefix}.adapter_down.0.weight`, rng.fill(r * C, (g) => 0.02 * g.normal()));
    tensors.set(`${site.prefix}.adapter_down.0.bias`, new Float32Array(r));
    tensors.set(`${site.prefix}.adapter_up.weight`, new Float32Array(C * r));
    tensors.set(`${site.prefix}.adapter_up.bias`, new Float32Array(C));
  }
  return new BottleneckAdapter(model, { ...c, hidden_size: C }, tensors, true);
}

/** Loads a bottleneck adapter folder (adapter_config.json + pytorch_adapter.safetensors) onto `model` (training off). */
export async function loadBottleneck(model: LlamaModel, files: FileSet | Map<string, Uint8Array>): Promise<BottleneckAdapter> {
  model.assertLive();
  const set = asFileSet(files);
  const config = parseBottleneckConfig(await readAdapterConfigJson(set), ADAPTER_CONFIG_NAME);
  if (!set.list().includes(BOTTLENECK_WEIGHTS_NAME)) {
    throw new MissingFileError(`${BOTTLENECK_WEIGHTS_NAME} is missing; a bottleneck adapter folder holds it next to ${ADAPTER_CONFIG_NAME}.`, { file: BOTTLENECK_WEIGHTS_NAME });
  }
  const source = await set.open(BOTTLENECK_WEIGHTS_NAME);
  try {
    const index = await readSafetensorsIndex(source);
    const expected = new Set(bottleneckSites(config, model.config).flatMap((s) => PARTS.map(([suffix]) => `${s.prefix}.${suffix}`)));
    const tensors = new Map<string, Float32Array>();
    for (const [key, entry] of index.tensors) {
      if (!expected.has(key)) throw new AdapterMismatchError(`Tensor "${key}" is not one of this adapter's (e.g. "${[...expected][0]}").`, { file: BOTTLENECK_WEIGHTS_NAME });
      if (entry.dtype !== 'F32' && entry.dtype !== 'F16' && entry.dtype !== 'BF16') throw new AdapterMismatchError(`Tensor "${key}" is ${entry.dtype}; expected F32, F16 or BF16.`, { file: BOTTLENECK_WEIGHTS_NAME });
      tensors.set(key, await readTensorF32(source, entry));
    }
    return new BottleneckAdapter(model, config, tensors, false);
  } finally {
    await source.close?.();
  }
}
