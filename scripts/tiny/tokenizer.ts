// Tiny tokenizer generator: builds, deterministically, a small byte-level BPE tokenizer in the
// Hugging Face format (tokenizer.json + tokenizer_config.json) for tiny test models and the studio's
// demo model. Ids 0..255 are the 256 bytes (GPT-2's byte-to-character table), then the merges learned
// from the built-in English corpus below by plain BPE counting, then the special tokens
// <|endoftext|>, <|im_start|>, <|im_end|>. The config carries the ChatML chat template.
// It is not a general tokenizer trainer (no normalization, no frequency cut-offs, no dropout) and it
// writes no files: it returns the two JSON objects.
import { DEFAULT_CHAT_TEMPLATE } from '../../src/engine/data/chat-template.ts';
import { InvalidArgumentError } from '../../src/engine/errors.ts';

export interface TinyTokenizerOptions {
  /** Total vocabulary: 256 bytes + merges + 3 special tokens. Default 384. */
  vocabSize?: number;
}

export interface TinyTokenizer {
  tokenizerJson: TinyTokenizerJson;
  tokenizerConfig: Record<string, unknown>;
}

export interface TinyTokenizerJson {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: { id: number; content: string; single_word: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean; special: boolean }[];
  normalizer: null;
  pre_tokenizer: { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  post_processor: { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  decoder: { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    /** "left right" strings, the format every version of the tokenizers library reads. */
    merges: string[];
  };
}

export const TINY_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** The text the merges are learned from: plain English prose and a few chat-style lines. */
export const TINY_CORPUS = `
The sun rose over the quiet town, and the baker opened the door of his shop. The smell of fresh bread
filled the street. Children walked to school, and their parents went to work. It was the start of
another ordinary day, and nobody thought that anything would change.

A language model reads text as a list of tokens. Each token is a small piece of a word, a whole word,
or a mark of punctuation. The model learns which token is likely to come next, and it uses that to
write new text one token at a time. When we fine-tune a model, we show it examples of the answers we
want, and it slowly changes its weights so that those answers become more likely.

The weather was cold in the morning, but the afternoon was warm and bright. In the evening the wind
came back from the sea, and the rain started again. People stayed inside and read books, played
games, or talked with their friends about the things that had happened during the week.

To make a cup of tea, boil some water, put the tea in a warm pot, and pour the water over it. Wait for
three or four minutes, then pour the tea into a cup. Some people like to add milk; others add lemon,
sugar or honey. There is no right way to drink tea, only the way that you like the most.

The river runs through the middle of the city. On both sides there are parks, where people walk their
dogs, ride their bikes, and sit on the grass in the summer. Boats carry visitors up and down the
river, and the old bridges are lit with lights at night.

User: What is the capital of France?
Assistant: The capital of France is Paris.
User: Can you write a short poem about the sea?
Assistant: The sea is wide, the sea is deep, it sings the sailors off to sleep.
User: How many days are there in a week?
Assistant: There are seven days in a week.
User: Please explain what a tokenizer does.
Assistant: A tokenizer turns text into tokens, and tokens into numbers that the model can read.
User: Thank you for your help!
Assistant: You are welcome. I am happy that I could help you today.
`;

/** GPT-2's byte-to-character table: printable bytes stand for themselves, the rest map to U+0100 and up. */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return table;
}

// The ByteLevel pre-tokenizer's split (GPT-2's pattern), the same one the tokenizer applies at encode time.
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * Builds the tokenizer. Merges are learned by counting, over the corpus words (weighted by how often
 * each occurs), every adjacent pair of symbols, merging the most frequent pair everywhere, and
 * repeating; a tie goes to the pair whose left symbol, then right symbol, sorts first (JavaScript
 * string order). Throws InvalidArgumentError for a vocabSize outside 259..(what the corpus supports).
 */
export function makeTinyTokenizer(options: TinyTokenizerOptions = {}): TinyTokenizer {
  const vocabSize = options.vocabSize ?? 384;
  const minSize = 256 + TINY_SPECIAL_TOKENS.length;
  if (!Number.isInteger(vocabSize) || vocabSize < minSize) {
    throw new InvalidArgumentError(`vocabSize must be an integer of at least ${minSize}, got ${vocabSize}`);
  }
  const byteChars = bytesToUnicode();
  const { merges, newTokens } = learnMerges(TINY_CORPUS, byteChars, vocabSize - minSize);

  const vocab: Record<string, number> = {};
  byteChars.forEach((c, b) => (vocab[c] = b));
  newTokens.forEach((t, i) => (vocab[t] = 256 + i));
  const firstSpecial = 256 + newTokens.length;
  const addedTokens = TINY_SPECIAL_TOKENS.map((content, i) => ({
    id: firstSpecial + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));

  const byteLevel = { type: 'ByteLevel' as const, add_prefix_space: false, trim_offsets: false, use_regex: true };
  const tokenizerJson: TinyTokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { ...byteLevel },
    post_processor: { ...byteLevel },
    decoder: { ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };

  const addedTokensDecoder: Record<string, unknown> = {};
  for (const { id, ...rest } of addedTokens) addedTokensDecoder[String(id)] = rest;
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    chat_template: DEFAULT_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 2048,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig };
}

/**
 * Plain BPE over the pre-tokenized corpus, until `count` new tokens exist. Two merges can spell the
 * same token ("ab"+"c" and "a"+"bc"); both stay in `merges`, the token gets one id.
 */
function learnMerges(corpus: string, byteChars: string[], count: number): { merges: [string, string][]; newTokens: string[] } {
  const encoder = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const piece of corpus.match(GPT2_SPLIT) ?? []) {
    const word = Array.from(encoder.encode(piece), (b) => byteChars[b]).join('');
    wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
  }
  // Each distinct word as its current list of symbols, in a fixed (sorted) order.
  const words = [...wordCounts.keys()].sort().map((w) => ({ symbols: Array.from(w), count: wordCounts.get(w) as number }));

  const merges: [string, string][] = [];
  const newTokens: string[] = [];
  const known = new Set(byteChars);
  while (newTokens.length < count) {
    const pairCounts = new Map<string, { a: string; b: string; n: number }>();
    for (const { symbols, count: n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i] + '\u0000' + symbols[i + 1];
        const entry = pairCounts.get(key);
        if (entry === undefined) pairCounts.set(key, { a: symbols[i], b: symbols[i + 1], n });
        else entry.n += n;
      }
    }
    let best: { a: string; b: string; n: number } | undefined;
    for (const p of pairCounts.values()) {
      if (best === undefined || p.n > best.n || (p.n === best.n && (p.a < best.a || (p.a === best.a && p.b < best.b)))) best = p;
    }
    if (best === undefined) {
      throw new InvalidArgumentError(
        `the built-in corpus supports at most ${256 + newTokens.length + TINY_SPECIAL_TOKENS.length} tokens; ask for fewer`,
      );
    }
    merges.push([best.a, best.b]);
    const merged = best.a + best.b;
    if (!known.has(merged)) {
      known.add(merged);
      newTokens.push(merged);
    }
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === best.a && w.symbols[i + 1] === best.b) {
          out.push(merged);
          i++;
        } else {
          out.push(w.symbols[i]);
        }
      }
      w.symbols = out;
    }
  }
  return { merges, newTokens };
}
