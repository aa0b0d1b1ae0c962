// The memory planner against the allocator: a short LoRA run (f32 base) and a QLoRA run (NF4
// double-quantized base, gradient checkpointing) on tiny models, each on a trimmed pool, must peak
// within 10% of the planner's prediction; the weights must match it to the byte.

import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { testGpu } from '../gpu/testing.ts';
import { blobFileSet, openModelFolder } from '../io/model-folder.ts';
import { loadModel } from '../model/llama.ts';
import { createLoraConfig } from '../peft/lora/config.ts';
import { createLora } from '../peft/lora/model.ts';
import type { QuantOptions } from '../quant/format.ts';
import { MemoryCheckpointStore } from '../train/checkpoint.ts';
import { train } from '../train/trainer.ts';
import { planTrainingMemory } from './memory.ts';

async function measure(name: string, B: number, T: number, quant: QuantOptions | null, checkpointBlocks: boolean) {
  const gpu = await testGpu();
  const spec = TINY_MODELS.find((s) => s.name === name)!;
  const files = makeTinyModel(spec);
  const folder = await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])]))));
  gpu.allocator.trim();
  const model = await loadModel(gpu, folder, quant ? { quant } : {});
  const adapter = createLora(model, createLoraConfig({ r: 8, lora_alpha: 16, target_modules: 'all-linear' }), { seed: 1 });
  try {
    const rows = Array.from({ length: B }, (_, i) => ({ inputIds: Array.from({ length: T }, (_, t) => (i * 7 + t * 3) % model.config.vocabSize) }));
    const res = await train({ model, adapter, train: rows, validation: [], checkpoints: new MemoryCheckpointStore(), options: { lr: 1e-3, batchSize: B, seqLen: T, seed: 1, maxSteps: 1, checkpointBlocks } });
    const plan = planTrainingMemory(model.config, { method: quant ? 'qlora' : 'lora', quant: quant ?? undefined, rank: 8, batch: B, seqLen: T, checkpointBlocks });
    return { plan, peak: res.metrics[res.metrics.length - 1].peakBytes, weights: model.parameterBytes, trainable: adapter.params.reduce((a, p) => a + p.value.numel, 0) };
  } finally {
    adapter.release();
    model.release();
  }
}

describe('planTrainingMemory vs the allocator’s measured peak', () => {
  it('LoRA on an f32 Llama, batch 4 × 32 tokens', async () => {
    const m = await measure('llama3-untied-f32', 4, 32, null, false);
    console.log(`LoRA: predicted ${m.plan.total} bytes, measured peak ${m.peak} (${((100 * (m.plan.total - m.peak)) / m.peak).toFixed(1)}%)`);
    expect(m.plan.weights).toBe(m.weights);
    expect(m.plan.trainableParameters).toBe(m.trainable);
    expect(Math.abs(m.plan.total - m.peak) / m.peak).toBeLessThan(0.1);
  });

  it('QLoRA (NF4, double quantization) on a Qwen2 with gradient checkpointing, batch 8 × 24 tokens', async () => {
    const m = await measure('qwen2-tied-f32', 8, 24, { format: 'nf4', block: 64, doubleQuant: true }, true);
    console.log(`QLoRA: predicted ${m.plan.total} bytes, measured peak ${m.peak} (${((100 * (m.plan.total - m.peak)) / m.peak).toFixed(1)}%)`);
    expect(m.plan.weights).toBe(m.weights);
    expect(Math.abs(m.plan.total - m.peak) / m.peak).toBeLessThan(0.1);
  });
});
