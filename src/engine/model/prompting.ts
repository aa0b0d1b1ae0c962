// What every front end does around generate(): the sampling settings generation_config.json asks
// for, a prompt turned into token ids (plain, or as one user message through the model's chat
// template with the generation prompt), and the ids that end generation. The CLI's `generate` and
// the studio's Playground both use these, so the same prompt gives the same ids everywhere. It runs
// no model.

import { renderChat } from '../data/chat-template.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { ModelConfig } from './config.ts';
import type { Tokenizer } from './tokenizer.ts';

/** Sampling settings for a prompt, as generate() takes them. */
export interface SamplingDefaults {
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
}

/** Reads a number from generation_config.json, or `fallback` when it is absent or not a number. */
function genNumber(g: Record<string, unknown> | null, key: string, fallback: number): number {
  const v = g?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

/**
 * The settings generation_config.json asks for: with do_sample true its temperature (1), top_p (1)
 * and top_k (50), transformers' defaults in brackets; otherwise greedy decoding (temperature 0, no
 * top-k or top-p). max_new_tokens defaults to 256.
 */
export function samplingDefaults(generationConfig: Record<string, unknown> | null): SamplingDefaults {
  const sample = generationConfig?.do_sample === true;
  return {
    temperature: sample ? genNumber(generationConfig, 'temperature', 1) : 0,
    topP: sample ? genNumber(generationConfig, 'top_p', 1) : 1,
    topK: sample ? genNumber(generationConfig, 'top_k', 50) : 0,
    maxNewTokens: genNumber(generationConfig, 'max_new_tokens', 256),
  };
}

export interface EncodedPrompt {
  ids: number[];
  /** A sentence about the chat template (e.g. that the default was used), or null. */
  warning: string | null;
}

/**
 * The prompt's token ids. With `chat` the text becomes one user message rendered by the tokenizer's
 * chat template with the generation prompt, and the template writes the special tokens itself (as
 * transformers' apply_chat_template does); without, the tokenizer adds its own (e.g. a BOS token).
 * Throws InvalidArgumentError when the prompt encodes to no tokens.
 */
export function encodePrompt(tokenizer: Tokenizer, text: string, chat: boolean): EncodedPrompt {
  let ids: number[];
  let warning: string | null = null;
  if (chat) {
    const rendered = renderChat(tokenizer.chatTemplate, [{ role: 'user', content: text }], {
      addGenerationPrompt: true,
      bosToken: tokenizer.bosToken,
      eosToken: tokenizer.eosToken,
      source: tokenizer.chatTemplateFile ?? undefined,
    });
    warning = rendered.warning;
    ids = tokenizer.encode(rendered.text, { addSpecialTokens: false });
  } else {
    ids = tokenizer.encode(text);
  }
  if (ids.length === 0) throw new InvalidArgumentError('The prompt encodes to no tokens; write a non-empty prompt.');
  return { ids, warning };
}

/** The ids that end generation: the tokenizer's end tokens and config.json's eos_token_id, without repeats. */
export function stopTokenIds(tokenizer: Pick<Tokenizer, 'eosTokenIds'>, config: Pick<ModelConfig, 'eosTokenIds'>): number[] {
  return [...new Set([...tokenizer.eosTokenIds, ...config.eosTokenIds])];
}
