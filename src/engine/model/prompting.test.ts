// Prompting helpers shared by the CLI and the studio: sampling defaults from
// generation_config.json, prompt ids plain and through the chat template, stop ids.
import { describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { encodePrompt, samplingDefaults, stopTokenIds } from './prompting.ts';
import { loadTokenizer } from './tokenizer.ts';

const files = makeTinyTokenizer();
const tokenizer = loadTokenizer({ tokenizerJson: files.tokenizerJson, tokenizerConfig: files.tokenizerConfig });

describe('samplingDefaults', () => {
  it('is greedy unless do_sample, and then takes the file values with transformers defaults', () => {
    expect(samplingDefaults(null)).toEqual({ temperature: 0, topP: 1, topK: 0, maxNewTokens: 256 });
    expect(samplingDefaults({ temperature: 0.7, top_p: 0.8, max_new_tokens: 40 })).toEqual({ temperature: 0, topP: 1, topK: 0, maxNewTokens: 40 });
    expect(samplingDefaults({ do_sample: true, temperature: 0.7, top_p: 0.8 })).toEqual({ temperature: 0.7, topP: 0.8, topK: 50, maxNewTokens: 256 });
    expect(samplingDefaults({ do_sample: true, temperature: 'hot', top_k: 20 })).toEqual({ temperature: 1, topP: 1, topK: 20, maxNewTokens: 256 });
  });
});

describe('encodePrompt', () => {
  it('encodes plain text with the tokenizer, chat through the template without added specials', () => {
    expect(encodePrompt(tokenizer, 'Hello there', false)).toEqual({ ids: tokenizer.encode('Hello there'), warning: null });
    const chat = encodePrompt(tokenizer, 'Hello!', true);
    const text = tokenizer.decode(chat.ids);
    expect(text).toContain('Hello!');
    expect(text.endsWith('<|im_start|>assistant\n')).toBe(true);
    expect(() => encodePrompt(tokenizer, '', false)).toThrow(/encodes to no tokens/);
  });

  it('joins the stop ids of the tokenizer and the config without repeats', () => {
    expect(stopTokenIds({ eosTokenIds: [5, 7] }, { eosTokenIds: [7, 9] })).toEqual([5, 7, 9]);
  });
});
