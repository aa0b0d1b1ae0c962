// Tests of tokenization with loss masks. They show exactly which tokens count, for the real Qwen3
// tokenizer and template (ChatML) and for Llama 3's template, in multi-turn conversations; also the
// ChatML default for a model without a template, prompt/completion (plain and conversational), text,
// pre-tokenized rows, trainOnPrompt, and the character-offset fallback when a merge crosses a boundary.
import { beforeAll, describe, expect, it } from 'vitest';
import { ChatTemplateError, InvalidArgumentError, TokenizerError } from '../errors.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { type ChatMessage, renderChat } from './chat-template.ts';
import { qwen3Tokenizer, tinyChatmlTokenizer, tinyLlama3Tokenizer } from './fixtures/tokenizers.ts';
import { detectFormat, type Example, normalizeRow } from './formats.ts';
import { chatSpans, createExampleTokenizer, encodeWithSpans, IGNORE_INDEX, type TokenizedExample, tokenCharRanges } from './tokenize.ts';

const CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is 2 + 2?' },
  { role: 'assistant', content: '2 + 2 = 4.' },
  { role: 'user', content: 'And times 3?' },
  { role: 'assistant', content: '12.' },
];
const chat = (messages: ChatMessage[], learnFrom = 0): Example => ({ kind: 'chat', messages, learnFrom });
const NOW = new Date(2024, 6, 26, 12);

/** The decoded text of each run of counted tokens. */
function countedSpans(tok: Tokenizer, ex: TokenizedExample): string[] {
  const spans: string[] = [];
  let run: number[] = [];
  for (let i = 0; i <= ex.inputIds.length; i++) {
    if (i < ex.inputIds.length && ex.labels[i] !== IGNORE_INDEX) run.push(ex.inputIds[i]);
    else if (run.length > 0) {
      spans.push(tok.decode(run));
      run = [];
    }
  }
  return spans;
}

/** Every token decoded, counted ones in brackets. */
function maskView(tok: Tokenizer, ex: TokenizedExample): string {
  return Array.from(ex.inputIds, (id, i) => {
    const t = JSON.stringify(tok.decode([id]));
    return ex.labels[i] === IGNORE_INDEX ? t : `[${t}]`;
  }).join(' ');
}

function checkAligned(ex: TokenizedExample): void {
  expect(ex.labels.length).toBe(ex.inputIds.length);
  ex.labels.forEach((l, i) => expect(l === IGNORE_INDEX || l === ex.inputIds[i]).toBe(true));
}

describe('masks with the Qwen3 template and tokenizer (ChatML)', () => {
  let qwen: Tokenizer;
  beforeAll(() => {
    qwen = qwen3Tokenizer();
  }, 60_000);

  it('counts each assistant text and its <|im_end|>, not the header nor the newline after', () => {
    const t = createExampleTokenizer(qwen, { now: NOW });
    const ex = t.tokenize(chat(CONVERSATION));
    checkAligned(ex);
    const spans = countedSpans(qwen, ex);
    expect(spans, `counted: ${JSON.stringify(spans)}`).toEqual(['2 + 2 = 4.<|im_end|>', '<think>\n\n</think>\n\n12.<|im_end|>']);
    expect(maskView(qwen, ex), 'tokens, counted in brackets').toBe(
      '"<|im_start|>" "system" "\\n" "You" " are" " a" " helpful" " assistant" "." "<|im_end|>" "\\n" ' +
        '"<|im_start|>" "user" "\\n" "What" " is" " " "2" " +" " " "2" "?" "<|im_end|>" "\\n" ' +
        '"<|im_start|>" "assistant" "\\n" ["2"] [" +"] [" "] ["2"] [" ="] [" "] ["4"] ["."] ["<|im_end|>"] "\\n" ' +
        '"<|im_start|>" "user" "\\n" "And" " times" " " "3" "?" "<|im_end|>" "\\n" ' +
        '"<|im_start|>" "assistant" "\\n" ["<think>"] ["\\n\\n"] ["</think>"] ["\\n\\n"] ["1"] ["2"] ["."] ["<|im_end|>"] "\\n"',
    );
    expect(Array.from(ex.inputIds.slice(0, 3))).toEqual([151644, 8948, 198]);
    expect(ex.inputIds.filter((id, i) => id === 151645 && ex.labels[i] === 151645).length).toBe(2);
    expect(t.offsetFallbacks).toBe(0);
    expect(t.warning).toBeNull();
  });

  it('leaves the empty think block of the generation prompt out when enable_thinking is false', () => {
    const t = createExampleTokenizer(qwen, { now: NOW, templateExtra: { enable_thinking: false } });
    const ex = t.tokenize(chat(CONVERSATION));
    const spans = countedSpans(qwen, ex);
    expect(spans, `counted: ${JSON.stringify(spans)}`).toEqual(['2 + 2 = 4.<|im_end|>', '12.<|im_end|>']);
  });

  it('handles turns the template writes differently: reasoning, consecutive assistant turns', () => {
    const t = createExampleTokenizer(qwen, { now: NOW });
    const reasoning = t.tokenize(
      chat([
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'One.', reasoning_content: 'hmm' },
        { role: 'user', content: 'again' },
        { role: 'assistant', content: 'Two.', reasoning_content: 'think more' },
      ]),
    );
    const spans = countedSpans(qwen, reasoning);
    expect(spans, `counted: ${JSON.stringify(spans)}`).toEqual(['One.<|im_end|>', '<think>\nthink more\n</think>\n\nTwo.<|im_end|>']);
    const twice = t.tokenize(
      chat([
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'One.' },
        { role: 'assistant', content: 'Two.' },
      ]),
    );
    expect(qwen.decode(Array.from(twice.inputIds))).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nOne.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nTwo.<|im_end|>\n',
    );
    expect(countedSpans(qwen, twice)).toEqual(['One.<|im_end|>', 'Two.<|im_end|>']);
  });

  it('gives the same ids as encoding the whole rendered conversation', () => {
    const t = createExampleTokenizer(qwen, { now: NOW });
    const ex = t.tokenize(chat(CONVERSATION));
    const text =
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n' +
      '<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n' +
      '<|im_start|>assistant\n<think>\n\n</think>\n\n12.<|im_end|>\n';
    expect(Array.from(ex.inputIds)).toEqual(qwen.encode(text, { addSpecialTokens: false }));
  });

  it('counts only the completion of a conversational prompt/completion row, not the few-shot answer in the prompt', () => {
    const d = detectFormat([{ prompt: [], completion: [] }], { format: 'prompt-completion' });
    const norm = normalizeRow(
      {
        prompt: [
          { role: 'user', content: 'Capital of Italy?' },
          { role: 'assistant', content: 'Rome.' },
          { role: 'user', content: 'Capital of Spain?' },
        ],
        completion: [{ role: 'assistant', content: 'Madrid.' }],
      },
      d,
    );
    if (!norm.ok) throw new Error(norm.problem.message);
    const ex = createExampleTokenizer(qwen, { now: NOW }).tokenize(norm.example);
    const spans = countedSpans(qwen, ex);
    expect(spans, `counted: ${JSON.stringify(spans)}`).toEqual(['<think>\n\n</think>\n\nMadrid.<|im_end|>']);
  });

  it('counts the completion and the EOS of plain prompt/completion strings, through the offset fallback when a word straddles them', () => {
    const t = createExampleTokenizer(qwen, { now: NOW });
    const clean = t.tokenize({ kind: 'completion', prompt: 'The capital of France is', completion: ' Paris.' });
    expect(countedSpans(qwen, clean)).toEqual([' Paris.<|im_end|>']);
    expect(t.offsetFallbacks).toBe(0);
    const straddle = t.tokenize({ kind: 'completion', prompt: 'The capital of Fr', completion: 'ance is Paris.' });
    expect(t.offsetFallbacks).toBe(1);
    expect(maskView(qwen, straddle)).toBe('"The" " capital" " of" [" France"] [" is"] [" Paris"] ["."] ["<|im_end|>"]');
  });

  it('counts every token of a text example and appends the EOS', () => {
    const ex = createExampleTokenizer(qwen).tokenize({ kind: 'text', text: 'Hello world' });
    expect(Array.from(ex.inputIds)).toEqual([9707, 1879, 151645]);
    expect(Array.from(ex.labels)).toEqual([9707, 1879, 151645]);
  });

  it('counts every token with trainOnPrompt', () => {
    const ex = createExampleTokenizer(qwen, { now: NOW, trainOnPrompt: true }).tokenize(chat(CONVERSATION));
    expect(Array.from(ex.labels)).toEqual(Array.from(ex.inputIds));
  });
});

describe('masks with the Llama 3.2 template', () => {
  const llama = tinyLlama3Tokenizer();

  it('counts each assistant text and its <|eot_id|>, not the header', () => {
    const t = createExampleTokenizer(llama, { templateExtra: { date_string: '26 Jul 2024' } });
    const ex = t.tokenize(chat(CONVERSATION));
    checkAligned(ex);
    const spans = countedSpans(llama, ex);
    expect(spans, `counted: ${JSON.stringify(spans)}`).toEqual(['2 + 2 = 4.<|eot_id|>', '12.<|eot_id|>']);
    const view = maskView(llama, ex);
    expect(view.startsWith('"<|begin_of_text|>" "<|start_header_id|>"'), view).toBe(true);
    expect(view).toContain(
      '"<|start_header_id|>" "a" "ss" "ist" "ant" "<|end_header_id|>" "\\n" "\\n" ["2"] [" "] ["+"] [" "] ["2"] [" "] ["="] [" "] ["4"] ["."] ["<|eot_id|>"] "<|start_header_id|>" "u"',
    );
    expect(view.endsWith('"<|end_header_id|>" "\\n" "\\n" ["1"] ["2"] ["."] ["<|eot_id|>"]'), view).toBe(true);
    expect(ex.inputIds[0]).toBe(llama.bosTokenId);
    expect(t.offsetFallbacks).toBe(0);
  });

  it('counts the trimmed text the template writes, and a third turn too', () => {
    const t = createExampleTokenizer(llama, { templateExtra: { date_string: '26 Jul 2024' } });
    const ex = t.tokenize(
      chat([
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: '  Hello there.  ' },
        { role: 'user', content: 'Bye' },
        { role: 'assistant', content: 'Goodbye.' },
        { role: 'user', content: 'Really?' },
        { role: 'assistant', content: 'Yes.' },
      ]),
    );
    const spans = countedSpans(llama, ex);
    expect(spans, `counted: ${JSON.stringify(spans)}`).toEqual(['Hello there.<|eot_id|>', 'Goodbye.<|eot_id|>', 'Yes.<|eot_id|>']);
  });

  it('counts the output of an Alpaca row rendered as a chat', () => {
    const d = detectFormat([{ instruction: 'x', output: 'y' }]);
    const norm = normalizeRow({ instruction: 'Name a colour.', input: '', output: 'Blue.' }, d);
    if (!norm.ok) throw new Error(norm.problem.message);
    const ex = createExampleTokenizer(llama, { now: NOW }).tokenize(norm.example);
    expect(countedSpans(llama, ex)).toEqual(['Blue.<|eot_id|>']);
  });

  it('puts the BOS of the post-processor before plain prompt/completion and text examples', () => {
    const t = createExampleTokenizer(llama);
    const pc = t.tokenize({ kind: 'completion', prompt: 'Q: tea? A:', completion: ' yes' });
    expect(pc.inputIds[0]).toBe(llama.bosTokenId);
    expect(pc.labels[0]).toBe(IGNORE_INDEX);
    expect(countedSpans(llama, pc)).toEqual([' yes<|eot_id|>']);
  });
});

describe('masks with the ChatML default template', () => {
  it('formats conversations as ChatML with a warning and counts text + <|im_end|>', () => {
    const tok = tinyChatmlTokenizer(false);
    expect(tok.chatTemplate).toBeNull();
    const t = createExampleTokenizer(tok);
    expect(t.warning).toMatch(/no chat template; conversations are formatted as ChatML/);
    const ex = t.tokenize(chat(CONVERSATION));
    const spans = countedSpans(tok, ex);
    expect(spans, `counted: ${JSON.stringify(spans)}`).toEqual(['2 + 2 = 4.<|im_end|>', '12.<|im_end|>']);
    expect(tok.decode(Array.from(ex.inputIds))).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n' +
        '<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n12.<|im_end|>\n',
    );
  });

  it('skips an end-of-turn marker written inside the assistant text', () => {
    const tok = tinyChatmlTokenizer();
    const ex = createExampleTokenizer(tok).tokenize(
      chat([
        { role: 'user', content: 'Show the marker' },
        { role: 'assistant', content: 'It is <|im_end|> here' },
      ]),
    );
    expect(countedSpans(tok, ex)).toEqual(['It is <|im_end|> here<|im_end|>']);
  });
});

describe('pre-tokenized rows', () => {
  const tok = tinyChatmlTokenizer();

  it('keeps labels as given, or counts every token', () => {
    const t = createExampleTokenizer(tok);
    const given = t.tokenize({ kind: 'tokens', inputIds: [10, 11, 12], labels: [-100, 11, -100] });
    expect(Array.from(given.labels)).toEqual([-100, 11, -100]);
    expect(Array.from(t.tokenize({ kind: 'tokens', inputIds: [10, 11], labels: null }).labels)).toEqual([10, 11]);
    const all = createExampleTokenizer(tok, { trainOnPrompt: true }).tokenize({ kind: 'tokens', inputIds: [10, 11], labels: [-100, -100] });
    expect(Array.from(all.labels)).toEqual([10, 11]);
  });

  it('refuses ids outside the vocabulary', () => {
    expect(() => createExampleTokenizer(tok).tokenize({ kind: 'tokens', inputIds: [1, tok.vocabSize], labels: null })).toThrow(InvalidArgumentError);
  });
});

describe('span location and alignment', () => {
  const tok = tinyChatmlTokenizer();

  it('finds the spans of a template that renders earlier turns differently (Qwen3-like)', () => {
    // Only the last assistant turn gets a "<r>" prefix, as Qwen3 does with its think block.
    const template =
      '{% for m in messages %}{% if m.role == "assistant" and loop.last %}{{ "<|im_start|>assistant\\n<r>" + m.content + "<|im_end|>\\n" }}' +
      '{% else %}{{ "<|im_start|>" + m.role + "\\n" + m.content + "<|im_end|>\\n" }}{% endif %}{% endfor %}' +
      '{% if add_generation_prompt %}{{ "<|im_start|>assistant\\n" }}{% endif %}';
    const render = (m: readonly ChatMessage[], g: boolean) => renderChat(template, m, { addGenerationPrompt: g }).text;
    const { text, spans } = chatSpans(render, CONVERSATION, 0, ['<|im_end|>']);
    expect(spans.map(([a, b]) => text.slice(a, b))).toEqual(['2 + 2 = 4.<|im_end|>', '<r>12.<|im_end|>']);
  });

  it('falls back to the content when no prefix of the conversation renders alike, keeping repeated answers apart', () => {
    // Every turn carries the conversation's length, so no rendered prefix is a prefix of the whole.
    const render = (m: readonly ChatMessage[], g: boolean) =>
      m.map((x) => `<|im_start|>${x.role} ${m.length}\n${x.content}<|im_end|>\n`).join('') + (g ? `<|im_start|>assistant ${m.length + 1}\n` : '');
    const messages = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'OK' },
      { role: 'user', content: 'Again' },
      { role: 'assistant', content: 'OK' },
    ];
    const { text, spans } = chatSpans(render, messages, 0, ['<|im_end|>']);
    expect(text).toBe('<|im_start|>user 4\nHi<|im_end|>\n<|im_start|>assistant 4\nOK<|im_end|>\n<|im_start|>user 4\nAgain<|im_end|>\n<|im_start|>assistant 4\nOK<|im_end|>\n');
    expect(spans).toEqual([
      [text.indexOf('OK'), text.indexOf('OK') + 12],
      [text.lastIndexOf('OK'), text.lastIndexOf('OK') + 12],
    ]);
  });

  it('refuses a turn with no end it can find', () => {
    const render = (m: readonly ChatMessage[], g: boolean) => m.map((x) => `${x.role}: ${x.content}\n`).join('') + (g ? 'assistant: ' : '');
    // The whole render of messages[0..i] is a prefix, so the turn ends where it does.
    const ok = chatSpans(render, CONVERSATION.slice(1, 3), 0, ['<|im_end|>']);
    expect(ok.spans.map(([a, b]) => ok.text.slice(a, b))).toEqual(['2 + 2 = 4.\n']);
    // A template that reorders turns leaves no prefix to start from.
    const reversed = (m: readonly ChatMessage[], g: boolean) => [...m].reverse().map((x) => `${x.role}: ${x.content}|`).join('') + (g ? '>' : '');
    expect(() => chatSpans(reversed, CONVERSATION, 0, ['<|im_end|>'])).toThrow(ChatTemplateError);
  });

  it('passes template rejections on as ChatTemplateError', () => {
    const strict = { ...tok, chatTemplate: "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}x" };
    expect(() => createExampleTokenizer(strict).tokenize(chat(CONVERSATION))).toThrow(/System role not supported/);
  });

  it('maps tokens to characters when a merge crosses a span boundary', () => {
    const text = 'The weather was cold';
    const r = encodeWithSpans(tok, text, [[10, text.length]]);
    expect(r.exact).toBe(false);
    expect(r.ids).toEqual(tok.encode(text, { addSpecialTokens: false }));
    const ranges = tokenCharRanges(tok, r.ids, text);
    expect(ranges[0][0]).toBe(0);
    expect(ranges.at(-1)![1]).toBe(text.length);
    r.ids.forEach((_, i) => expect(r.counted[i]).toBe(ranges[i][1] > 10));
    expect(() => tokenCharRanges(tok, tok.encode('abc'), 'xyz')).toThrow(TokenizerError);
  });
});
