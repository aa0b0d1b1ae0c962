// Tokenizer loading for Hugging Face model folders: tokenizer.json (+ tokenizer_config.json,
// generation_config.json, chat_template.jinja) through `@huggingface/tokenizers`, with the special
// tokens, stop ids and chat template a fine-tuning run and a chat need, and a streaming decoder that
// turns generated ids into text pieces without splitting a multi-byte character.
// It is not a tokenizer implementation (the library is), it does not render chat templates
// (data/chat-template.ts does) and it does not read files: callers pass the text or parsed JSON.
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { InvalidArgumentError, TokenizerError } from '../errors.ts';

/** The files of a model folder that describe its tokenizer, already read (text or parsed JSON). */
export interface TokenizerFiles {
  /** tokenizer.json: the model (vocab, merges), normalizer, pre-tokenizer, post-processor, decoder. */
  tokenizerJson: unknown;
  /** tokenizer_config.json: special token strings, chat template, decode settings. */
  tokenizerConfig?: unknown;
  /** generation_config.json: eos_token_id (number or array), bos_token_id, pad_token_id. */
  generationConfig?: unknown;
  /** chat_template.jinja: when given, it replaces the template of tokenizer_config.json. */
  chatTemplate?: string;
}

export interface EncodeOptions {
  /** Apply the tokenizer's post-processor (e.g. Llama 3 prepends <|begin_of_text|>). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out added tokens marked special (and the config's additional_special_tokens). Default false. */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  /** One more than the largest id of the vocabulary and the added tokens (`len(tokenizer)` in transformers). */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosToken: string | null;
  readonly eosTokenId: number | null;
  readonly padToken: string | null;
  readonly padTokenId: number | null;
  readonly unkToken: string | null;
  readonly unkTokenId: number | null;
  /** Ids that end generation, without repeats: see `loadTokenizer` for where they come from. */
  readonly eosTokenIds: readonly number[];
  /** The Jinja chat template, or null when the model has none. */
  readonly chatTemplate: string | null;
  /** The file the chat template came from, for error messages. */
  readonly chatTemplateFile: 'chat_template.jinja' | 'tokenizer_config.json' | null;
  encode(text: string, options?: EncodeOptions): number[];
  /** Ids outside the vocabulary are left out, as the Rust tokenizers do. */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
  /** Whether the id is an added token marked special (<|im_end|>, <|endoftext|> ...). */
  isSpecialId(id: number): boolean;
}

/** Tokens that close a chat turn; they stop generation when the model's chat template emits them. */
export const END_OF_TURN_TOKENS: readonly string[] = ['<|im_end|>', '<|eot_id|>', '<|end|>', '<end_of_turn>'];

/** The largest token id accepted from a tokenizer.json (real vocabularies stay below 300k). */
export const MAX_TOKEN_ID = 4_194_303;

type Json = Record<string, unknown>;

/**
 * Builds a tokenizer from the files of a model folder.
 *
 * Special tokens come from tokenizer_config.json (strings or `{content}` objects); bos, eos and pad
 * fall back to the ids of generation_config.json when the config has none. `eosTokenIds` is the
 * union, in this order, of generation_config.json `eos_token_id`, the config's eos token, and each of
 * END_OF_TURN_TOKENS that is in the vocabulary and appears in the chat template.
 * The chat template is chat_template.jinja when given, else the config's `chat_template` (a string,
 * or a list of `{name, template}` from which the one named "default" is taken, else the first).
 *
 * Throws TokenizerError naming the file for text that is not JSON, JSON of the wrong shape, a
 * tokenizer.json without a usable model, or a model the library rejects.
 */
export function loadTokenizer(files: TokenizerFiles): Tokenizer {
  const json = parseJsonObject(files.tokenizerJson, 'tokenizer.json');
  const config = files.tokenizerConfig === undefined ? {} : parseJsonObject(files.tokenizerConfig, 'tokenizer_config.json');
  const generation =
    files.generationConfig === undefined ? {} : parseJsonObject(files.generationConfig, 'generation_config.json');
  if (files.chatTemplate !== undefined && typeof files.chatTemplate !== 'string') {
    throw new TokenizerError('expected the text of a Jinja template', { file: 'chat_template.jinja' });
  }

  const { addedTokens, vocabSize } = checkTokenizerJson(json);
  const specials = readSpecialTokens(config);

  let inner: HfTokenizer;
  try {
    inner = new HfTokenizer(
      {
        normalizer: null,
        pre_tokenizer: null,
        post_processor: null,
        decoder: null,
        ...json,
        added_tokens: addedTokens,
      },
      { ...config, ...specials.forLibrary },
    );
  } catch (e) {
    throw new TokenizerError(`the tokenizer could not be built: ${errorText(e)}`, { file: 'tokenizer.json', cause: e });
  }

  const idOf = (token: string | null): number | null => (token === null ? null : (inner.token_to_id(token) ?? null));
  const tokenOf = (id: number | null): string | null => (id === null ? null : (inner.id_to_token(id) ?? null));

  const genEos = readIdList(generation.eos_token_id, 'eos_token_id');
  const genBos = readIdList(generation.bos_token_id, 'bos_token_id')[0] ?? null;
  const genPad = readIdList(generation.pad_token_id, 'pad_token_id')[0] ?? null;

  const bosToken = specials.bos ?? tokenOf(genBos);
  const eosToken = specials.eos ?? tokenOf(genEos[0] ?? null);
  const padToken = specials.pad ?? tokenOf(genPad);
  const unkToken = specials.unk ?? readModelUnk(json);

  const { template, file: templateFile } = pickChatTemplate(files.chatTemplate, config.chat_template);

  const eosTokenIds: number[] = [];
  const addEos = (id: number | null | undefined) => {
    if (id !== null && id !== undefined && id >= 0 && id < vocabSize && !eosTokenIds.includes(id)) eosTokenIds.push(id);
  };
  genEos.forEach(addEos);
  addEos(idOf(eosToken));
  if (template !== null) {
    for (const t of END_OF_TURN_TOKENS) if (template.includes(t)) addEos(idOf(t));
  }

  const specialIds = new Set<number>();
  for (const t of addedTokens) if (t.special) specialIds.add(t.id);

  const cleanUp = config.clean_up_tokenization_spaces === true;

  return {
    vocabSize,
    bosToken,
    bosTokenId: idOf(bosToken),
    eosToken,
    eosTokenId: idOf(eosToken),
    padToken,
    padTokenId: idOf(padToken),
    unkToken,
    unkTokenId: idOf(unkToken),
    eosTokenIds,
    chatTemplate: template,
    chatTemplateFile: templateFile,
    encode(text, options = {}) {
      if (typeof text !== 'string') throw new InvalidArgumentError(`encode expects a string, got ${typeof text}`);
      const { ids } = inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true });
      for (const id of ids) {
        if (typeof id !== 'number') {
          throw new TokenizerError(
            'the text holds a piece the vocabulary cannot represent and the tokenizer has no unknown token',
            { file: 'tokenizer.json' },
          );
        }
      }
      return ids;
    },
    decode(ids, options = {}) {
      const known: number[] = [];
      for (const id of ids) {
        if (!Number.isInteger(id)) throw new InvalidArgumentError(`token ids must be integers, got ${String(id)}`);
        if (id >= 0 && id < vocabSize && inner.id_to_token(id) !== undefined) known.push(id);
      }
      if (known.length === 0) return '';
      return inner.decode(known, {
        skip_special_tokens: options.skipSpecialTokens ?? false,
        clean_up_tokenization_spaces: cleanUp,
      });
    },
    idToToken: (id) => inner.id_to_token(id),
    tokenToId: (token) => inner.token_to_id(token),
    isSpecialId: (id) => specialIds.has(id),
  };
}

/**
 * Turns ids into text as they are generated. Each `push` returns the text that is now certain: a
 * token that ends inside a multi-byte UTF-8 character (byte-level BPE splits rare characters and
 * emoji across tokens) is held back until the character is complete. Decoding runs over a short
 * window of recent ids so that decoders which treat the first token specially (Metaspace's leading
 * space) produce the same text as decoding the whole sequence.
 */
export class StreamDecoder {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  private emitted = '';

  /** Held tokens after which a trailing U+FFFD is taken to be real output rather than a split character. */
  static readonly MAX_HELD_TOKENS = 8;

  constructor(
    private readonly tokenizer: Pick<Tokenizer, 'decode'>,
    private readonly options: DecodeOptions = {},
  ) {}

  /** All text returned so far. */
  get text(): string {
    return this.emitted;
  }

  /** Adds one id; returns the new text it completes (possibly empty). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.options);
    const newText = this.tokenizer.decode(this.ids.slice(this.prefixOffset), this.options);
    const held = this.ids.length - this.readOffset;
    if (newText.length <= prefixText.length) return '';
    if (newText.endsWith('\uFFFD') && held < StreamDecoder.MAX_HELD_TOKENS) return '';
    const piece = newText.slice(prefixText.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.emitted += piece;
    return piece;
  }

  /** Adds several ids; returns the new text they complete. */
  pushAll(ids: Iterable<number>): string {
    let out = '';
    for (const id of ids) out += this.push(id);
    return out;
  }

  /** Ends the stream: returns whatever is still held, with U+FFFD for an incomplete character. */
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.options);
    const newText = this.tokenizer.decode(this.ids.slice(this.prefixOffset), this.options);
    const piece = newText.length > prefixText.length ? newText.slice(prefixText.length) : '';
    this.prefixOffset = this.readOffset = this.ids.length;
    this.emitted += piece;
    return piece;
  }
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
  [key: string]: unknown;
}

function parseJsonObject(input: unknown, file: string): Json {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (e) {
      throw new TokenizerError(`not valid JSON: ${errorText(e)}`, { file, cause: e });
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TokenizerError(`expected a JSON object, got ${describe(value)}`, { file });
  }
  return value as Json;
}

/** Checks the parts of tokenizer.json the library indexes by id, before it allocates by them. */
function checkTokenizerJson(json: Json): { addedTokens: AddedTokenJson[]; vocabSize: number } {
  const file = 'tokenizer.json';
  const model = json.model;
  if (model === undefined || model === null) {
    throw new TokenizerError('there is no "model" (the vocabulary and merges); is this a tokenizer.json?', { file });
  }
  if (typeof model !== 'object' || Array.isArray(model)) {
    throw new TokenizerError(`"model" must be an object, got ${describe(model)}`, { file });
  }
  const m = model as Json;
  let maxId = -1;
  const vocab = m.vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [[piece, score], ...]; ids are positions.
    maxId = vocab.length - 1;
    for (let i = 0; i < vocab.length; i++) {
      const entry = vocab[i];
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') {
        throw new TokenizerError(`model.vocab[${i}] must be [piece, score]`, { file });
      }
    }
  } else if (vocab !== null && typeof vocab === 'object') {
    for (const [token, id] of Object.entries(vocab as Json)) {
      if (!isTokenId(id)) {
        throw new TokenizerError(`model.vocab[${JSON.stringify(token)}] must be an integer id in 0..${MAX_TOKEN_ID}, got ${describe(id)}`, { file });
      }
      if (id > maxId) maxId = id;
    }
  } else {
    throw new TokenizerError(`model.vocab is missing or not a vocabulary (got ${describe(vocab)})`, { file });
  }
  if ((m.type === 'BPE' || m.merges !== undefined) && !Array.isArray(m.merges)) {
    throw new TokenizerError(`model.merges must be a list, got ${describe(m.merges)}`, { file });
  }
  if (Array.isArray(m.merges)) {
    m.merges.forEach((merge, i) => {
      const ok = typeof merge === 'string' ? merge.includes(' ') : Array.isArray(merge) && merge.length === 2 && merge.every((p) => typeof p === 'string');
      if (!ok) throw new TokenizerError(`model.merges[${i}] must be "a b" or ["a", "b"], got ${describe(merge)}`, { file });
    });
  }

  const rawAdded = json.added_tokens ?? [];
  if (!Array.isArray(rawAdded)) throw new TokenizerError(`added_tokens must be a list, got ${describe(rawAdded)}`, { file });
  const addedTokens: AddedTokenJson[] = rawAdded.map((t, i) => {
    if (t === null || typeof t !== 'object' || !isTokenId((t as Json).id) || typeof (t as Json).content !== 'string') {
      throw new TokenizerError(`added_tokens[${i}] must have an integer "id" and a string "content"`, { file });
    }
    const token = t as AddedTokenJson;
    if (token.id > maxId) maxId = token.id;
    return token;
  });
  if (maxId < 0) throw new TokenizerError('the vocabulary is empty', { file });
  return { addedTokens, vocabSize: maxId + 1 };
}

function isTokenId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TOKEN_ID;
}

interface SpecialTokens {
  bos: string | null;
  eos: string | null;
  pad: string | null;
  unk: string | null;
  /** The config keys rewritten as plain strings, the form the library expects. */
  forLibrary: Json;
}

/** tokenizer_config.json writes special tokens as strings or as `{"__type": "AddedToken", "content": ...}`. */
function readSpecialTokens(config: Json): SpecialTokens {
  const forLibrary: Json = {};
  const read = (key: string): string | null => {
    const v = config[key];
    if (v === undefined || v === null) return null;
    const s = tokenString(v);
    if (s === null) throw new TokenizerError(`"${key}" must be a string or an object with "content", got ${describe(v)}`, { file: 'tokenizer_config.json' });
    forLibrary[key] = s;
    return s;
  };
  const result = { bos: read('bos_token'), eos: read('eos_token'), pad: read('pad_token'), unk: read('unk_token') };
  for (const key of ['sep_token', 'cls_token', 'mask_token']) read(key);
  const extra = config.additional_special_tokens;
  if (extra !== undefined && extra !== null) {
    if (!Array.isArray(extra)) {
      throw new TokenizerError(`"additional_special_tokens" must be a list, got ${describe(extra)}`, { file: 'tokenizer_config.json' });
    }
    forLibrary.additional_special_tokens = extra.map((v, i) => {
      const s = tokenString(v);
      if (s === null) throw new TokenizerError(`additional_special_tokens[${i}] must be a string or an object with "content"`, { file: 'tokenizer_config.json' });
      return s;
    });
  }
  return { ...result, forLibrary };
}

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return null;
}

function readModelUnk(json: Json): string | null {
  const unk = (json.model as Json).unk_token;
  return typeof unk === 'string' ? unk : null;
}

/** generation_config.json ids: a number, a list of numbers, or absent. */
function readIdList(v: unknown, key: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const id of list) {
    if (!isTokenId(id)) {
      throw new TokenizerError(`"${key}" must be a token id or a list of them, got ${describe(v)}`, { file: 'generation_config.json' });
    }
  }
  return list as number[];
}

function pickChatTemplate(
  sidecar: string | undefined,
  fromConfig: unknown,
): { template: string | null; file: Tokenizer['chatTemplateFile'] } {
  if (sidecar !== undefined) return { template: sidecar, file: 'chat_template.jinja' };
  if (fromConfig === undefined || fromConfig === null) return { template: null, file: null };
  if (typeof fromConfig === 'string') return { template: fromConfig, file: 'tokenizer_config.json' };
  if (Array.isArray(fromConfig)) {
    const named = fromConfig.filter(
      (t): t is { name: string; template: string } =>
        t !== null && typeof t === 'object' && typeof (t as Json).name === 'string' && typeof (t as Json).template === 'string',
    );
    if (named.length !== fromConfig.length) {
      throw new TokenizerError('"chat_template" as a list must hold objects with "name" and "template"', { file: 'tokenizer_config.json' });
    }
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    return { template: chosen === undefined ? null : chosen.template, file: chosen === undefined ? null : 'tokenizer_config.json' };
  }
  throw new TokenizerError(`"chat_template" must be a string or a list, got ${describe(fromConfig)}`, { file: 'tokenizer_config.json' });
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return v.length > 40 ? `a string "${v.slice(0, 40)}…"` : `"${v}"`;
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
