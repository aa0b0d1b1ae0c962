// Tests of format detection and row normalisation: every format from its usual columns, ShareGPT
// and messages told apart by item keys, user column mappings, forced formats, typed errors for
// mappings and unknown layouts, and the RowProblem of each kind of bad row.
import { describe, expect, it } from 'vitest';
import { DatasetFormatError, InvalidArgumentError } from '../errors.ts';
import { detectFormat, type FormatDetection, normalizeRow, type NormalizeResult } from './formats.ts';

const detect = (rows: Record<string, unknown>[], options = {}) => detectFormat(rows, options);

function ok(r: NormalizeResult) {
  if (!r.ok) throw new Error(`expected a normalised row, got: ${r.problem.message}`);
  return r.example;
}

function problem(r: NormalizeResult) {
  if (r.ok) throw new Error('expected a row problem');
  return r.problem;
}

describe('detectFormat', () => {
  it('recognises each format from its usual columns', () => {
    const cases: [Record<string, unknown>, string, Record<string, string>][] = [
      [{ instruction: 'i', input: '', output: 'o' }, 'alpaca', { instruction: 'instruction', output: 'output', input: 'input' }],
      [{ instruction: 'i', context: 'c', response: 'r', category: 'qa' }, 'alpaca', { instruction: 'instruction', output: 'response', input: 'context' }],
      [{ conversations: [{ from: 'human', value: 'hi' }, { from: 'gpt', value: 'yo' }] }, 'sharegpt', { conversations: 'conversations' }],
      [{ messages: [{ role: 'user', content: 'hi' }] }, 'messages', { messages: 'messages' }],
      [{ conversations: [{ role: 'user', content: 'hi' }] }, 'messages', { messages: 'conversations' }],
      [{ messages: [{ from: 'human', value: 'hi' }] }, 'sharegpt', { conversations: 'messages' }],
      [{ prompt: 'p', completion: 'c' }, 'prompt-completion', { prompt: 'prompt', completion: 'completion' }],
      [{ text: 'hello', meta: 1 }, 'text', { text: 'text' }],
      [{ input_ids: [1, 2], labels: [-100, 2], text: 'ab' }, 'tokens', { input_ids: 'input_ids', labels: 'labels' }],
    ];
    for (const [row, format, columns] of cases) {
      const d = detect([row]);
      expect({ format: d.format, columns: d.columns }, JSON.stringify(row)).toEqual({ format, columns });
    }
  });

  it('takes the format most sample rows fit, preferring the earlier format on a tie', () => {
    const rows = [{ text: 'a' }, { instruction: 'i', output: 'o' }, { instruction: 'j', output: 'p' }];
    expect(detect(rows)).toMatchObject({ format: 'alpaca', matched: 2, sampled: 3 });
    expect(detect([{ text: 'a' }, { prompt: 'p', completion: 'c' }]).format).toBe('prompt-completion');
    expect(detect([{ prompt: 'p', completion: 'c', text: 'pc' }]).format).toBe('prompt-completion');
  });

  it('follows a user mapping', () => {
    const d = detect([{ question: 'Why?', answer: 'Because.' }], { mapping: { instruction: 'question', output: 'answer' } });
    expect(d).toMatchObject({ format: 'alpaca', columns: { instruction: 'question', output: 'answer' } });
    expect(ok(normalizeRow({ question: 'Why?', answer: 'Because.' }, d))).toEqual({
      kind: 'chat',
      messages: [
        { role: 'user', content: 'Why?' },
        { role: 'assistant', content: 'Because.' },
      ],
      learnFrom: 0,
    });
    const chat = detect([{ dialog: [{ from: 'human', value: 'a' }] }], { mapping: { conversations: 'dialog' } });
    expect(chat).toMatchObject({ format: 'sharegpt', columns: { conversations: 'dialog' } });
  });

  it('takes a forced format, and says which columns it lacks', () => {
    expect(detect([{ text: 't', instruction: 'i', output: 'o' }], { format: 'text' }).format).toBe('text');
    expect(() => detect([{ instruction: 'i' }], { format: 'text', file: 'd.jsonl' })).toThrow(
      /d\.jsonl: the text format needs "text", and no column of that name has a value \(columns: "instruction"\)/,
    );
    expect(() => detect([{ a: 1 }], { format: 'nope' as never })).toThrow(InvalidArgumentError);
  });

  it('refuses bad mappings and layouts it does not know', () => {
    expect(() => detect([{ q: 'x' }], { mapping: { question: 'q' } as never })).toThrow(/unknown field "question"/);
    expect(() => detect([{ q: 'x' }], { mapping: { instruction: '' } })).toThrow(InvalidArgumentError);
    expect(() => detect([{ q: 'x', a: 'y' }], { mapping: { instruction: 'question', output: 'a' }, file: 'f.csv' })).toThrow(
      /f\.csv: the column mapping reads "instruction" from column "question", which the file does not have \(its columns: "q", "a"\)/,
    );
    const err = (() => {
      try {
        detect([{ q: 'x', a: 'y' }], { file: 'f.csv' });
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a throw');
    })();
    expect(err).toBeInstanceOf(DatasetFormatError);
    expect(err.message).toMatch(/no known dataset format fits the columns "q", "a"; expected one of: messages: .*Alpaca: "instruction", optional "input", "output"/);
  });
});

describe('normalizeRow', () => {
  const alpaca: Pick<FormatDetection, 'format' | 'columns'> = { format: 'alpaca', columns: { instruction: 'instruction', output: 'output', input: 'input', system: 'system' } };

  it('turns Alpaca rows into user/assistant conversations', () => {
    expect(ok(normalizeRow({ instruction: 'Translate.', input: 'Bonjour', output: 'Hello', system: 'Be terse.' }, alpaca))).toEqual({
      kind: 'chat',
      messages: [
        { role: 'system', content: 'Be terse.' },
        { role: 'user', content: 'Translate.\nBonjour' },
        { role: 'assistant', content: 'Hello' },
      ],
      learnFrom: 0,
    });
    expect(ok(normalizeRow({ instruction: 'Hi', input: '  ', output: 'Hello', system: null }, alpaca))).toMatchObject({
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
      ],
    });
  });

  it('says what is wrong with bad Alpaca rows', () => {
    expect(problem(normalizeRow({ instruction: 'Hi' }, alpaca))).toEqual({
      message: 'column "output" holds nothing (the column is missing)',
      expected: 'a string (the answer to learn)',
    });
    expect(problem(normalizeRow({ instruction: 'Hi', output: ' ' }, alpaca))).toEqual({ message: 'column "output" is blank', expected: 'a non-empty answer to learn' });
    expect(problem(normalizeRow({ instruction: 5, output: 'x' }, alpaca)).message).toBe('column "instruction" holds number 5');
    expect(problem(normalizeRow({ instruction: '', input: '', output: 'x' }, alpaca)).expected).toBe('a non-empty instruction');
  });

  it('reads ShareGPT and messages, either item shape, with JSON text from CSV cells', () => {
    const share = { format: 'sharegpt' as const, columns: { conversations: 'conversations', system: 'system' } };
    const row = {
      system: 'Sys.',
      conversations: [
        { from: 'human', value: 'Hi' },
        { from: 'gpt', value: 'Hello' },
        { from: 'user', value: 'More' },
        { from: 'assistant', value: 'Sure' },
      ],
    };
    expect(ok(normalizeRow(row, share))).toEqual({
      kind: 'chat',
      messages: [
        { role: 'system', content: 'Sys.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
        { role: 'user', content: 'More' },
        { role: 'assistant', content: 'Sure' },
      ],
      learnFrom: 0,
    });
    const msgs = { format: 'messages' as const, columns: { messages: 'messages' } };
    const csvCell = JSON.stringify([
      { role: 'system', content: 'S' },
      { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
      { role: 'assistant', content: 'c', reasoning_content: 'think' },
    ]);
    expect(ok(normalizeRow({ messages: csvCell }, msgs))).toEqual({
      kind: 'chat',
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'ab' },
        { role: 'assistant', content: 'c', reasoning_content: 'think' },
      ],
      learnFrom: 0,
    });
  });

  it('reports empty conversations, unknown roles, bad content and missing assistant turns', () => {
    const msgs = { format: 'messages' as const, columns: { messages: 'messages' } };
    expect(problem(normalizeRow({ messages: [] }, msgs))).toEqual({ message: 'the conversation in column "messages" is empty', expected: 'at least one message' });
    expect(problem(normalizeRow({ messages: [{ role: 'narrator', content: 'x' }] }, msgs))).toEqual({
      message: 'messages[0] has the unknown role "narrator"',
      expected: 'one of system, user, assistant, tool (ShareGPT: system, human, gpt)',
    });
    expect(problem(normalizeRow({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: null }] }, msgs)).message).toBe(
      'messages[1].content holds null',
    );
    expect(problem(normalizeRow({ messages: [{ role: 'user', content: 'a' }] }, msgs))).toEqual({
      message: 'the conversation in column "messages" has no assistant turn',
      expected: 'at least one assistant message to learn',
    });
    expect(ok(normalizeRow({ messages: [{ role: 'user', content: 'a' }] }, msgs, { requireAssistant: false })).kind).toBe('chat');
    expect(problem(normalizeRow({ messages: 'hello' }, msgs)).message).toBe('column "messages" holds the string "hello"');
    expect(problem(normalizeRow({ messages: [{ content: 'x' }] }, msgs)).message).toBe('messages[0] has no string "role" or "from" (got nothing (the column is missing))');
  });

  it('keeps plain prompt/completion strings and makes conversations of message lists', () => {
    const pc = { format: 'prompt-completion' as const, columns: { prompt: 'prompt', completion: 'completion' } };
    expect(ok(normalizeRow({ prompt: 'The sky is', completion: ' blue.' }, pc))).toEqual({ kind: 'completion', prompt: 'The sky is', completion: ' blue.' });
    const fewShot = [
      { role: 'user', content: '1+1?' },
      { role: 'assistant', content: '2' },
      { role: 'user', content: '2+2?' },
    ];
    expect(ok(normalizeRow({ prompt: fewShot, completion: [{ role: 'assistant', content: '4' }] }, pc))).toEqual({
      kind: 'chat',
      messages: [...fewShot, { role: 'assistant', content: '4' }],
      learnFrom: 3,
    });
    expect(ok(normalizeRow({ prompt: fewShot, completion: '4' }, pc))).toMatchObject({ learnFrom: 3, messages: [{}, {}, {}, { role: 'assistant', content: '4' }] });
    expect(problem(normalizeRow({ prompt: 'p', completion: '' }, pc)).message).toBe('column "completion" is empty');
    expect(problem(normalizeRow({ prompt: fewShot, completion: [{ role: 'user', content: 'x' }] }, pc)).message).toBe('column "completion" has no assistant message');
  });

  it('checks text and token rows', () => {
    const text = { format: 'text' as const, columns: { text: 'body' } };
    expect(ok(normalizeRow({ body: 'Hello' }, text))).toEqual({ kind: 'text', text: 'Hello' });
    expect(problem(normalizeRow({ body: '\n' }, text)).message).toBe('column "body" is blank');
    const tokens = { format: 'tokens' as const, columns: { input_ids: 'input_ids', labels: 'labels' } };
    expect(ok(normalizeRow({ input_ids: [5, 6, 7], labels: [-100, 6, 7] }, tokens))).toEqual({ kind: 'tokens', inputIds: [5, 6, 7], labels: [-100, 6, 7] });
    expect(ok(normalizeRow({ input_ids: new Int32Array([5, 6]) }, tokens))).toEqual({ kind: 'tokens', inputIds: [5, 6], labels: null });
    expect(ok(normalizeRow({ input_ids: '[1, 2]', labels: '[1, -100]' }, tokens))).toEqual({ kind: 'tokens', inputIds: [1, 2], labels: [1, -100] });
    expect(problem(normalizeRow({ input_ids: [1, -100] }, tokens)).message).toBe('column "input_ids" has number -100 at position 1');
    expect(problem(normalizeRow({ input_ids: [1, 2.5] }, tokens)).message).toBe('column "input_ids" has number 2.5 at position 1');
    expect(problem(normalizeRow({ input_ids: [1, 2], labels: [1] }, tokens)).message).toBe('column "labels" has 1 labels for 2 input ids');
    expect(problem(normalizeRow({ input_ids: [] }, tokens)).message).toBe('column "input_ids" is an empty list');
  });
});
