// Tests of the tiny tokenizer generator: determinism, the layout of the vocabulary, that the learned
// merges are the most frequent pairs and that encoding applies them, and round trips through
// loadTokenizer.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CHAT_TEMPLATE, renderChat } from '../../src/engine/data/chat-template.ts';
import { InvalidArgumentError } from '../../src/engine/errors.ts';
import { loadTokenizer } from '../../src/engine/model/tokenizer.ts';
import { TINY_CORPUS, TINY_SPECIAL_TOKENS, bytesToUnicode, makeTinyTokenizer } from './tokenizer.ts';

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const byteChars = bytesToUnicode();
const toSymbols = (piece: string) => Array.from(new TextEncoder().encode(piece), (b) => byteChars[b]);

/** Textbook BPE encoding: repeatedly merge the adjacent pair with the lowest merge rank. */
function referenceEncode(text: string, merges: [string, string][], vocab: Record<string, number>): number[] {
  const rank = new Map(merges.map(([a, b], i) => [a + '\u0000' + b, i]));
  const ids: number[] = [];
  for (const piece of text.match(GPT2_SPLIT) ?? []) {
    let symbols = toSymbols(piece);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = rank.get(symbols[i] + '\u0000' + symbols[i + 1]);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) break;
      const [a, b] = merges[bestRank];
      const next: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(symbols[i]);
      }
      symbols = next;
    }
    for (const s of symbols) ids.push(vocab[s]);
  }
  return ids;
}

describe('makeTinyTokenizer', () => {
  const tiny = makeTinyTokenizer({ vocabSize: 384 });
  const { vocab } = tiny.tokenizerJson.model;
  const merges = tiny.tokenizerJson.model.merges.map((m) => m.split(' ') as [string, string]);

  it('is deterministic', () => {
    expect(JSON.stringify(makeTinyTokenizer({ vocabSize: 384 }))).toBe(JSON.stringify(tiny));
    expect(JSON.stringify(makeTinyTokenizer())).toBe(JSON.stringify(tiny));
  });

  it('lays out bytes, merged tokens, then the special tokens, with dense ids', () => {
    for (const size of [259, 300, 384, 512]) {
      const t = makeTinyTokenizer({ vocabSize: size });
      const ids = [...Object.values(t.tokenizerJson.model.vocab), ...t.tokenizerJson.added_tokens.map((a) => a.id)].sort((a, b) => a - b);
      expect(ids).toEqual(Array.from({ length: size }, (_, i) => i));
      expect(t.tokenizerJson.added_tokens.map((a) => [a.id, a.content])).toEqual(TINY_SPECIAL_TOKENS.map((c, i) => [size - 3 + i, c]));
    }
    byteChars.forEach((c, b) => expect(vocab[c]).toBe(b));
    for (const [a, b] of merges) {
      expect(a.length > 0 && b.length > 0).toBe(true);
      expect(vocab[a + b]).toBeGreaterThanOrEqual(256);
      expect(vocab[a + b]).toBeGreaterThan(Math.max(vocab[a], vocab[b]));
    }
  });

  it('learns the most frequent pair first, ties going to the lexicographically first pair', () => {
    const counts = new Map<string, number>();
    for (const piece of TINY_CORPUS.match(GPT2_SPLIT) ?? []) {
      const s = toSymbols(piece);
      for (let i = 0; i + 1 < s.length; i++) counts.set(s[i] + '\u0000' + s[i + 1], (counts.get(s[i] + '\u0000' + s[i + 1]) ?? 0) + 1);
    }
    const top = Math.max(...counts.values());
    const first = [...counts.entries()].filter(([, n]) => n === top).map(([k]) => k.split('\u0000')).sort((x, y) => (x[0] === y[0] ? (x[1] < y[1] ? -1 : 1) : x[0] < y[0] ? -1 : 1))[0];
    expect(merges[0]).toEqual(first);
  });

  it('loads through loadTokenizer with ChatML settings', () => {
    const tok = loadTokenizer(tiny);
    expect(tok.vocabSize).toBe(384);
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.eosTokenIds).toEqual([383]);
    expect(tok.padToken).toBe('<|endoftext|>');
    expect(tok.padTokenId).toBe(381);
    expect(tok.bosToken).toBeNull();
    expect(tok.chatTemplate).toBe(DEFAULT_CHAT_TEMPLATE);
  });

  it('applies the merges when encoding, as textbook BPE does', () => {
    const tok = loadTokenizer(tiny);
    expect(tok.encode(' the').map((id) => tok.idToToken(id))).toEqual(['Ġthe']);
    const corpusIds = tok.encode(TINY_CORPUS);
    expect(corpusIds).toEqual(referenceEncode(TINY_CORPUS, merges, vocab));
    expect(corpusIds.length).toBeLessThan(0.6 * new TextEncoder().encode(TINY_CORPUS).length);
    const other = 'Strangers visit the zoo at twilight; 42 zebras watch.';
    expect(tok.encode(other)).toEqual(referenceEncode(other, merges, vocab));
  });

  it('round-trips any text, special tokens included', () => {
    const tok = loadTokenizer(tiny);
    for (const text of ['The weather was warm.', '  spaces\n\nnewlines\t', 'café 日本 🦩 👨‍👩‍👧', 'x = [1, 2, 3]\n', '']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
    const chat = renderChat(tok.chatTemplate, [{ role: 'user', content: 'Hi there' }], { addGenerationPrompt: true }).text;
    const ids = tok.encode(chat);
    expect(ids[0]).toBe(tok.tokenToId('<|im_start|>'));
    expect(ids.filter((id) => id === tok.tokenToId('<|im_end|>'))).toHaveLength(1);
    expect(tok.decode(ids)).toBe(chat);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nHi there\nassistant\n');
  });

  it('refuses sizes it cannot build', () => {
    expect(() => makeTinyTokenizer({ vocabSize: 258 })).toThrow(InvalidArgumentError);
    expect(() => makeTinyTokenizer({ vocabSize: 300.5 })).toThrow(InvalidArgumentError);
    expect(() => makeTinyTokenizer({ vocabSize: 100_000 })).toThrow(/supports at most \d+ tokens/);
  });
});
