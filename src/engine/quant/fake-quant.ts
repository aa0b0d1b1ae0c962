// Quantization-aware training of weights: what a trainer needs to train f32 master weights through
// their quantized values. The forward multiplies by Ŵ = decode(encode(W)) (kernels/fake_quant.ts,
// bit-identical to the CPU codecs, whose decode(encode(·)) here is the reference); the backward
// gives Ŵ's gradient to the master W unchanged (the straight-through estimator: the absmax codecs
// clip nothing, so no gradient is masked). Also the export of such a model: the folder quantized
// with the same codec (quantize-folder.ts), whose weights decode to exactly the Ŵ training used.
// The training method that uses it is full fine-tuning (peft/full).

import type { Tape, Var } from '../autograd/tape.ts';
import { InvalidArgumentError } from '../errors.ts';
import { asFileSet } from '../io/export-peft.ts';
import { CONFIG_FILE, SINGLE_WEIGHTS_FILE, openModelFolder } from '../io/model-folder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { type QuantOptions, dequantizeMatrix, quantizeMatrix, resolveQuantOptions } from './format.ts';
import { type LayerError, isQuantizedProjection, quantizeFolder } from './quantize-folder.ts';

/** The format a quantization-aware run trains for: any format of format.ts, without double quantization. */
export type QatOptions = Omit<QuantOptions, 'doubleQuant'>;

/** Checks and fills the options of quantization-aware training; double quantization is refused (it is not emulated). */
export function resolveQatOptions(o: QuantOptions): Required<QuantOptions> {
  if (o.doubleQuant) {
    throw new InvalidArgumentError('Quantization-aware training does not emulate double quantization of the absmax values.', {
      hint: 'Train for the format without double quantization; the export is written without it too.',
    });
  }
  return resolveQuantOptions({ ...o, doubleQuant: false });
}

/** Whether quantization-aware training quantizes this weight: the projections quantize-folder.ts quantizes (q/k/v/o, gate/up/down). */
export function isFakeQuantized(name: string, shape: readonly number[]): boolean {
  return isQuantizedProjection(name, shape);
}

/** The CPU reference: decode(encode(values)) with the codec of `o` (row-major (rows, cols)). */
export function fakeQuantizeCpu(values: ArrayLike<number>, shape: readonly number[], o: QuantOptions): Float32Array {
  return dequantizeMatrix(quantizeMatrix(values, shape, resolveQatOptions(o)));
}

/**
 * A leaf holding `fake` (Ŵ, the fake-quantized value of `master`) whose gradient goes where
 * `master`'s goes: into master's gradient buffer when it has one. Any op reading it sees Ŵ, and the
 * gradient it receives is the master's — the straight-through estimator, with no copy in backward.
 */
export function straightThrough(tape: Tape, master: Var, fake: Tensor): Var {
  if (!master.leaf) throw new InvalidArgumentError(`straightThrough: "${master.name ?? 'the master weight'}" must be a leaf (a trained parameter).`);
  if (fake.numel !== master.value.numel) throw new InvalidArgumentError(`straightThrough: ${fake.describe()} does not match ${master.value.describe()}.`);
  if (master.requiresGrad && !master.grad) throw new InvalidArgumentError(`straightThrough: "${master.name ?? 'the master weight'}" needs a gradient buffer.`);
  return tape.leaf(fake, { requiresGrad: master.requiresGrad, grad: master.grad ?? undefined, name: master.name });
}

/** A quantized model folder's files and the per-weight error of the quantization. */
export interface QuantizedFiles {
  files: Map<string, Uint8Array>;
  report: LayerError[];
}

/**
 * Quantizes an unquantized model folder held in memory (config.json, model.safetensors, the
 * tokenizer and generation files) with `o`, as `whetstone quantize` does: the projections in the
 * format's layout, every other tensor and file as it is, config.json with quantization_config.
 */
export async function quantizeFolderFiles(files: ReadonlyMap<string, Uint8Array>, o: QuantOptions): Promise<QuantizedFiles> {
  const folder = await openModelFolder(asFileSet(files));
  const q = quantizeFolder(folder, o);
  const parts: Uint8Array[] = [];
  for await (const chunk of q.weights) parts.push(chunk);
  const weights = new Uint8Array(q.totalBytes);
  let at = 0;
  for (const p of parts) {
    weights.set(p, at);
    at += p.length;
  }
  const out = new Map<string, Uint8Array>();
  for (const [name, bytes] of files) {
    if (name === CONFIG_FILE) out.set(name, new TextEncoder().encode(`${JSON.stringify(q.config, null, 2)}\n`));
    else if (name === SINGLE_WEIGHTS_FILE) out.set(name, weights);
    else out.set(name, bytes);
  }
  return { files: out, report: q.report };
}
