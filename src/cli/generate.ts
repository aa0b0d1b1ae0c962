// `whetstone generate --model DIR --prompt TEXT [--chat] [--adapter DIR] ...`: streams a model's
// continuation of a prompt to stdout as it is generated (KV-cache decoding, greedy or sampled), with an
// adapter of any tuning method applied when --adapter is given: its method is detected from the saved
// files (peft/methods.ts) and its inference hooks apply to every pass (prompt tuning's virtual tokens
// go before the prompt, prefix tuning's keys and values into the KV cache). With --chat the prompt becomes one user message
// rendered by the model's chat template with the generation prompt. A summary line (tokens, speed,
// why it stopped) goes to stderr; Ctrl-C stops generation early.

import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../engine/errors.ts';
import { generate } from '../engine/model/generate.ts';
import { withForwardOptions } from '../engine/peft/adapter.ts';
import { encodePrompt, samplingDefaults, stopTokenIds } from '../engine/model/prompting.ts';
import { StreamDecoder } from '../engine/model/tokenizer.ts';
import type { PeftAdapter } from '../engine/peft/adapter.ts';
import { QUANT_FLAGS, parseQuantFlags } from './quantize.ts';
import { intArg, loadCliMethodAdapter, loadCliModel, loadFolderTokenizer, numberArg, openModelArg } from './model-args.ts';

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
      ...QUANT_FLAGS,
      adapter: { type: 'string' },
    },
    strict: true,
  });
  const folder = await openModelArg(values.model);
  if (values.prompt === undefined) throw new InvalidArgumentError('--prompt TEXT is required.');
  // Without --temperature and the rest, sample as generation_config.json says (do_sample), else decode greedily.
  const defaults = samplingDefaults(folder.generationConfig);
  const temperature = numberArg('temperature', values.temperature, defaults.temperature);
  const topP = numberArg('top-p', values['top-p'], defaults.topP);
  const topK = intArg('top-k', values['top-k'], defaults.topK, 0);
  const maxNewTokens = intArg('max-new-tokens', values['max-new-tokens'], defaults.maxNewTokens, 0);
  const seed = intArg('seed', values.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1);

  const tokenizer = await loadFolderTokenizer(folder);
  const prompt = encodePrompt(tokenizer, values.prompt, values.chat ?? false);
  if (prompt.warning) process.stderr.write(`note: ${prompt.warning}\n`);
  const promptIds = prompt.ids;

  const { gpu, model } = await loadCliModel(folder, values.dtype, parseQuantFlags(values));
  const controller = new AbortController();
  const onInterrupt = () => controller.abort();
  process.once('SIGINT', onInterrupt);
  let adapter: PeftAdapter | null = null;
  try {
    adapter = values.adapter === undefined ? null : await loadCliMethodAdapter(model, values.adapter);
    if (adapter) process.stderr.write(`adapter: ${adapter.method}, ${adapter.describe()}\n`);
    const adapted = adapter ? withForwardOptions(model, adapter.inferenceOptions()) : model;
    // Prompt tuning puts placeholders for its virtual tokens in front; the other methods feed the prompt as it is.
    const ids = adapter?.promptIds?.(promptIds) ?? promptIds;
    const decoder = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
    const eosTokenIds = stopTokenIds(tokenizer, folder.config);
    const start = performance.now();
    const out = await generate(adapted, ids, {
      maxNewTokens,
      temperature,
      topP,
      topK,
      seed,
      eosTokenIds,
      signal: controller.signal,
      onToken: (id) => {
        const piece = decoder.push(id);
        if (piece) process.stdout.write(piece);
      },
    });
    process.stdout.write(`${decoder.flush()}\n`);
    const seconds = (performance.now() - start) / 1000;
    process.stderr.write(
      `[${promptIds.length} prompt tokens${ids.length > promptIds.length ? ` (+${ids.length - promptIds.length} virtual)` : ''}, ${out.tokens.length} generated in ${seconds.toFixed(2)} s ` +
        `(${(out.tokens.length / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s), stopped: ${out.finishReason}` +
        `${temperature > 0 ? `, seed ${seed}` : ''}]\n`,
    );
    return 0;
  } finally {
    process.off('SIGINT', onInterrupt);
    adapter?.release();
    model.release();
    gpu.destroy();
  }
}
