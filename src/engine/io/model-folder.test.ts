import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CancelledError,
  MissingFileError,
  ModelConfigError,
  UnsafeWeightsError,
  UnsupportedModelError,
  WeightMismatchError,
  WhetstoneError,
} from '../errors.ts';
import { expectedWeights, parseModelConfig } from '../model/config.ts';
import { Rng } from '../random.ts';
import { type FileSet, blobFileSet, openModelFolder, streamRawWeights, streamWeights, urlFileSet } from './model-folder.ts';
import { nodeFileSet, openModelDirectory } from './model-folder-node.ts';
import { type SafetensorsDType, type TensorToWrite, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, writeSafetensors } from './safetensors.ts';
import type { ByteSource } from './source.ts';

const LLAMA = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 16,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
};
const QWEN2 = { ...LLAMA, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', tie_word_embeddings: true };
const QWEN3 = { ...LLAMA, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', head_dim: 6 };

/** Seeded tensors for every weight of `config`, stored as `dtype`, with the f32 values they hold. */
function checkpoint(config: object, dtype: SafetensorsDType, seed = 1) {
  const rng = new Rng(seed);
  const tensors: TensorToWrite[] = [];
  const values = new Map<string, Float32Array>();
  for (const w of expectedWeights(parseModelConfig(config))) {
    const f = rng.fill(w.shape.reduce((a, d) => a * d, 1));
    let data: ArrayBufferView;
    let exact: Float32Array;
    if (dtype === 'BF16') exact = bf16ToF32((data = f32ToBf16(f)) as Uint16Array);
    else if (dtype === 'F16') exact = f16ToF32((data = f32ToF16(f)) as Uint16Array);
    else exact = (data = f) as Float32Array;
    tensors.push({ name: w.name, dtype, shape: w.shape, data });
    values.set(w.name, exact);
  }
  return { tensors, values };
}

let root: string;
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-folder-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function folder(files: Record<string, Uint8Array | string | object>): Promise<string> {
  const dir = join(root, `m${n++}`);
  await mkdir(dir);
  for (const [name, v] of Object.entries(files)) {
    await writeFile(join(dir, name), v instanceof Uint8Array ? v : typeof v === 'string' ? v : JSON.stringify(v));
  }
  return dir;
}

/** Wraps a FileSet to record opens, closes, concurrently open sources and bytes read per file. */
function spy(inner: FileSet) {
  const s = { opened: [] as string[], open: 0, maxOpen: 0, bytes: new Map<string, number>() };
  const files: FileSet = {
    name: inner.name,
    list: () => inner.list(),
    async open(name) {
      const src = await inner.open(name);
      s.opened.push(name);
      s.open++;
      s.maxOpen = Math.max(s.maxOpen, s.open);
      const wrapped: ByteSource = {
        name: src.name,
        size: src.size,
        read: (o, l) => {
          s.bytes.set(name, (s.bytes.get(name) ?? 0) + l);
          return src.read(o, l);
        },
        close: async () => {
          s.open--;
          await src.close?.();
        },
      };
      return wrapped;
    },
  };
  return { files, s };
}

async function errorOf(p: Promise<unknown>): Promise<WhetstoneError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(WhetstoneError);
  return e as WhetstoneError;
}

describe('openModelFolder + streamWeights', () => {
  it('loads a single-file Llama checkpoint tensor by tensor, converted to f32', async () => {
    const { tensors, values } = checkpoint(LLAMA, 'BF16');
    const stray = { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32' as const, shape: [2], data: new Float32Array(2) };
    const dir = await folder({
      'config.json': LLAMA,
      'generation_config.json': { bos_token_id: 1, eos_token_id: 2, temperature: 0.6 },
      'model.safetensors': writeSafetensors([...tensors, stray], { format: 'pt' }),
      'tokenizer.json': '{}',
      'tokenizer_config.json': '{}',
      'README.md': '# tiny',
    });
    const { files, s } = spy(await nodeFileSet(dir));
    const f = await openModelFolder(files);
    expect(f.config.architecture).toBe('LlamaForCausalLM');
    expect(f.generationConfig).toEqual({ bos_token_id: 1, eos_token_id: 2, temperature: 0.6 });
    expect(f.tokenizerFiles).toEqual(['tokenizer.json', 'tokenizer_config.json']);
    expect(f.shards.map((x) => x.file)).toEqual(['model.safetensors']);
    expect(f.unusedTensors).toEqual([stray.name]);
    expect(f.weights).toHaveLength(values.size);
    expect(s.open).toBe(0);

    const progress: number[] = [];
    const seen: string[] = [];
    for await (const w of streamWeights(f, { onProgress: (p) => progress.push(p.done), chunkBytes: 40 })) {
      seen.push(w.name);
      expect(w.dtype).toBe('BF16');
      expect(w.data).toBeInstanceOf(Float32Array);
      expect(w.data.length).toBe(w.shape.reduce((a, d) => a * d, 1));
      expect([...w.data]).toEqual([...values.get(w.name)!]);
      expect(s.maxOpen).toBe(1);
    }
    expect(seen.sort()).toEqual([...values.keys()].sort());
    expect(progress).toEqual(seen.map((_, i) => i + 1));
    expect(s.open).toBe(0);
    // Header reads plus exactly the needed tensors: the stray tensor is never read.
    const header = 8 + f.shards[0].index.headerLength;
    expect(s.bytes.get('model.safetensors')).toBe(header + f.weightBytes);
    expect(f.weightBytes).toBe(f.shards[0].index.size - f.shards[0].index.dataOffset - 8);

    const raw = [];
    for await (const w of streamRawWeights(f)) raw.push(w);
    const emb = raw.find((w) => w.name === 'model.embed_tokens.weight')!;
    const src = tensors.find((t) => t.name === emb.name)!.data;
    expect([...emb.bytes]).toEqual([...new Uint8Array(src.buffer, src.byteOffset, src.byteLength)]);
  });

  it('loads a sharded Qwen2 checkpoint (q/k/v biases, tied embeddings) one shard at a time', async () => {
    const { tensors, values } = checkpoint(QWEN2, 'F32', 2);
    expect(values.has('model.layers.1.self_attn.v_proj.bias')).toBe(true);
    const tiedCopy = { name: 'lm_head.weight', dtype: 'F32' as const, shape: [16, 8], data: new Float32Array(128) };
    const half = Math.ceil(tensors.length / 2);
    const a = tensors.slice(0, half);
    const b = [...tensors.slice(half), tiedCopy];
    const weightMap: Record<string, string> = {};
    for (const t of a) weightMap[t.name] = 'model-00001-of-00002.safetensors';
    for (const t of b) weightMap[t.name] = 'model-00002-of-00002.safetensors';
    const dir = await folder({
      'config.json': QWEN2,
      'model.safetensors.index.json': { metadata: { total_size: 1 }, weight_map: weightMap },
      'model-00001-of-00002.safetensors': writeSafetensors(a),
      'model-00002-of-00002.safetensors': writeSafetensors(b),
    });
    const { files, s } = spy(await nodeFileSet(dir));
    const f = await openModelFolder(files);
    expect(f.shards.map((x) => x.file)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(f.unusedTensors).toEqual(['lm_head.weight']);
    expect(f.generationConfig).toBeNull();
    expect(f.tokenizerFiles).toEqual([]);
    const files1: string[] = [];
    for await (const w of streamWeights(f)) {
      files1.push(f.weights.find((x) => x.name === w.name)!.file);
      expect([...w.data]).toEqual([...values.get(w.name)!]);
    }
    expect(files1).toEqual([...files1].sort()); // shard 1 finished before shard 2 started
    expect(files1).toHaveLength(values.size);
    expect(s.maxOpen).toBe(1);
    expect(s.open).toBe(0);
  });

  it('loads Qwen3 (q_norm/k_norm, explicit head_dim) stored as f16, from Blobs as in the browser', async () => {
    const { tensors, values } = checkpoint(QWEN3, 'F16', 3);
    const files = blobFileSet([
      new File([JSON.stringify(QWEN3)], 'config.json'),
      new File([writeSafetensors(tensors)], 'model.safetensors'),
      new File(['{}'], 'tokenizer.json'),
    ]);
    const f = await openModelFolder(files);
    expect(f.config.headDim).toBe(6);
    expect(f.weights.find((w) => w.name === 'model.layers.1.self_attn.k_norm.weight')?.shape).toEqual([6]);
    expect(f.weights.find((w) => w.name === 'model.layers.1.self_attn.q_proj.weight')?.shape).toEqual([12, 8]);
    let count = 0;
    for await (const w of streamWeights(f)) {
      expect([...w.data]).toEqual([...values.get(w.name)!]);
      count++;
    }
    expect(count).toBe(values.size);
  });

  it('loads from URLs with Range requests, and from a name → Blob record', async () => {
    const { tensors, values } = checkpoint(LLAMA, 'BF16', 4);
    const served = new Map<string, Uint8Array>([
      ['config.json', new TextEncoder().encode(JSON.stringify(LLAMA))],
      ['model.safetensors', writeSafetensors(tensors)],
    ]);
    const ranges: string[] = [];
    const fakeFetch = (async (url: string | URL | Request, init?: RequestInit) => {
      const name = String(url).replace('https://hub.test/repo/resolve/main/', '');
      const body = served.get(name);
      const range = (init?.headers as Record<string, string>).Range;
      ranges.push(`${name} ${range}`);
      if (!body) return new Response(null, { status: 404 });
      const [a, b] = range.slice(6).split('-').map(Number);
      const part = body.slice(a, Math.min(b, body.byteLength - 1) + 1);
      return new Response(part, { status: 206, headers: { 'content-range': `bytes ${a}-${a + part.byteLength - 1}/${body.byteLength}` } });
    }) as typeof fetch;
    const remote = urlFileSet('https://hub.test/repo/resolve/main', [...served.keys()], { fetch: fakeFetch });
    const f = await openModelFolder(remote);
    let count = 0;
    for await (const w of streamWeights(f)) {
      expect([...w.data]).toEqual([...values.get(w.name)!]);
      count++;
    }
    expect(count).toBe(values.size);
    // A size probe, the two header reads, then one bounded Range request per weight.
    const size = served.get('model.safetensors')!.byteLength;
    expect(ranges).not.toContain(`model.safetensors bytes=0-${size - 1}`);
    expect(ranges.filter((r) => r.startsWith('model.safetensors')).length).toBe(1 + 2 + values.size);
    await expect(remote.open('missing.json')).rejects.toThrow(MissingFileError);

    const local = blobFileSet(Object.fromEntries([...served].map(([k, v]) => [k, new Blob([v.slice()])])));
    expect((await openModelFolder(local)).weights).toHaveLength(values.size);
  });

  it('stops with CancelledError and closes the file', async () => {
    const dir = await folder({ 'config.json': LLAMA, 'model.safetensors': writeSafetensors(checkpoint(LLAMA, 'F32').tensors) });
    const { files, s } = spy(await nodeFileSet(dir));
    const f = await openModelFolder(files);
    const ac = new AbortController();
    let got = 0;
    const run = (async () => {
      for await (const _w of streamWeights(f, { signal: ac.signal })) {
        if (++got === 2) ac.abort();
      }
    })();
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    expect(got).toBe(2);
    expect(s.open).toBe(0);
  });
});

describe('bad model folders', () => {
  const good = () => checkpoint(LLAMA, 'BF16').tensors;

  it('pickled PyTorch weights without safetensors are refused, never opened', async () => {
    const dir = await folder({ 'config.json': LLAMA, 'pytorch_model.bin': 'not read', 'tokenizer.json': '{}' });
    const { files, s } = spy(await nodeFileSet(dir));
    const e = await errorOf(openModelFolder(files));
    expect(e).toBeInstanceOf(UnsafeWeightsError);
    expect(e.message).toMatch(/pytorch_model\.bin/);
    expect(e.hint).toMatch(/save_file/);
    expect(e.hint).toMatch(/safetensors\/convert/);
    expect(s.opened).toEqual(['config.json']);
    for (const name of ['consolidated.00.pth', 'model.pt', 'last.ckpt']) {
      const d = await folder({ 'config.json': LLAMA, [name]: 'x' });
      expect(await errorOf(openModelDirectory(d))).toBeInstanceOf(UnsafeWeightsError);
    }
  });

  it('pickles next to safetensors are ignored', async () => {
    const dir = await folder({ 'config.json': LLAMA, 'model.safetensors': writeSafetensors(good()), 'pytorch_model.bin': 'x', 'training_args.bin': 'x' });
    const { files, s } = spy(await nodeFileSet(dir));
    const f = await openModelFolder(files);
    for await (const _w of streamWeights(f));
    expect(new Set(s.opened)).toEqual(new Set(['config.json', 'model.safetensors']));
  });

  it('a shard named in the index but missing', async () => {
    const t = good();
    const weightMap = Object.fromEntries(t.map((x, i) => [x.name, i < 5 ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']));
    const dir = await folder({
      'config.json': LLAMA,
      'model.safetensors.index.json': { weight_map: weightMap },
      'model-00001-of-00002.safetensors': writeSafetensors(t.slice(0, 5)),
    });
    const e = await errorOf(openModelDirectory(dir));
    expect(e).toBeInstanceOf(MissingFileError);
    expect(e.message).toMatch(/Shard model-00002-of-00002\.safetensors, named in model\.safetensors\.index\.json, is not in/);
    expect(e.file).toBe(join(dir, 'model.safetensors.index.json'));
  });

  it('an index that places a tensor in the wrong shard, or names a path outside the folder', async () => {
    const t = good();
    const weightMap = Object.fromEntries(t.map((x) => [x.name, 'a.safetensors']));
    weightMap['model.norm.weight'] = 'b.safetensors';
    const dir = await folder({
      'config.json': LLAMA,
      'model.safetensors.index.json': { weight_map: weightMap },
      'a.safetensors': writeSafetensors(t),
      'b.safetensors': writeSafetensors([]),
    });
    const e = await errorOf(openModelDirectory(dir));
    expect(e).toBeInstanceOf(WeightMismatchError);
    expect(e.message).toMatch(/places tensor "model\.norm\.weight" in b\.safetensors, but that file does not contain it/);
    const bad = await folder({ 'config.json': LLAMA, 'model.safetensors.index.json': { weight_map: { x: '../x.safetensors' } } });
    expect((await errorOf(openModelDirectory(bad))).message).toMatch(/weight_map entry "x"/);
    const noMap = await folder({ 'config.json': LLAMA, 'model.safetensors.index.json': { metadata: {} } });
    expect(await errorOf(openModelDirectory(noMap))).toBeInstanceOf(ModelConfigError);
  });

  it('a tensor whose shape does not match the config', async () => {
    const t = good().map((x) => (x.name === 'model.layers.1.self_attn.k_proj.weight' ? { ...x, shape: [8, 4] } : x));
    const dir = await folder({ 'config.json': LLAMA, 'model.safetensors': writeSafetensors(t) });
    const e = await errorOf(openModelDirectory(dir));
    expect(e).toBeInstanceOf(WeightMismatchError);
    expect(e.file).toBe(join(dir, 'model.safetensors'));
    expect(e.message).toContain('Tensor "model.layers.1.self_attn.k_proj.weight" has shape [8, 4] but the config needs [4, 8]');
    expect(e.byteOffset).toBeGreaterThan(8);
  });

  it('a missing expected tensor, and a non-float weight', async () => {
    const noNorm = good().filter((x) => x.name !== 'model.norm.weight' && x.name !== 'lm_head.weight');
    const dir = await folder({ 'config.json': LLAMA, 'model.safetensors': writeSafetensors(noNorm) });
    const e = await errorOf(openModelDirectory(dir));
    expect(e).toBeInstanceOf(WeightMismatchError);
    expect(e.message).toMatch(/lacks 2 tensors .*: model\.norm\.weight, lm_head\.weight/);
    const ints = good().map((x) => (x.name === 'model.norm.weight' ? { ...x, dtype: 'I32' as const, data: new Int32Array(8) } : x));
    const d2 = await folder({ 'config.json': LLAMA, 'model.safetensors': writeSafetensors(ints) });
    expect((await errorOf(openModelDirectory(d2))).message).toMatch(/"model\.norm\.weight" has dtype I32/);
  });

  it('a missing or broken config.json', async () => {
    let e = await errorOf(openModelDirectory(await folder({ 'model.safetensors': writeSafetensors(good()) })));
    expect(e).toBeInstanceOf(MissingFileError);
    expect(e.message).toMatch(/has no config\.json/);
    e = await errorOf(openModelDirectory(await folder({ 'adapter_config.json': {}, 'adapter_model.safetensors': writeSafetensors([]) })));
    expect(e.hint).toMatch(/adapter folder/);
    const dir = await folder({ 'config.json': '{"architectures": ["LlamaForCausalLM"],\n "hidden_size": 8,, }' });
    e = await errorOf(openModelDirectory(dir));
    expect(e).toBeInstanceOf(ModelConfigError);
    expect(e.file).toBe(join(dir, 'config.json'));
    // The second comma of ",," is at byte 58.
    expect(e.byteOffset).toBe(/position/.test(e.message) ? 58 : 0);
    e = await errorOf(openModelDirectory(await folder({ 'config.json': { ...LLAMA, architectures: ['GPT2LMHeadModel'] } })));
    expect(e).toBeInstanceOf(UnsupportedModelError);
    e = await errorOf(openModelDirectory(await folder({ 'config.json': { ...LLAMA, hidden_size: null } })));
    expect(e.message).toMatch(/config\.json: Key "hidden_size" is null; expected a positive integer/);
  });

  it('no weights at all, or pre-quantized weights', async () => {
    let e = await errorOf(openModelDirectory(await folder({ 'config.json': LLAMA, 'consolidated.safetensors': 'x' })));
    expect(e).toBeInstanceOf(MissingFileError);
    expect(e.message).toMatch(/neither model\.safetensors nor model\.safetensors\.index\.json \(found consolidated\.safetensors\)/);
    e = await errorOf(openModelDirectory(await folder({ 'config.json': { ...LLAMA, quantization_config: { quant_method: 'gptq' } } })));
    expect(e).toBeInstanceOf(UnsupportedModelError);
    expect(e.hint).toMatch(/unquantized/);
  });

  it('a truncated weight file is reported with the file name before any weight is read', async () => {
    const bytes = writeSafetensors(good());
    const dir = await folder({ 'config.json': LLAMA, 'model.safetensors': bytes.subarray(0, bytes.byteLength - 10) });
    const e = await errorOf(openModelDirectory(dir));
    expect(e.name).toBe('SafetensorsFormatError');
    expect(e.message).toMatch(/truncated/);
    expect(e.file).toBe(join(dir, 'model.safetensors'));
  });

  it('a missing directory', async () => {
    const e = await errorOf(openModelDirectory(join(root, 'nope')));
    expect(e.name).toBe('FileReadError');
    expect(e.message).toMatch(/does not exist/);
  });
});
