// The Llama-family causal language model on the GPU (LlamaForCausalLM — Llama 2/3.x, TinyLlama,
// SmolLM/SmolLM2 —, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM), built from the tape
// ops: loading a Hugging Face folder's weights tensor by tensor into GPU buffers, the forward pass
// to the final hidden states, logits, the causal-LM loss with Hugging Face's semantics, and a
// memory-efficient evaluation loss. Numerics follow transformers (REFERENCE.md §5): pre-norm
// blocks, q/k/v biases (Qwen2), per-head q/k RMSNorm before RoPE (Qwen3), rotate-half RoPE with
// llama3 scaling, grouped-query attention, SwiGLU, a tied or untied lm_head.
// Generation (KV cache, sampling) is in generate.ts; reading files is io/model-folder.ts.

import { CancelledError, InvalidArgumentError, UnsupportedModelError } from '../errors.ts';
import { add, addBias, attention, crossEntropyLoss, embedding, linear, linearLowp, linearQuant, rmsnorm, rope, swiglu } from '../autograd/ops.ts';
import { Tape, type Var } from '../autograd/tape.ts';
import { Batch } from '../gpu/batch.ts';
import type { Gpu } from '../gpu/device.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { MAX_HEAD_DIM } from '../kernels/attention.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { ropeInvFreq } from '../kernels/rope.ts';
import { f32ToBf16 } from '../io/half.ts';
import type { ModelFolder, RawWeight, StreamOptions } from '../io/model-folder.ts';
import { streamRawWeights } from '../io/model-folder.ts';
import { decodeToF32 } from '../io/safetensors.ts';
import { IGNORE_INDEX } from '../reference/cross_entropy.ts';
import { type QuantOptions, dequantizeMatrix, quantizeMatrix, resolveQuantOptions } from '../quant/format.ts';
import { QuantizedTensor, uploadQuantized } from '../quant/tensor.ts';
import type { ModelConfig } from './config.ts';

/** How the frozen projection weights (q/k/v/o, gate/up/down) are stored on the GPU. */
export type WeightStorage = 'f32' | 'bf16';

/** The label value that is not counted (PyTorch's ignore_index, -100). */
export { IGNORE_INDEX };

/** Bytes of the (tokens, vocab) logits chunk the loss computes at a time. */
const LOGITS_CHUNK_BYTES = 32 * 1024 * 1024;

export interface LoadModelOptions {
  /**
   * 'f32' (default) stores every weight in f32. 'bf16' stores the projection weights in 16 bits to
   * halve their memory: bf16 checkpoints as they are, f16 checkpoints as f16 (exact), f32 ones
   * rounded to bf16. Such weights are frozen (they get no gradient). Embeddings, lm_head, norms and
   * biases stay f32 either way.
   */
  dtype?: WeightStorage;
  /**
   * Quantize the projection weights (q/k/v/o, gate/up/down) as they load, one tensor at a time:
   * NF4/FP4 (bitsandbytes, optionally double-quantized), INT8 per row or INT4 per group. They are
   * frozen and multiplied through kernels that decode them tile by tile (QLoRA's base). Weights a
   * folder stores quantized (bitsandbytes 4-bit or LLM.int8, INT4 groups) load in their own format
   * whatever this says.
   */
  quant?: QuantOptions;
  /** Called after each tensor is read, with tensors and bytes done so far and in all. */
  onProgress?: StreamOptions['onProgress'];
  /** Stops loading with a CancelledError; the tensors uploaded so far are freed. */
  signal?: AbortSignal;
}

/** One sequence: token ids and, optionally, labels aligned with them (same length, -100 ignored). */
export interface TokenRow {
  inputIds: readonly number[];
  /** When absent, every next token counts (labels = inputIds, as Hugging Face does). */
  labels?: readonly number[] | null;
}

/**
 * One batch on the GPU: B rows of T tokens (N = B·T, row-major), right-padded. Padding has segment
 * -1 (never attended to, output rows zero) and target -100.
 */
export interface ModelInputs {
  B: number;
  T: number;
  ids: Tensor; // (N) i32
  /** The same ids on the CPU (embedding validates them, its backward groups by them). */
  hostIds: Int32Array; // (N)
  positions: Tensor; // (N) i32, RoPE positions
  segments: Tensor; // (N) i32, 0 for tokens, -1 for padding
  /** Scratch for the embedding's backward when the table is trained. */
  groups: TokenGroups;
  /** Next-token targets after the causal shift, -100 where nothing is counted; null without labels. */
  targets: Tensor | null; // (N) i32
  /** Counted targets. */
  count: number;
  release(): void;
}

/**
 * Keys and values of earlier positions, for decoding with a KV cache (batch of one row): the forward
 * attends the new tokens to `pastLength` cached positions and hands over the new rotated keys and
 * values of every layer so they can be appended to the cache.
 */
export interface KvAccess {
  /** Cached positions P; the new tokens sit at RoPE positions P, P + 1, …. */
  readonly pastLength: number;
  /** Layer l's cached keys and values, (P, Hkv·D) each, or null when P is 0. */
  past(layer: number): { k: Tensor; v: Tensor } | null;
  /** Receives layer l's new keys (after RoPE) and values, (n, Hkv·D) each, to copy in `b`. */
  store(b: Batch, layer: number, k: Tensor, v: Tensor): void;
}

/**
 * Called after each projection with the module name (e.g. "model.layers.0.self_attn.q_proj"), its
 * input x and the frozen projection's output y (bias included); returns what replaces y. Adapters
 * (LoRA and friends) add their term here.
 */
export type ProjectionHook = (tape: Tape, b: Batch, module: string, x: Var, y: Var) => Var;

/**
 * Called before each projection with the module name and its input x; returns what the projection
 * reads instead (IA3 scales the input of feed-forward modules here).
 */
export type ProjectionInputHook = (tape: Tape, b: Batch, module: string, x: Var) => Var;

export interface ForwardOptions {
  /** Vars to use instead of plain leaves for some parameters (by HF name), e.g. trainable ones with gradient buffers. */
  params?: Readonly<Record<string, Var>>;
  /** KV cache access (inference only). */
  kv?: KvAccess;
  /** On a recording tape: keep no activations inside blocks and recompute them in backward. */
  checkpointBlocks?: boolean;
  /** Wraps every projection's output (adapters). */
  projection?: ProjectionHook;
  /** Replaces every projection's input (adapters). */
  projectionInput?: ProjectionInputHook;
  /** Replaces the token embeddings (N, C) before the first block (prompt tuning's virtual tokens). */
  inputEmbeddings?: InputEmbeddingsHook;
  /** Trainable keys and values attended before the tokens in every layer (prefix tuning). */
  prefix?: PrefixHook;
}

/**
 * Called with the batch and its token embeddings h (N, C) and the number of cached positions before
 * it; returns what the first block reads instead.
 */
export type InputEmbeddingsHook = (tape: Tape, b: Batch, inputs: ModelInputs, h: Var, pastLength: number) => Var;

/** Layer l's prefix keys and values, (P, Hkv·D) each, shared over the batch and used as they are (no RoPE), or null. */
export type PrefixHook = (tape: Tape, b: Batch, layer: number) => { k: Var; v: Var } | null;

export interface LossResult {
  /** Mean cross-entropy over the counted tokens (NaN when none is counted). */
  loss: number;
  /** Counted positions after the shift. */
  tokens: number;
}

export interface EvaluateOptions {
  /** Most padded tokens (rows × longest row) per forward pass; a longer single row runs alone. Default 2048. */
  batchTokens?: number;
  signal?: AbortSignal;
  onProgress?: (p: { rowsDone: number; rowsTotal: number }) => void;
}

/** A loaded model: its config, its weights on the GPU and the forward pass over them. */
export class LlamaModel {
  readonly gpu: Gpu;
  readonly config: ModelConfig;
  /** Every weight by its Hugging Face name (no lm_head.weight when the head is tied). */
  readonly params: Readonly<Record<string, Tensor>>;
  /** How projection weights are stored. */
  readonly weightDtype: WeightStorage;
  /** RoPE inverse frequencies (D/2), llama3 scaling applied. */
  readonly invFreq: Tensor; // (D/2)
  private released = false;

  constructor(gpu: Gpu, config: ModelConfig, params: Record<string, Tensor>, weightDtype: WeightStorage, invFreq: Tensor) {
    this.gpu = gpu;
    this.config = config;
    this.params = params;
    this.weightDtype = weightDtype;
    this.invFreq = invFreq;
  }

  /** The name of the lm_head weight: lm_head.weight, or the embedding table when tied. */
  get headName(): string {
    return this.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  }

  /** Bytes of GPU memory the weights take. */
  get parameterBytes(): number {
    let n = this.invFreq.byteLength;
    for (const t of new Set(Object.values(this.params))) n += t.byteLength; // shared layers counted once
    return n;
  }

  /** The format of the quantized projection weights, or null when none is quantized. */
  get quantization(): QuantizedTensor['format'] | null {
    for (const t of Object.values(this.params)) if (t instanceof QuantizedTensor) return t.format;
    return null;
  }

  /** A Var for every parameter: the given overrides, plain leaves (no gradient) for the rest. */
  vars(tape: Tape, overrides: Readonly<Record<string, Var>> = {}): Record<string, Var> {
    this.assertLive();
    const out: Record<string, Var> = {};
    for (const [name, t] of Object.entries(this.params)) out[name] = overrides[name] ?? tape.leaf(t, { name });
    for (const name of Object.keys(overrides)) {
      if (!(name in this.params)) throw new InvalidArgumentError(`The model has no parameter "${name}".`);
    }
    return out;
  }

  /**
   * The final hidden states (N, C), after model.norm. On a tape that is not recording, each block
   * runs on a scratch tape whose intermediates are freed as soon as the block is done, so the
   * memory held is one block's worth; the result is an unrecorded value of `tape` (free it with
   * tape.releaseUnrecorded()). On a recording tape the values are the tape's, freed by backward()
   * or discard(): use a recording tape only when something requires a gradient.
   */
  forward(tape: Tape, b: Batch, inputs: ModelInputs, options: ForwardOptions = {}): Var {
    return this.forwardWith(tape, b, inputs, this.vars(tape, options.params), options);
  }

  /**
   * The forward options every pass of this model applies: none here; a view with an adapter's hooks
   * (peft/adapter.ts withForwardOptions) returns them. Generation reads the prefix hook from it to
   * put prefix-tuning keys and values at the front of its KV cache.
   */
  forwardDefaults(): ForwardOptions {
    return {};
  }

  /** Logits (rows, V) of hidden states h (rows, C) through the lm_head. */
  headLogits(tape: Tape, b: Batch, h: Var, params: Readonly<Record<string, Var>> = {}): Var {
    this.assertLive();
    const head = params[this.headName] ?? tape.leaf(this.params[this.headName], { name: this.headName });
    return linear(tape, b, h, head); // (rows, V)
  }

  /**
   * The causal-LM loss (1) of `inputs` on the tape: mean cross-entropy of the shifted targets over
   * the counted tokens, with the lm_head applied a chunk of tokens at a time so the full logits
   * never exist at once.
   */
  loss(tape: Tape, b: Batch, inputs: ModelInputs, options: ForwardOptions = {}): Var {
    if (!inputs.targets) throw new InvalidArgumentError('loss(): these inputs were made without targets.');
    const v = this.vars(tape, options.params);
    const h = this.forwardWith(tape, b, inputs, v, options); // (N, C)
    const V = this.config.vocabSize;
    const N = inputs.B * inputs.T;
    const chunkTokens = Math.max(1, Math.min(N, Math.floor(LOGITS_CHUNK_BYTES / (V * 4))));
    return crossEntropyLoss(tape, b, h, v[this.headName], inputs.targets, inputs.count, { chunkTokens }); // (1)
  }

  /**
   * Logits of each row, computed without a tape: per row a Float32Array of (row length, V), row
   * major. Rows are batched (right-padded) up to `batchTokens` padded tokens per pass.
   */
  async logits(rows: readonly (readonly number[])[], options: { batchTokens?: number } = {}): Promise<Float32Array[]> {
    this.assertLive();
    const V = this.config.vocabSize;
    const out: Float32Array[] = new Array(rows.length);
    for (const batch of planBatches(rows.map((r) => r.length), options.batchTokens ?? 2048)) {
      const inputs = makeInputs(this, batch.map((i) => ({ inputIds: rows[i] })), { targets: false });
      try {
        const tape = new Tape();
        tape.recording = false;
        const b = new Batch(this.gpu, 'logits');
        const h = this.forward(tape, b, inputs); // (N, C)
        const z = this.headLogits(tape, b, h); // (N, V)
        tape.releaseUnrecorded([z]);
        b.submit();
        const all = await readF32(z.value); // (N·V)
        z.value.release();
        batch.forEach((r, k) => {
          out[r] = all.slice(k * inputs.T * V, (k * inputs.T + rows[r].length) * V);
        });
      } finally {
        inputs.release();
      }
    }
    return out;
  }

  /** Frees every weight. The model cannot be used afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of Object.values(this.params)) t.release();
    this.invFreq.release();
  }

  assertLive(): void {
    if (this.released) throw new InvalidArgumentError('The model was released.');
  }

  private forwardWith(tape: Tape, b: Batch, inputs: ModelInputs, v: Record<string, Var>, options: ForwardOptions): Var {
    this.assertLive();
    const c = this.config;
    const past = options.kv?.pastLength ?? 0;
    if (c.slidingWindow !== null && inputs.T + past > c.slidingWindow) {
      throw new UnsupportedModelError(
        `A sequence of ${inputs.T + past} tokens is longer than the model's sliding attention window (${c.slidingWindow}); sliding-window attention is not supported.`,
        { hint: `Use sequences of at most ${c.slidingWindow} tokens.` },
      );
    }
    if (options.kv && (tape.recording || inputs.B !== 1)) {
      throw new InvalidArgumentError('A KV cache serves inference on one row: use a tape that is not recording and a batch of one row.');
    }
    const embed = (t: Tape) => {
      const e = embedding(t, b, v['model.embed_tokens.weight'], inputs.ids, inputs.hostIds, inputs.groups); // (N, C)
      return options.inputEmbeddings ? options.inputEmbeddings(t, b, inputs, e, past) : e;
    };
    const normW = v['model.norm.weight'];
    if (!tape.recording) {
      const scoped = (fn: (t: Tape) => Var): Var => {
        const t = new Tape();
        t.recording = false;
        const out = fn(t);
        t.releaseUnrecorded([out]);
        return out;
      };
      let h = scoped(embed); // (N, C)
      for (let l = 0; l < c.numHiddenLayers; l++) {
        const prev = h;
        h = scoped((t) => this.block(t, b, v, inputs, l, prev, options)); // (N, C)
        prev.value.release();
      }
      const out = rmsnorm(tape, b, h, normW, c.rmsNormEps); // (N, C)
      h.value.release();
      return out;
    }
    let h = embed(tape); // (N, C)
    for (let l = 0; l < c.numHiddenLayers; l++) {
      if (options.checkpointBlocks) {
        const own = Object.keys(v).filter((n) => n.startsWith(`model.layers.${l}.`)).map((n) => v[n]);
        h = tape.checkpoint(b, [h], own, (t, bb, [hin]) => [this.block(t, bb, v, inputs, l, hin, options)])[0];
      } else {
        h = this.block(tape, b, v, inputs, l, h, options);
      }
    }
    return rmsnorm(tape, b, h, normW, c.rmsNormEps); // (N, C)
  }

  /** One decoder block: (N, C) → (N, C). */
  private block(tape: Tape, b: Batch, v: Record<string, Var>, x: ModelInputs, l: number, h: Var, options: ForwardOptions): Var {
    const c = this.config;
    const eps = c.rmsNormEps;
    const p = `model.layers.${l}.`;
    const into = options.projectionInput;
    const proj = (module: string, input: Var) => this.project(tape, b, v, p + module, into ? into(tape, b, p + module, input) : input, options.projection);
    const y1 = rmsnorm(tape, b, h, v[`${p}input_layernorm.weight`], eps); // (N, C)
    let q = proj('self_attn.q_proj', y1); // (N, Hq·D)
    let k = proj('self_attn.k_proj', y1); // (N, Hkv·D)
    const val = proj('self_attn.v_proj', y1); // (N, Hkv·D)
    if (c.qkNorm) {
      q = rmsnorm(tape, b, q, v[`${p}self_attn.q_norm.weight`], eps); // (N, Hq·D), per head of D
      k = rmsnorm(tape, b, k, v[`${p}self_attn.k_norm.weight`], eps); // (N, Hkv·D), per head of D
    }
    q = rope(tape, b, q, x.positions, this.invFreq); // (N, Hq·D)
    k = rope(tape, b, k, x.positions, this.invFreq); // (N, Hkv·D)
    const cached = options.kv?.past(l) ?? null;
    options.kv?.store(b, l, k.value, val.value);
    const trained = options.prefix?.(tape, b, l) ?? null;
    if (trained && options.kv) {
      throw new UnsupportedModelError('A forward pass with a KV cache got trained prefix keys (prefix tuning) as well; the prefix belongs in the cache.', {
        hint: 'Generate with generate() or Generation, which put the prefix keys and values at the front of the KV cache and start positions after them.',
      });
    }
    const att = attention(tape, b, q, k, val, x.segments, {
      batchSize: x.B,
      numHeads: c.numAttentionHeads,
      numKvHeads: c.numKeyValueHeads,
      prefixK: cached ? tape.leaf(cached.k) : trained?.k,
      prefixV: cached ? tape.leaf(cached.v) : trained?.v,
    }); // (N, Hq·D)
    const h2 = add(tape, b, h, proj('self_attn.o_proj', att)); // (N, C)
    const y2 = rmsnorm(tape, b, h2, v[`${p}post_attention_layernorm.weight`], eps); // (N, C)
    const act = swiglu(tape, b, proj('mlp.gate_proj', y2), proj('mlp.up_proj', y2)); // (N, F)
    return add(tape, b, h2, proj('mlp.down_proj', act)); // (N, C)
  }

  /** x · Wᵀ (+ bias) for one projection module, through the hook when there is one. */
  private project(tape: Tape, b: Batch, v: Record<string, Var>, module: string, x: Var, hook?: ProjectionHook): Var {
    const w = v[`${module}.weight`];
    const bias = v[`${module}.bias`];
    let y = w.value instanceof QuantizedTensor ? linearQuant(tape, b, x, w) : w.value.dtype === 'f32' ? linear(tape, b, x, w) : linearLowp(tape, b, x, w); // (N, out)
    if (bias) y = addBias(tape, b, y, bias);
    return hook ? hook(tape, b, module, x, y) : y;
  }
}

/**
 * Loads the weights of an opened model folder onto the GPU, one tensor at a time: each is read,
 * converted, uploaded and dropped before the next, so JavaScript never holds more than one tensor.
 */
export async function loadModel(gpu: Gpu, folder: ModelFolder, options: LoadModelOptions = {}): Promise<LlamaModel> {
  const dtype = options.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new InvalidArgumentError(`Weight dtype must be "f32" or "bf16"; got ${JSON.stringify(dtype)}.`);
  const quant = options.quant ? resolveQuantOptions(options.quant) : null;
  const c = folder.config;
  if (c.headDim % 2 !== 0 || c.headDim > MAX_HEAD_DIM) {
    throw new UnsupportedModelError(`Head dimension ${c.headDim} is not supported: it must be even and at most ${MAX_HEAD_DIM}.`);
  }
  const params: Record<string, Tensor> = {};
  let invFreq: Tensor | null = null;
  try {
    for await (const w of streamRawWeights(folder, { signal: options.signal, onProgress: options.onProgress })) {
      const lowp = dtype === 'bf16' && w.name.endsWith('_proj.weight');
      params[w.name] = await gpu.scoped(() =>
        w.quantized
          ? w.name.endsWith('_proj.weight')
            ? uploadQuantized(gpu, w.quantized, w.name)
            : tensorFromArray(gpu, dequantizeMatrix(w.quantized), w.shape, 'f32', { label: w.name }) // a quantized embedding or head is decoded
          : quant && w.name.endsWith('_proj.weight') ? uploadQuantizedWeight(gpu, w, quant) : uploadWeight(gpu, w, lowp),
      );
    }
    shareLayerWeights(c, params);
    if (options.signal?.aborted) throw new CancelledError('Loading the weights was cancelled.');
    const scaling = c.ropeScaling && {
      rope_type: 'llama3',
      factor: c.ropeScaling.factor,
      low_freq_factor: c.ropeScaling.lowFreqFactor,
      high_freq_factor: c.ropeScaling.highFreqFactor,
      original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
    };
    invFreq = tensorFromArray(gpu, ropeInvFreq(c.headDim, c.ropeTheta, scaling), [c.headDim / 2], 'f32', { label: 'rope.inv_freq' });
    await gpu.sync();
  } catch (e) {
    for (const t of Object.values(params)) t.release();
    invFreq?.release();
    throw e;
  }
  return new LlamaModel(gpu, c, params, dtype, invFreq);
}

/**
 * Blocks shared across depth (config `layerWeightSource`): a layer that runs with another layer's
 * weights gets that layer's tensors under its own names (the same GPU buffers, not copies).
 */
function shareLayerWeights(c: ModelConfig, params: Record<string, Tensor>): void {
  const source = c.layerWeightSource;
  if (!source) return;
  source.forEach((s, l) => {
    if (s === l) return;
    const from = `model.layers.${s}.`;
    for (const name of Object.keys(params)) if (name.startsWith(from)) params[`model.layers.${l}.${name.slice(from.length)}`] = params[name];
  });
}

/** Quantizes one projection weight on the CPU (from its checkpoint dtype) and uploads it. */
function uploadQuantizedWeight(gpu: Gpu, w: RawWeight, quant: QuantOptions): Tensor {
  const n = w.shape.reduce((a, d) => a * d, 1);
  return uploadQuantized(gpu, quantizeMatrix(decodeToF32(w.dtype, w.bytes, new Float32Array(n)), w.shape, quant), w.name);
}

/** Uploads one weight: as 16-bit values when `lowp`, else as f32. */
function uploadWeight(gpu: Gpu, w: RawWeight, lowp: boolean): Tensor {
  const n = w.shape.reduce((a, d) => a * d, 1);
  const opts = { label: w.name };
  if (lowp && (w.dtype === 'BF16' || w.dtype === 'F16')) {
    const bytes = w.bytes.byteOffset % 2 === 0 ? w.bytes : w.bytes.slice();
    return tensorFromArray(gpu, new Uint16Array(bytes.buffer, bytes.byteOffset, n), w.shape, w.dtype === 'BF16' ? 'bf16' : 'f16', opts);
  }
  const f32 = decodeToF32(w.dtype, w.bytes, new Float32Array(n));
  return lowp ? tensorFromArray(gpu, f32ToBf16(f32), w.shape, 'bf16', opts) : tensorFromArray(gpu, f32, w.shape, 'f32', opts);
}

/**
 * Uploads rows as one right-padded batch (T = the longest row). Token ids and labels are checked
 * (ids in the vocabulary, labels of the same length, each -100 or an id); errors name the row.
 * `positionOffset` starts the RoPE positions there (decoding after cached tokens).
 */
export function makeInputs(model: LlamaModel, rows: readonly TokenRow[], options: { targets?: boolean; positionOffset?: number } = {}): ModelInputs {
  const V = model.config.vocabSize;
  if (rows.length === 0) throw new InvalidArgumentError('A batch needs at least one row.');
  rows.forEach((r, i) => checkRow(r, i, V));
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.inputIds.length));
  const N = B * T;
  const offset = options.positionOffset ?? 0;
  const hostIds = new Int32Array(N); // (N), padding id 0
  const positions = new Int32Array(N); // (N)
  const segments = new Int32Array(N).fill(-1); // (N)
  const targets = new Int32Array(N).fill(IGNORE_INDEX); // (N)
  let count = 0;
  rows.forEach((r, i) => {
    const labels = r.labels ?? r.inputIds;
    const len = r.inputIds.length;
    for (let t = 0; t < len; t++) {
      const n = i * T + t;
      hostIds[n] = r.inputIds[t];
      positions[n] = offset + t;
      segments[n] = 0;
      if (t + 1 < len && labels[t + 1] !== IGNORE_INDEX) {
        targets[n] = labels[t + 1];
        count++;
      }
    }
  });
  const gpu = model.gpu;
  const owned: Tensor[] = [];
  const keep = (t: Tensor) => (owned.push(t), t);
  const withTargets = options.targets ?? true;
  let groups: TokenGroups | null = null;
  try {
    const ids = keep(tensorFromArray(gpu, hostIds, [N], 'i32', { label: 'input_ids' }));
    const pos = keep(tensorFromArray(gpu, positions, [N], 'i32', { label: 'positions' }));
    const seg = keep(tensorFromArray(gpu, segments, [N], 'i32', { label: 'segments' }));
    const tgt = withTargets ? keep(tensorFromArray(gpu, targets, [N], 'i32', { label: 'targets' })) : null;
    groups = new TokenGroups(gpu, N);
    const g = groups;
    return {
      B,
      T,
      ids,
      hostIds,
      positions: pos,
      segments: seg,
      groups: g,
      targets: tgt,
      count: withTargets ? count : 0,
      release() {
        for (const t of owned) t.release();
        g.release();
      },
    };
  } catch (e) {
    for (const t of owned) t.release();
    groups?.release();
    throw e;
  }
}

function checkRow(r: TokenRow, i: number, V: number): void {
  const ids = r.inputIds;
  if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) throw new InvalidArgumentError(`Row ${i}: inputIds must be a list of token ids.`);
  if (ids.length === 0) throw new InvalidArgumentError(`Row ${i} has no tokens.`);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new InvalidArgumentError(`Row ${i}: token id ${id} at position ${t} is outside the vocabulary (0..${V - 1}).`, {
        hint: 'The tokenizer and the model disagree on the vocabulary; use the tokenizer that came with the model.',
      });
    }
  }
  const labels = r.labels;
  if (labels === undefined || labels === null) return;
  if (labels.length !== ids.length) throw new InvalidArgumentError(`Row ${i}: ${labels.length} labels for ${ids.length} input ids; they must be aligned (same length).`);
  for (let t = 0; t < labels.length; t++) {
    const y = labels[t];
    if (y !== IGNORE_INDEX && (!Number.isInteger(y) || y < 0 || y >= V)) {
      throw new InvalidArgumentError(`Row ${i}: label ${y} at position ${t} is neither ${IGNORE_INDEX} nor a token id (0..${V - 1}).`);
    }
  }
}

/**
 * Groups row indices into batches of at most `batchTokens` padded tokens (rows × longest row),
 * longest rows first so that rows of similar length share a batch. A row longer than the budget
 * forms a batch of its own.
 */
export function planBatches(lengths: readonly number[], batchTokens: number): number[][] {
  if (!Number.isInteger(batchTokens) || batchTokens < 1) throw new InvalidArgumentError(`batchTokens must be a positive integer; got ${batchTokens}.`);
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const batches: number[][] = [];
  let current: number[] = [];
  let T = 0;
  for (const i of order) {
    if (current.length > 0 && (current.length + 1) * T > batchTokens) {
      batches.push(current);
      current = [];
    }
    if (current.length === 0) T = lengths[i];
    current.push(i);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * The causal-LM loss of many rows, as one mean over every counted token of every row (rows are
 * separate sequences). Runs forward only, without a recording tape and with each block's
 * intermediates freed as it goes; batches are right-padded up to `batchTokens` tokens. The
 * per-batch losses stay on the GPU and are read once at the end.
 */
export async function evaluateLoss(model: LlamaModel, rows: readonly TokenRow[], options: EvaluateOptions = {}): Promise<LossResult> {
  model.assertLive();
  const V = model.config.vocabSize;
  rows.forEach((r, i) => checkRow(r, i, V));
  if (rows.length === 0) return { loss: NaN, tokens: 0 };
  const batches = planBatches(rows.map((r) => r.inputIds.length), options.batchTokens ?? 2048);
  return meanLossOverBatches(model, {
    count: batches.length,
    inputsFor: (i) => makeInputs(model, batches[i].map((r) => rows[r])),
    rowsIn: (i) => batches[i].length,
    rowsTotal: rows.length,
    signal: options.signal,
    onProgress: options.onProgress,
  });
}

/** The batches of one evaluation: how to build each on the GPU, and how many rows it holds. */
export interface LossBatches {
  count: number;
  /** Uploads batch i; the caller's function, released after the batch is recorded. */
  inputsFor: (i: number) => ModelInputs;
  rowsIn: (i: number) => number;
  rowsTotal: number;
  /** An adapter's projection hook for the (non-recording) tape of each batch. */
  projection?: (tape: Tape) => ProjectionHook | undefined;
  /** An adapter's forward options (hooks) for the tape of each batch; they override `projection`. */
  forward?: (tape: Tape) => ForwardOptions;
  signal?: AbortSignal;
  onProgress?: (p: { rowsDone: number; rowsTotal: number }) => void;
}

/**
 * Mean cross-entropy over every counted token of every batch, forward only: a non-recording tape
 * per batch whose intermediates are freed as it goes, the per-batch losses kept on the GPU and read
 * once at the end, and at most four batches in flight.
 */
export async function meanLossOverBatches(model: LlamaModel, o: LossBatches): Promise<LossResult> {
  const gpu = model.gpu;
  const losses = createTensor(gpu, [Math.max(1, o.count)], 'f32', { label: 'eval.losses' }); // (batches)
  const counts: number[] = [];
  let rowsDone = 0;
  try {
    for (let i = 0; i < o.count; i++) {
      if (o.signal?.aborted) throw new CancelledError('The evaluation was cancelled.');
      const inputs = o.inputsFor(i);
      try {
        counts.push(inputs.count);
        if (inputs.count > 0) {
          const tape = new Tape();
          tape.recording = false;
          const b = new Batch(gpu, 'eval');
          const loss = model.loss(tape, b, inputs, { projection: o.projection?.(tape), ...o.forward?.(tape) }); // (1)
          b.encoder.copyBufferToBuffer(loss.value.buffer, 0, losses.buffer, i * 4, 4);
          tape.releaseUnrecorded();
          b.submit();
        }
      } finally {
        inputs.release();
      }
      rowsDone += o.rowsIn(i);
      o.onProgress?.({ rowsDone, rowsTotal: o.rowsTotal });
      // Keep a few batches in flight, not the whole dataset.
      if (i % 4 === 3) await gpu.sync();
    }
    const values = await readF32(losses); // (batches)
    let sum = 0;
    let tokens = 0;
    counts.forEach((n, i) => {
      if (n === 0) return;
      sum += values[i] * n;
      tokens += n;
    });
    return { loss: tokens > 0 ? sum / tokens : NaN, tokens };
  } finally {
    losses.release();
  }
}

/** Reads an f32 tensor back. */
export function readF32(t: Tensor): Promise<Float32Array> {
  if (t.dtype !== 'f32') throw new InvalidArgumentError(`readF32: ${t.describe()} is not f32.`);
  return readTensor(t as Tensor & { dtype: 'f32' });
}
