// The prefix-tuning config's projection keys (prefix_projection, encoder_hidden_size) as PEFT saves
// them, and the registry's --prefix-projection / --encoder-hidden options. No GPU.

import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../model/config.ts';
import { findMethod, parseMethodOptions } from '../methods.ts';
import { MAX_ENCODER_HIDDEN_SIZE, createPrefixTuningConfig, parsePrefixTuningConfig, prefixEncoderHiddenSize, savedPrefixTuningConfig, serializePrefixTuningConfig } from './config.ts';

const MODEL = { headDim: 16, numKeyValueHeads: 2, numHiddenLayers: 3 } as ModelConfig;

describe('prefix-tuning config with prefix_projection', () => {
  it('fills encoder_hidden_size with token_dim (Hkv·D) when unset and keeps a given one, as PEFT saves it', () => {
    const plain = createPrefixTuningConfig({ prefix_projection: true });
    expect(prefixEncoderHiddenSize(plain, MODEL)).toBe(32);
    expect(savedPrefixTuningConfig(plain, MODEL)).toMatchObject({ prefix_projection: true, encoder_hidden_size: 32, token_dim: 32, num_attention_heads: 2, num_layers: 3 });
    const wide = createPrefixTuningConfig({ prefix_projection: true, encoder_hidden_size: 100 });
    expect(prefixEncoderHiddenSize(wide, MODEL)).toBe(100);
    const saved = JSON.parse(serializePrefixTuningConfig(savedPrefixTuningConfig(wide, MODEL)));
    expect(saved).toMatchObject({ peft_type: 'PREFIX_TUNING', prefix_projection: true, encoder_hidden_size: 100, inference_mode: true });
    expect(Object.keys(saved)).toEqual([...Object.keys(saved)].sort());
  });

  it('refuses a bad prefix_projection or encoder_hidden_size, naming the key', () => {
    const base = { peft_type: 'PREFIX_TUNING' };
    expect(() => parsePrefixTuningConfig({ ...base, prefix_projection: 'yes' })).toThrow(/Key "prefix_projection" is "yes"; expected true or false/);
    expect(() => parsePrefixTuningConfig({ ...base, encoder_hidden_size: 0 })).toThrow(/Key "encoder_hidden_size" is 0/);
    expect(() => parsePrefixTuningConfig({ ...base, encoder_hidden_size: MAX_ENCODER_HIDDEN_SIZE + 1 })).toThrow(/Key "encoder_hidden_size" .* up to 65536/);
  });
});

describe('registry options of prefix tuning', () => {
  const method = findMethod('prefix');
  it('reads --prefix-projection and --encoder-hidden (0: PEFT’s default)', () => {
    expect(parseMethodOptions(method, {})).toEqual({ num_virtual_tokens: 20, prefix_projection: false, encoder_hidden_size: 0 });
    expect(parseMethodOptions(method, { 'prefix-projection': true, 'encoder-hidden': '512' })).toEqual({ num_virtual_tokens: 20, prefix_projection: true, encoder_hidden_size: 512 });
    expect(() => parseMethodOptions(method, { 'encoder-hidden': '-1' })).toThrow(/--encoder-hidden must be an integer from 0 to 65536/);
    expect(() => parseMethodOptions(findMethod('prompt'), { 'prefix-projection': true })).toThrow(/--prefix-projection is an option of Prefix tuning/);
  });
});
