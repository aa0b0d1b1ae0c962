// The studio's Playground (EngineApi.generate, streamed) and `whetstone generate` give the same
// greedy text for the same prompt and model, plain and with the chat template: both go through
// engine/model/prompting.ts and generate.ts.

import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../scripts/tiny/tokenizer.ts';
import { testGpu } from '../engine/gpu/testing.ts';
import { type TinyModel, writeTinyModel } from '../engine/model/llama-testing.ts';
import { EngineApi } from '../worker/engine-api.ts';
import { runCaptured } from './run-captured.ts';

let root = '';
let tiny: TinyModel;
const api = new EngineApi(() => testGpu());

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-playground-cli-'));
  tiny = await writeTinyModel(join(root, 'model'), { architecture: 'qwen2', tied: false, fileDtype: 'BF16', seed: 8 }, makeTinyTokenizer());
  const files = await Promise.all((await readdir(tiny.dir)).map(async (name) => new File([await readFile(join(tiny.dir, name))], name)));
  const loaded = await api.loadModelFiles(files);
  if (!loaded.ok) throw new Error(loaded.error.message);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

it('streams the same greedy text in the Playground as `whetstone generate` prints', async () => {
  for (const [prompt, chat] of [['The weather was cold', false], ['Hello!', true]] as const) {
    let streamed = '';
    const r = await api.generate(
      { prompt, chat, maxNewTokens: 10, temperature: 0, topP: 1, topK: 0, seed: 0, adapterId: null, strength: 1 },
      (deltas) => {
        for (const d of deltas) streamed += d.text;
      },
    );
    expect(r.ok && r.value.tuned).toBe(null);
    const cli = await runCaptured(['generate', '--model', tiny.dir, '--prompt', prompt, '--max-new-tokens', '10', '--temperature', '0', ...(chat ? ['--chat'] : [])]);
    expect(cli.code, cli.stderr).toBe(0);
    console.log(`${chat ? 'chat' : 'plain'}: Playground ${JSON.stringify(streamed)}, CLI ${JSON.stringify(cli.stdout)}`);
    expect(streamed.length).toBeGreaterThan(0);
    expect(`${streamed}\n`).toBe(cli.stdout);
  }
});
