// `whetstone generate --model DIR --prompt TEXT [--chat] [--adapter DIR] ...`: streams a model's
// continuation of a prompt to stdout as it is generated (KV-cache decoding, greedy or sampled), with a
// PEFT LoRA adapter applied when --adapter is given. With --chat the prompt becomes one user message
// rendered by the model's chat template with the generation prompt. A summary line (tokens, speed,
// why it stopped) goes to stderr; Ctrl-C stops generation early.

import { parseArgs } from 'node:util';
import { renderChat } from '../engine/data/chat-template.ts';
import { InvalidArgumentError } from '../engine/errors.ts';
import { generate } from '../engine/model/generate.ts';
import { StreamDecoder } from '../engine/model/tokenizer.ts';
import { intArg, loadCliAdapter, loadCliModel, loadFolderTokenizer, numberArg, openModelArg } from './model-args.ts';

/** Reads a number from generation_config.json, or `fallback` when it is absent or not a number. */
function genNumber(g: Record<string, unknown> | null, key: string, fallback: number): number {
  const v = g?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

export async function generateCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      chat: { type: 'boolean', default: false },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'top-k': { type: 'string' },
      seed: { type: 'string' },
      dtype: { type: 'string' },
      adapter: { type: 'string' },
    },
    strict: true,
  });
  const folder = await openModelArg(values.model);
  if (values.prompt === undefined) throw new InvalidArgumentError('--prompt TEXT is required.');
  const gen = folder.generationConfig;
  // Without --temperature, sample as generation_config.json says (do_sample), else decode greedily.
  const sample = gen?.do_sample === true;
  const temperature = numberArg('temperature', values.temperature, sample ? genNumber(gen, 'temperature', 1) : 0);
  const topP = numberArg('top-p', values['top-p'], sample ? genNumber(gen, 'top_p', 1) : 1);
  const topK = intArg('top-k', values['top-k'], sample ? genNumber(gen, 'top_k', 50) : 0, 0);
  const maxNewTokens = intArg('max-new-tokens', values['max-new-tokens'], genNumber(gen, 'max_new_tokens', 256), 0);
  const seed = intArg('seed', values.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1);

  const tokenizer = await loadFolderTokenizer(folder);
  let promptIds: number[];
  if (values.chat) {
    const rendered = renderChat(tokenizer.chatTemplate, [{ role: 'user', content: values.prompt }], {
      addGenerationPrompt: true,
      bosToken: tokenizer.bosToken,
      eosToken: tokenizer.eosToken,
      source: tokenizer.chatTemplateFile ?? undefined,
    });
    if (rendered.warning) process.stderr.write(`note: ${rendered.warning}\n`);
    // The template writes the special tokens itself, as transformers' apply_chat_template does.
    promptIds = tokenizer.encode(rendered.text, { addSpecialTokens: false });
  } else {
    promptIds = tokenizer.encode(values.prompt);
  }
  if (promptIds.length === 0) throw new InvalidArgumentError('The prompt encodes to no tokens; give a non-empty --prompt.');

  const { gpu, model } = await loadCliModel(folder, values.dtype);
  const controller = new AbortController();
  const onInterrupt = () => controller.abort();
  process.once('SIGINT', onInterrupt);
  try {
    const adapter = values.adapter === undefined ? null : await loadCliAdapter(model, values.adapter);
    const decoder = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
    const eosTokenIds = [...new Set([...tokenizer.eosTokenIds, ...folder.config.eosTokenIds])];
    const start = performance.now();
    const out = await generate(model, promptIds, {
      maxNewTokens,
      temperature,
      topP,
      topK,
      seed,
      eosTokenIds,
      signal: controller.signal,
      projection: adapter?.inference(),
      onToken: (id) => {
        const piece = decoder.push(id);
        if (piece) process.stdout.write(piece);
      },
    });
    process.stdout.write(`${decoder.flush()}\n`);
    const seconds = (performance.now() - start) / 1000;
    process.stderr.write(
      `[${out.promptTokens} prompt tokens, ${out.tokens.length} generated in ${seconds.toFixed(2)} s ` +
        `(${(out.tokens.length / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s), stopped: ${out.finishReason}` +
        `${temperature > 0 ? `, seed ${seed}` : ''}]\n`,
    );
    return 0;
  } finally {
    process.off('SIGINT', onInterrupt);
    model.release();
    gpu.destroy();
  }
}
