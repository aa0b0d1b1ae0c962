// Prompt tuning (PEFT's PROMPT_TUNING) on a loaded Llama-family model: num_virtual_tokens trainable
// embeddings (nvt, C) placed before every sequence. As PeftModelForCausalLM does, each row gets nvt
// virtual positions in front (labels -100 there, attention over them, positions 0 … nvt + T − 1),
// and the embeddings of those positions are the trained ones instead of token embeddings: adaptRows
// prepends the positions, the input-embeddings hook writes the rows. The base model is frozen.
// Initialization: N(0, 1) ("RANDOM", nn.Embedding's default), the embeddings of the tokens of a text
// repeated or cut to nvt ("TEXT"), or of tokens drawn uniformly from the vocabulary ("SAMPLE_VOCAB").

import { embedding, scratch } from '../../autograd/ops.ts';
import { Tape, type Var } from '../../autograd/tape.ts';
import { AdapterConfigError, InvalidArgumentError, ShapeError } from '../../errors.ts';
import { Batch } from '../../gpu/batch.ts';
import { readTensor } from '../../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../../gpu/tensor.ts';
import { affine, fill } from '../../kernels/elementwise.ts';
import { TokenGroups } from '../../kernels/embedding.ts';
import { matmul } from '../../kernels/matmul.ts';
import { type AdapterDType, exportPeftPromptTuning, importPeftPromptTuning } from '../../io/export-peft.ts';
import type { FileSet } from '../../io/model-folder.ts';
import { IGNORE_INDEX, type ForwardOptions, type LlamaModel } from '../../model/llama.ts';
import { Rng } from '../../random.ts';
import type { Row } from '../../train/batches.ts';
import type { PeftAdapter, SavedFiles } from '../adapter.ts';
import { AdapterParams } from '../params.ts';
import { type PromptTuningConfig, parsePromptTuningConfig, savedPromptTuningConfig, textInitIds } from './config.ts';

/** Placeholder id at virtual positions (its embedding is replaced). */
const VIRTUAL_ID = 0;

/**
 * h (B·T, C) with, in every batch row, the `count` rows from the row's start replaced by rows
 * `from` … `from + count − 1` of P (nvt, C). Backward: dh is dy with those rows zeroed, and dP's rows
 * are the sums of dy's replaced rows over the batch (a (1, B) row of ones times them).
 */
function placeRows(tape: Tape, b: Batch, h: Var, P: Var, B: number, T: number, count: number, from: number): Var {
  const C = h.value.shape[1];
  if (h.value.isSplit || P.value.isSplit) throw new ShapeError('Prompt tuning needs the batch embeddings and the prompt in one buffer each; use shorter batches.');
  const out = scratch(b, h.value.shape, 'prompt.embeddings'); // (B·T, C)
  affine(b, h.value, out, 1);
  const rowBytes = C * 4;
  const bytes = count * rowBytes;
  const enc = b.encoder;
  const src = P.value.chunks[0];
  const dst = out.chunks[0];
  for (let r = 0; r < B; r++) enc.copyBufferToBuffer(src.buffer, src.offset + from * rowBytes, dst.buffer, dst.offset + r * T * rowBytes, bytes);
  return tape.record('placeRows', [h, P], [out], [], (bb, [dy], needs) => {
    let dh: Tensor | null = null;
    let dP: Tensor | null = null;
    const g = dy!.chunks[0];
    if (needs[0]) {
      dh = scratch(bb, h.value.shape, 'prompt.dh'); // (B·T, C)
      affine(bb, dy!, dh, 1);
      const e = bb.encoder;
      const d = dh.chunks[0];
      for (let r = 0; r < B; r++) e.clearBuffer(d.buffer, d.offset + r * T * rowBytes, bytes);
    }
    if (needs[1]) {
      const stage = scratch(bb, [B, count * C], 'prompt.stage'); // (B, count·C)
      const e = bb.encoder;
      const st = stage.chunks[0];
      for (let r = 0; r < B; r++) e.copyBufferToBuffer(g.buffer, g.offset + r * T * rowBytes, st.buffer, st.offset + r * bytes, bytes);
      const ones = scratch(bb, [1, B], 'prompt.ones'); // (1, B)
      fill(bb, ones, 1);
      const sum = scratch(bb, [1, count * C], 'prompt.sum'); // (1, count·C)
      matmul(bb, ones, stage, sum, { transB: false });
      dP = scratch(bb, P.value.shape, 'prompt.dP'); // (nvt, C)
      fill(bb, dP, 0);
      const s = sum.chunks[0];
      const dp = dP.chunks[0];
      bb.encoder.copyBufferToBuffer(s.buffer, s.offset, dp.buffer, dp.offset + from * rowBytes, bytes);
      stage.release();
      ones.release();
      sum.release();
    }
    return [dh, dP];
  })[0];
}

export class PromptTuningAdapter extends AdapterParams implements PeftAdapter {
  readonly method = 'prompt';
  config: PromptTuningConfig;
  // params: the one prompt_embeddings table (nvt, C).
  training: boolean;
  enabled = true;
  readonly model: LlamaModel;

  constructor(model: LlamaModel, config: PromptTuningConfig, values: Tensor, training: boolean) {
    super('The prompt-tuning adapter');
    this.model = model;
    this.config = config;
    this.training = training;
    const name = 'prompt_embeddings';
    this.buildParams(model.gpu, 'prompt.zeroGrads', () => {
      this.params.push({ name, value: values, grad: createTensor(model.gpu, values.shape, 'f32', { label: `${name}.grad` }) });
    });
  }

  /** Virtual tokens in front of every sequence. */
  get virtualTokens(): number {
    return this.config.num_virtual_tokens;
  }

  get savedConfig(): Record<string, unknown> {
    return savedPromptTuningConfig(this.config, this.model.config) as unknown as Record<string, unknown>;
  }

  describe(): string {
    return `${this.virtualTokens} virtual tokens, ${this.config.prompt_tuning_init.toLowerCase()} init`;
  }

  /**
   * Prepends the virtual positions to every row: ids VIRTUAL_ID, labels -100, positions 0 … nvt − 1
   * with the row's own positions moved up by nvt (PEFT passes no position ids, so transformers counts
   * from 0 over the whole row). The counted targets gain the row's first label, now predicted from the
   * last virtual position. Packed rows (several sequences) are refused.
   */
  adaptRows(rows: readonly Row[]): Row[] {
    if (!this.enabled) return [...rows];
    const n = this.virtualTokens;
    return rows.map((r, i) => {
      if (r.segments.some((s) => s !== r.segments[0])) {
        throw new InvalidArgumentError(`Row ${i} packs several sequences; prompt tuning puts its virtual tokens before each sequence, so train it without packing.`);
      }
      const len = r.ids.length + n;
      const ids = new Int32Array(len).fill(VIRTUAL_ID);
      const labels = new Int32Array(len).fill(IGNORE_INDEX);
      const segments = new Int32Array(len).fill(r.segments[0] ?? 0);
      const positions = new Int32Array(len);
      for (let t = 0; t < n; t++) positions[t] = t;
      ids.set(r.ids, n);
      labels.set(r.labels, n);
      for (let t = 0; t < r.ids.length; t++) positions[n + t] = r.positions[t] + n;
      return { ids, labels, segments, positions, count: r.count + (r.labels[0] !== IGNORE_INDEX ? 1 : 0) };
    });
  }

  /** Token ids of a prompt as generation feeds them: nvt placeholders, then the prompt. */
  promptIds(ids: readonly number[]): number[] {
    return this.enabled ? [...new Array<number>(this.virtualTokens).fill(VIRTUAL_ID), ...ids] : [...ids];
  }

  forwardOptions(_tape: Tape, leaves: Map<string, Var>): ForwardOptions {
    if (!this.enabled) return {};
    const P = leaves.get(this.params[0].name);
    if (!P) throw new InvalidArgumentError('The leaves lack prompt_embeddings; make them with leaves().');
    const n = this.virtualTokens;
    return {
      inputEmbeddings: (t, b, inputs, h, pastLength) => {
        if (pastLength >= n) return h; // decoding after the prompt: no virtual position left
        const count = Math.min(n - pastLength, inputs.T);
        return placeRows(t, b, h, P, inputs.B, inputs.T, count, pastLength); // (N, C)
      },
    };
  }

  inferenceOptions(): ForwardOptions {
    return this.forwardOptions(new Tape(), this.leaves(new Tape(), false));
  }

  async exportFiles(options: { dtype?: AdapterDType } = {}): Promise<SavedFiles> {
    this.assertLive();
    const embeddings = await readTensor(this.params[0].value as Tensor & { dtype: 'f32' });
    return exportPeftPromptTuning({ config: this.config, embeddings, modelConfig: this.model.config, dtype: options.dtype });
  }
}

/** Rows `ids` of the model's embedding table, gathered on the GPU into a new (ids, C) tensor. */
function gatherEmbeddings(model: LlamaModel, ids: readonly number[]): Tensor {
  const gpu = model.gpu;
  const C = model.config.hiddenSize;
  const host = Int32Array.from(ids);
  const idTensor = tensorFromArray(gpu, host, [ids.length], 'i32', { label: 'prompt.initIds' });
  const groups = new TokenGroups(gpu, ids.length);
  const out = createTensor(gpu, [ids.length, C], 'f32', { label: 'prompt_embeddings' });
  try {
    const tape = new Tape();
    tape.recording = false;
    const b = new Batch(gpu, 'prompt.init');
    const e = embedding(tape, b, tape.leaf(model.params['model.embed_tokens.weight']), idTensor, host, groups); // (n, C)
    affine(b, e.value, out, 1);
    tape.releaseUnrecorded();
    b.submit();
  } finally {
    idTensor.release();
    groups.release();
  }
  return out;
}

export interface CreatePromptTuningOptions {
  seed: number;
  /** Encodes prompt_tuning_init_text (special tokens added as the tokenizer adds them, as PEFT's tokenizer call does); needed for "TEXT". */
  encode?: (text: string) => number[];
}

/** A new prompt-tuning adapter for `model` with the config's initialization. Starts in training mode. */
export function createPromptTuning(model: LlamaModel, config: PromptTuningConfig, options: CreatePromptTuningOptions): PromptTuningAdapter {
  model.assertLive();
  const c = parsePromptTuningConfig(config);
  savedPromptTuningConfig(c, model.config);
  const n = c.num_virtual_tokens;
  const C = model.config.hiddenSize;
  const rng = new Rng(options.seed);
  let values: Tensor;
  if (c.prompt_tuning_init === 'RANDOM') {
    values = tensorFromArray(model.gpu, rng.fill(n * C, (r) => r.normal()), [n, C], 'f32', { label: 'prompt_embeddings' });
  } else if (c.prompt_tuning_init === 'SAMPLE_VOCAB') {
    values = gatherEmbeddings(model, Array.from({ length: n }, () => rng.int(model.config.vocabSize)));
  } else {
    if (!options.encode) throw new AdapterConfigError('Key "prompt_tuning_init" is "TEXT", which needs the model\'s tokenizer to encode prompt_tuning_init_text.');
    const ids = options.encode(c.prompt_tuning_init_text as string);
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= model.config.vocabSize);
    if (bad !== undefined) throw new AdapterConfigError(`prompt_tuning_init_text encodes to id ${bad}, outside the model's vocabulary.`);
    values = gatherEmbeddings(model, textInitIds(ids, n));
  }
  return new PromptTuningAdapter(model, c, values, true);
}

/** Loads a PEFT prompt-tuning adapter folder onto `model` (training off). */
export async function loadPromptTuning(model: LlamaModel, files: FileSet | Map<string, Uint8Array>): Promise<PromptTuningAdapter> {
  model.assertLive();
  const imported = await importPeftPromptTuning(files, model.config);
  const values = tensorFromArray(model.gpu, imported.embeddings, [imported.config.num_virtual_tokens, model.config.hiddenSize], 'f32', { label: 'prompt_embeddings' });
  return new PromptTuningAdapter(model, imported.config, values, false);
}
