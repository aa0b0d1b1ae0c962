// Chat templates: renders a conversation into the text a chat model was trained on, with the model's
// own Jinja template (tokenizer_config.json `chat_template` or chat_template.jinja) run by the
// `@huggingface/jinja` interpreter. Templates come from user files, so they run sandboxed: the
// interpreter never evaluates JavaScript, and the only functions a template can call are the ones
// defined here (raise_exception, range, strftime_now, namespace).
// It is not a tokenizer (model/tokenizer.ts) and does not build loss masks from the rendered text.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { ChatTemplateError, InvalidArgumentError } from '../errors.ts';

/** One turn of a conversation. Extra fields (reasoning_content, tool_calls ...) reach the template as they are. */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface RenderChatOptions {
  /** End with the header that opens an assistant turn (for generation and for prompt/completion masks). */
  addGenerationPrompt?: boolean;
  /** The tokenizer's bos/eos strings; left undefined in the template when null or absent, as transformers does. */
  bosToken?: string | null;
  eosToken?: string | null;
  /** More template variables, e.g. `enable_thinking: false` (Qwen3) or `date_string` (Llama 3.1+). */
  extra?: Record<string, unknown>;
  /** The file the template came from, named in errors ('tokenizer_config.json', 'chat_template.jinja'). */
  source?: string;
  /** The clock `strftime_now` reads; the current time when absent. */
  now?: Date;
}

export interface RenderedChat {
  text: string;
  /** True when the model had no template and DEFAULT_CHAT_TEMPLATE was used. */
  usedDefault: boolean;
  /** A sentence for the person when the output may not match what the model expects, else null. */
  warning: string | null;
}

/**
 * The template used for models without one: ChatML, the format of Qwen and SmolLM2 and the one
 * transformers used as its default (`<|im_start|>{role}\n{content}<|im_end|>\n` per message, and
 * `<|im_start|>assistant\n` as the generation prompt). A base model has not seen these markers, so
 * fine-tuning with it teaches them; its tokenizer should have `<|im_start|>`/`<|im_end|>` as tokens.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** The longest list `range()` may build inside a template. */
export const MAX_TEMPLATE_RANGE = 1_000_000;

/** Variables that renderChat sets itself; `extra` cannot replace them. */
const RESERVED = new Set([
  'messages',
  'add_generation_prompt',
  'bos_token',
  'eos_token',
  'raise_exception',
  'range',
  'strftime_now',
  'namespace',
  'true',
  'false',
  'none',
  'True',
  'False',
  'None',
]);

/**
 * Renders `messages` with `template`, or with DEFAULT_CHAT_TEMPLATE when `template` is null or
 * undefined. Variables: messages, add_generation_prompt, bos_token, eos_token (when given) and
 * `extra`; no `tools`. Throws ChatTemplateError for a template that does not parse, fails while
 * rendering, or calls raise_exception (the message says what the template objected to), and
 * InvalidArgumentError for messages that are not {role: string, content: string}.
 */
export function renderChat(
  template: string | null | undefined,
  messages: readonly ChatMessage[],
  options: RenderChatOptions = {},
): RenderedChat {
  checkMessages(messages);
  const usedDefault = template === null || template === undefined;
  const source = usedDefault ? 'the default ChatML template' : (options.source ?? 'chat template');
  const compiled = compile(usedDefault ? DEFAULT_CHAT_TEMPLATE : template, source);

  const vars: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options.extra ?? {})) {
    if (RESERVED.has(k)) throw new InvalidArgumentError(`"${k}" is set by renderChat and cannot be passed in extra`);
    vars[k] = v;
  }
  vars.messages = messages;
  vars.add_generation_prompt = options.addGenerationPrompt ?? false;
  if (options.bosToken !== undefined && options.bosToken !== null) vars.bos_token = options.bosToken;
  if (options.eosToken !== undefined && options.eosToken !== null) vars.eos_token = options.eosToken;

  const env = new Environment();
  env.set('true', true);
  env.set('false', false);
  env.set('none', null);
  env.set('True', true);
  env.set('False', false);
  env.set('None', null);
  env.set('raise_exception', (message: unknown) => {
    throw new TemplateRaised(String(message));
  });
  env.set('range', boundedRange);
  const now = options.now;
  env.set('strftime_now', (format: unknown) => strftime(now ?? new Date(), String(format)));
  try {
    for (const [k, v] of Object.entries(vars)) env.set(k, v);
  } catch (e) {
    throw new InvalidArgumentError(`a template variable cannot be passed to the template: ${errorText(e)}`, { cause: e });
  }

  let text: string;
  try {
    const result = new Interpreter(env).run(compiled.parsed);
    text = String(result.value);
  } catch (e) {
    if (e instanceof TemplateRaised) {
      throw new ChatTemplateError(`the chat template rejected the conversation: ${e.message}`, { file: source, cause: e });
    }
    throw new ChatTemplateError(`the chat template failed while rendering: ${errorText(e)}`, { file: source, cause: e });
  }

  return {
    text,
    usedDefault,
    warning: usedDefault
      ? 'This model has no chat template; conversations are formatted as ChatML (<|im_start|>role ... <|im_end|>).'
      : null,
  };
}

/** Thrown by the template's raise_exception, so it can be told apart from interpreter failures. */
class TemplateRaised extends Error {}

// Parsed templates, by source text: a dataset renders thousands of rows with one template.
const cache = new Map<string, Template>();
const CACHE_SIZE = 16;

function compile(template: string, source: string): Template {
  if (typeof template !== 'string') throw new InvalidArgumentError(`a chat template must be a string, got ${typeof template}`);
  const hit = cache.get(template);
  if (hit !== undefined) {
    cache.delete(template);
    cache.set(template, hit);
    return hit;
  }
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new ChatTemplateError(`the chat template is not valid Jinja: ${errorText(e)}`, { file: source, cause: e });
  }
  cache.set(template, compiled);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  return compiled;
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new InvalidArgumentError('messages must be a list of {role, content}');
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object') throw new InvalidArgumentError(`messages[${i}] must be an object with role and content`);
    if (typeof m.role !== 'string' || m.role.length === 0) throw new InvalidArgumentError(`messages[${i}].role must be a non-empty string`);
    if (typeof m.content !== 'string') throw new InvalidArgumentError(`messages[${i}].content must be a string`);
  });
}

/** Python's range(), refusing lists longer than MAX_TEMPLATE_RANGE. */
function boundedRange(start: unknown, stop?: unknown, step: unknown = 1): number[] {
  const a = stop === undefined ? 0 : Number(start);
  const b = stop === undefined ? Number(start) : Number(stop);
  const s = Number(step);
  if (![a, b, s].every(Number.isInteger)) throw new Error('range() takes integers');
  if (s === 0) throw new Error('range() step must not be zero');
  const count = Math.max(0, Math.ceil((b - a) / s));
  if (count > MAX_TEMPLATE_RANGE) throw new Error(`range() of ${count} items is over the limit of ${MAX_TEMPLATE_RANGE}`);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(a + i * s);
  return out;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's strftime in the C locale for the directives chat templates use, in local time. */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return format.replace(/%[YmdbBaAHMSyjp%]/g, (d) => {
    switch (d) {
      case '%Y':
        return String(date.getFullYear());
      case '%y':
        return pad(date.getFullYear() % 100);
      case '%m':
        return pad(date.getMonth() + 1);
      case '%d':
        return pad(date.getDate());
      case '%b':
        return MONTHS[date.getMonth()].slice(0, 3);
      case '%B':
        return MONTHS[date.getMonth()];
      case '%a':
        return DAYS[date.getDay()].slice(0, 3);
      case '%A':
        return DAYS[date.getDay()];
      case '%H':
        return pad(date.getHours());
      case '%M':
        return pad(date.getMinutes());
      case '%S':
        return pad(date.getSeconds());
      case '%j': {
        const day = Date.UTC(date.getFullYear(), date.getMonth(), date.getDate());
        return pad((day - Date.UTC(date.getFullYear(), 0, 1)) / 86_400_000 + 1, 3);
      }
      case '%p':
        return date.getHours() < 12 ? 'AM' : 'PM';
      default:
        return '%';
    }
  });
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
