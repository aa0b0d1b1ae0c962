// INT8 activations at run time on a QLoRA base (W4A8): dynamic per-token quantization and static
// steps calibrated on a calibration set move the loss of a tiny model a little and not at all when
// disabled; calibration finds a step for every projection; the quantization-aware wrapper of an
// adapter runs the same W4A8 forward; the straight-through gradient is dy.

import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { scratch } from '../autograd/ops.ts';
import { Tape } from '../autograd/tape.ts';
import { affine, fill } from '../kernels/elementwise.ts';
import { Batch, run } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { blobFileSet, openModelFolder } from '../io/model-folder.ts';
import { type TokenRow, evaluateLoss, loadModel } from '../model/llama.ts';
import { withForwardOptions } from '../peft/adapter.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import { createLoraConfig } from '../peft/lora/config.ts';
import { createLora } from '../peft/lora/model.ts';
import { evaluateRows, tokenRowToRow } from '../train/evaluate.ts';
import { activationQuantAware, calibrateInt8Activations, dynamicInt8Activations, fakeQuantActivations, staticInt8Activations } from './activation.ts';

function rowsOf(seed: number, n: number, V: number): TokenRow[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => ({ inputIds: Array.from({ length: 10 + rng.int(6) }, () => rng.int(V)) }));
}

describe('INT8 activations', () => {
  it('dynamic and static (calibrated) W4A8 stay close to W4; every projection gets a step', async () => {
    const gpu = await testGpu();
    const spec = TINY_MODELS.find((s) => s.name === 'llama3-untied-f32')!;
    const files = makeTinyModel(spec);
    const folder = await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])]))));
    const model = await loadModel(gpu, folder, { quant: { format: 'nf4', block: 64, doubleQuant: true } });
    try {
      const V = model.config.vocabSize;
      const evalRows = rowsOf(1, 4, V);
      const w4 = (await evaluateLoss(model, evalRows)).loss;
      const dynamic = (await evaluateLoss(withForwardOptions(model, { projectionInput: dynamicInt8Activations() }), evalRows)).loss;
      const steps = await calibrateInt8Activations(model, rowsOf(2, 4, V));
      expect(steps.size).toBe(14);
      for (const s of steps.values()) expect(s).toBeGreaterThan(0);
      const stat = (await evaluateLoss(withForwardOptions(model, { projectionInput: staticInt8Activations(steps) }), evalRows)).loss;
      console.log(`W4 (nf4+dq) loss ${w4.toFixed(5)}; W4A8 dynamic ${dynamic.toFixed(5)}; W4A8 static ${stat.toFixed(5)}`);
      expect(dynamic).not.toBe(w4);
      expect(Math.abs(dynamic - w4) / w4).toBeLessThan(0.01);
      expect(Math.abs(stat - w4) / w4).toBeLessThan(0.03);
      expect((await evaluateLoss(model, evalRows)).loss).toBe(w4);
      // The quantization-aware wrapper of a fresh LoRA adapter (B = 0 adds nothing) runs W4A8 dynamic.
      const adapter = createLora(model, createLoraConfig({ r: 4, lora_alpha: 8, target_modules: 'all-linear' }), { seed: 1 });
      const qat = activationQuantAware(adapter);
      expect(qat.params).toBe(adapter.params);
      const viaQat = await evaluateRows(model, qat, evalRows.map(tokenRowToRow));
      expect(Math.abs(viaQat.loss - dynamic) / dynamic).toBeLessThan(1e-6);
      adapter.release();
      expect(() => staticInt8Activations(new Map())(new Tape(), new Batch(gpu), 'model.layers.0.self_attn.q_proj', new Tape().leaf(createTensor(gpu, [1, 1])))).toThrowError(/No calibrated INT8 activation scale/);
    } finally {
      model.release();
    }
  });

  it('passes the gradient straight through', async () => {
    const gpu = await testGpu();
    const xs = new Rng(5).fill(6 * 9, (r) => r.normal());
    const seeds = new Rng(6).fill(6 * 9, (r) => r.normal());
    const x = tensorFromArray(gpu, xs, [6, 9]);
    const g = createTensor(gpu, [6, 9]);
    const seedSrc = tensorFromArray(gpu, seeds, [6, 9]);
    run(gpu, (b) => fill(b, g, 0));
    run(gpu, (b) => {
      const tape = new Tape();
      const xv = tape.leaf(x, { requiresGrad: true, grad: g });
      const y = fakeQuantActivations(tape, b, xv);
      const seed = scratch(b, [6, 9], 'seed'); // the tape consumes the seed
      affine(b, seedSrc, seed, 1, 0);
      tape.backward(b, y, seed);
    });
    seedSrc.release();
    expect(relL2(await readTensor(g), seeds)).toBeLessThan(1e-7);
    x.release();
    g.release();
  });
});
