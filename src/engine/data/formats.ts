// Dataset formats: recognises which of the common fine-tuning layouts the rows of a file follow
// (Alpaca, ShareGPT, messages, prompt/completion, plain text, pre-tokenized ids), with a column
// mapping the user can override, and turns each row into one normalised Example: a conversation,
// a prompt and completion, a text, or token ids. A row that does not fit gives a RowProblem
// saying what is wrong and what was expected, never an exception and never a silent drop.
// It does not read files (readers.ts), apply chat templates or tokenize (tokenize.ts).
import type { ChatMessage } from './chat-template.ts';
import { type BadRow, DatasetFormatError, InvalidArgumentError } from '../errors.ts';

export type ExampleFormat = 'messages' | 'sharegpt' | 'prompt-completion' | 'alpaca' | 'tokens' | 'text';

/** The formats, in the order detection prefers them when a row fits several. */
export const EXAMPLE_FORMATS: readonly ExampleFormat[] = ['messages', 'sharegpt', 'prompt-completion', 'alpaca', 'tokens', 'text'];

/** The fields formats read; a ColumnMapping says which column holds each. */
export const FIELD_NAMES = [
  'instruction',
  'input',
  'output',
  'system',
  'conversations',
  'messages',
  'prompt',
  'completion',
  'text',
  'input_ids',
  'labels',
] as const;
export type FieldName = (typeof FIELD_NAMES)[number];

/** Field name → column name in the file, e.g. `{ instruction: 'question', output: 'answer' }`. */
export type ColumnMapping = Partial<Record<FieldName, string>>;

/** A bad row: where it is (file, line, row index) and what was expected. */
export type RowError = BadRow;

/** What is wrong with one row, before its location is attached. */
export interface RowProblem {
  message: string;
  expected: string;
}

/** One row, normalised. */
export type Example =
  /** A conversation; the assistant turns at index `learnFrom` or later are what the model learns to write. */
  | { kind: 'chat'; messages: ChatMessage[]; learnFrom: number }
  /** Plain prompt and completion strings, joined without a chat template. */
  | { kind: 'completion'; prompt: string; completion: string }
  | { kind: 'text'; text: string }
  /** Token ids given by the dataset; `labels` null means every token is learned. */
  | { kind: 'tokens'; inputIds: number[]; labels: number[] | null };

export type NormalizeResult = { ok: true; example: Example } | { ok: false; problem: RowProblem };

export interface FormatDetection {
  format: ExampleFormat;
  /** Each field the format reads and the column it comes from (fields absent from the file are left out). */
  columns: ColumnMapping;
  /** Rows of the sample that fit the chosen format. */
  matched: number;
  /** Rows looked at. */
  sampled: number;
}

export interface DetectFormatOptions {
  /** Use this format instead of detecting one. */
  format?: ExampleFormat;
  /** Columns to read fields from, overriding the usual names. */
  mapping?: ColumnMapping;
  /** The file the rows come from, named in errors. */
  file?: string;
}

/** Usual column names of each field, tried in order when the mapping does not name one. */
const ALIASES: Record<FieldName, readonly string[]> = {
  instruction: ['instruction'],
  input: ['input', 'context'],
  output: ['output', 'response'],
  system: ['system'],
  conversations: ['conversations', 'messages'],
  messages: ['messages', 'conversations'],
  prompt: ['prompt'],
  completion: ['completion'],
  text: ['text'],
  input_ids: ['input_ids'],
  labels: ['labels'],
};

const FORMAT_FIELDS: Record<ExampleFormat, { required: readonly FieldName[]; optional: readonly FieldName[]; describe: string }> = {
  messages: { required: ['messages'], optional: ['system'], describe: 'messages: a list of {"role", "content"}' },
  sharegpt: { required: ['conversations'], optional: ['system'], describe: 'ShareGPT: conversations, a list of {"from", "value"} with from human/gpt/system' },
  'prompt-completion': { required: ['prompt', 'completion'], optional: [], describe: 'prompt/completion: "prompt" and "completion", strings or lists of messages' },
  alpaca: { required: ['instruction', 'output'], optional: ['input', 'system'], describe: 'Alpaca: "instruction", optional "input", "output"' },
  tokens: { required: ['input_ids'], optional: ['labels'], describe: 'pre-tokenized: "input_ids", optional "labels"' },
  text: { required: ['text'], optional: [], describe: 'text: "text"' },
};

/** Roles a message may have, and the role each becomes (ShareGPT's human/gpt are user/assistant). */
const ROLES: Record<string, string> = {
  system: 'system',
  user: 'user',
  human: 'user',
  assistant: 'assistant',
  gpt: 'assistant',
  tool: 'tool',
};
const ROLE_LIST = 'system, user, assistant, tool (ShareGPT: system, human, gpt)';

/**
 * Finds the format of `rows` (the first rows of a file; 64 or so are plenty). Each row votes for
 * the first format in EXAMPLE_FORMATS whose required fields it has (non-null): a list of messages
 * in "messages" or "conversations" counts as ShareGPT when its items have "from"/"value" and as
 * messages when they have "role"/"content"; then "prompt" + "completion", "instruction" + "output"
 * (or "response"; "context" is read as the input), "input_ids", "text". The format with most votes
 * wins, ties going to the earlier one. `mapping` renames fields; `format` skips the vote.
 * Throws InvalidArgumentError for a bad mapping and DatasetFormatError when a mapped column is in
 * none of the rows or no row fits any format (listing the columns found).
 */
export function detectFormat(rows: readonly Record<string, unknown>[], options: DetectFormatOptions = {}): FormatDetection {
  const mapping = checkMapping(options.mapping);
  const file = options.file;
  const present = new Set<string>();
  for (const row of rows) for (const [k, v] of Object.entries(row)) if (v !== null && v !== undefined) present.add(k);
  const allColumns = new Set<string>();
  for (const row of rows) for (const k of Object.keys(row)) allColumns.add(k);
  for (const [field, column] of Object.entries(mapping)) {
    if (!allColumns.has(column)) {
      throw new DatasetFormatError(`the column mapping reads "${field}" from column "${column}", which the file does not have (its columns: ${listColumns(allColumns)})`, {
        file,
        hint: 'Map each field to one of the file\'s columns.',
      });
    }
  }

  if (options.format !== undefined) {
    if (!EXAMPLE_FORMATS.includes(options.format)) {
      throw new InvalidArgumentError(`unknown dataset format "${String(options.format)}"; expected one of ${EXAMPLE_FORMATS.join(', ')}`);
    }
    const columns = resolveColumns(options.format, mapping, present);
    const missing = FORMAT_FIELDS[options.format].required.filter((f) => columns[f] === undefined || !present.has(columns[f] as string));
    if (missing.length > 0 && rows.length > 0) {
      throw new DatasetFormatError(
        `the ${options.format} format needs ${missing.map((f) => `"${f}"`).join(' and ')}, and no column of that name has a value (columns: ${listColumns(allColumns)})`,
        { file, hint: 'Map the fields to the file\'s columns, e.g. { "instruction": "question", "output": "answer" }.' },
      );
    }
    const matched = rows.filter((r) => formatsOf(r, mapping).includes(options.format as ExampleFormat)).length;
    return { format: options.format, columns, matched, sampled: rows.length };
  }

  const votes = new Map<ExampleFormat, number>();
  for (const row of rows) {
    const fits = formatsOf(row, mapping);
    if (fits.length > 0) votes.set(fits[0], (votes.get(fits[0]) ?? 0) + 1);
  }
  let best: ExampleFormat | null = null;
  for (const f of EXAMPLE_FORMATS) if ((votes.get(f) ?? 0) > (best === null ? 0 : (votes.get(best) ?? 0))) best = f;
  if (best === null) {
    throw new DatasetFormatError(
      `no known dataset format fits the columns ${listColumns(allColumns)}; expected one of: ${EXAMPLE_FORMATS.map((f) => FORMAT_FIELDS[f].describe).join('; ')}`,
      { file, hint: 'Map the fields to the file\'s columns, e.g. { "instruction": "question", "output": "answer" }, or choose the format.' },
    );
  }
  return { format: best, columns: resolveColumns(best, mapping, present), matched: votes.get(best) ?? 0, sampled: rows.length };
}

function checkMapping(mapping: ColumnMapping | undefined): ColumnMapping {
  if (mapping === undefined) return {};
  if (!isPlainObject(mapping)) throw new InvalidArgumentError('the column mapping must be an object of field → column name');
  for (const [field, column] of Object.entries(mapping)) {
    if (!(FIELD_NAMES as readonly string[]).includes(field)) {
      throw new InvalidArgumentError(`the column mapping has an unknown field "${field}"; the fields are ${FIELD_NAMES.join(', ')}`);
    }
    if (typeof column !== 'string' || column.length === 0) {
      throw new InvalidArgumentError(`the column mapping must name a column for "${field}", got ${JSON.stringify(column)}`);
    }
  }
  return mapping;
}

/** The column of `field`: the mapped one, else the first alias with a value in the sample, else the field's own name. */
function columnOf(field: FieldName, mapping: ColumnMapping, has: (column: string) => boolean): string {
  const mapped = mapping[field];
  if (mapped !== undefined) return mapped;
  return ALIASES[field].find(has) ?? field;
}

function resolveColumns(format: ExampleFormat, mapping: ColumnMapping, present: Set<string>): ColumnMapping {
  const { required, optional } = FORMAT_FIELDS[format];
  const columns: ColumnMapping = {};
  const has = (c: string) => present.has(c);
  for (const f of required) columns[f] = columnOf(f, mapping, has);
  for (const f of optional) {
    const c = columnOf(f, mapping, has);
    if (present.has(c)) columns[f] = c;
  }
  if (format === 'messages' || format === 'sharegpt') {
    // The chat column is whichever of the two names holds the list.
    const field = format === 'messages' ? 'messages' : 'conversations';
    const other = format === 'messages' ? 'conversations' : 'messages';
    if (mapping[field] === undefined && mapping[other] !== undefined) columns[field] = mapping[other];
  }
  return columns;
}

/** The formats a row fits, in preference order. */
function formatsOf(row: Record<string, unknown>, mapping: ColumnMapping): ExampleFormat[] {
  const has = (c: string) => row[c] !== undefined && row[c] !== null;
  const out: ExampleFormat[] = [];
  const chatColumns = [mapping.messages, mapping.conversations].filter((c): c is string => c !== undefined);
  if (chatColumns.length === 0) chatColumns.push('messages', 'conversations');
  for (const c of chatColumns) {
    const list = asList(row[c]);
    if (list === null || list.length === 0 || !isPlainObject(list[0])) continue;
    const item = list[0];
    const shareGpt = 'from' in item || 'value' in item;
    const messages = 'role' in item || 'content' in item;
    if (shareGpt && !out.includes('sharegpt')) out.push('sharegpt');
    if (messages && !out.includes('messages')) out.push('messages');
    if (!shareGpt && !messages) {
      if (mapping.conversations === c) out.push('sharegpt');
      else if (mapping.messages === c) out.push('messages');
    }
  }
  out.sort((a, b) => EXAMPLE_FORMATS.indexOf(a) - EXAMPLE_FORMATS.indexOf(b));
  if (has(columnOf('prompt', mapping, has)) && has(columnOf('completion', mapping, has))) out.push('prompt-completion');
  if (has(columnOf('instruction', mapping, has)) && has(columnOf('output', mapping, has))) out.push('alpaca');
  if (has(columnOf('input_ids', mapping, has))) out.push('tokens');
  if (has(columnOf('text', mapping, has))) out.push('text');
  return out;
}

export interface NormalizeOptions {
  /** Require a conversation to hold an assistant turn to learn from. Default true. */
  requireAssistant?: boolean;
}

/**
 * Turns one row into an Example by the detected format and columns, or says why it cannot.
 * Lists (messages, conversations, prompt/completion lists, input_ids, labels) may also arrive as
 * JSON text, as they do from CSV files.
 *
 * - messages / ShareGPT: each item is {role, content} or {from, value}; roles system, user,
 *   assistant, tool, and ShareGPT's human (user) and gpt (assistant). Content is a string or a
 *   list of {type: "text", text} parts (joined). A string `reasoning_content` is kept. A "system"
 *   column, when mapped or present, becomes a leading system message unless the conversation has one.
 * - Alpaca: user = instruction, then "\n" and the input when the input is not blank; assistant =
 *   output; a non-blank "system" column becomes the system message.
 * - prompt/completion: two strings give a plain completion example; otherwise a string side becomes
 *   one message (prompt: user, completion: assistant) and the completion's assistant turns are learned.
 * - text: a non-blank string. tokens: non-negative integer ids, labels of the same length (ids or -100).
 */
export function normalizeRow(
  row: Record<string, unknown>,
  detection: Pick<FormatDetection, 'format' | 'columns'>,
  options: NormalizeOptions = {},
): NormalizeResult {
  const requireAssistant = options.requireAssistant ?? true;
  const col = (f: FieldName): string => detection.columns[f] ?? f;
  switch (detection.format) {
    case 'messages':
    case 'sharegpt': {
      const field = detection.format === 'messages' ? 'messages' : 'conversations';
      const r = readConversation(row[col(field)], col(field));
      if (!r.ok) return r;
      const messages = r.messages;
      const system = detection.columns.system === undefined ? undefined : row[detection.columns.system];
      if (system !== undefined && system !== null) {
        if (typeof system !== 'string') return fail(`column "${col('system')}" holds ${describe(system)}`, 'a string (the system prompt) or nothing');
        if (!isBlank(system) && messages[0]?.role !== 'system') messages.unshift({ role: 'system', content: system });
      }
      return finishChat(messages, 0, requireAssistant, col(field));
    }
    case 'alpaca': {
      const instruction = row[col('instruction')];
      const output = row[col('output')];
      if (typeof instruction !== 'string') return fail(`column "${col('instruction')}" holds ${describe(instruction)}`, 'a string (the instruction)');
      if (typeof output !== 'string') return fail(`column "${col('output')}" holds ${describe(output)}`, 'a string (the answer to learn)');
      if (isBlank(output)) return fail(`column "${col('output')}" is blank`, 'a non-empty answer to learn');
      let input: unknown = detection.columns.input === undefined ? undefined : row[detection.columns.input];
      if (input === null) input = undefined;
      if (input !== undefined && typeof input !== 'string') return fail(`column "${col('input')}" holds ${describe(input)}`, 'a string (the input) or nothing');
      const user = input !== undefined && !isBlank(input) ? (isBlank(instruction) ? input : `${instruction}\n${input}`) : instruction;
      if (isBlank(user)) return fail(`column "${col('instruction')}" is blank and there is no input`, 'a non-empty instruction');
      const messages: ChatMessage[] = [];
      const system = detection.columns.system === undefined ? undefined : row[detection.columns.system];
      if (system !== undefined && system !== null) {
        if (typeof system !== 'string') return fail(`column "${col('system')}" holds ${describe(system)}`, 'a string (the system prompt) or nothing');
        if (!isBlank(system)) messages.push({ role: 'system', content: system });
      }
      messages.push({ role: 'user', content: user }, { role: 'assistant', content: output });
      return { ok: true, example: { kind: 'chat', messages, learnFrom: 0 } };
    }
    case 'prompt-completion': {
      const prompt = row[col('prompt')];
      const completion = row[col('completion')];
      if (typeof prompt === 'string' && typeof completion === 'string') {
        if (completion.length === 0) return fail(`column "${col('completion')}" is empty`, 'a non-empty completion to learn');
        return { ok: true, example: { kind: 'completion', prompt, completion } };
      }
      let promptMessages: ChatMessage[];
      if (typeof prompt === 'string') promptMessages = [{ role: 'user', content: prompt }];
      else {
        const r = readConversation(prompt, col('prompt'), true);
        if (!r.ok) return r;
        promptMessages = r.messages;
      }
      let completionMessages: ChatMessage[];
      if (typeof completion === 'string') completionMessages = [{ role: 'assistant', content: completion }];
      else {
        const r = readConversation(completion, col('completion'));
        if (!r.ok) return r;
        completionMessages = r.messages;
      }
      if (!completionMessages.some((m) => m.role === 'assistant')) {
        return fail(`column "${col('completion')}" has no assistant message`, 'at least one assistant message to learn');
      }
      return finishChat([...promptMessages, ...completionMessages], promptMessages.length, requireAssistant, col('completion'));
    }
    case 'text': {
      const text = row[col('text')];
      if (typeof text !== 'string') return fail(`column "${col('text')}" holds ${describe(text)}`, 'a string');
      if (isBlank(text)) return fail(`column "${col('text')}" is blank`, 'non-empty text');
      return { ok: true, example: { kind: 'text', text } };
    }
    case 'tokens': {
      const ids = readIds(row[col('input_ids')], false);
      if (typeof ids === 'string') return fail(`column "${col('input_ids')}" ${ids}`, 'a non-empty list of token ids (integers ≥ 0)');
      if (ids.length === 0) return fail(`column "${col('input_ids')}" is an empty list`, 'a non-empty list of token ids (integers ≥ 0)');
      const rawLabels = detection.columns.labels === undefined ? undefined : row[detection.columns.labels];
      if (rawLabels === undefined || rawLabels === null) return { ok: true, example: { kind: 'tokens', inputIds: ids, labels: null } };
      const labels = readIds(rawLabels, true);
      if (typeof labels === 'string') return fail(`column "${col('labels')}" ${labels}`, 'a list of token ids or -100, one per input id');
      if (labels.length !== ids.length) {
        return fail(`column "${col('labels')}" has ${labels.length} labels for ${ids.length} input ids`, 'one label per input id');
      }
      return { ok: true, example: { kind: 'tokens', inputIds: ids, labels } };
    }
  }
}

function fail(message: string, expected: string): { ok: false; problem: RowProblem } {
  return { ok: false, problem: { message, expected } };
}

function finishChat(messages: ChatMessage[], learnFrom: number, requireAssistant: boolean, column: string): NormalizeResult {
  if (requireAssistant && !messages.slice(learnFrom).some((m) => m.role === 'assistant')) {
    return fail(`the conversation in column "${column}" has no assistant turn`, 'at least one assistant message to learn');
  }
  return { ok: true, example: { kind: 'chat', messages, learnFrom } };
}

type ConversationResult = { ok: true; messages: ChatMessage[] } | { ok: false; problem: RowProblem };

function readConversation(value: unknown, column: string, allowEmpty = false): ConversationResult {
  const list = asList(value);
  const expected = 'a list of messages, each {"role", "content"} or {"from", "value"}';
  if (list === null) return fail(`column "${column}" holds ${describe(value)}`, expected);
  if (list.length === 0 && !allowEmpty) return fail(`the conversation in column "${column}" is empty`, 'at least one message');
  const messages: ChatMessage[] = [];
  for (let i = 0; i < list.length; i++) {
    const item = list[i];
    const at = `${column}[${i}]`;
    if (!isPlainObject(item)) return fail(`${at} is ${describe(item)}`, expected);
    const roleKey = 'role' in item ? 'role' : 'from';
    const contentKey = 'content' in item ? 'content' : 'value';
    const rawRole = item[roleKey];
    if (typeof rawRole !== 'string') return fail(`${at} has no string "role" or "from" (got ${describe(rawRole)})`, `a role, one of ${ROLE_LIST}`);
    const role = ROLES[rawRole.toLowerCase()];
    if (role === undefined) return fail(`${at} has the unknown role "${rawRole}"`, `one of ${ROLE_LIST}`);
    const content = readContent(item[contentKey]);
    if (content === null) return fail(`${at}.${contentKey} holds ${describe(item[contentKey])}`, 'a string, or a list of {"type": "text", "text"} parts');
    const message: ChatMessage = { role, content };
    if (typeof item.reasoning_content === 'string') message.reasoning_content = item.reasoning_content;
    messages.push(message);
  }
  return { ok: true, messages };
}

function readContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return null;
  let out = '';
  for (const part of v) {
    if (!isPlainObject(part) || part.type !== 'text' || typeof part.text !== 'string') return null;
    out += part.text;
  }
  return out;
}

/** A list, or JSON text of a list (as CSV cells hold them); null otherwise. */
function asList(v: unknown): unknown[] | null {
  if (Array.isArray(v)) return v;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<unknown>);
  if (typeof v === 'string' && /^\s*\[/.test(v)) {
    try {
      const parsed: unknown = JSON.parse(v);
      return Array.isArray(parsed) ? parsed : null;
    } catch {
      return null;
    }
  }
  return null;
}

/** Integer ids (≥ 0, or -100 when `labels`), or a phrase saying what is wrong. */
function readIds(v: unknown, labels: boolean): number[] | string {
  const list = asList(v);
  if (list === null) return `holds ${describe(v)}`;
  const out = new Array<number>(list.length);
  for (let i = 0; i < list.length; i++) {
    const x = list[i];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || (x < 0 && !(labels && x === -100))) {
      return `has ${describe(x)} at position ${i}`;
    }
    out[i] = x;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof Date);
}

function isBlank(s: string): boolean {
  return !/\S/.test(s);
}

function listColumns(columns: Set<string>): string {
  return columns.size === 0 ? '(none)' : [...columns].map((c) => `"${c}"`).join(', ');
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (the column is missing)';
  if (v === null) return 'null';
  if (typeof v === 'string') return v.length > 40 ? `the string "${v.slice(0, 40)}…"` : `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  return 'an object';
}
