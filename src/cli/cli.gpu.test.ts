// The model commands of the CLI, run in-process through main() on a tiny model folder: the JSON
// contract of `info` and `eval --json`, eval's loss against the float64 reference, a bad JSONL line
// reported with its line number, `generate` streaming the same text as the engine's greedy
// generation (plain and --chat), and hub: models downloaded from a local stand-in for the Hub.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../scripts/tiny/tokenizer.ts';
import { renderChat } from '../engine/data/chat-template.ts';
import { prepareDataset } from '../engine/data/dataset.ts';
import { memorySource } from '../engine/io/source.ts';
import { testGpu } from '../engine/gpu/testing.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { parameterCount } from '../engine/model/config.ts';
import { generate } from '../engine/model/generate.ts';
import { loadModel } from '../engine/model/llama.ts';
import { type TinyModel, writeTinyModel } from '../engine/model/llama-testing.ts';
import { type Tokenizer } from '../engine/model/tokenizer.ts';
import { llamaLoss } from '../engine/reference/llama.ts';
import { runCaptured } from './run-captured.ts';
import { loadFolderTokenizer } from './model-args.ts';

let root = '';
let tiny: TinyModel;
let tokenizer: Tokenizer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-cli-'));
  tiny = await writeTinyModel(join(root, 'model'), { architecture: 'llama', tied: true, fileDtype: 'BF16', seed: 21 }, makeTinyTokenizer());
  tokenizer = await loadFolderTokenizer(await openModelDirectory(tiny.dir));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const run = runCaptured;

describe('whetstone model commands', () => {
  it('info prints the JSON summary of a model folder', async () => {
    const r = await run(['info', '--model', tiny.dir]);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    console.log(`info: ${JSON.stringify(info)}`);
    expect(info).toMatchObject({
      architecture: 'LlamaForCausalLM',
      parameters: parameterCount(tiny.config),
      layers: 2,
      heads: 4,
      kvHeads: 2,
      hiddenSize: 32,
      vocabSize: tiny.config.vocabSize,
      contextLength: 512,
      dtype: 'bfloat16',
      tiedEmbeddings: true,
    });
  });

  it('eval --json ends with {loss, tokens, ppl}, equal to the float64 reference; without --json it prints one line', async () => {
    const texts = ['The sun rose over the quiet town.', 'To make a cup of tea, boil some water.'];
    const ids = tokenizer.encode('User: What is the capital of France?');
    const labels = ids.map((t, i) => (i < 4 ? -100 : t));
    const data = join(root, 'eval.jsonl');
    await writeFile(data, [...texts.map((text) => JSON.stringify({ text })), '', JSON.stringify({ input_ids: ids, labels })].join('\n') + '\n');
    const r = await run(['eval', '--model', tiny.dir, '--data', data, '--json', '--batch-tokens', '24']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const result = JSON.parse(lines[lines.length - 1]);
    console.log(`eval --json: ${lines[lines.length - 1]}`);
    expect(Object.keys(result).sort()).toEqual(['loss', 'ppl', 'tokens']);
    const want = llamaLoss(tiny.config, tiny.params, [...texts.map((t) => ({ inputIds: tokenizer.encode(t) })), { inputIds: ids, labels }]);
    expect(result.tokens).toBe(want.tokens);
    expect(Number.isInteger(result.tokens)).toBe(true);
    expect(Math.abs(result.loss - want.loss) / want.loss).toBeLessThan(1e-5);
    expect(result.ppl).toBeCloseTo(Math.exp(result.loss), 6);

    const plain = await run(['eval', '--model', tiny.dir, '--data', data, '--dtype', 'bf16']);
    expect(plain.code, plain.stderr).toBe(0);
    console.log(`eval: ${plain.stdout.trim()}`);
    expect(plain.stdout).toMatch(new RegExp(`^loss ${result.loss.toFixed(4)}\\d* {2}ppl [\\d.]+ {2}tokens ${want.tokens} {2}rows 3\\n$`));
  });

  it('eval reports a bad JSONL line with its line number and exits 1', async () => {
    const data = join(root, 'bad.jsonl');
    await writeFile(data, '{"text": "hello"}\n{"input_ids": [1, 2, 3]}\n{"input_ids": [1, 2], "labels": [5]}\n');
    const r = await run(['eval', '--model', tiny.dir, '--data', data, '--json']);
    console.log(`bad row: ${r.stderr.trim()}`);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`error: DatasetRowsError: ${data}:3: "labels" has 1 entries but "input_ids" has 2`);
    await writeFile(data, '{"text": "hello"}\nnot json\n');
    const notJson = await run(['eval', '--model', tiny.dir, '--data', data]);
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toContain(`error: DatasetFormatError: ${data}:2: The line is not valid JSON`);
  });

  it('generate streams the same text as greedy generation in the engine, plain and with --chat', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await openModelDirectory(tiny.dir));
    const expected = async (promptIds: number[]) => {
      const out = await generate(model, promptIds, { maxNewTokens: 12, eosTokenIds: tokenizer.eosTokenIds });
      return tokenizer.decode(out.tokens, { skipSpecialTokens: true });
    };
    try {
      const prompt = 'The weather was cold';
      const r = await run(['generate', '--model', tiny.dir, '--prompt', prompt, '--max-new-tokens', '12']);
      expect(r.code, r.stderr).toBe(0);
      console.log(`generate: ${JSON.stringify(r.stdout)} / ${r.stderr.trim()}`);
      expect(r.stdout).toBe(`${await expected(tokenizer.encode(prompt))}\n`);
      expect(r.stderr).toMatch(/generated in .* tokens\/s\), stopped: (length|eos)\]/);

      const chat = await run(['generate', '--model', tiny.dir, '--prompt', 'Hello!', '--chat', '--max-new-tokens', '12']);
      expect(chat.code, chat.stderr).toBe(0);
      const rendered = renderChat(tokenizer.chatTemplate, [{ role: 'user', content: 'Hello!' }], { addGenerationPrompt: true });
      expect(rendered.text.endsWith('<|im_start|>assistant\n')).toBe(true);
      expect(chat.stdout).toBe(`${await expected(tokenizer.encode(rendered.text, { addSpecialTokens: false }))}\n`);

      const sampled = ['generate', '--model', tiny.dir, '--prompt', prompt, '--max-new-tokens', '8', '--temperature', '1.3', '--top-k', '40', '--top-p', '0.9', '--seed', '5'];
      const a = await run(sampled);
      const b = await run(sampled);
      expect(a.code, a.stderr).toBe(0);
      expect(b.stdout).toBe(a.stdout);
      expect(a.stderr).toContain('seed 5');
    } finally {
      model.release();
    }
  });

  it('eval takes every dataset format with the training masks: an Alpaca file counts only the answers', async () => {
    // The tiny model shares its tokenizer with the Alpaca rows written here.
    const data = join(root, 'alpaca.jsonl');
    const rows = [
      { instruction: 'Name a colour.', input: '', output: 'Blue.' },
      { instruction: 'Add the numbers.', input: '2 and 3', output: 'They make 5.' },
    ];
    await writeFile(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const prepared = await prepareDataset(memorySource(new TextEncoder().encode(await readFile(data, 'utf8')), 'alpaca.jsonl'), {
      tokenizer,
      maxLength: tiny.config.maxPositionEmbeddings,
      valFraction: 0,
      seed: 0,
    });
    const masked = await run(['eval', '--model', tiny.dir, '--data', data, '--json']);
    expect(masked.code, masked.stderr).toBe(0);
    const m = JSON.parse(masked.stdout.trim().split('\n').pop()!);
    expect(m.tokens).toBe(prepared.stats.countedTokens);
    const all = await run(['eval', '--model', tiny.dir, '--data', data, '--json', '--train-on-prompt']);
    const a = JSON.parse(all.stdout.trim().split('\n').pop()!);
    expect(a.tokens).toBeGreaterThan(m.tokens);
    expect(Math.abs(a.loss - m.loss)).toBeGreaterThan(1e-6);
  });

  it('downloads hub: models through HF_ENDPOINT into the cache, and refuses bad flags with a clear error', async () => {
    // A stand-in for the Hub on 127.0.0.1 with its URL layout, serving the tiny folder.
    const names = (await readdir(tiny.dir)).sort();
    const requests: string[] = [];
    const server = createServer(async (req, res) => {
      requests.push(`${req.method} ${req.url}`);
      const url = req.url ?? '';
      if (url.startsWith('/api/models/org/tiny')) {
        const siblings = await Promise.all(names.map(async (rfilename) => ({ rfilename, size: (await stat(join(tiny.dir, rfilename))).size })));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'org/tiny', sha: 'abc123', siblings }));
        return;
      }
      const m = /^\/org\/tiny\/resolve\/[^/]+\/(.+)$/.exec(url);
      if (!m || !names.includes(decodeURIComponent(m[1]))) {
        res.writeHead(404).end();
        return;
      }
      const body = await readFile(join(tiny.dir, decodeURIComponent(m[1])));
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (range) {
        const start = Number(range[1]);
        const end = range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
        res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${body.length}` });
        res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
      } else {
        res.writeHead(200, { 'content-length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, WHETSTONE_HOME: process.env.WHETSTONE_HOME };
    process.env.HF_ENDPOINT = `http://127.0.0.1:${port}`;
    process.env.WHETSTONE_HOME = join(root, 'cache');
    try {
      const hub = await run(['info', '--model', 'hub:org/tiny']);
      expect(hub.code, hub.stderr).toBe(0);
      expect(JSON.parse(hub.stdout)).toMatchObject({ architecture: 'LlamaForCausalLM', parameters: parameterCount(tiny.config) });
      expect(requests.some((r) => r.includes('/org/tiny/resolve/') && r.includes('model.safetensors'))).toBe(true);
      // The files landed in the cache as an ordinary model folder.
      expect((await readdir(join(root, 'cache', 'models', 'org', 'tiny@main'))).sort()).toEqual(names);
      // A second run finds them cached and downloads nothing.
      const before = requests.length;
      expect((await run(['info', '--model', 'hub:org/tiny'])).code).toBe(0);
      expect(requests.slice(before).filter((r) => r.includes('/resolve/') && r.startsWith('GET'))).toEqual([]);
      const absent = await run(['info', '--model', 'hub:org/absent']);
      expect(absent.code).toBe(1);
      expect(absent.stderr).toMatch(/org\/absent/);
    } finally {
      process.env.HF_ENDPOINT = saved.HF_ENDPOINT;
      process.env.WHETSTONE_HOME = saved.WHETSTONE_HOME;
      if (saved.HF_ENDPOINT === undefined) delete process.env.HF_ENDPOINT;
      if (saved.WHETSTONE_HOME === undefined) delete process.env.WHETSTONE_HOME;
      await new Promise((resolve) => server.close(resolve));
    }
    const missing = await run(['eval', '--data', 'x.jsonl']);
    expect(missing.stderr).toContain('--model DIR is required');
    const badTemp = await run(['generate', '--model', tiny.dir, '--prompt', 'hi', '--temperature', 'warm']);
    expect(badTemp.code).toBe(1);
    expect(badTemp.stderr).toContain('--temperature must be a number');
  });
});
