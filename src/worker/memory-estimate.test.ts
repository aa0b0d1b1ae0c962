import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../engine/model/config.ts';
import { HUB_CATALOG } from './catalog.ts';
import { estimateMemory } from './memory-estimate.ts';

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
    expect(e.verdict).toBe('fits');
    expect(estimateMemory(smol, null, e.training.loraBytes * 1.5).verdict).toBe('tight');
    expect(estimateMemory(smol, null, e.training.loraBytes / 2).verdict).toBe('too-large');
  });

  it('sizes every curated model', () => {
    const params = HUB_CATALOG.map((m) => estimateMemory(parseModelConfig(m.config), null, null).parameters);
    expect(params).toEqual([134_515_008, 361_821_120, 494_032_768, 596_049_920, 1_100_048_384, 1_235_814_400]);
  });
});
