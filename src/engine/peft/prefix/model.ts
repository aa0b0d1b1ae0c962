// Prefix tuning (PEFT's PREFIX_TUNING, without prefix_projection) on a loaded Llama-family model:
// per layer trainable keys and values (nvt, Hkv·D), grouped-query aware, that every query attends
// before the tokens (the attention kernel's prefix keys/values, shared over the batch). As PEFT and
// transformers compute it, the prefix enters the layers as past keys and values: the keys are used
// as they are (no RoPE), every real token attends all of them, and the real tokens' positions start
// at nvt (transformers counts positions from the cache length) — adaptRows shifts them. The base
// model is frozen. Initialization N(0, 1), nn.Embedding's default in PEFT's PrefixEncoder. Saved as
// PEFT saves it: one `prompt_embeddings` table (nvt, L·2·Hkv·D), see config.ts for the layout.
// Generation (model/generate.ts) puts the prefix at the front of its KV cache, positions after it.

import { Tape, type Var } from '../../autograd/tape.ts';
import { AdapterConfigError, InvalidArgumentError } from '../../errors.ts';
import { readTensor } from '../../gpu/readback.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { type AdapterDType, exportPeftPrefixTuning, importPeftPrefixTuning } from '../../io/export-peft.ts';
import type { FileSet } from '../../io/model-folder.ts';
import type { ForwardOptions, LlamaModel } from '../../model/llama.ts';
import { Rng } from '../../random.ts';
import type { Row } from '../../train/batches.ts';
import type { PeftAdapter, SavedFiles } from '../adapter.ts';
import { AdapterParams, uploadParam } from '../params.ts';
import { type PrefixTuningConfig, joinPrefixTable, parsePrefixTuningConfig, prefixTokenDim, savedPrefixTuningConfig, splitPrefixTable } from './config.ts';

export class PrefixTuningAdapter extends AdapterParams implements PeftAdapter {
  readonly method = 'prefix';
  config: PrefixTuningConfig;
  // params: layer 0's keys, layer 0's values, layer 1's keys, …, each (nvt, Hkv·D).
  training: boolean;
  enabled = true;
  readonly model: LlamaModel;

  constructor(model: LlamaModel, config: PrefixTuningConfig, parts: readonly { k: Float32Array; v: Float32Array }[], training: boolean) {
    super('The prefix-tuning adapter');
    this.model = model;
    this.config = config;
    this.training = training;
    const shape = [config.num_virtual_tokens, prefixTokenDim(model.config)];
    this.buildParams(model.gpu, 'prefix.zeroGrads', () => {
      parts.forEach(({ k, v }, l) => {
        for (const [which, data] of [['keys', k], ['values', v]] as const) this.params.push(uploadParam(model.gpu, `prefix.layers.${l}.${which}`, data, shape));
      });
    });
  }

  get virtualTokens(): number {
    return this.config.num_virtual_tokens;
  }

  get savedConfig(): Record<string, unknown> {
    return savedPrefixTuningConfig(this.config, this.model.config) as unknown as Record<string, unknown>;
  }

  describe(): string {
    return `${this.virtualTokens} virtual tokens of keys and values in ${this.model.config.numHiddenLayers} layers`;
  }

  /** The real tokens' positions start at nvt, after the prefix (transformers counts from the cache length). */
  adaptRows(rows: readonly Row[]): Row[] {
    if (!this.enabled) return [...rows];
    const n = this.virtualTokens;
    return rows.map((r) => ({ ...r, positions: r.positions.map((p) => p + n) }));
  }

  forwardOptions(_tape: Tape, leaves: Map<string, Var>): ForwardOptions {
    if (!this.enabled) return {};
    const get = (name: string) => {
      const v = leaves.get(name);
      if (!v) throw new InvalidArgumentError(`The leaves lack ${name}; make them with leaves().`);
      return v;
    };
    return { prefix: (_t, _b, layer) => ({ k: get(`prefix.layers.${layer}.keys`), v: get(`prefix.layers.${layer}.values`) }) };
  }

  inferenceOptions(): ForwardOptions {
    return this.forwardOptions(new Tape(), this.leaves(new Tape(), false));
  }

  async exportFiles(options: { dtype?: AdapterDType } = {}): Promise<SavedFiles> {
    this.assertLive();
    const parts: { k: Float32Array; v: Float32Array }[] = [];
    for (let i = 0; i < this.params.length; i += 2) {
      parts.push({ k: await readTensor(this.params[i].value as Tensor & { dtype: 'f32' }), v: await readTensor(this.params[i + 1].value as Tensor & { dtype: 'f32' }) });
    }
    const table = joinPrefixTable(parts, this.virtualTokens, prefixTokenDim(this.model.config));
    return exportPeftPrefixTuning({ config: this.config, table, modelConfig: this.model.config, dtype: options.dtype });
  }
}

function refuseProjection(config: PrefixTuningConfig): void {
  if (config.prefix_projection) {
    throw new AdapterConfigError('Key "prefix_projection" is true: the reparameterisation MLP (Linear, Tanh, Linear) is not supported here; train with prefix_projection false.');
  }
}

/** A new prefix-tuning adapter for `model`: keys and values N(0, 1). Starts in training mode. */
export function createPrefixTuning(model: LlamaModel, config: PrefixTuningConfig, options: { seed: number }): PrefixTuningAdapter {
  model.assertLive();
  const c = parsePrefixTuningConfig(config);
  refuseProjection(c);
  savedPrefixTuningConfig(c, model.config);
  const rng = new Rng(options.seed);
  const size = c.num_virtual_tokens * prefixTokenDim(model.config);
  const parts = Array.from({ length: model.config.numHiddenLayers }, () => ({ k: rng.fill(size, (r) => r.normal()), v: rng.fill(size, (r) => r.normal()) }));
  return new PrefixTuningAdapter(model, c, parts, true);
}

/** Loads a PEFT prefix-tuning adapter folder onto `model` (training off). */
export async function loadPrefixTuning(model: LlamaModel, files: FileSet | Map<string, Uint8Array>): Promise<PrefixTuningAdapter> {
  model.assertLive();
  const { config, table } = await importPeftPrefixTuning(files, model.config);
  // PEFT saves the encoder's output, so a folder written with prefix_projection loads as the plain table it holds.
  const plain = { ...config, prefix_projection: false };
  const parts = splitPrefixTable(table, config.num_virtual_tokens, model.config.numHiddenLayers, prefixTokenDim(model.config));
  return new PrefixTuningAdapter(model, plain, parts, false);
}
