// Text generation for one prompt with a KV cache: a prefill pass over the prompt, then one token
// at a time, each new token attending to the cached keys and values of every earlier position
// (prefix attention over per-layer (maxLen, Hkv·D) buffers, appended to with buffer copies). Only the
// last position's logits are computed, and they are the one readback per generated token; the next
// token is chosen on the CPU by sampling.ts. Generation steps one token at a time, so that several
// generations (base and adapted model) can advance side by side; generate() runs one to the end. It
// works on token ids: prompts and stop tokens are prompting.ts's, decoding the stream into text is
// the caller's (model/tokenizer.ts has StreamDecoder).
// A model whose forward options carry prefix-tuning keys and values (an adapter's view) gets them
// at the front of the KV cache before the prefill, as transformers passes PEFT's prefix as past
// keys and values: every position attends them, and the prompt's RoPE positions start after them.

import { InvalidArgumentError, ShapeError, UnsupportedModelError } from '../errors.ts';
import { Tape, type Var } from '../autograd/tape.ts';
import { Batch } from '../gpu/batch.ts';
import { DTYPE_BYTES, Tensor, createTensor, tensorFromArray, writeTensor } from '../gpu/tensor.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { Rng } from '../random.ts';
import { type ForwardOptions, type KvAccess, type LlamaModel, type ModelInputs, type ProjectionHook, makeInputs, readF32 } from './llama.ts';
import { type SamplingOptions, checkSampling, sampleToken } from './sampling.ts';

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate. Default 256. */
  maxNewTokens?: number;
  /** Seed of the sampling Rng (unused when greedy). Default 0. */
  seed?: number;
  /** Generation stops after any of these (it is kept as the last token); usually tokenizer.eosTokenIds. */
  eosTokenIds?: readonly number[];
  /** Stops before the next step; the tokens so far are returned with finishReason 'cancelled'. */
  signal?: AbortSignal;
  /** Called with each new token id as soon as it is chosen (index 0 is the first generated token). */
  onToken?: (id: number, index: number) => void;
  /** Called with the logits (V) each token was chosen from; the array is not reused. */
  onLogits?: (logits: Float32Array, index: number) => void;
  /** Wraps every projection's output, as in LlamaModel.forward (an adapter's inference hook). */
  projection?: ProjectionHook;
}

export interface GenerateResult {
  /** The generated ids, without the prompt (an end token that stopped generation is included). */
  tokens: number[];
  finishReason: 'eos' | 'length' | 'cancelled';
  promptTokens: number;
}

/** A view of the first `rows` rows of an unsplit tensor: no allocation, and never released itself. */
export function headRowsView(t: Tensor, rows: number): Tensor {
  if (t.isSplit) throw new ShapeError(`Tensor ${t.describe()} is split across buffers; a row view needs one buffer.`);
  if (!Number.isInteger(rows) || rows < 0 || rows > t.shape[0]) throw new ShapeError(`Cannot view ${rows} rows of ${t.describe()}.`);
  const c = t.chunks[0];
  const bytes = rows * t.rowElems * DTYPE_BYTES[t.dtype];
  return new Tensor(t.gpu, [rows, ...t.shape.slice(1)], t.dtype, [{ ...c, rows, bytes }], t.transient, t.label);
}

/** Records copies of all rows of `src` into `dst` starting at row `at` (same row width and dtype). */
function copyRowsInto(b: Batch, src: Tensor, dst: Tensor, at: number): void {
  const rowBytes = src.rowElems * DTYPE_BYTES[src.dtype];
  const d = dst.chunks[0];
  for (const c of src.chunks) {
    if (c.bytes === 0) continue;
    b.encoder.copyBufferToBuffer(c.buffer, c.offset, d.buffer, d.offset + (at + c.rowStart) * rowBytes, c.bytes);
  }
}

/**
 * Per-layer key and value buffers of maxLen rows and how many rows hold cached positions (prefix
 * keys and values first, when there are any, then the tokens').
 */
class KvCache implements KvAccess {
  readonly keys: Tensor[] = []; // per layer (maxLen, Hkv·D)
  readonly values: Tensor[] = []; // per layer (maxLen, Hkv·D)
  pastLength = 0;

  constructor(model: LlamaModel, readonly maxLen: number) {
    const c = model.config;
    const width = c.numKeyValueHeads * c.headDim;
    try {
      for (let l = 0; l < c.numHiddenLayers; l++) {
        for (const [list, what] of [[this.keys, 'k'], [this.values, 'v']] as const) {
          const t = createTensor(model.gpu, [maxLen, width], 'f32', { label: `kv.${l}.${what}` });
          list.push(t);
          if (t.isSplit) {
            throw new ShapeError(`A KV cache of ${maxLen} positions (${t.byteLength} bytes per layer) does not fit in one storage binding of this GPU.`, {
              hint: 'Use a shorter prompt or fewer new tokens.',
            });
          }
        }
      }
    } catch (e) {
      this.release();
      throw e;
    }
  }

  past(layer: number): { k: Tensor; v: Tensor } | null {
    if (this.pastLength === 0) return null;
    return { k: headRowsView(this.keys[layer], this.pastLength), v: headRowsView(this.values[layer], this.pastLength) };
  }

  store(b: Batch, layer: number, k: Tensor, v: Tensor): void {
    if (this.pastLength + k.shape[0] > this.maxLen) throw new ShapeError(`The KV cache holds ${this.maxLen} positions; ${this.pastLength + k.shape[0]} were needed.`);
    copyRowsInto(b, k, this.keys[layer], this.pastLength);
    copyRowsInto(b, v, this.values[layer], this.pastLength);
  }

  release(): void {
    for (const t of [...this.keys, ...this.values]) t.release();
  }
}

/**
 * Layer by layer, the prefix keys and values (P, Hkv·D) that `model`'s forward options attend before
 * the tokens (prefix tuning), recorded on a non-recording tape in `b`; null when it has none. Every
 * layer must give one of the same shape.
 */
function prefixRows(model: LlamaModel, tape: Tape, b: Batch): { k: Tensor; v: Tensor }[] | null {
  const hook = model.forwardDefaults().prefix;
  if (!hook) return null;
  const c = model.config;
  const width = c.numKeyValueHeads * c.headDim;
  const rows: ({ k: Tensor; v: Tensor } | null)[] = [];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const kv = hook(tape, b, l);
    rows.push(kv && { k: kv.k.value, v: kv.v.value });
  }
  if (rows.every((r) => r === null)) return null;
  const P = rows.find((r) => r !== null)!.k.shape[0];
  rows.forEach((r, l) => {
    const ok = (t: Tensor | undefined) => t !== undefined && t.dtype === 'f32' && t.shape.length === 2 && t.shape[0] === P && t.shape[1] === width;
    if (!r || !ok(r.k) || !ok(r.v)) {
      throw new ShapeError(`Layer ${l}'s prefix keys and values must be (${P}, ${width}) f32 like layer 0's; got ${r ? `${r.k.describe()} and ${r.v.describe()}` : 'none'}.`);
    }
  });
  return rows as { k: Tensor; v: Tensor }[];
}

/**
 * One generation, advanced a token at a time by step(): the prompt's prefill on the first step, then
 * one cached decoding step per token. Several generations on one model (each with its own KV cache
 * and projection hook) can be stepped in turn, so their outputs grow together: step() records and
 * submits its GPU work before it first waits, so calling step() on each and then awaiting them all
 * queues their passes back to back. release() frees the cache; generate() is the plain loop.
 */
export class Generation {
  /** The generated ids, without the prompt (an end token that stopped generation is included). */
  readonly tokens: number[] = [];
  /** Why generation stopped, or null while it goes on. */
  finishReason: GenerateResult['finishReason'] | null = null;
  readonly promptTokens: number;
  private readonly model: LlamaModel;
  private readonly options: GenerateOptions;
  private readonly maxNew: number;
  private readonly eos: Set<number>;
  private readonly rng: Rng;
  private readonly promptIds: readonly number[];
  private prefill: ModelInputs | null = null;
  private cache: KvCache | null = null;
  private step1: { ids: Tensor; pos: Tensor; seg: Tensor; groups: TokenGroups; inputs: ModelInputs; hostId: Int32Array } | null = null;
  private busy = false;
  private released = false;
  /** Prefix positions at the front of the cache (prefix tuning), 0 without. */
  private prefixLength = 0;

  constructor(model: LlamaModel, promptIds: readonly number[], options: GenerateOptions = {}) {
    model.assertLive();
    const c = model.config;
    checkSampling(options);
    const maxNew = options.maxNewTokens ?? 256;
    if (!Number.isInteger(maxNew) || maxNew < 0) throw new InvalidArgumentError(`maxNewTokens must be a non-negative integer; got ${maxNew}.`);
    if (promptIds.length === 0) throw new InvalidArgumentError('The prompt has no tokens; generation needs at least one.');
    const maxLen = promptIds.length + maxNew;
    if (c.slidingWindow !== null && maxLen > c.slidingWindow) {
      throw new UnsupportedModelError(
        `The prompt (${promptIds.length} tokens) plus ${maxNew} new tokens exceed the model's sliding attention window (${c.slidingWindow}); sliding-window attention is not supported.`,
        { hint: 'Ask for fewer new tokens or use a shorter prompt.' },
      );
    }
    this.model = model;
    this.options = options;
    this.maxNew = maxNew;
    this.promptIds = promptIds;
    this.promptTokens = promptIds.length;
    this.eos = new Set(options.eosTokenIds ?? []);
    this.rng = new Rng(options.seed ?? 0);
    if (maxNew === 0) this.finishReason = 'length';
    else if (options.signal?.aborted) this.finishReason = 'cancelled';
  }

  /** Whether generation has stopped (finishReason is set). */
  get done(): boolean {
    return this.finishReason !== null;
  }

  /** The tokens so far and why generation stopped ('cancelled' while it had not). */
  result(): GenerateResult {
    return { tokens: this.tokens, finishReason: this.finishReason ?? 'cancelled', promptTokens: this.promptTokens };
  }

  /**
   * Runs the next forward pass and chooses the next token: the new id, or null when generation had
   * already stopped or the signal aborted while the pass ran (finishReason tells which). One step at a
   * time per generation.
   */
  async step(): Promise<number | null> {
    if (this.finishReason !== null) return null;
    if (this.released) throw new InvalidArgumentError('The generation was released.');
    if (this.busy) throw new InvalidArgumentError('A step of this generation is already running.');
    const o = this.options;
    if (o.signal?.aborted) {
      this.finishReason = 'cancelled';
      return null;
    }
    this.busy = true;
    try {
      const inputs = this.nextInputs();
      const cache = this.cache as KvCache;
      // With a prefix in the cache, the forward must not attend the view's prefix a second time.
      const forward: ForwardOptions & { kv: KvCache } = { kv: cache, projection: o.projection, ...(this.prefixLength > 0 ? { prefix: () => null } : {}) };
      const logits = await lastLogits(this.model, inputs, forward); // (V)
      cache.pastLength += inputs.T;
      if (o.signal?.aborted) {
        this.finishReason = 'cancelled';
        return null;
      }
      o.onLogits?.(logits, this.tokens.length);
      const id = sampleToken(logits, o, this.rng);
      this.tokens.push(id);
      o.onToken?.(id, this.tokens.length - 1);
      if (this.eos.has(id)) this.finishReason = 'eos';
      else if (this.tokens.length >= this.maxNew) this.finishReason = 'length';
      return id;
    } finally {
      this.busy = false;
    }
  }

  /** Frees the KV cache and the step inputs; the generation stops ('cancelled' unless it had ended). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.finishReason ??= 'cancelled';
    this.prefill?.release();
    this.cache?.release();
    if (this.step1) {
      for (const t of [this.step1.ids, this.step1.pos, this.step1.seg]) t.release();
      this.step1.groups.release();
    }
  }

  /**
   * The prompt on the first step (allocating the cache, prefix keys and values copied to its front,
   * the prompt's positions after them), then the last token at its position.
   */
  private nextInputs(): ModelInputs {
    const model = this.model;
    if (!this.cache) {
      const tape = new Tape();
      tape.recording = false;
      const b = new Batch(model.gpu, 'generate.prefix');
      try {
        const prefix = prefixRows(model, tape, b);
        const P = prefix ? prefix[0].k.shape[0] : 0;
        this.cache = new KvCache(model, P + this.promptIds.length + this.maxNew);
        if (prefix) {
          prefix.forEach(({ k, v }, l) => {
            copyRowsInto(b, k, this.cache!.keys[l], 0);
            copyRowsInto(b, v, this.cache!.values[l], 0);
          });
          this.cache.pastLength = P;
          this.prefixLength = P;
        }
        this.prefill = makeInputs(model, [{ inputIds: this.promptIds }], { targets: false, positionOffset: P });
      } finally {
        tape.releaseUnrecorded();
        b.submit();
      }
      return this.prefill;
    }
    if (!this.step1) {
      // The one-token inputs of every later step, written in place.
      const gpu = model.gpu;
      const hostId = new Int32Array(1);
      const ids = createTensor(gpu, [1], 'i32', { label: 'generate.id' }); // (1)
      const pos = createTensor(gpu, [1], 'i32', { label: 'generate.position' }); // (1)
      const seg = tensorFromArray(gpu, [0], [1], 'i32', { label: 'generate.segment' }); // (1)
      const groups = new TokenGroups(gpu, 1);
      const inputs: ModelInputs = { B: 1, T: 1, ids, hostIds: hostId, positions: pos, segments: seg, groups, targets: null, count: 0, release() {} };
      this.step1 = { ids, pos, seg, groups, inputs, hostId };
    }
    const s = this.step1;
    s.hostId[0] = this.tokens[this.tokens.length - 1];
    writeTensor(s.ids, s.hostId);
    writeTensor(s.pos, [this.cache.pastLength]);
    return s.inputs;
  }
}

/**
 * Generates up to `maxNewTokens` tokens after `promptIds` with a KV cache. Greedy by default
 * (temperature 0); with a temperature, top-k and top-p apply as in Hugging Face's sampling. Stops
 * at any of `eosTokenIds`, at `maxNewTokens`, or when `signal` aborts.
 */
export async function generate(model: LlamaModel, promptIds: readonly number[], options: GenerateOptions = {}): Promise<GenerateResult> {
  const g = new Generation(model, promptIds, options);
  try {
    while ((await g.step()) !== null && !g.done);
    return g.result();
  } finally {
    g.release();
  }
}

/**
 * Runs `inputs` (one row of n new tokens after cache.pastLength cached ones) through the model with
 * `forward`'s options, appending their keys and values to the cache, and reads the logits (V) of the last position.
 */
async function lastLogits(model: LlamaModel, inputs: ModelInputs, forward: ForwardOptions & { kv: KvCache }): Promise<Float32Array> {
  const gpu = model.gpu;
  const C = model.config.hiddenSize;
  const tape = new Tape();
  tape.recording = false;
  const b = new Batch(gpu, 'generate');
  const h = model.forward(tape, b, inputs, forward); // (n, C)
  const last = createTensor(gpu, [1, C], 'f32', { transient: true, label: 'generate.last' }); // (1, C)
  const n = inputs.T;
  const rowBytes = C * 4;
  const src = h.value.chunks.find((ch) => n - 1 >= ch.rowStart && n - 1 < ch.rowStart + ch.rows)!;
  b.encoder.copyBufferToBuffer(src.buffer, src.offset + (n - 1 - src.rowStart) * rowBytes, last.buffer, 0, rowBytes);
  const z: Var = model.headLogits(tape, b, tape.leaf(last)); // (1, V)
  tape.releaseUnrecorded([z]);
  last.release();
  b.submit();
  try {
    return await readF32(z.value);
  } finally {
    z.value.release();
  }
}
