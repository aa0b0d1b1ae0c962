// Quantization-aware training of weights: the straight-through linear gives the gradients of a plain
// linear at Ŵ = decode(encode(W)) (float64 reference), with dW landing in the master's buffer; a
// short quantization-aware full fine-tune lowers the loss, keeps its working copies equal to the
// CPU codec's decode(encode(master)) after the last update, and exports a quantized folder whose
// loss, loaded back, is the loss the training forward computed; a quantization-aware run cancelled
// and resumed from its checkpoint continues loss for loss, its working copies rebuilt from the
// restored masters.

import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { linear, scratch } from '../autograd/ops.ts';
import { Tape, type Var } from '../autograd/tape.ts';
import { run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { affine, fill } from '../kernels/elementwise.ts';
import { fakeQuantize } from '../kernels/fake_quant.ts';
import { blobFileSet, openModelFolder, streamRawWeights } from '../io/model-folder.ts';
import { type TokenRow, evaluateLoss, loadModel } from '../model/llama.ts';
import { createFullFineTune } from '../peft/full/index.ts';
import { CancelledError } from '../errors.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import { linearBackward, matmul } from '../reference/matmul.ts';
import { MemoryCheckpointStore } from '../train/checkpoint.ts';
import { evaluateRows, tokenRowToRow } from '../train/evaluate.ts';
import { type TrainOptions, train } from '../train/trainer.ts';
import { fakeQuantizeCpu, straightThrough } from './fake-quant.ts';
import { type QuantOptions, dequantizeMatrix } from './format.ts';

const f32 = (t: Tensor) => readTensor(t as Tensor & { dtype: 'f32' });

function blobs(files: Map<string, Uint8Array> | { name: string; bytes: Uint8Array }[]) {
  const entries = Array.isArray(files) ? files.map((f) => [f.name, f.bytes] as const) : [...files];
  return blobFileSet(Object.fromEntries(entries.map(([name, bytes]) => [name, new Blob([bytes as Uint8Array<ArrayBuffer>])])));
}

describe('quantization-aware training of weights', () => {
  for (const options of [{ format: 'nf4', block: 32 }, { format: 'int4', block: 32, symmetric: false }] as QuantOptions[]) {
    it(`${options.format}: the straight-through linear's gradients are a plain linear's at Ŵ, dW into the master's buffer`, async () => {
      const gpu = await testGpu();
      const [N, M, K] = [13, 37, 70];
      const rng = new Rng(5);
      const xs = rng.fill(N * K, (r) => r.normal());
      const ws = rng.fill(M * K, (r) => 0.1 * r.normal());
      const dys = rng.fill(N * M, (r) => r.normal());
      const wHat = fakeQuantizeCpu(ws, [M, K], options);
      const x = tensorFromArray(gpu, xs, [N, K]);
      const w = tensorFromArray(gpu, ws, [M, K]);
      const fake = createTensor(gpu, [M, K]);
      const dx = createTensor(gpu, [N, K]);
      const dw = createTensor(gpu, [M, K]);
      const tape = new Tape();
      const master = tape.leaf(w, { grad: dw, name: 'w' });
      let out: Var | null = null;
      run(gpu, (b) => {
        fill(b, fake, NaN);
        fill(b, dx, 0);
        fill(b, dw, 0);
        fakeQuantize(b, w, fake, options);
        out = linear(tape, b, tape.leaf(x, { grad: dx }), straightThrough(tape, master, fake)); // (N, M)
      });
      const y = await f32(out!.value);
      const dy = tensorFromArray(gpu, dys, [N, M]);
      run(gpu, (b) => {
        const seed = scratch(b, [N, M]); // the tape takes it
        affine(b, dy, seed, 1, 0);
        tape.backward(b, out!, seed);
      });
      expect(await f32(fake)).toEqual(wHat);
      const ref = linearBackward(xs, wHat, dys, N, M, K);
      expect(relL2(y, matmul(xs, wHat, { M: N, N: M, K, transB: true }))).toBeLessThan(1e-6);
      expect(relL2(await f32(dx), ref.dx)).toBeLessThan(1e-6);
      expect(relL2(await f32(dw), ref.dw)).toBeLessThan(1e-6);
      // Not the gradient at W: the quantization error is visible in dX.
      expect(relL2(linearBackward(xs, ws, dys, N, M, K).dx, ref.dx)).toBeGreaterThan(1e-3);
      for (const t of [x, w, fake, dx, dw, dy]) t.release();
    });
  }

  it('a short NF4 quantization-aware full fine-tune lowers the loss and exports the weights it trained through; bad settings are refused', async () => {
    const gpu = await testGpu();
    // One layer: 7 projections (64 × 64 … 128 × 64), so every block of 64 is one row.
    const spec = { ...TINY_MODELS.find((s) => s.name === 'llama3-untied-f32')!, numHiddenLayers: 1 };
    const folder = await openModelFolder(blobs(makeTinyModel(spec)));
    const quantizedBase = await loadModel(gpu, folder, { quant: { format: 'nf4' } });
    try {
      expect(() => createFullFineTune(quantizedBase, { source: folder, qat: { format: 'nf4' } })).toThrow(/trains f32 weights/);
    } finally {
      quantizedBase.release();
    }
    const model = await loadModel(gpu, folder);
    expect(() => createFullFineTune(model, { source: folder, qat: { format: 'nf4', doubleQuant: true } })).toThrow(/does not emulate double quantization/);
    const plain = createFullFineTune(model, { source: folder });
    await expect(plain.exportQuantizedFiles()).rejects.toThrow(/not quantization-aware/);
    plain.release();
    const qat: QuantOptions = { format: 'nf4', block: 64 };
    const full = createFullFineTune(model, { source: folder, qat });
    try {
      expect(full.describe()).toMatch(/7 projections trained through nf4 \(block 64\)/);
      expect(() => full.quantAware({ format: 'int4' })).toThrow(/already trains for nf4/);
      const rng = new Rng(3);
      const rows: TokenRow[] = Array.from({ length: 4 }, () => {
        const start = rng.int(40);
        return { inputIds: Array.from({ length: 8 }, (_, t) => 100 + ((start + t) % 40)) };
      });
      const before = await evaluateRows(model, full, rows.map(tokenRowToRow));
      const result = await train({
        model,
        adapter: full,
        train: rows,
        checkpoints: new MemoryCheckpointStore(),
        options: { lr: 3e-3, schedule: 'constant', maxSteps: 2, batchSize: 4, seqLen: 8, seed: 1 },
      });
      const after = await evaluateRows(model, full, rows.map(tokenRowToRow));
      console.log(`QAT nf4: loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)} (train losses ${result.metrics.map((m) => m.loss.toFixed(4)).join(', ')})`);
      expect(after.loss).toBeLessThan(before.loss - 0.1);
      // After the last update the working copies are the codec's decode(encode(master)), bit for bit.
      for (const p of full.params) {
        const fake = full.fakeQuantized.get(p.name);
        if (!p.name.endsWith('_proj.weight')) {
          expect(fake).toBeUndefined();
          continue;
        }
        expect(await f32(fake!)).toEqual(fakeQuantizeCpu(await f32(p.value), p.value.shape, qat));
      }
      // The exported NF4 folder decodes to those weights and gives the loss training measured.
      const exported = await full.exportQuantizedFiles();
      const saved = await openModelFolder(blobs(exported.files));
      for await (const w of streamRawWeights(saved)) {
        if (!w.quantized) continue;
        expect(w.quantized.format).toBe('nf4');
        expect(dequantizeMatrix(w.quantized)).toEqual(await f32(full.fakeQuantized.get(w.name)!));
      }
      const loaded = await loadModel(gpu, saved);
      try {
        expect(loaded.quantization).toBe('nf4');
        const exportedLoss = (await evaluateLoss(loaded, rows)).loss;
        expect(Math.abs(exportedLoss - after.loss) / after.loss).toBeLessThan(1e-5);
      } finally {
        loaded.release();
      }
    } finally {
      full.release();
      model.release();
    }
  });

  it('a quantization-aware run cancelled after step 2 and resumed from its checkpoint continues loss for loss (INT4)', async () => {
    const gpu = await testGpu();
    const spec = { ...TINY_MODELS.find((s) => s.name === 'llama3-untied-f32')!, numHiddenLayers: 1 };
    const folder = await openModelFolder(blobs(makeTinyModel(spec)));
    const model = await loadModel(gpu, folder);
    const qat: QuantOptions = { format: 'int4', block: 32 };
    const rng = new Rng(5);
    const rows: TokenRow[] = Array.from({ length: 4 }, () => {
      const start = rng.int(40);
      return { inputIds: Array.from({ length: 8 }, (_, t) => 100 + ((start + t) % 40)) };
    });
    const options: TrainOptions = { lr: 3e-3, schedule: 'constant', maxSteps: 4, batchSize: 2, seqLen: 8, seed: 1, saveEvery: 2 };
    const runQat = async (store: MemoryCheckpointStore, extra: Partial<Parameters<typeof train>[0]> = {}) => {
      const full = createFullFineTune(model, { source: folder, qat });
      const losses: number[] = [];
      try {
        const result = await train({ model, adapter: full, train: rows, checkpoints: store, options, onMetrics: (m) => losses.push(m.loss), ...extra });
        return { losses, result, fake: await f32(full.fakeQuantized.get('model.layers.0.mlp.down_proj.weight')!), error: null };
      } catch (error) {
        return { losses, result: null, fake: null, error };
      } finally {
        full.release();
      }
    };
    try {
      const whole = await runQat(new MemoryCheckpointStore());
      expect(whole.losses).toHaveLength(4);
      const store = new MemoryCheckpointStore();
      const controller = new AbortController();
      const cut = await runQat(store, {
        signal: controller.signal,
        onMetrics: (m) => {
          if (m.step === 1) controller.abort();
        },
      });
      expect(cut.error).toBeInstanceOf(CancelledError);
      expect(await store.list()).toEqual([2]);
      const resumed = await runQat(store, { resume: await store.load(2) });
      expect(resumed.result?.resumedFrom).toBe(2);
      expect(resumed.losses).toEqual(whole.losses.slice(2));
      expect(resumed.fake).toEqual(whole.fake);
    } finally {
      model.release();
    }
  });
});
