import { describe, expect, it } from 'vitest';
import { AdapterConfigError, AdapterMismatchError } from '../../errors.ts';
import { parseModelConfig } from '../../model/config.ts';
import {
  type LoraConfig,
  type LoraPair,
  LORA_CONFIG_KEYS,
  checkLoraTensors,
  checkPlainLora,
  createLoraConfig,
  expectedLoraModules,
  moduleRankAlpha,
  moduleScaling,
  parseLoraConfig,
  savedTargetModules,
  scaling,
  serializeLoraConfig,
  targetModuleNames,
} from './config.ts';

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

// Every key PEFT 0.20 writes for a LoRA adapter (LoraConfig and PeftConfig fields, runtime_config and peft_version aside), sorted.
const PEFT_KEYS = [
  'alora_invocation_tokens',
  'alpha_pattern',
  'arrow_config',
  'auto_mapping',
  'base_model_name_or_path',
  'bias',
  'corda_config',
  'ensure_weight_tying',
  'eva_config',
  'exclude_modules',
  'fan_in_fan_out',
  'inference_mode',
  'init_lora_weights',
  'layer_replication',
  'layers_pattern',
  'layers_to_transform',
  'loftq_config',
  'lora_alpha',
  'lora_bias',
  'lora_dropout',
  'lora_ga_config',
  'megatron_config',
  'megatron_core',
  'modules_to_save',
  'monteclora_config',
  'peft_type',
  'qalora_group_size',
  'r',
  'rank_pattern',
  'revision',
  'target_modules',
  'target_parameters',
  'task_type',
  'trainable_token_indices',
  'use_bdlora',
  'use_dora',
  'use_qalora',
  'use_rslora',
  'velora_config',
];

describe('LoraConfig', () => {
  it('has every key PEFT writes, with PEFT defaults, serialized sorted with indent 2', () => {
    const c = createLoraConfig({ r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: 'org/base' });
    expect([...LORA_CONFIG_KEYS]).toEqual(PEFT_KEYS);
    const text = serializeLoraConfig(c);
    const json = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(PEFT_KEYS);
    expect(text.startsWith('{\n  "alora_invocation_tokens": null,\n  "alpha_pattern": {},\n')).toBe(true);
    expect(json).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 16,
      lora_alpha: 32,
      lora_dropout: 0.05,
      target_modules: ['q_proj', 'v_proj'],
      bias: 'none',
      use_rslora: false,
      use_dora: false,
      init_lora_weights: true,
      base_model_name_or_path: 'org/base',
      revision: null,
      fan_in_fan_out: false,
      modules_to_save: null,
      layers_to_transform: null,
      layers_pattern: null,
      rank_pattern: {},
      alpha_pattern: {},
      inference_mode: true,
      megatron_config: null,
      megatron_core: 'megatron.core',
      loftq_config: {},
      layer_replication: null,
      exclude_modules: null,
      lora_bias: false,
      qalora_group_size: 16,
      use_qalora: false,
      ensure_weight_tying: false,
      auto_mapping: null,
    });
    expect(parseLoraConfig(text)).toEqual(c);
  });

  it('reads a minimal real-world config, filling defaults and dropping unknown keys', () => {
    const c = parseLoraConfig({
      base_model_name_or_path: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      lora_alpha: 16,
      lora_dropout: 0.05,
      peft_type: 'LORA',
      r: 8,
      target_modules: ['q_proj', 'v_proj'],
      task_type: 'CAUSAL_LM',
      modules_to_save: null,
      use_dora: false,
      use_rslora: false,
      rank_pattern: {},
      alpha_pattern: {},
      peft_version: '0.17.1',
      some_future_key: { x: 1 },
    });
    expect(c.r).toBe(8);
    expect(c.megatron_core).toBe('megatron.core');
    expect('peft_version' in c).toBe(false);
    expect('some_future_key' in c).toBe(false);
    expect(Object.keys(c).sort()).toEqual(PEFT_KEYS);
  });

  it('computes alpha/r, or alpha/sqrt(r) with rsLoRA', () => {
    expect(scaling(createLoraConfig({ r: 8, lora_alpha: 16 }))).toBe(2);
    expect(scaling(createLoraConfig({ r: 16, lora_alpha: 16, use_rslora: true }))).toBe(4);
    expect(scaling(createLoraConfig({ r: 8, lora_alpha: 16, use_rslora: true }))).toBeCloseTo(16 / Math.sqrt(8), 12);
  });

  it('applies rank_pattern and alpha_pattern per module as PEFT matches them', () => {
    const c = createLoraConfig({
      r: 8,
      lora_alpha: 16,
      target_modules: 'all-linear',
      rank_pattern: { 'layers.1.self_attn.q_proj': 4 },
      alpha_pattern: { down_proj: 32 },
    });
    expect(moduleRankAlpha(c, 'model.layers.1.self_attn.q_proj')).toEqual({ r: 4, alpha: 16 });
    expect(moduleRankAlpha(c, 'model.layers.0.self_attn.q_proj')).toEqual({ r: 8, alpha: 16 });
    expect(moduleRankAlpha(c, 'model.layers.0.mlp.down_proj')).toEqual({ r: 8, alpha: 32 });
    expect(moduleScaling(c, 'model.layers.1.self_attn.q_proj')).toBe(4);
    const specs = expectedLoraModules(c, TINY_LLAMA);
    expect(specs.find((s) => s.path === 'model.layers.1.self_attn.q_proj')).toMatchObject({ r: 4, inFeatures: 16, outFeatures: 16, scaling: 4 });
    expect(specs.find((s) => s.path === 'model.layers.1.mlp.down_proj')).toMatchObject({ r: 8, inFeatures: 24, outFeatures: 16, scaling: 4 });
  });

  it('rejects bad values with an AdapterConfigError naming the key', () => {
    const base = { peft_type: 'LORA' };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ peft_type: 'IA3' }, /"peft_type" is "IA3"/],
      [{}, /"peft_type" is missing/],
      [{ ...base, r: 0 }, /"r" is 0; expected a positive integer/],
      [{ ...base, r: 2.5 }, /"r" is 2.5/],
      [{ ...base, lora_alpha: '16' }, /"lora_alpha" is "16"/],
      [{ ...base, lora_dropout: 1 }, /"lora_dropout" is 1/],
      [{ ...base, bias: 'some' }, /"bias" is "some"/],
      [{ ...base, target_modules: 5 }, /"target_modules" is 5/],
      [{ ...base, target_modules: '(' }, /"target_modules" holds "\("/],
      [{ ...base, task_type: 'FOO' }, /"task_type" is "FOO"/],
      [{ ...base, use_rslora: 'yes' }, /"use_rslora" is "yes"/],
      [{ ...base, rank_pattern: { q_proj: 0 } }, /"rank_pattern\.q_proj" is 0/],
      [{ ...base, alpha_pattern: [] }, /"alpha_pattern" is \[\]/],
      [{ ...base, layers_to_transform: [-1] }, /"layers_to_transform" is \[-1\]/],
      [{ ...base, target_modules: 'all-linear', layers_to_transform: [0] }, /"layers_to_transform" cannot be used/],
      [{ ...base, target_modules: ['q_proj'], layers_pattern: 'layers' }, /"layers_pattern" is set/],
      [{ ...base, layer_replication: [[0, 1, 2]] }, /"layer_replication"/],
      [{ ...base, alora_invocation_tokens: ['a'] }, /"alora_invocation_tokens"/],
    ];
    for (const [json, message] of cases) {
      expect(() => parseLoraConfig(json), JSON.stringify(json)).toThrow(AdapterConfigError);
      expect(() => parseLoraConfig(json), JSON.stringify(json)).toThrow(message);
    }
    expect(() => parseLoraConfig('{"peft_type": "LORA",')).toThrow(/not valid JSON/);
    expect(() => parseLoraConfig([])).toThrow(/must be a JSON object/);
  });
});

describe('target modules', () => {
  const names = (c: Partial<LoraConfig>) => targetModuleNames(createLoraConfig(c), TINY_LLAMA);

  it('resolves all-linear to every projection of every layer, never lm_head', () => {
    const all = names({ target_modules: 'all-linear' });
    expect(all).toEqual(
      [0, 1].flatMap((l) => [
        `model.layers.${l}.self_attn.q_proj`,
        `model.layers.${l}.self_attn.k_proj`,
        `model.layers.${l}.self_attn.v_proj`,
        `model.layers.${l}.self_attn.o_proj`,
        `model.layers.${l}.mlp.gate_proj`,
        `model.layers.${l}.mlp.up_proj`,
        `model.layers.${l}.mlp.down_proj`,
      ]),
    );
    expect(all.some((p) => p.includes('lm_head'))).toBe(false);
    expect(savedTargetModules(createLoraConfig({ target_modules: 'all-linear' }), TINY_LLAMA)).toEqual([
      'down_proj',
      'gate_proj',
      'k_proj',
      'o_proj',
      'q_proj',
      'up_proj',
      'v_proj',
    ]);
  });

  it('matches list entries by whole path or dotted suffix, regexes by full match', () => {
    expect(names({ target_modules: ['q_proj', 'v_proj'] })).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    expect(names({ target_modules: null })).toEqual(names({ target_modules: ['q_proj', 'v_proj'] }));
    expect(names({ target_modules: ['self_attn.o_proj', 'model.layers.1.mlp.up_proj'] })).toEqual([
      'model.layers.0.self_attn.o_proj',
      'model.layers.1.self_attn.o_proj',
      'model.layers.1.mlp.up_proj',
    ]);
    // "proj" alone is not a dotted suffix of any path.
    expect(() => names({ target_modules: ['proj'] })).toThrow(AdapterConfigError);
    expect(names({ target_modules: '.*\\.1\\..*(k|down)_proj' })).toEqual(['model.layers.1.self_attn.k_proj', 'model.layers.1.mlp.down_proj']);
    expect(savedTargetModules(createLoraConfig({ target_modules: ['v_proj', 'q_proj', 'q_proj'] }), TINY_LLAMA)).toEqual(['q_proj', 'v_proj']);
  });

  it('honours layers_to_transform, layers_pattern and exclude_modules', () => {
    expect(names({ target_modules: ['q_proj'], layers_to_transform: [1] })).toEqual(['model.layers.1.self_attn.q_proj']);
    expect(names({ target_modules: ['q_proj'], layers_to_transform: 0, layers_pattern: 'layers' })).toEqual(['model.layers.0.self_attn.q_proj']);
    expect(names({ target_modules: 'all-linear', exclude_modules: ['mlp.gate_proj', 'model.layers.0.self_attn.q_proj'] })).not.toContain(
      'model.layers.0.self_attn.q_proj',
    );
    expect(names({ target_modules: 'all-linear', exclude_modules: '.*mlp.*' })).toHaveLength(8);
    expect(() => names({ target_modules: ['q_proj'], layers_to_transform: [5] })).toThrow(/layer 5/);
    expect(() => names({ target_modules: ['q_proj'], exclude_modules: ['q_proj'] })).toThrow(/select no module/);
  });

  it('reports a target that matches nothing', () => {
    expect(() => names({ target_modules: ['q_proj', 'foo_proj'] })).toThrow(AdapterConfigError);
    expect(() => names({ target_modules: ['q_proj', 'foo_proj'] })).toThrow(/"foo_proj"/);
    expect(() => names({ target_modules: ['lm_head'] })).toThrow(/lm_head is not adapted/);
    expect(() => names({ target_modules: '.*embed.*' })).toThrow(/matches no module/);
  });
});

describe('adapter tensors', () => {
  const config = createLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj', 'k_proj'] });
  const pairs = () =>
    new Map<string, LoraPair>(
      expectedLoraModules(config, TINY_LLAMA).map((s) => [s.path, { A: new Float32Array(s.r * s.inFeatures), B: new Float32Array(s.outFeatures * s.r) }]),
    );

  it('accepts exactly the expected modules and shapes', () => {
    const specs = checkLoraTensors(config, TINY_LLAMA, pairs());
    expect(specs.map((s) => [s.path, s.outFeatures])).toEqual([
      ['model.layers.0.self_attn.q_proj', 16],
      ['model.layers.0.self_attn.k_proj', 8],
      ['model.layers.1.self_attn.q_proj', 16],
      ['model.layers.1.self_attn.k_proj', 8],
    ]);
  });

  it('rejects wrong shapes, unknown, unselected and missing modules', () => {
    const wrongA = pairs();
    wrongA.get('model.layers.0.self_attn.k_proj')!.A = new Float32Array(2 * 15);
    expect(() => checkLoraTensors(config, TINY_LLAMA, wrongA)).toThrow(AdapterMismatchError);
    expect(() => checkLoraTensors(config, TINY_LLAMA, wrongA)).toThrow(/k_proj": lora_A must be \(r=2, in=16\) = 32 values; got 30/);
    const wrongB = pairs();
    wrongB.get('model.layers.1.self_attn.q_proj')!.B = new Float32Array(8 * 2);
    expect(() => checkLoraTensors(config, TINY_LLAMA, wrongB)).toThrow(/lora_B must be \(out=16, r=2\)/);
    const unknown = pairs().set('model.layers.0.self_attn.x_proj', { A: new Float32Array(32), B: new Float32Array(32) });
    expect(() => checkLoraTensors(config, TINY_LLAMA, unknown)).toThrow(/not a linear layer/);
    const unselected = pairs().set('model.layers.0.self_attn.v_proj', { A: new Float32Array(32), B: new Float32Array(16) });
    expect(() => checkLoraTensors(config, TINY_LLAMA, unselected)).toThrow(/does not select/);
    const missing = pairs();
    missing.delete('model.layers.1.self_attn.k_proj');
    expect(() => checkLoraTensors(config, TINY_LLAMA, missing)).toThrow(/no tensors are given/);
  });

  it('refuses config features plain factors cannot carry', () => {
    expect(() => checkPlainLora(createLoraConfig({ use_dora: true }), 'the test export')).toThrow(/"use_dora" is true: DoRA/);
    expect(() => checkPlainLora(createLoraConfig({ bias: 'all' }), 'x')).toThrow(AdapterConfigError);
    expect(() => checkPlainLora(createLoraConfig({ modules_to_save: ['lm_head'] }), 'x')).toThrow(/modules_to_save/);
    expect(() => checkPlainLora(createLoraConfig(), 'x')).not.toThrow();
  });
});
