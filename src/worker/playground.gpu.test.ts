// The Playground through EngineApi on the GPU with a tiny model: streamed greedy text equals
// generate()'s (src/cli/playground-cli.gpu.test.ts compares it with `whetstone generate`); the tuned column with a random adapter from a training run in the store
// differs from the base and equals it at strength 0, and equals generate() on the model with the
// adapter; sampling with a seed repeats; Stop cancels both columns; a second GPU job is refused
// with EngineBusyError; a dropped adapter of another model is refused with AdapterMismatchError.
// Strength s is checked against the float64 reference on weights merged with s · scale. An IA3
// adapter from a run is listed with its method, applies as trained at any strength, and gives
// generate()'s text on the model viewed through its inference options.

import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../scripts/tiny/tokenizer.ts';
import { testGpu } from '../engine/gpu/testing.ts';
import { exportPeftLora } from '../engine/io/export-peft.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import type { ModelConfig } from '../engine/model/config.ts';
import { generate } from '../engine/model/generate.ts';
import { type LlamaModel, loadModel } from '../engine/model/llama.ts';
import { type TinyModel, writeTinyModel } from '../engine/model/llama-testing.ts';
import { encodePrompt, stopTokenIds } from '../engine/model/prompting.ts';
import { loadFolderTokenizer } from '../engine/model/tokenizer-folder.ts';
import { type LoraConfig, createLoraConfig, expectedLoraModules } from '../engine/peft/lora/config.ts';
import { loadLora, withAdapter } from '../engine/peft/lora/model.ts';
import { withForwardOptions } from '../engine/peft/adapter.ts';
import { findMethod, loadAdapter } from '../engine/peft/methods.ts';
import { relL2 } from '../engine/reference/compare.ts';
import { type LlamaRefRow, llamaLoss } from '../engine/reference/llama.ts';
import { mergedLlamaParams } from '../engine/reference/lora.ts';
import { Rng } from '../engine/random.ts';
import { MemoryBlobStore } from '../engine/store/store-memory.ts';
import { type ColumnDelta, EngineApi, type PlaygroundRequest } from './engine-api.ts';

let root = '';
let tiny: TinyModel;
let other: TinyModel;
const store = new MemoryBlobStore();
const api = new EngineApi(() => testGpu(), { store: () => store });
const CONFIG: LoraConfig = createLoraConfig({ r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: false });

/** PEFT files of a random LoRA adapter (A and B both nonzero) for a model config. */
function randomAdapter(modelConfig: ModelConfig, seed: number): Map<string, Uint8Array> {
  const rng = new Rng(seed);
  const tensors = new Map(
    expectedLoraModules(CONFIG, modelConfig).map((s) => [
      s.path,
      { A: rng.fill(s.r * s.inFeatures, (q) => q.uniform(-0.5, 0.5)), B: rng.fill(s.outFeatures * s.r, (q) => q.uniform(-0.5, 0.5)) },
    ]),
  );
  return exportPeftLora({ config: CONFIG, tensors, modelConfig });
}

async function put(key: string, bytes: Uint8Array): Promise<void> {
  await store.append(key, bytes);
  await store.finalize(key, { size: bytes.byteLength });
}

async function filesOf(dir: string): Promise<File[]> {
  return Promise.all((await readdir(dir)).map(async (name) => new File([await readFile(join(dir, name))], name)));
}

function request(over: Partial<PlaygroundRequest> = {}): PlaygroundRequest {
  return { prompt: 'The weather was cold', chat: false, maxNewTokens: 10, temperature: 0, topP: 1, topK: 0, seed: 0, adapterId: 'run:run-7', strength: 1, ...over };
}

/** Runs a Playground generation and joins the streamed text of each column. */
async function stream(r: PlaygroundRequest, abort?: AbortSignal, onFirst?: () => void) {
  const text = { base: '', tuned: '' };
  const chunks: ColumnDelta[][] = [];
  const result = await api.generate(
    r,
    (deltas) => {
      if (chunks.length === 0) onFirst?.();
      chunks.push(deltas);
      for (const d of deltas) text[d.column] += d.text;
    },
    abort,
  );
  if (!result.ok) throw new Error(`${result.error.name}: ${result.error.message}`);
  return { text, chunks, result: result.value };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-playground-'));
  tiny = await writeTinyModel(join(root, 'model'), { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 21 }, makeTinyTokenizer());
  other = await writeTinyModel(join(root, 'other'), { architecture: 'qwen3', tied: true, fileDtype: 'F32', seed: 5 }, makeTinyTokenizer());
  const files = randomAdapter(tiny.config, 3);
  for (const [name, bytes] of files) await put(`runs/run-7/adapter/${name}`, bytes);
  // A run still writing its adapter (no weights yet) is not listed.
  await put('runs/run-8/adapter/adapter_config.json', files.get('adapter_config.json') as Uint8Array);
  const loaded = await api.loadModelFiles(await filesOf(tiny.dir));
  if (!loaded.ok) throw new Error(loaded.error.message);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('the Playground through EngineApi', () => {
  it('lists the adapters of finished runs in the store', async () => {
    const list = await api.listAdapters();
    expect(list.ok).toBe(true);
    if (!list.ok) return;
    expect(list.value.map((a) => a.id)).toEqual(['run:run-7']);
    expect(list.value[0]).toMatchObject({ name: 'run-7', source: 'run', r: 4, alpha: 8, error: null });
    const checked = await api.checkAdapter('run:run-7');
    expect(checked.ok).toBe(true);
  });

  it('streams the greedy text of generate(), for the base model and for the model with the adapter', async () => {
    const { text, chunks, result } = await stream(request());
    console.log(`base ${JSON.stringify(text.base)} / tuned ${JSON.stringify(text.tuned)} in ${chunks.length} chunks`);
    expect(result.base.text).toBe(text.base);
    expect(result.tuned?.text).toBe(text.tuned);
    expect(result.base.tokens).toBeGreaterThan(0);
    expect(chunks.at(-1)?.every((d) => d.done)).toBe(true);

    const gpu = await testGpu();
    const model = await loadModel(gpu, await openModelDirectory(tiny.dir));
    const tokenizer = await loadFolderTokenizer(await openModelDirectory(tiny.dir));
    const adapter = await loadLora(model, randomAdapter(tiny.config, 3));
    try {
      const ids = encodePrompt(tokenizer, 'The weather was cold', false).ids;
      const options = { maxNewTokens: 10, eosTokenIds: stopTokenIds(tokenizer, model.config) };
      const base = await generate(model, ids, options);
      const tuned = await generate(withAdapter(model, adapter), ids, options);
      expect(text.base).toBe(tokenizer.decode(base.tokens, { skipSpecialTokens: true }));
      expect(text.tuned).toBe(tokenizer.decode(tuned.tokens, { skipSpecialTokens: true }));
      expect(text.tuned).not.toBe(text.base);
    } finally {
      adapter.release();
      model.release();
    }
  });

  it('gives the base text in the tuned column at strength 0, and repeats a seeded sampled generation', async () => {
    const zero = await stream(request({ strength: 0, maxNewTokens: 6 }));
    expect(zero.text.tuned).toBe(zero.text.base);
    const sampled = request({ temperature: 1.2, topK: 40, topP: 0.95, seed: 9, chat: true, prompt: 'Hello!', maxNewTokens: 6 });
    const a = await stream(sampled);
    const b = await stream(sampled);
    expect(b.text).toEqual(a.text);
    expect(a.text.tuned).not.toBe(a.text.base);
  });

  it('stops both columns on Stop, and refuses a second GPU job while one runs', async () => {
    const controller = new AbortController();
    let busy: string | null = null;
    const run = stream(request({ maxNewTokens: 200 }), controller.signal, () => {
      void api.generate(request(), () => undefined).then((r) => {
        busy = r.ok ? 'ran' : r.error.name;
        controller.abort();
      });
    });
    const { result } = await run;
    expect(busy).toBe('EngineBusyError');
    expect(result.base.finishReason).toBe('cancelled');
    expect(result.tuned?.finishReason).toBe('cancelled');
    expect(result.base.tokens).toBeLessThan(200);
    // The engine is free again.
    expect(await api.busyWith()).toBe(null);
  });

  it('refuses a dropped adapter made for another model, and bad settings, with typed errors', async () => {
    const files = [...randomAdapter(other.config, 4)].map(([name, bytes]) => new File([new Uint8Array(bytes)], name));
    const dropped = await api.addAdapterFiles(files);
    expect(dropped.ok).toBe(false);
    if (!dropped.ok) expect(dropped.error.name).toBe('AdapterMismatchError');
    const good = await api.addAdapterFiles([...randomAdapter(tiny.config, 5)].map(([name, bytes]) => new File([new Uint8Array(bytes)], name)));
    expect(good.ok && good.value.id).toBe('files:dropped adapter');
    const bad = await api.generate(request({ strength: 2.5 }), () => undefined);
    expect(!bad.ok && bad.error.name).toBe('InvalidArgumentError');
  });
});

describe('adapters of other methods', () => {
  /** PEFT files of an IA3 adapter whose vectors are random (0.25 to 1.75) rather than the identity. */
  async function randomIa3(model: LlamaModel, seed: number): Promise<Map<string, Uint8Array>> {
    const adapter = await findMethod('ia3').create(model, {}, { seed });
    try {
      const files = await adapter.exportFiles();
      const bytes = files.get('adapter_model.safetensors') as Uint8Array;
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      const at = 8 + n;
      const values = new Float32Array((bytes.byteLength - at) / 4);
      const rng = new Rng(seed);
      for (let i = 0; i < values.length; i++) values[i] = rng.uniform(0.25, 1.75);
      const out = new Uint8Array(bytes);
      out.set(new Uint8Array(values.buffer), at);
      files.set('adapter_model.safetensors', out);
      return files;
    } finally {
      adapter.release();
    }
  }

  it('lists an IA3 run with its method, applies it as trained whatever the strength, and equals generate() through its inference options', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await openModelDirectory(tiny.dir));
    const tokenizer = await loadFolderTokenizer(await openModelDirectory(tiny.dir));
    try {
      const files = await randomIa3(model, 11);
      for (const [name, bytes] of files) await put(`runs/run-9/adapter/${name}`, bytes);
      const list = await api.listAdapters();
      if (!list.ok) throw new Error(list.error.message);
      expect(list.value.find((a) => a.id === 'run:run-9')).toMatchObject({ method: 'ia3', methodLabel: 'IA3', strengthNote: 'IA3 has no update scale to turn down: it applies as trained.' });
      expect(list.value.find((a) => a.id === 'run:run-7')).toMatchObject({ method: 'lora', strengthNote: null });

      const { text, result } = await stream(request({ adapterId: 'run:run-9', strength: 0.3 }));
      expect(result.strength).toBe(1);
      const adapter = await loadAdapter(model, files);
      try {
        const ids = encodePrompt(tokenizer, 'The weather was cold', false).ids;
        const options = { maxNewTokens: 10, eosTokenIds: stopTokenIds(tokenizer, model.config) };
        const tuned = await generate(withForwardOptions(model, adapter.inferenceOptions()), ids, options);
        expect(text.tuned).toBe(tokenizer.decode(tuned.tokens, { skipSpecialTokens: true }));
        // The tiny model's greedy text may not change, but the adapter does change its logits.
        const [adapted, base] = [(await withForwardOptions(model, adapter.inferenceOptions()).logits([ids]))[0], (await model.logits([ids]))[0]];
        expect(relL2(adapted, base)).toBeGreaterThan(1e-2);
      } finally {
        adapter.release();
      }
    } finally {
      model.release();
    }
  });
});

describe('adapter strength', () => {
  let model: LlamaModel;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await openModelDirectory(tiny.dir));
  });
  afterAll(() => model.release());

  it('strength 0 gives the base logits, and strength s the float64 reference with W + s · scale · B · A', async () => {
    const adapter = await loadLora(model, randomAdapter(tiny.config, 3));
    try {
      const tensors = await adapter.toTensors();
      const rows: LlamaRefRow[] = [{ inputIds: [3, 17, 42, 8, 99, 5, 23] }];
      const ids = rows.map((r) => r.inputIds);
      for (const s of [1, 0.35, 2]) {
        adapter.strength = s;
        const modules = adapter.modules.map((path) => {
          const spec = adapter.moduleSpec(path);
          const pair = tensors.get(path)!;
          return { path, A: pair.A, B: pair.B, r: spec.r, scale: spec.scaling * s };
        });
        const want = llamaLoss(tiny.config, mergedLlamaParams(tiny.params, modules), rows).logits;
        const got = await withAdapter(model, adapter).logits(ids);
        const err = relL2(got[0], want[0]);
        console.log(`strength ${s}: logits relL2 ${err.toExponential(2)}`);
        expect(err).toBeLessThan(1e-5);
      }
      adapter.strength = 0;
      const [zero, base] = [await withAdapter(model, adapter).logits(ids), await model.logits(ids)];
      expect(zero[0]).toEqual(base[0]);
    } finally {
      adapter.release();
    }
  });
});
