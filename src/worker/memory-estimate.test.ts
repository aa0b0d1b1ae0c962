import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../engine/model/config.ts';
import { HUB_CATALOG } from './catalog.ts';
import { planTrainingMemory } from '../engine/plan/memory.ts';
import { estimateMemory, planTable } from './memory-estimate.ts';

const smol = parseModelConfig(HUB_CATALOG.find((e) => e.repo === 'HuggingFaceTB/SmolLM2-135M-Instruct')!.config);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('estimateMemory', () => {
  it('sizes SmolLM2-135M: parameters, bytes per weight, bf16 projections, LoRA parameters', () => {
    const e = estimateMemory(smol, { maxBufferSize: 256 * MiB, maxStorageBufferBindingSize: 128 * MiB }, null);
    expect(e.parameters).toBe(134_515_008);
    expect(e.checkpointBytesPerWeight).toBe(2);
    expect(e.checkpointBytes).toBe(134_515_008 * 2);
    expect(e.weightsF32Bytes).toBe(134_515_008 * 4);
    // 30 layers of q, k, v, o (576×576, 192×576 twice, 576×576) and gate/up/down (1536×576 each) halve to 2 bytes.
    expect(e.weightsBf16Bytes).toBe(134_515_008 * 4 - 30 * 3_538_944 * 2);
    // PEFT's count for r = 16 on all seven projections.
    expect(e.training.loraParameters).toBe(4_884_480);
    expect(e.largestTensor).toEqual({ name: 'model.embed_tokens.weight', bytes: 49152 * 576 * 4, bindings: 1 });
    expect(e.training.loraBytes).toBeGreaterThan(e.weightsBf16Bytes);
    expect(e.training.fullBytes).toBeGreaterThan(4 * e.weightsF32Bytes);
    expect(e.verdict).toBe('unknown');
  });

  it('counts the storage bindings a large tensor is split into', () => {
    const e = estimateMemory(smol, { maxBufferSize: 256 * MiB, maxStorageBufferBindingSize: 64 * MiB }, null);
    expect(e.largestTensor.bindings).toBe(2);
    expect(estimateMemory(smol, null, null).largestTensor.bindings).toBeNull();
  });

  it('judges LoRA training against the reported device memory', () => {
    const e = estimateMemory(smol, null, 8 * GiB);
    expect(estimateMemory(smol, null, e.training.loraBytes * 2.5).verdict).toBe('fits');
    expect(estimateMemory(smol, null, e.training.loraBytes * 1.5).verdict).toBe('tight');
    expect(estimateMemory(smol, null, e.training.loraBytes / 2).verdict).toBe('too-large');
  });

  it('sizes every curated model', () => {
    const params = HUB_CATALOG.map((m) => estimateMemory(parseModelConfig(m.config), null, null).parameters);
    expect(params).toEqual([134_515_008, 361_821_120, 494_032_768, 596_049_920, 1_100_048_384, 1_235_814_400]);
  });

  it('takes LoRA and QLoRA figures from the memory planner', () => {
    const e = estimateMemory(smol, null, null, { loraRank: 8, tokensPerStep: 1024 });
    const lora = planTrainingMemory(smol, { method: 'lora', weightDtype: 'bf16', rank: 8, batch: 4, seqLen: 256 });
    expect(e.training.loraBytes).toBe(lora.total);
    expect(e.training.plans.lora).toEqual(lora);
    const nf4 = planTrainingMemory(smol, { method: 'qlora', quant: { format: 'nf4', block: 64, doubleQuant: true }, rank: 8, batch: 4, seqLen: 256 });
    expect(e.training.qloraBytes.nf4).toBe(nf4.total);
    // 4-bit bases are smaller than 8-bit ones, which are smaller than bf16.
    expect(e.training.qloraBytes.nf4).toBeLessThan(e.training.qloraBytes.int8);
    expect(e.training.qloraBytes.int8).toBeLessThan(e.training.loraBytes);
    expect(e.training.plans.qlora.weights).toBeLessThan(0.6 * lora.weights); // the f32 embedding stays
  });

  it('docs/quantization.md holds the current plan table (whetstone quantize --plan-table)', () => {
    const doc = readFileSync(new URL('../../docs/quantization.md', import.meta.url), 'utf8');
    expect(doc).toContain(planTable(HUB_CATALOG, (raw) => parseModelConfig(raw)));
  });
});
