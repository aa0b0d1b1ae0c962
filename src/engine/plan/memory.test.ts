// The memory plan of each tuning method: it carries the method's name, and its trainable values are
// the method's (LoRA: rank × (in + out) per adapted projection; DoRA: that plus one magnitude per
// output; full fine-tuning: every weight; the other methods: the adapter's own count), with the
// adapter, gradient and optimizer bytes following from them. On the tiny llama3-untied-f32 config.

import { describe, expect, it } from 'vitest';
import { TINY_MODELS, tinyConfig } from '../../../scripts/tiny/models.ts';
import { parameterCount, parseModelConfig } from '../model/config.ts';
import { planTrainingMemory } from './memory.ts';

const c = parseModelConfig(tinyConfig(TINY_MODELS.find((s) => s.name === 'llama3-untied-f32')!));
const shape = { batch: 2, seqLen: 16 };
const H = c.hiddenSize;
const KV = c.numKeyValueHeads * c.headDim;
const Q = c.numAttentionHeads * c.headDim;
const L = c.numHiddenLayers;

describe('planTrainingMemory per method', () => {
  it('LoRA and DoRA count their factors (DoRA also a magnitude per output) and name the method', () => {
    const lora = planTrainingMemory(c, { ...shape, method: 'lora', rank: 4, targets: ['q_proj', 'v_proj'] });
    const factors = L * 4 * (H + Q + H + KV);
    expect(lora.method).toBe('lora');
    expect(lora.trainableParameters).toBe(factors);
    const dora = planTrainingMemory(c, { ...shape, method: 'dora', rank: 4, targets: ['q_proj', 'v_proj'] });
    expect(dora.method).toBe('dora');
    expect(dora.trainableParameters).toBe(factors + L * (Q + KV));
    expect(dora.adapter).toBe(4 * dora.trainableParameters);
    expect(dora.total - lora.total).toBe(4 * 4 * L * (Q + KV)); // values, gradients, two moments
  });

  it('full fine-tuning trains every weight: f32 copies, gradients and two moments beside the weights', () => {
    const full = planTrainingMemory(c, { ...shape, method: 'full' });
    expect(full.method).toBe('full');
    expect(full.trainableParameters).toBe(parameterCount(c));
    expect(full.adapter).toBe(4 * parameterCount(c));
    expect(full.gradients).toBe(full.adapter);
    expect(full.optimizer).toBe(2 * full.adapter);
    // Quantization-aware: one fake-quantized f32 copy of each projection (7 per layer) beside the weights.
    const qat = planTrainingMemory(c, { ...shape, method: 'full', quantAware: true });
    const projections = L * (Q * H + 2 * KV * H + H * Q + 3 * H * c.intermediateSize);
    expect(qat.weights - full.weights).toBe(4 * projections);
    expect(qat.total - full.total).toBe(4 * projections);
    expect(() => planTrainingMemory(c, { ...shape, method: 'lora', quantAware: true })).toThrow(/full fine-tune/);
  });

  it('the other methods take the adapter’s parameter count, keep no LoRA activations, and are refused without it', () => {
    const nvt = 4;
    const prefixCount = nvt * L * 2 * KV;
    const prefix = planTrainingMemory(c, { ...shape, method: 'prefix', trainableParameters: prefixCount });
    expect(prefix.method).toBe('prefix');
    expect(prefix.trainableParameters).toBe(prefixCount);
    expect(prefix.adapter).toBe(4 * prefixCount);
    const lora = planTrainingMemory(c, { ...shape, method: 'lora', rank: 8 });
    expect(prefix.activations).toBeLessThan(lora.activations);
    expect(prefix.weights).toBe(lora.weights);
    expect(() => planTrainingMemory(c, { ...shape, method: 'ia3' })).toThrow(/--method ia3 needs the adapter's parameter count/);
    expect(() => planTrainingMemory(c, { ...shape, method: 'ia3', trainableParameters: -1 })).toThrow(/non-negative integer/);
    // Prompt tuning's virtual tokens lengthen every row.
    const prompt = planTrainingMemory(c, { ...shape, method: 'prompt', trainableParameters: nvt * H, virtualTokens: nvt });
    expect(prompt.tokensPerMicroBatch).toBe(shape.batch * (shape.seqLen + nvt));
    expect(prompt.activations).toBeGreaterThan(prefix.activations);
  });

  it('QLoRA keeps its name, and a quantized base shrinks the weights of any method', () => {
    const quant = { format: 'nf4' as const, block: 64, doubleQuant: true };
    const qlora = planTrainingMemory(c, { ...shape, method: 'qlora', quant, rank: 8 });
    expect(qlora.method).toBe('qlora');
    const ia3 = planTrainingMemory(c, { ...shape, method: 'ia3', trainableParameters: 100 });
    const ia3q = planTrainingMemory(c, { ...shape, method: 'ia3', quant, trainableParameters: 100 });
    expect(ia3q.weights).toBe(qlora.weights);
    expect(ia3q.weights).toBeLessThan(ia3.weights);
  });
});
