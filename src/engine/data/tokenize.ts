// Tokenization of normalised examples into `{ inputIds, labels }` with a loss mask, Hugging Face
// style: labels hold the input id where the token counts toward the loss and -100 elsewhere, aligned
// with inputIds (the model shifts them inside).
//
// What counts by default is what the model must learn to write:
// - conversations: each assistant turn (from the example's `learnFrom` on) from just after the
//   template's generation prompt through the end-of-turn token that closes it (ChatML: the text and
//   <|im_end|>, not "<|im_start|>assistant\n" nor the "\n" after <|im_end|>; Llama 3: the text and
//   <|eot_id|>, not the header). Alpaca rows and list-valued prompt/completion rows are conversations.
// - plain prompt/completion strings: the completion and the EOS token appended after it.
// - text: every token, with the EOS token appended.
// - pre-tokenized rows: their labels, or every token when they have none.
// `trainOnPrompt` counts every token.
//
// The mask needs no `{% generation %}` markers: the assistant spans are found as character ranges
// by rendering prefixes of the conversation (messages[0..i) with the generation prompt, and
// messages[0..i] without it), the text is encoded segment by segment, and the result is checked
// against the encoding of the whole string. When a merge crosses a segment boundary the two differ;
// then the whole-string encoding is used and each token's character range comes from decoding the
// ids one by one, a token counting when its characters overlap a counted span.
// It does not read files, detect formats, truncate or pack (dataset.ts does).
import { ChatTemplateError, InvalidArgumentError, TokenizerError } from '../errors.ts';
import { StreamDecoder, type Tokenizer } from '../model/tokenizer.ts';
import { type ChatMessage, DEFAULT_CHAT_TEMPLATE, renderChat } from './chat-template.ts';
import type { Example } from './formats.ts';

/** The label of a token that does not count toward the loss (PyTorch's cross-entropy ignore_index). */
export const IGNORE_INDEX = -100;

export interface TokenizedExample {
  inputIds: Int32Array;
  /** The input id where the token counts, IGNORE_INDEX elsewhere. Same length as inputIds. */
  labels: Int32Array;
}

export interface ExampleTokenizerOptions {
  /** Count every token, prompts and template text included. Default false. */
  trainOnPrompt?: boolean;
  /** More chat template variables, e.g. `{ enable_thinking: false }` (Qwen3) or `{ date_string: '26 Jul 2024' }`. */
  templateExtra?: Record<string, unknown>;
  /** The time `strftime_now` reads in templates; fixed for the tokenizer's life so that every render agrees. */
  now?: Date;
}

export interface ExampleTokenizer {
  /**
   * Tokenizes one example. Throws ChatTemplateError when the template rejects the conversation or
   * its assistant turns cannot be located in the rendered text, TokenizerError when the text cannot
   * be encoded or the decoded tokens cannot be matched to it, and InvalidArgumentError for
   * pre-tokenized ids outside the vocabulary.
   */
  tokenize(example: Example): TokenizedExample;
  /** A sentence for the person when conversations are formatted with DEFAULT_CHAT_TEMPLATE, else null. */
  readonly warning: string | null;
  /** Examples so far whose segment-by-segment encoding differed from the whole-string one. */
  readonly offsetFallbacks: number;
}

/** A half-open character range [start, end) of a rendered text. */
export type CharSpan = readonly [number, number];

export function createExampleTokenizer(tokenizer: Tokenizer, options: ExampleTokenizerOptions = {}): ExampleTokenizer {
  const trainOnPrompt = options.trainOnPrompt ?? false;
  const now = options.now ?? new Date();
  const template = tokenizer.chatTemplate;
  const markers = endOfTurnMarkers(tokenizer, template === null);
  const specials = postProcessorSpecials(tokenizer);
  let fallbacks = 0;

  const render: Renderer = (messages, addGenerationPrompt) =>
    renderChat(template, messages, {
      addGenerationPrompt,
      bosToken: tokenizer.bosToken,
      eosToken: tokenizer.eosToken,
      extra: options.templateExtra,
      source: tokenizer.chatTemplateFile ?? undefined,
      now,
    }).text;

  const encodeMasked = (text: string, spans: readonly CharSpan[]): { ids: number[]; counted: boolean[] } => {
    const r = encodeWithSpans(tokenizer, text, spans);
    if (!r.exact) fallbacks++;
    return r;
  };

  const appendEos = (ids: number[], counted: boolean[], count: boolean) => {
    const eos = tokenizer.eosTokenId;
    if (eos !== null && ids[ids.length - 1] !== eos) {
      ids.push(eos);
      counted.push(count);
    }
  };

  return {
    warning:
      template === null
        ? 'This model has no chat template; conversations are formatted as ChatML (<|im_start|>role ... <|im_end|>).'
        : null,
    get offsetFallbacks() {
      return fallbacks;
    },
    tokenize(example) {
      switch (example.kind) {
        case 'chat': {
          const { text, spans } = chatSpans(render, example.messages, example.learnFrom, markers);
          const { ids, counted } = encodeMasked(text, trainOnPrompt ? [[0, text.length]] : spans);
          return toExample(ids, counted);
        }
        case 'completion': {
          const text = example.prompt + example.completion;
          const { ids, counted } = encodeMasked(text, [[trainOnPrompt ? 0 : example.prompt.length, text.length]]);
          const allIds = [...specials.prefix, ...ids, ...specials.suffix];
          const allCounted = [...specials.prefix.map(() => trainOnPrompt), ...counted, ...specials.suffix.map(() => true)];
          appendEos(allIds, allCounted, true);
          return toExample(allIds, allCounted);
        }
        case 'text': {
          const ids = [...specials.prefix, ...tokenizer.encode(example.text, { addSpecialTokens: false }), ...specials.suffix];
          const counted = ids.map(() => true);
          appendEos(ids, counted, true);
          return toExample(ids, counted);
        }
        case 'tokens': {
          const n = example.inputIds.length;
          const inputIds = new Int32Array(n);
          const labels = new Int32Array(n);
          for (let i = 0; i < n; i++) {
            const id = example.inputIds[i];
            const label = trainOnPrompt || example.labels === null ? id : example.labels[i];
            if (id >= tokenizer.vocabSize) {
              throw new InvalidArgumentError(`input_ids[${i}] is ${id}, outside the vocabulary of ${tokenizer.vocabSize} tokens`);
            }
            if (label >= tokenizer.vocabSize) {
              throw new InvalidArgumentError(`labels[${i}] is ${label}, outside the vocabulary of ${tokenizer.vocabSize} tokens`);
            }
            inputIds[i] = id;
            labels[i] = label;
          }
          return { inputIds, labels };
        }
      }
    },
  };
}

function toExample(ids: readonly number[], counted: readonly boolean[]): TokenizedExample {
  const inputIds = Int32Array.from(ids);
  const labels = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) labels[i] = counted[i] ? ids[i] : IGNORE_INDEX;
  return { inputIds, labels };
}

/** Renders messages with the model's template; `addGenerationPrompt` ends with the header of an assistant turn. */
export type Renderer = (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => string;

/**
 * Renders a conversation and finds, for every assistant turn at index `learnFrom` or later, the
 * characters the model writes: from where the turn's own text starts through the first end-of-turn
 * marker after its content, never past where the turn ends.
 *
 * Where the text starts, tried in order:
 * 1. the end of render(messages[0..i), generation prompt), when that is a prefix of the whole render;
 * 2. when only render(messages[0..i)) is a prefix (templates whose generation prompt differs from
 *    how they write a turn in a longer conversation, e.g. Qwen3 with enable_thinking false, or that
 *    write the last turn differently), the end of that prefix plus as much of the generation prompt
 *    as the whole render repeats there;
 * 3. otherwise, where the turn's trimmed content first occurs after the previous turn's content.
 * The turn ends where render(messages[0..i]) ends when that is a prefix of the whole render, and
 * in any case before the next assistant turn starts. The content (trimmed) is looked for first so
 * that an end-of-turn marker inside it is not taken for the end; without a marker the span ends at
 * the end of the turn, or of its content. Throws ChatTemplateError when a turn cannot be located.
 */
export function chatSpans(
  render: Renderer,
  messages: readonly ChatMessage[],
  learnFrom: number,
  markers: readonly string[],
): { text: string; spans: CharSpan[] } {
  const full = render(messages, false);
  const turns: number[] = [];
  for (let i = Math.max(0, learnFrom); i < messages.length; i++) if (messages[i].role === 'assistant') turns.push(i);

  /** Where the trimmed content of message i occurs at or after `from` (and ends by `limit`), or -1. */
  const findContent = (i: number, from: number, limit = full.length): [number, number] | null => {
    const probe = messages[i].content.trim();
    if (probe.length === 0) return null;
    const at = full.indexOf(probe, from);
    return at >= 0 && at + probe.length <= limit ? [at, at + probe.length] : null;
  };

  const starts: number[] = [];
  let searchFrom = 0;
  for (const i of turns) {
    const before = messages.slice(0, i);
    const prompt = render(before, true);
    let start = -1;
    if (full.startsWith(prompt) && prompt.length >= searchFrom) start = prompt.length;
    else {
      const plain = render(before, false);
      if (full.startsWith(plain) && plain.length >= searchFrom && prompt.startsWith(plain)) {
        const header = prompt.slice(plain.length);
        let n = 0;
        while (n < header.length && full[plain.length + n] === header[n]) n++;
        if (n > 0) start = plain.length + n;
      }
      if (start < 0) start = findContent(i, searchFrom)?.[0] ?? -1;
    }
    if (start < 0) {
      throw new ChatTemplateError(
        `cannot find where assistant turn ${i} starts in the rendered conversation: the template writes the turns before it differently when the conversation goes on`,
      );
    }
    starts.push(start);
    // The next turn is looked for after this one's content, when that lies before the first end-of-turn marker.
    let firstMarker = full.length;
    for (const marker of markers) {
      const at = full.indexOf(marker, start);
      if (at >= 0 && at < firstMarker) firstMarker = at;
    }
    searchFrom = findContent(i, start, firstMarker)?.[1] ?? start;
  }

  const spans: CharSpan[] = [];
  turns.forEach((i, k) => {
    const start = starts[k];
    let limit = k + 1 < turns.length ? starts[k + 1] : full.length;
    const through = render(messages.slice(0, i + 1), false);
    const turnEnd = full.startsWith(through) && through.length >= start ? through.length : -1;
    if (turnEnd >= 0) limit = Math.min(limit, turnEnd);

    const contentEnd = findContent(i, start, limit)?.[1] ?? start;
    let end = -1;
    for (const marker of markers) {
      const at = full.indexOf(marker, contentEnd);
      if (at >= 0 && at + marker.length <= limit && (end < 0 || at + marker.length < end)) end = at + marker.length;
    }
    if (end < 0) {
      if (turnEnd >= 0) end = limit;
      else if (contentEnd > start) end = contentEnd;
      else {
        throw new ChatTemplateError(`cannot find where assistant turn ${i} ends in the rendered conversation (no end-of-turn token follows it)`);
      }
    }
    if (end > start) spans.push([start, end]);
  });
  return { text: full, spans };
}

/**
 * The strings that close an assistant turn: the tokens of `eosTokenIds` and the eos token, plus
 * <|im_end|> when conversations use DEFAULT_CHAT_TEMPLATE.
 */
export function endOfTurnMarkers(tokenizer: Tokenizer, usesDefaultTemplate: boolean): string[] {
  const out: string[] = [];
  const add = (s: string | null | undefined) => {
    if (s && !out.includes(s)) out.push(s);
  };
  for (const id of tokenizer.eosTokenIds) add(tokenizer.idToToken(id));
  add(tokenizer.eosToken);
  if (usesDefaultTemplate && DEFAULT_CHAT_TEMPLATE.includes('<|im_end|>')) add('<|im_end|>');
  return out;
}

/** The ids the tokenizer's post-processor adds around a text (Llama 3: <|begin_of_text|> before it). */
function postProcessorSpecials(tokenizer: Tokenizer): { prefix: number[]; suffix: number[] } {
  const probe = 'a';
  const bare = tokenizer.encode(probe, { addSpecialTokens: false });
  const full = tokenizer.encode(probe, { addSpecialTokens: true });
  for (let at = 0; at + bare.length <= full.length; at++) {
    if (bare.every((id, j) => full[at + j] === id)) return { prefix: full.slice(0, at), suffix: full.slice(at + bare.length) };
  }
  throw new TokenizerError('the tokenizer\'s post-processor changes the text\'s own tokens; its special tokens cannot be placed', { file: 'tokenizer.json' });
}

/**
 * Encodes `text` (without the post-processor's special tokens) and marks the tokens that fall in
 * `spans`. Each piece between span boundaries is encoded on its own; when the concatenation equals
 * the encoding of the whole text (`exact`), a token counts when its piece is in a span. Otherwise
 * the whole-text encoding is used and a token counts when the characters it decodes to overlap a span.
 */
export function encodeWithSpans(
  tokenizer: Tokenizer,
  text: string,
  spans: readonly CharSpan[],
): { ids: number[]; counted: boolean[]; exact: boolean } {
  const whole = tokenizer.encode(text, { addSpecialTokens: false });
  const cuts = new Set<number>([0, text.length]);
  for (const [s, e] of spans) {
    cuts.add(Math.max(0, Math.min(text.length, s)));
    cuts.add(Math.max(0, Math.min(text.length, e)));
  }
  const points = [...cuts].sort((a, b) => a - b);
  const ids: number[] = [];
  const counted: boolean[] = [];
  for (let p = 0; p + 1 < points.length; p++) {
    const [a, b] = [points[p], points[p + 1]];
    if (a === b) continue;
    const inSpan = spans.some(([s, e]) => s <= a && b <= e);
    for (const id of tokenizer.encode(text.slice(a, b), { addSpecialTokens: false })) {
      ids.push(id);
      counted.push(inSpan);
    }
  }
  if (ids.length === whole.length && ids.every((id, i) => id === whole[i])) return { ids, counted, exact: true };

  const ranges = tokenCharRanges(tokenizer, whole, text);
  const wholeCounted = ranges.map(([a, b]) => spans.some(([s, e]) => (a < b ? a < e && b > s : s <= a && a < e)));
  return { ids: whole, counted: wholeCounted, exact: false };
}

/**
 * The character range of `text` each token of `ids` stands for, from decoding the ids one at a time
 * (a token that ends inside a character shares the range of the token that completes it). The
 * decoded text is matched to `text` allowing only whitespace differences (decoders that add or drop
 * spaces). Throws TokenizerError when they differ otherwise.
 */
export function tokenCharRanges(tokenizer: Tokenizer, ids: readonly number[], text: string): [number, number][] {
  const decoder = new StreamDecoder(tokenizer);
  const ranges: [number, number][] = new Array(ids.length);
  let decoded = '';
  let pending: number[] = [];
  const emit = (piece: string) => {
    for (const k of pending) ranges[k] = [decoded.length, decoded.length + piece.length];
    decoded += piece;
    pending = [];
  };
  ids.forEach((id, k) => {
    pending.push(k);
    const piece = decoder.push(id);
    if (piece.length > 0) emit(piece);
  });
  emit(decoder.flush());

  const map = alignText(decoded, text);
  if (map === null) {
    throw new TokenizerError('the decoded tokens do not spell the rendered text, so the loss mask cannot be placed on them', {
      file: 'tokenizer.json',
    });
  }
  return ranges.map(([a, b]) => [map[a], map[b]]);
}

/** For each index of `decoded` (and its end), the matching index of `text`; whitespace may differ. Null when other characters differ. */
function alignText(decoded: string, text: string): Int32Array | null {
  const map = new Int32Array(decoded.length + 1);
  let i = 0;
  let j = 0;
  while (i < decoded.length) {
    if (j < text.length && decoded[i] === text[j]) {
      map[i++] = j++;
    } else if (/\s/.test(decoded[i])) {
      map[i++] = j;
    } else if (j < text.length && /\s/.test(text[j])) {
      j++;
    } else {
      return null;
    }
  }
  map[decoded.length] = text.length;
  return map;
}
