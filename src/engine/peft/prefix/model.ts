// Prefix tuning (PEFT's PREFIX_TUNING) on a loaded Llama-family model: per layer trainable keys and
// values (nvt, Hkv·D), grouped-query aware, that every query attends before the tokens (the attention
// kernel's prefix keys/values, shared over the batch). As PEFT and transformers compute it, the prefix
// enters the layers as past keys and values: the keys are used as they are (no RoPE), every real
// token attends all of them, and the real tokens' positions start at nvt (transformers counts
// positions from the cache length) — adaptRows shifts them. The base model is frozen.
//
// Two parameterisations, as PEFT's PrefixEncoder has them:
// - plain (prefix_projection false): the table itself is trained, kept as one (nvt, Hkv·D) tensor per
//   layer's keys and per layer's values; N(0, 1) initialization (nn.Embedding's default).
// - projection (prefix_projection true): the reparameterisation MLP. An embedding E (nvt, token_dim)
//   goes through Linear(token_dim, encoder_hidden_size), Tanh, Linear(encoder_hidden_size,
//   L·2·token_dim); the output is the table. token_dim is Hkv·D (PEFT's grouped-query adjustment).
//   Trainable: E, both Linears' weights and biases, with nn.Embedding's and nn.Linear's
//   initializations. The second Linear is kept as 2·L row blocks, one per layer's keys and one per
//   layer's values ((Hkv·D, encoder_hidden_size) and (Hkv·D) each); stacked in order they are PEFT's
//   transform.2.weight and transform.2.bias, so each layer's keys come out of their own block with no
//   slicing of the table. The table is computed once per forward pass, on the tape.
// Saved as PEFT saves it (its get_prompt_embedding_to_save): one `prompt_embeddings` table (nvt,
// L·2·Hkv·D), the encoder's output, see config.ts for the layout; with prefix_projection the
// adapter_config.json keeps `prefix_projection: true` and `encoder_hidden_size`. PEFT loads such a
// folder in inference mode as the plain table, and so does loadPrefixTuning.
// Generation (model/generate.ts) puts the prefix at the front of its KV cache, positions after it.

import { addBias, linear, tanh } from '../../autograd/ops.ts';
import { Tape, type Var } from '../../autograd/tape.ts';
import { AdapterMismatchError, InvalidArgumentError } from '../../errors.ts';
import { Batch } from '../../gpu/batch.ts';
import { readTensor } from '../../gpu/readback.ts';
import { type Tensor, createTensor } from '../../gpu/tensor.ts';
import { affine } from '../../kernels/elementwise.ts';
import { type AdapterDType, exportPeftPrefixTuning, importPeftPrefixTuning } from '../../io/export-peft.ts';
import type { FileSet } from '../../io/model-folder.ts';
import type { ForwardOptions, LlamaModel } from '../../model/llama.ts';
import { Rng } from '../../random.ts';
import type { Row } from '../../train/batches.ts';
import type { PeftAdapter, SavedFiles } from '../adapter.ts';
import { AdapterParams, uploadParam } from '../params.ts';
import { type PrefixTuningConfig, joinPrefixTable, parsePrefixTuningConfig, prefixEncoderHiddenSize, prefixTokenDim, savedPrefixTuningConfig, splitPrefixTable } from './config.ts';

/**
 * PEFT's PrefixEncoder state with prefix_projection, by its state-dict names: embedding.weight
 * (nvt, token_dim), transform.0.weight (hidden, token_dim), transform.0.bias (hidden),
 * transform.2.weight (L·2·token_dim, hidden), transform.2.bias (L·2·token_dim); row-major f32.
 */
export interface PrefixEncoderWeights {
  'embedding.weight': Float32Array;
  'transform.0.weight': Float32Array;
  'transform.0.bias': Float32Array;
  'transform.2.weight': Float32Array;
  'transform.2.bias': Float32Array;
}

export const PREFIX_ENCODER_KEYS = ['embedding.weight', 'transform.0.weight', 'transform.0.bias', 'transform.2.weight', 'transform.2.bias'] as const;

/** PEFT's shapes of the encoder's tensors for `nvt` virtual tokens, `layers`, token_dim `dim` and encoder hidden size `hidden`. */
export function prefixEncoderShapes(nvt: number, layers: number, dim: number, hidden: number): Record<keyof PrefixEncoderWeights, number[]> {
  return {
    'embedding.weight': [nvt, dim],
    'transform.0.weight': [hidden, dim],
    'transform.0.bias': [hidden],
    'transform.2.weight': [layers * 2 * dim, hidden],
    'transform.2.bias': [layers * 2 * dim],
  };
}

/** The plain table per layer, or the projection's encoder weights. */
type PrefixInit = { parts: readonly { k: Float32Array; v: Float32Array }[] } | { encoder: PrefixEncoderWeights };

const EMBEDDING = 'prefix.embedding.weight';
const W1 = 'prefix.transform.0.weight';
const B1 = 'prefix.transform.0.bias';
const blockName = (l: number, which: 'keys' | 'values', part: 'weight' | 'bias') => `prefix.transform.2.layers.${l}.${which}.${part}`;

export class PrefixTuningAdapter extends AdapterParams implements PeftAdapter {
  readonly method = 'prefix';
  config: PrefixTuningConfig;
  /**
   * Whether the adapter trains the reparameterisation MLP (params: the embedding, the first
   * Linear's weight and bias, then per layer the keys' weight and bias block and the values' weight
   * and bias block of the second Linear). Otherwise params are layer 0's keys, layer 0's values,
   * layer 1's keys, …, each (nvt, Hkv·D), also for a folder saved with prefix_projection.
   */
  readonly projected: boolean;
  training: boolean;
  enabled = true;
  readonly model: LlamaModel;
  /** Per layer (nvt, Hkv·D) keys and values the projection's inference options read, refreshed at each forward pass. */
  private inferenceTable: { k: Tensor; v: Tensor }[] | null = null;

  constructor(model: LlamaModel, config: PrefixTuningConfig, init: PrefixInit, training: boolean) {
    super('The prefix-tuning adapter');
    this.model = model;
    this.config = config;
    this.training = training;
    this.projected = 'encoder' in init;
    const nvt = config.num_virtual_tokens;
    const dim = prefixTokenDim(model.config);
    const L = model.config.numHiddenLayers;
    this.buildParams(model.gpu, 'prefix.zeroGrads', () => {
      if ('parts' in init) {
        init.parts.forEach(({ k, v }, l) => {
          for (const [which, data] of [['keys', k], ['values', v]] as const) this.params.push(uploadParam(model.gpu, `prefix.layers.${l}.${which}`, data, [nvt, dim]));
        });
        return;
      }
      const hidden = prefixEncoderHiddenSize(config, model.config);
      const shapes = prefixEncoderShapes(nvt, L, dim, hidden);
      const e = init.encoder;
      for (const key of PREFIX_ENCODER_KEYS) {
        const want = shapes[key].reduce((a, d) => a * d, 1);
        if (e[key].length !== want) throw new AdapterMismatchError(`The prefix encoder's ${key} must hold ${want} values ([${shapes[key].join(', ')}]); got ${e[key].length}.`);
      }
      this.params.push(uploadParam(model.gpu, EMBEDDING, e['embedding.weight'], shapes['embedding.weight']));
      this.params.push(uploadParam(model.gpu, W1, e['transform.0.weight'], shapes['transform.0.weight']));
      this.params.push(uploadParam(model.gpu, B1, e['transform.0.bias'], shapes['transform.0.bias']));
      for (let l = 0; l < L; l++) {
        (['keys', 'values'] as const).forEach((which, kv) => {
          const row = (2 * l + kv) * dim; // the block's first row of transform.2
          this.params.push(uploadParam(model.gpu, blockName(l, which, 'weight'), e['transform.2.weight'].subarray(row * hidden, (row + dim) * hidden), [dim, hidden]));
          this.params.push(uploadParam(model.gpu, blockName(l, which, 'bias'), e['transform.2.bias'].subarray(row, row + dim), [dim]));
        });
      }
    });
  }

  get virtualTokens(): number {
    return this.config.num_virtual_tokens;
  }

  get savedConfig(): Record<string, unknown> {
    return savedPrefixTuningConfig(this.config, this.model.config) as unknown as Record<string, unknown>;
  }

  describe(): string {
    const L = this.model.config.numHiddenLayers;
    if (!this.projected) return `${this.virtualTokens} virtual tokens of keys and values in ${L} layers`;
    return `${this.virtualTokens} virtual tokens of keys and values in ${L} layers, through a Linear–Tanh–Linear projection (hidden ${prefixEncoderHiddenSize(this.config, this.model.config)})`;
  }

  /** The real tokens' positions start at nvt, after the prefix (transformers counts from the cache length). */
  adaptRows(rows: readonly Row[]): Row[] {
    if (!this.enabled) return [...rows];
    const n = this.virtualTokens;
    return rows.map((r) => ({ ...r, positions: r.positions.map((p) => p + n) }));
  }

  /**
   * The prefix hook over `leaves` of `tape`. With the projection, the first call of a forward pass
   * computes every layer's keys and values on `tape` (the one the forward records on, whichever tape
   * a checkpointed block calls the hook with), and later calls reuse them.
   */
  forwardOptions(tape: Tape, leaves: Map<string, Var>): ForwardOptions {
    if (!this.enabled) return {};
    const get = (name: string) => {
      const v = leaves.get(name);
      if (!v) throw new InvalidArgumentError(`The leaves lack ${name}; make them with leaves().`);
      return v;
    };
    if (!this.projected) return { prefix: (_t, _b, layer) => ({ k: get(`prefix.layers.${layer}.keys`), v: get(`prefix.layers.${layer}.values`) }) };
    let parts: { k: Var; v: Var }[] | null = null;
    return {
      prefix: (_t, b, layer) => {
        parts ??= this.project(tape, b, get);
        return parts[layer];
      },
    };
  }

  /** Every layer's keys and values (nvt, Hkv·D) from the encoder: Linear, Tanh, then each layer's blocks of the second Linear. */
  private project(tape: Tape, b: Batch, get: (name: string) => Var): { k: Var; v: Var }[] {
    const h = tanh(tape, b, addBias(tape, b, linear(tape, b, get(EMBEDDING), get(W1)), get(B1))); // (nvt, hidden)
    const block = (l: number, which: 'keys' | 'values') => addBias(tape, b, linear(tape, b, h, get(blockName(l, which, 'weight'))), get(blockName(l, which, 'bias'))); // (nvt, Hkv·D)
    return Array.from({ length: this.model.config.numHiddenLayers }, (_, l) => ({ k: block(l, 'keys'), v: block(l, 'values') }));
  }

  /**
   * Forward options for inference (no gradients). With the projection, the table is computed into
   * buffers the adapter owns at the first hook call of each GPU batch, so every forward pass (and
   * every generation's prefill) sees the current weights.
   */
  inferenceOptions(): ForwardOptions {
    if (!this.projected) return this.forwardOptions(new Tape(), this.leaves(new Tape(), false));
    if (!this.enabled) return {};
    let last: Batch | null = null;
    return {
      prefix: (t, b, layer) => {
        if (b !== last) {
          this.refreshInferenceTable(b);
          last = b;
        }
        const table = this.inferenceTable as { k: Tensor; v: Tensor }[];
        return { k: t.leaf(table[layer].k), v: t.leaf(table[layer].v) };
      },
    };
  }

  private refreshInferenceTable(b: Batch): void {
    this.assertLive();
    const gpu = this.model.gpu;
    const shape = [this.virtualTokens, prefixTokenDim(this.model.config)];
    this.inferenceTable ??= Array.from({ length: this.model.config.numHiddenLayers }, (_, l) => ({
      k: createTensor(gpu, shape, 'f32', { label: `prefix.inference.${l}.keys` }),
      v: createTensor(gpu, shape, 'f32', { label: `prefix.inference.${l}.values` }),
    }));
    const tape = new Tape();
    tape.recording = false;
    const leaves = this.leaves(tape, false);
    const parts = this.project(tape, b, (name) => leaves.get(name) as Var);
    parts.forEach(({ k, v }, l) => {
      affine(b, k.value, this.inferenceTable![l].k, 1, 0);
      affine(b, v.value, this.inferenceTable![l].v, 1, 0);
    });
    tape.releaseUnrecorded();
  }

  protected override releaseOthers(): void {
    for (const t of this.inferenceTable ?? []) {
      t.k.release();
      t.v.release();
    }
    this.inferenceTable = null;
  }

  /** The table PEFT saves, (nvt, L·2·Hkv·D): the trained keys and values, or the projection's output for the current weights. */
  async prefixTable(): Promise<Float32Array> {
    this.assertLive();
    const read = (t: Tensor) => readTensor(t as Tensor & { dtype: 'f32' });
    const parts: { k: Float32Array; v: Float32Array }[] = [];
    if (this.projected) {
      const tape = new Tape();
      tape.recording = false;
      const b = new Batch(this.model.gpu, 'prefix.table');
      const leaves = this.leaves(tape, false);
      const vars = this.project(tape, b, (name) => leaves.get(name) as Var);
      b.submit();
      for (const { k, v } of vars) parts.push({ k: await read(k.value), v: await read(v.value) });
      tape.releaseUnrecorded();
    } else {
      for (let i = 0; i < this.params.length; i += 2) parts.push({ k: await read(this.params[i].value), v: await read(this.params[i + 1].value) });
    }
    return joinPrefixTable(parts, this.virtualTokens, prefixTokenDim(this.model.config));
  }

  /** The projection's weights (or their gradients) by PEFT's PrefixEncoder names; the second Linear's blocks stacked back. */
  async encoderWeights(which: 'value' | 'grad' = 'value'): Promise<PrefixEncoderWeights> {
    this.assertLive();
    if (!this.projected) throw new InvalidArgumentError('This prefix-tuning adapter trains the table itself; it has no projection encoder.');
    const read = async (name: string) => {
      const p = this.params.find((x) => x.name === name);
      if (!p) throw new InvalidArgumentError(`The adapter has no parameter ${name}.`);
      return readTensor(p[which] as Tensor & { dtype: 'f32' });
    };
    const L = this.model.config.numHiddenLayers;
    const dim = prefixTokenDim(this.model.config);
    const hidden = prefixEncoderHiddenSize(this.config, this.model.config);
    const w2 = new Float32Array(L * 2 * dim * hidden);
    const b2 = new Float32Array(L * 2 * dim);
    for (let l = 0; l < L; l++) {
      for (const [kv, name] of (['keys', 'values'] as const).entries()) {
        const row = (2 * l + kv) * dim;
        w2.set(await read(blockName(l, name, 'weight')), row * hidden);
        b2.set(await read(blockName(l, name, 'bias')), row);
      }
    }
    return {
      'embedding.weight': await read(EMBEDDING),
      'transform.0.weight': await read(W1),
      'transform.0.bias': await read(B1),
      'transform.2.weight': w2,
      'transform.2.bias': b2,
    };
  }

  async exportFiles(options: { dtype?: AdapterDType } = {}): Promise<SavedFiles> {
    const table = await this.prefixTable();
    return exportPeftPrefixTuning({ config: this.config, table, modelConfig: this.model.config, dtype: options.dtype });
  }
}

/**
 * A new prefix-tuning adapter for `model`, in training mode. Plain: keys and values N(0, 1). With
 * prefix_projection: the embedding N(0, 1) and each Linear's weight and bias U(−1/√in, 1/√in)
 * (nn.Embedding's and nn.Linear's defaults), or the given `encoder` weights.
 */
export function createPrefixTuning(model: LlamaModel, config: PrefixTuningConfig, options: { seed: number; encoder?: PrefixEncoderWeights }): PrefixTuningAdapter {
  model.assertLive();
  const c = parsePrefixTuningConfig(config);
  savedPrefixTuningConfig(c, model.config);
  if (options.encoder && !c.prefix_projection) throw new InvalidArgumentError('Encoder weights were given for a prefix-tuning config without prefix_projection.');
  const rng = new Rng(options.seed);
  const nvt = c.num_virtual_tokens;
  const L = model.config.numHiddenLayers;
  const dim = prefixTokenDim(model.config);
  if (!c.prefix_projection) {
    const size = nvt * dim;
    const parts = Array.from({ length: L }, () => ({ k: rng.fill(size, (r) => r.normal()), v: rng.fill(size, (r) => r.normal()) }));
    return new PrefixTuningAdapter(model, c, { parts }, true);
  }
  const hidden = prefixEncoderHiddenSize(c, model.config);
  const uniform = (n: number, fanIn: number) => rng.fill(n, (r) => r.uniform(-1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn)));
  const encoder = options.encoder ?? {
    'embedding.weight': rng.fill(nvt * dim, (r) => r.normal()),
    'transform.0.weight': uniform(hidden * dim, dim),
    'transform.0.bias': uniform(hidden, dim),
    'transform.2.weight': uniform(L * 2 * dim * hidden, hidden),
    'transform.2.bias': uniform(L * 2 * dim, hidden),
  };
  return new PrefixTuningAdapter(model, c, { encoder }, true);
}

/**
 * Loads a PEFT prefix-tuning adapter folder onto `model` (training off). PEFT saves the encoder's
 * output, so a folder written with prefix_projection loads as the table it holds, as PEFT loads it
 * in inference mode; its config keeps prefix_projection, and saving it again writes the same files.
 */
export async function loadPrefixTuning(model: LlamaModel, files: FileSet | Map<string, Uint8Array>): Promise<PrefixTuningAdapter> {
  model.assertLive();
  const { config, table } = await importPeftPrefixTuning(files, model.config);
  const parts = splitPrefixTable(table, config.num_virtual_tokens, model.config.numHiddenLayers, prefixTokenDim(model.config));
  return new PrefixTuningAdapter(model, config, { parts }, false);
}
