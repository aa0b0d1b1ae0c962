import { describe, expect, it } from 'vitest';
import { AdapterConfigError, AdapterMismatchError, MissingFileError, UnsafeWeightsError } from '../errors.ts';
import { parseModelConfig } from '../model/config.ts';
import { type LoraConfig, type LoraPair, LORA_CONFIG_KEYS, createLoraConfig, expectedLoraModules } from '../peft/lora/config.ts';
import { Rng } from '../random.ts';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, exportPeftLora, importPeftLora, parsePeftKey, peftKey } from './export-peft.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';
import { readSafetensorsIndex, writeSafetensors } from './safetensors.ts';
import { memorySource } from './source.ts';

// A two-layer Llama with GQA: q is 4 heads × 4 = 16 rows, k/v 2 heads × 4 = 8 rows, MLP 24 wide.
const TINY_LLAMA = parseModelConfig({
  architectures: ['LlamaForCausalLM'],
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 32,
});

function randomTensors(config: LoraConfig, seed = 1): Map<string, LoraPair> {
  const rng = new Rng(seed);
  return new Map(
    expectedLoraModules(config, TINY_LLAMA).map((s) => [s.path, { A: rng.fill(s.r * s.inFeatures), B: rng.fill(s.outFeatures * s.r) }]),
  );
}

const CONFIG = createLoraConfig({ r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: 'all-linear', base_model_name_or_path: 'org/tiny-llama' });

describe('exportPeftLora', () => {
  it('writes PEFT key names, shapes, metadata and config', async () => {
    const tensors = randomTensors(CONFIG);
    const files = exportPeftLora({ config: CONFIG, tensors, modelConfig: TINY_LLAMA });
    expect([...files.keys()].sort()).toEqual([ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME]);

    const json = JSON.parse(new TextDecoder().decode(files.get(ADAPTER_CONFIG_NAME))) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual([...LORA_CONFIG_KEYS]);
    expect(json).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0.1,
      inference_mode: true,
      base_model_name_or_path: 'org/tiny-llama',
      target_modules: ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'],
    });

    const index = await readSafetensorsIndex(memorySource(files.get(ADAPTER_WEIGHTS_NAME)!, ADAPTER_WEIGHTS_NAME));
    expect(index.metadata).toEqual({ format: 'pt' });
    expect(index.tensors.size).toBe(2 * 7 * 2);
    const shape = (k: string) => index.tensors.get(k)?.shape;
    expect(shape('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).toEqual([4, 16]);
    expect(shape('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')).toEqual([16, 4]);
    expect(shape('base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight')).toEqual([8, 4]);
    expect(shape('base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight')).toEqual([4, 16]);
    expect(shape('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')).toEqual([4, 24]);
    expect(shape('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight')).toEqual([24, 4]);
    for (const e of index.tensors.values()) expect(e.dtype).toBe('F32');

    // The bytes at each tensor's offset are the given values, row-major.
    const bytes = files.get(ADAPTER_WEIGHTS_NAME)!;
    const e = index.tensors.get(peftKey('model.layers.1.mlp.gate_proj', 'B'))!;
    const stored = new Float32Array(bytes.slice(e.offset, e.offset + e.byteLength).buffer);
    expect(stored).toEqual(tensors.get('model.layers.1.mlp.gate_proj')!.B);
  });

  it('round-trips through importPeftLora exactly in f32', async () => {
    const config = createLoraConfig({ r: 3, lora_alpha: 6, use_rslora: true, target_modules: ['q_proj', 'v_proj', 'down_proj'] });
    const tensors = randomTensors(config, 7);
    const files = exportPeftLora({ config, tensors, modelConfig: TINY_LLAMA });
    const back = await importPeftLora(files, TINY_LLAMA);
    expect(back.dtype).toBe('F32');
    expect(back.config).toEqual({ ...config, target_modules: ['down_proj', 'q_proj', 'v_proj'] });
    expect([...back.tensors.keys()]).toEqual([...tensors.keys()]);
    for (const [path, pair] of tensors) {
      const got = back.tensors.get(path)!;
      expect(got.A).toEqual(pair.A);
      expect(got.B).toEqual(pair.B);
      expect(got.r).toBe(3);
    }
    expect(back.tensors.get('model.layers.0.mlp.down_proj')).toMatchObject({ inFeatures: 24, outFeatures: 16 });
    // A re-export of what was read gives the same bytes.
    const again = exportPeftLora({ config: back.config, tensors: back.tensors, modelConfig: TINY_LLAMA });
    expect(again.get(ADAPTER_WEIGHTS_NAME)).toEqual(files.get(ADAPTER_WEIGHTS_NAME));
    expect(again.get(ADAPTER_CONFIG_NAME)).toEqual(files.get(ADAPTER_CONFIG_NAME));
  });

  it('writes f16 and bf16 rounded to nearest, and reads them back', async () => {
    const tensors = randomTensors(CONFIG, 3);
    for (const [dtype, st, round] of [
      ['f16', 'F16', (x: Float32Array) => f16ToF32(f32ToF16(x))],
      ['bf16', 'BF16', (x: Float32Array) => bf16ToF32(f32ToBf16(x))],
    ] as const) {
      const files = exportPeftLora({ config: CONFIG, tensors, modelConfig: TINY_LLAMA, dtype });
      const back = await importPeftLora(files);
      expect(back.dtype).toBe(st);
      const index = await readSafetensorsIndex(memorySource(files.get(ADAPTER_WEIGHTS_NAME)!));
      expect(index.tensors.get(peftKey('model.layers.0.self_attn.q_proj', 'A'))?.byteLength).toBe(4 * 16 * 2);
      for (const [path, pair] of tensors) {
        expect(back.tensors.get(path)!.A).toEqual(round(pair.A));
        expect(back.tensors.get(path)!.B).toEqual(round(pair.B));
        expect(back.tensors.get(path)!.B).not.toEqual(pair.B);
      }
    }
  });

  it('rejects bad inputs with typed errors', () => {
    const tensors = randomTensors(CONFIG);
    const short = new Map(tensors);
    short.set('model.layers.0.self_attn.v_proj', { A: new Float32Array(4 * 16), B: new Float32Array(7 * 4) });
    expect(() => exportPeftLora({ config: CONFIG, tensors: short, modelConfig: TINY_LLAMA })).toThrow(AdapterMismatchError);
    const extra = new Map(tensors).set('model.layers.2.self_attn.q_proj', tensors.get('model.layers.0.self_attn.q_proj')!);
    expect(() => exportPeftLora({ config: CONFIG, tensors: extra, modelConfig: TINY_LLAMA })).toThrow(/layers\.2\.self_attn\.q_proj/);
    expect(() => exportPeftLora({ config: { ...CONFIG, use_dora: true }, tensors, modelConfig: TINY_LLAMA })).toThrow(AdapterConfigError);
    expect(() => exportPeftLora({ config: { ...CONFIG, r: -1 }, tensors, modelConfig: TINY_LLAMA })).toThrow(/"r" is -1/);
    expect(() =>
      exportPeftLora({ config: CONFIG, tensors, modelConfig: TINY_LLAMA, dtype: 'f64' as unknown as 'f32' }),
    ).toThrow(AdapterConfigError);
  });
});

describe('importPeftLora', () => {
  const config = createLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'] });
  const configBytes = new TextEncoder().encode(JSON.stringify(config));
  const rng = new Rng(11);
  const A0 = rng.fill(2 * 16);
  const B0 = rng.fill(16 * 2);
  const A1 = rng.fill(2 * 16);
  const B1 = rng.fill(16 * 2);
  const weights = (name: (layer: number, which: 'A' | 'B') => string, dtype: 'F32' | 'F16' = 'F32') =>
    writeSafetensors(
      [
        [0, 'A', A0, [2, 16]],
        [0, 'B', B0, [16, 2]],
        [1, 'A', A1, [2, 16]],
        [1, 'B', B1, [16, 2]],
      ].map(([l, w, data, shape]) => ({
        name: name(l as number, w as 'A' | 'B'),
        dtype,
        shape: shape as number[],
        data: dtype === 'F32' ? (data as Float32Array) : f32ToF16(data as Float32Array),
      })),
      { format: 'pt' },
    );
  const files = (w: Uint8Array, c: Uint8Array = configBytes) =>
    new Map([
      [ADAPTER_CONFIG_NAME, c],
      [ADAPTER_WEIGHTS_NAME, w],
    ]);

  it('accepts keys with an adapter-name segment or without the base_model.model prefix', async () => {
    for (const name of [
      (l: number, w: string) => `base_model.model.model.layers.${l}.self_attn.q_proj.lora_${w}.default.weight`,
      (l: number, w: string) => `model.layers.${l}.self_attn.q_proj.lora_${w}.weight`,
    ]) {
      const back = await importPeftLora(files(weights(name)), TINY_LLAMA);
      expect([...back.tensors.keys()]).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']);
      expect(back.tensors.get('model.layers.0.self_attn.q_proj')!.A).toEqual(A0);
      expect(back.tensors.get('model.layers.1.self_attn.q_proj')!.B).toEqual(B1);
    }
    const f16 = await importPeftLora(files(weights((l, w) => peftKey(`model.layers.${l}.self_attn.q_proj`, w), 'F16')));
    expect(f16.tensors.get('model.layers.1.self_attn.q_proj')!.A).toEqual(f16ToF32(f32ToF16(A1)));
    expect(parsePeftKey('base_model.model.model.layers.3.mlp.up_proj.lora_B.weight')).toEqual({ modulePath: 'model.layers.3.mlp.up_proj', which: 'B' });
    expect(parsePeftKey('base_model.model.model.layers.3.mlp.up_proj.lora_magnitude_vector')).toBeNull();
  });

  it('reports missing files, pickles, non-LoRA configs and shapes inconsistent with r', async () => {
    const good = weights((l, w) => peftKey(`model.layers.${l}.self_attn.q_proj`, w));
    await expect(importPeftLora(new Map([[ADAPTER_WEIGHTS_NAME, good]]))).rejects.toThrow(MissingFileError);
    await expect(importPeftLora(new Map([[ADAPTER_CONFIG_NAME, configBytes]]))).rejects.toThrow(/adapter_model\.safetensors is missing/);
    await expect(
      importPeftLora(
        new Map([
          [ADAPTER_CONFIG_NAME, configBytes],
          ['adapter_model.bin', new Uint8Array(8)],
        ]),
      ),
    ).rejects.toThrow(UnsafeWeightsError);
    const ia3 = new TextEncoder().encode(JSON.stringify({ peft_type: 'IA3', target_modules: ['k_proj'] }));
    await expect(importPeftLora(files(good, ia3))).rejects.toThrow(AdapterConfigError);
    await expect(importPeftLora(files(good, ia3))).rejects.toThrow(/"peft_type" is "IA3"/);
    const r4 = new TextEncoder().encode(JSON.stringify({ ...config, r: 4 }));
    await expect(importPeftLora(files(good, r4))).rejects.toThrow(AdapterMismatchError);
    await expect(importPeftLora(files(good, r4))).rejects.toThrow(/disagree with r=4/);
    const other = parseModelConfig({
      architectures: ['LlamaForCausalLM'],
      hidden_size: 32,
      intermediate_size: 24,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      vocab_size: 32,
    });
    await expect(importPeftLora(files(good), other)).rejects.toThrow(/\(out=16, in=16\) in the adapter but \(out=32, in=32\)/);
    const lone = writeSafetensors([{ name: peftKey('model.layers.0.self_attn.q_proj', 'A'), dtype: 'F32', shape: [2, 16], data: A0 }]);
    await expect(importPeftLora(files(lone))).rejects.toThrow(/has lora_A but no lora_B/);
    const dora = writeSafetensors([
      { name: peftKey('model.layers.0.self_attn.q_proj', 'A'), dtype: 'F32', shape: [2, 16], data: A0 },
      { name: peftKey('model.layers.0.self_attn.q_proj', 'B'), dtype: 'F32', shape: [16, 2], data: B0 },
      { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector', dtype: 'F32', shape: [16], data: B0.slice(0, 16) },
    ]);
    await expect(importPeftLora(files(dora))).rejects.toThrow(/lora_magnitude_vector" is not a lora_A or lora_B weight/);
  });
});
