#!/usr/bin/env node
// Quantization-aware training vs post-training quantization of INT8 activations, on a tiny model:
// LoRA (rank 8, every projection) is trained twice over the same NF4 (double-quantized) base with the
// same seeds — once plainly (then evaluated with dynamic per-token INT8 activations: PTQ), once with
// the activations fake-quantized during training (straight-through gradient: QAT) — and both are
// evaluated on held-out rows with and without INT8 activations. Prints one JSON line.
//   node scripts/qat-vs-ptq.mjs
// docs/quantization.md quotes its output. Takes a few minutes on SwiftShader.
import { mkdtemp, rm } from 'node:fs/promises';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register as registerTsx } from 'tsx/esm/api';

register('../bin/raw-hooks.mjs', import.meta.url);
registerTsx();
const { makeTinyTokenizer } = await import('./tiny/tokenizer.ts');
const { openNodeGpu } = await import('../src/engine/gpu/node.ts');
const { openModelDirectory } = await import('../src/engine/io/model-folder-node.ts');
const { evaluateLoss, loadModel } = await import('../src/engine/model/llama.ts');
const { writeTinyModel } = await import('../src/engine/model/llama-testing.ts');
const { withForwardOptions } = await import('../src/engine/peft/adapter.ts');
const { createLoraConfig } = await import('../src/engine/peft/lora/config.ts');
const { createLora, withAdapter } = await import('../src/engine/peft/lora/model.ts');
const { activationQuantAware, dynamicInt8Activations } = await import('../src/engine/quant/activation.ts');
const { Rng } = await import('../src/engine/random.ts');
const { MemoryCheckpointStore } = await import('../src/engine/train/checkpoint.ts');
const { evaluateRows, tokenRowToRow } = await import('../src/engine/train/evaluate.ts');
const { train } = await import('../src/engine/train/trainer.ts');

/** Rows following a 40-token cycle (the trainer tests' successor mapping); the first 2 labels masked. */
function successorRows(n, seed) {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = 8 + rng.int(5);
    const start = rng.int(40);
    const inputIds = Array.from({ length: len }, (_, t) => 100 + ((start + t) % 40));
    return { inputIds, labels: inputIds.map((id, t) => (t < 2 ? -100 : id)) };
  });
}

const root = await mkdtemp(join(tmpdir(), 'whetstone-qat-'));
const gpu = await openNodeGpu();
try {
  const tiny = await writeTinyModel(join(root, 'model'), { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 5 }, makeTinyTokenizer());
  const model = await loadModel(gpu, await openModelDirectory(tiny.dir), { quant: { format: 'nf4', block: 64, doubleQuant: true } });
  const trainRows = successorRows(24, 1);
  const valRows = successorRows(16, 2);
  const options = { lr: 3e-2, schedule: 'cosine', warmup: 1, batchSize: 8, epochs: 4, seqLen: 16, seed: 7 };
  const out = {
    'base W4': (await evaluateLoss(model, valRows)).loss,
    'base W4A8': (await evaluateLoss(withForwardOptions(model, { projectionInput: dynamicInt8Activations() }), valRows)).loss,
  };
  for (const mode of ['PTQ', 'QAT']) {
    const adapter = createLora(model, createLoraConfig({ r: 8, lora_alpha: 16, target_modules: 'all-linear' }), { seed: 3 });
    await train({ model, adapter: mode === 'QAT' ? activationQuantAware(adapter) : adapter, train: trainRows, checkpoints: new MemoryCheckpointStore(), options });
    out[`${mode} W4`] = (await evaluateLoss(withAdapter(model, adapter), valRows)).loss;
    out[`${mode} W4A8`] = (await evaluateRows(model, activationQuantAware(adapter), valRows.map(tokenRowToRow))).loss;
    adapter.release();
  }
  model.release();
  console.log(JSON.stringify(out));
} finally {
  gpu.destroy();
  await rm(root, { recursive: true, force: true });
}
