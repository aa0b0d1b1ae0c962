// The method registry and the file formats of the methods beside LoRA, without a GPU: option
// parsing (defaults, bounds, another method's flag refused), method detection from
// adapter_config.json, and the IA3, DoRA and prompt-tuning configs and safetensors layouts written
// and read back (PEFT's key names and shapes), each bad input a typed error.

import { describe, expect, it } from 'vitest';
import { AdapterConfigError, AdapterMismatchError, InvalidArgumentError } from '../errors.ts';
import {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  exportPeftDora,
  exportPeftIa3,
  exportPeftPromptTuning,
  importPeftDora,
  importPeftIa3,
  importPeftPromptTuning,
} from '../io/export-peft.ts';
import { readSafetensorsIndex } from '../io/safetensors.ts';
import { memorySource } from '../io/source.ts';
import type { ModelConfig } from '../model/config.ts';
import { createIa3Config, expectedIa3Modules, parseIa3Config } from './ia3/config.ts';
import { createLoraConfig } from './lora/config.ts';
import { METHODS, detectMethod, findMethod, parseMethodOptions } from './methods.ts';
import { createPromptTuningConfig, parsePromptTuningConfig, textInitIds } from './prompt/config.ts';

const MODEL = {
  hiddenSize: 8,
  intermediateSize: 12,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  headDim: 4,
  vocabSize: 50,
} as ModelConfig;

const keysOf = async (bytes: Uint8Array) => {
  const index = await readSafetensorsIndex(memorySource(bytes, ADAPTER_WEIGHTS_NAME));
  return Object.fromEntries([...index.tensors].map(([k, e]) => [k, e.shape]));
};

describe('method registry', () => {
  it('lists each method once with its options and flags', () => {
    expect(METHODS.map((m) => m.id)).toEqual(['lora', 'dora', 'ia3', 'prompt', 'prefix', 'adapter', 'full']);
    for (const m of METHODS) {
      expect(m.label.length).toBeGreaterThan(0);
      expect(m.description.length).toBeGreaterThan(20);
      expect(new Set(m.options.map((o) => o.flag)).size).toBe(m.options.length);
    }
  });

  it('parses option values with defaults, bounds and typed errors naming the flag', () => {
    const lora = findMethod('lora');
    expect(parseMethodOptions(lora, {})).toEqual({ r: 8, lora_alpha: 8, lora_dropout: 0, target_modules: 'all-linear', use_rslora: false });
    expect(parseMethodOptions(lora, { rank: '16', rslora: true, targets: 'q_proj,v_proj' })).toMatchObject({ r: 16, use_rslora: true, target_modules: ['q_proj', 'v_proj'] });
    expect(() => parseMethodOptions(lora, { rank: '0' })).toThrow(/--rank must be an integer from 1 to 4096/);
    expect(() => parseMethodOptions(lora, { dropout: '1' })).toThrow(/--dropout must be a number from 0 and below 1/);
    expect(() => parseMethodOptions(lora, { 'virtual-tokens': '4' })).toThrow(/--virtual-tokens is an option of Prompt tuning and Prefix tuning; --method lora does not take it/);
    const prompt = findMethod('prompt');
    expect(parseMethodOptions(prompt, { 'prompt-init': 'text', 'prompt-init-text': 'Hello' })).toEqual({ num_virtual_tokens: 20, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'Hello' });
    expect(() => parseMethodOptions(prompt, { 'prompt-init': 'zeros' })).toThrow(/--prompt-init must be one of RANDOM, TEXT, SAMPLE_VOCAB/);
    expect(() => findMethod('bitfit')).toThrow(InvalidArgumentError);
  });

  it('detects the method from adapter_config.json', async () => {
    const files = (config: object) => new Map([[ADAPTER_CONFIG_NAME, new TextEncoder().encode(JSON.stringify(config))]]);
    expect((await detectMethod(files({ peft_type: 'LORA' }))).id).toBe('lora');
    expect((await detectMethod(files({ peft_type: 'LORA', use_dora: true }))).id).toBe('dora');
    expect((await detectMethod(files({ peft_type: 'IA3' }))).id).toBe('ia3');
    expect((await detectMethod(files({ peft_type: 'PROMPT_TUNING' }))).id).toBe('prompt');
    expect((await detectMethod(files({ config: { architecture: 'bottleneck' } }))).id).toBe('adapter');
    const modelFolder = new Map([['config.json', new TextEncoder().encode(JSON.stringify({ architectures: ['LlamaForCausalLM'] }))]]);
    expect((await detectMethod(modelFolder)).id).toBe('full');
    await expect(detectMethod(files({ peft_type: 'ADAPTION_PROMPT' }))).rejects.toThrow(/"ADAPTION_PROMPT", which no available method reads/);
    await expect(detectMethod(new Map())).rejects.toThrow(/adapter_config.json is missing/);
  });
});

describe('IA3 files', () => {
  it('selects PEFT’s Llama defaults with [out, 1] and [1, in] vectors', () => {
    const specs = expectedIa3Modules(createIa3Config(), MODEL);
    expect(specs.map((s) => [s.path, s.feedforward, s.shape])).toEqual([
      ['model.layers.0.self_attn.k_proj', false, [4, 1]],
      ['model.layers.0.self_attn.v_proj', false, [4, 1]],
      ['model.layers.0.mlp.down_proj', true, [1, 12]],
      ['model.layers.1.self_attn.k_proj', false, [4, 1]],
      ['model.layers.1.self_attn.v_proj', false, [4, 1]],
      ['model.layers.1.mlp.down_proj', true, [1, 12]],
    ]);
    expect(() => createIa3Config({ target_modules: ['k_proj'], feedforward_modules: ['down_proj'] })).toThrow(/must be a subset of the targets/);
    expect(() => parseIa3Config({ peft_type: 'LORA' })).toThrow(AdapterConfigError);
  });

  it('writes ia3_l with PEFT’s names and shapes and reads them back', async () => {
    const config = createIa3Config({ target_modules: ['v_proj', 'up_proj'], feedforward_modules: ['up_proj'] });
    const tensors = new Map(expectedIa3Modules(config, MODEL).map((s, i) => [s.path, Float32Array.from({ length: s.size }, (_, j) => 1 + 0.01 * (i + j))]));
    const files = exportPeftIa3({ config, tensors, modelConfig: MODEL });
    expect(await keysOf(files.get(ADAPTER_WEIGHTS_NAME) as Uint8Array)).toEqual({
      'base_model.model.model.layers.0.self_attn.v_proj.ia3_l': [4, 1],
      'base_model.model.model.layers.0.mlp.up_proj.ia3_l': [1, 8],
      'base_model.model.model.layers.1.self_attn.v_proj.ia3_l': [4, 1],
      'base_model.model.model.layers.1.mlp.up_proj.ia3_l': [1, 8],
    });
    const saved = JSON.parse(new TextDecoder().decode(files.get(ADAPTER_CONFIG_NAME)));
    expect(saved).toMatchObject({ peft_type: 'IA3', target_modules: ['up_proj', 'v_proj'], feedforward_modules: ['up_proj'], inference_mode: true });
    const back = await importPeftIa3(files, MODEL);
    expect([...back.tensors.keys()]).toEqual([...tensors.keys()]);
    for (const [k, v] of tensors) expect(back.tensors.get(k)).toEqual(v);
    const wrong = { ...MODEL, hiddenSize: 16 } as ModelConfig;
    await expect(importPeftIa3(files, wrong)).rejects.toThrow(AdapterMismatchError);
  });
});

describe('DoRA files', () => {
  it('writes lora_magnitude_vector [out] beside the factors and reads it back', async () => {
    const config = createLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'], use_dora: true });
    const q = (i: number) => ({ A: new Float32Array(2 * 8).fill(0.1 * (i + 1)), B: new Float32Array(8 * 2).fill(0.2), m: Float32Array.from({ length: 8 }, (_, j) => 1 + j) });
    const tensors = new Map([0, 1].map((l) => [`model.layers.${l}.self_attn.q_proj`, q(l)]));
    const files = exportPeftDora({ config, tensors, modelConfig: MODEL });
    expect(await keysOf(files.get(ADAPTER_WEIGHTS_NAME) as Uint8Array)).toMatchObject({
      'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector': [8],
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': [2, 8],
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': [8, 2],
    });
    expect(JSON.parse(new TextDecoder().decode(files.get(ADAPTER_CONFIG_NAME)))).toMatchObject({ peft_type: 'LORA', use_dora: true });
    const back = await importPeftDora(files, MODEL);
    expect(back.tensors.get('model.layers.1.self_attn.q_proj')?.m).toEqual(tensors.get('model.layers.1.self_attn.q_proj')?.m);
    expect(() => exportPeftDora({ config: { ...config, use_dora: false }, tensors, modelConfig: MODEL })).toThrow(/needs "use_dora": true/);
  });
});

describe('prompt-tuning files', () => {
  it('repeats or cuts the init text as PEFT does', () => {
    expect(textInitIds([5, 6, 7], 2)).toEqual([5, 6]);
    expect(textInitIds([5, 6, 7], 7)).toEqual([5, 6, 7, 5, 6, 7, 5]);
    expect(() => textInitIds([], 3)).toThrow(AdapterConfigError);
  });

  it('writes prompt_embeddings [nvt, hidden] with the model sizes filled in and reads it back', async () => {
    const config = createPromptTuningConfig({ num_virtual_tokens: 3 });
    const embeddings = Float32Array.from({ length: 3 * 8 }, (_, i) => i / 10);
    const files = exportPeftPromptTuning({ config, embeddings, modelConfig: MODEL });
    expect(await keysOf(files.get(ADAPTER_WEIGHTS_NAME) as Uint8Array)).toEqual({ prompt_embeddings: [3, 8] });
    expect(JSON.parse(new TextDecoder().decode(files.get(ADAPTER_CONFIG_NAME)))).toMatchObject({
      peft_type: 'PROMPT_TUNING',
      num_virtual_tokens: 3,
      token_dim: 8,
      num_layers: 2,
      num_attention_heads: 2,
      num_transformer_submodules: 1,
      prompt_tuning_init: 'RANDOM',
    });
    expect((await importPeftPromptTuning(files, MODEL)).embeddings).toEqual(embeddings);
    await expect(importPeftPromptTuning(files, { ...MODEL, hiddenSize: 16 } as ModelConfig)).rejects.toThrow(/token_dim is 8 but the model's hidden size is 16/);
    expect(() => parsePromptTuningConfig({ peft_type: 'PROMPT_TUNING', prompt_tuning_init: 'TEXT' })).toThrow(/prompt_tuning_init_text/);
    expect(() => parsePromptTuningConfig({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 0 })).toThrow(/num_virtual_tokens/);
  });
});
