// QLoRA: LoRA over a base whose projection weights are quantized as they load. Parity with PyTorch:
// fixtures/quant/qlora-*.json hold the causal-LM loss (and, for NF4, every adapter gradient) of
// fixtures/lora/llama3-untied-f32-lora over its tiny model whose projections were replaced by their
// NF4/FP4 dequantization (scripts/bnb_reference.py --qlora); the engine, loading the same model with
// `quant`, must agree to 1e-4 relative. Training: LoRA over an NF4 base lowers the validation loss
// of a tiny model on a successor mapping, the base gets no gradient, and the quantized weights take
// less memory than f32 ones.

import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { scratch } from '../autograd/ops.ts';
import { Tape } from '../autograd/tape.ts';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { affine, fill } from '../kernels/elementwise.ts';
import { PEFT_KEY_PREFIX } from '../io/export-peft.ts';
import { blobFileSet, openModelFolder } from '../io/model-folder.ts';
import { nodeFileSet, openModelDirectory } from '../io/model-folder-node.ts';
import { type LoadModelOptions, type TokenRow, evaluateLoss, loadModel, makeInputs } from '../model/llama.ts';
import { createLoraConfig } from '../peft/lora/config.ts';
import { createLora, loadLora, withAdapter } from '../peft/lora/model.ts';
import { writeTinyModel } from '../model/llama-testing.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import { MemoryCheckpointStore } from '../train/checkpoint.ts';
import { train } from '../train/trainer.ts';
import { quantizedBytes, resolveQuantOptions } from './format.ts';
import { QuantizedTensor } from './tensor.ts';

interface QloraFixture {
  name: string;
  model: string;
  adapter: string;
  model_files: Record<string, string>;
  quant: { format: 'nf4' | 'fp4'; block: number; double_quant: boolean };
  input_ids: number[][];
  labels: number[][];
  tokens: number;
  loss: number;
  unquantized_loss: number;
  grads?: Record<string, { shape: number[]; values: number[] }>;
}

const TOLERANCE = 1e-4;
const FIXTURES = new URL('../../../fixtures/', import.meta.url);

async function tinyFolder(name: string) {
  const spec = TINY_MODELS.find((s) => s.name === name);
  if (!spec) throw new Error(`no tiny model named ${name}`);
  const files = makeTinyModel(spec);
  return { files, folder: await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])])), spec.name)) };
}

describe.each(['qlora-llama3-nf4-dq', 'qlora-llama3-fp4'])('%s', (name) => {
  const fixture = JSON.parse(readFileSync(new URL(`quant/${name}.json`, FIXTURES), 'utf8')) as QloraFixture;

  it('gives PyTorch’s loss (and adapter gradients) on the dequantized base', async () => {
    const gpu = await testGpu();
    const { files, folder } = await tinyFolder(fixture.model);
    for (const f of files) expect(createHash('sha256').update(f.bytes).digest('hex'), f.name).toBe(fixture.model_files[f.name]);
    const quant = { format: fixture.quant.format, block: fixture.quant.block, doubleQuant: fixture.quant.double_quant };
    const model = await loadModel(gpu, folder, { quant });
    const adapter = await loadLora(model, await nodeFileSet(fileURLToPath(new URL(`lora/${fixture.adapter}/`, FIXTURES))));
    const inputs = makeInputs(model, fixture.input_ids.map((inputIds, i) => ({ inputIds, labels: fixture.labels[i] })));
    try {
      expect(model.quantization).toBe(fixture.quant.format);
      expect(model.params['model.layers.0.self_attn.q_proj.weight']).toBeInstanceOf(QuantizedTensor);
      expect(inputs.count).toBe(fixture.tokens);
      const tape = new Tape();
      const b = new Batch(gpu, 'qlora.parity');
      adapter.zeroGrads(b);
      const loss = model.loss(tape, b, inputs, { projection: adapter.hook(tape, adapter.leaves(tape, true)) });
      const lossCopy = createTensor(gpu, [1]); // (1)
      affine(b, loss.value, lossCopy, 1);
      const seed = scratch(b, [1], 'seed'); // (1)
      fill(b, seed, 1);
      tape.backward(b, loss, seed);
      b.submit();
      const got = (await readTensor(lossCopy))[0];
      lossCopy.release();
      const lossErr = Math.abs(got - fixture.loss) / Math.abs(fixture.loss);
      // The quantized base really differs from the f32 one, by more than the tolerance.
      expect(Math.abs(fixture.unquantized_loss - fixture.loss) / fixture.loss).toBeGreaterThan(5 * TOLERANCE);
      expect(lossErr).toBeLessThan(TOLERANCE);
      let worst = 0;
      if (fixture.grads) {
        expect(adapter.params.map((p) => PEFT_KEY_PREFIX + p.name).sort()).toEqual(Object.keys(fixture.grads).sort());
        for (const p of adapter.params) {
          const err = relL2(await readTensor(p.grad as Tensor & { dtype: 'f32' }), fixture.grads[PEFT_KEY_PREFIX + p.name].values);
          worst = Math.max(worst, err);
          expect(err, p.name).toBeLessThan(TOLERANCE);
        }
      }
      // Evaluation (no tape recording) gives the same loss.
      const evaluated = await evaluateLoss(withAdapter(model, adapter), fixture.input_ids.map((inputIds, i) => ({ inputIds, labels: fixture.labels[i] })));
      expect(Math.abs(evaluated.loss - fixture.loss) / fixture.loss).toBeLessThan(TOLERANCE);
      console.log(`${name}: loss ${got.toFixed(6)} vs PyTorch ${fixture.loss.toFixed(6)} (rel ${lossErr.toExponential(2)}); gradients worst relL2 ${worst.toExponential(2)}`);
    } finally {
      inputs.release();
      adapter.release();
      model.release();
    }
  });
});

const CYCLE = 40;
const FIRST = 100;

function successorRows(n: number, seed: number): TokenRow[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = 8 + rng.int(5);
    const start = rng.int(CYCLE);
    const inputIds = Array.from({ length: len }, (_, t) => FIRST + ((start + t) % CYCLE));
    return { inputIds, labels: inputIds.map((id, t) => (t < 2 ? -100 : id)) };
  });
}

describe('QLoRA training', () => {
  it('LoRA over an NF4 double-quantized base lowers the validation loss; the base stays frozen and small', async () => {
    const gpu = await testGpu();
    const root = await mkdtemp(join(tmpdir(), 'whetstone-qlora-'));
    const tiny = await writeTinyModel(join(root, 'model'), { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 5 }, makeTinyTokenizer());
    const folder = await openModelDirectory(tiny.dir);
    const f32 = await loadModel(gpu, folder);
    const f32Bytes = f32.parameterBytes;
    f32.release();
    const quant: LoadModelOptions['quant'] = { format: 'nf4', block: 64, doubleQuant: true };
    const model = await loadModel(gpu, folder, { quant });
    try {
      const projections = Object.entries(model.params).filter(([n]) => n.endsWith('_proj.weight'));
      expect(projections.length).toBe(14);
      let quantBytes = 0;
      let heldBytes = 0;
      let f32ProjBytes = 0;
      for (const [, t] of projections) {
        expect(t).toBeInstanceOf(QuantizedTensor);
        // Codes, 8-bit absmax codes and per-256-block scales, plus the 256-value map (1 KiB).
        expect(t.byteLength).toBe(quantizedBytes(t.shape[0], t.shape[1], resolveQuantOptions(quant!)) + 1024);
        quantBytes += t.byteLength - 1024;
        heldBytes += t.byteLength;
        f32ProjBytes += t.numel * 4;
      }
      // 4 bits a weight plus double-quantized scales: about 4.1 bits.
      expect(quantBytes).toBeLessThan(0.135 * f32ProjBytes);
      expect(model.parameterBytes).toBe(f32Bytes - f32ProjBytes + heldBytes);

      const adapter = createLora(model, createLoraConfig({ r: 8, lora_alpha: 16, target_modules: 'all-linear' }), { seed: 3 });
      const trainRows = successorRows(24, 1);
      const valRows = successorRows(8, 2);
      const before = await evaluateLoss(model, valRows);
      const result = await train({ model, adapter, train: trainRows, validation: valRows, checkpoints: new MemoryCheckpointStore(), options: { lr: 3e-2, schedule: 'cosine', warmup: 1, batchSize: 8, epochs: 2, seqLen: 16, seed: 7 } });
      const after = await evaluateLoss(withAdapter(model, adapter), valRows);
      console.log(`QLoRA nf4+dq: validation loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)} in ${result.steps} steps; base ${quantBytes} bytes quantized vs ${f32ProjBytes} f32`);
      expect(after.loss).toBeLessThan(0.7 * before.loss);
      // Only the adapter trains: every trainable tensor is a LoRA factor.
      expect(adapter.params.every((p) => /lora_[AB]/.test(p.name))).toBe(true);
      adapter.release();
    } finally {
      model.release();
      await rm(root, { recursive: true, force: true });
    }
  });
});
