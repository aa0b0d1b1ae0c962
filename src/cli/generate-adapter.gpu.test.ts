// `whetstone generate --adapter DIR` for methods other than LoRA, on the demo model
// (public/models/demo): the method is detected from the saved files and the CLI prints the text the
// engine's greedy generation gives through the adapter's view — prompt tuning with its virtual
// tokens before the prompt, prefix tuning with its keys and values in the KV cache.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../engine/gpu/testing.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { generate } from '../engine/model/generate.ts';
import { loadModel } from '../engine/model/llama.ts';
import { stopTokenIds } from '../engine/model/prompting.ts';
import { withForwardOptions } from '../engine/peft/adapter.ts';
import { findMethod, parseMethodOptions } from '../engine/peft/methods.ts';
import { loadFolderTokenizer } from './model-args.ts';
import { runCaptured } from './run-captured.ts';

const DEMO = 'public/models/demo';
let root = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-generate-adapter-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('whetstone generate --adapter', () => {
  it.each(['prompt', 'prefix'])('%s tuning: prints the engine’s greedy text through the adapter', async (id) => {
    const gpu = await testGpu();
    const folder = await openModelDirectory(DEMO);
    const tokenizer = await loadFolderTokenizer(folder);
    const model = await loadModel(gpu, folder);
    const dir = join(root, id);
    const prompt = 'The sky is';
    let want: string;
    let base: string;
    try {
      const method = findMethod(id);
      const adapter = await method.create(model, parseMethodOptions(method, { 'virtual-tokens': '3' }), { seed: 4 });
      try {
        await mkdir(dir, { recursive: true });
        for (const [name, bytes] of await adapter.exportFiles()) await writeFile(join(dir, name), bytes);
        const ids = tokenizer.encode(prompt);
        const options = { maxNewTokens: 4, temperature: 0, eosTokenIds: stopTokenIds(tokenizer, folder.config) };
        const out = await generate(withForwardOptions(model, adapter.inferenceOptions()), adapter.promptIds?.(ids) ?? ids, options);
        want = tokenizer.decode(out.tokens, { skipSpecialTokens: true });
        base = tokenizer.decode((await generate(model, ids, options)).tokens, { skipSpecialTokens: true });
      } finally {
        adapter.release();
      }
    } finally {
      model.release();
    }
    const r = await runCaptured(['generate', '--model', DEMO, '--adapter', dir, '--prompt', prompt, '--max-new-tokens', '4', '--temperature', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`adapter: ${id}, 3 virtual tokens`);
    if (id === 'prompt') expect(r.stderr).toMatch(/prompt tokens \(\+3 virtual\)/);
    expect(r.stdout).toBe(`${want}\n`);
    // The adapter changes the continuation here (random virtual tokens on a random model).
    expect(want).not.toBe(base);
  });
});
