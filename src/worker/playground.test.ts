// The Playground's pure parts without a GPU: batching of streamed text, the settings check, the
// store keys of run adapters and the adapter list read from a memory store.
import { describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../engine/store/store-memory.ts';
import { ChunkBatcher, type PlaygroundRequest, PlaygroundService, checkRequest, runOfAdapterKey } from './playground.ts';

const REQUEST: PlaygroundRequest = { prompt: 'Hi', chat: false, maxNewTokens: 8, temperature: 0, topP: 1, topK: 0, seed: 0, adapterId: null, strength: 1 };

describe('ChunkBatcher', () => {
  it('joins the text of each column and hands it out at most once per interval, all at the end', () => {
    let t = 0;
    const b = new ChunkBatcher(() => t, 50);
    expect(b.take()).toBe(null);
    b.add({ column: 'base', text: 'He', tokens: 1, seconds: 0.01, done: false });
    b.add({ column: 'tuned', text: 'Ho', tokens: 1, seconds: 0.01, done: false });
    t = 20;
    b.add({ column: 'base', text: 'llo', tokens: 2, seconds: 0.02, done: false });
    expect(b.take()).toBe(null);
    t = 60;
    expect(b.take()).toEqual([
      { column: 'base', text: 'Hello', tokens: 2, seconds: 0.02, done: false },
      { column: 'tuned', text: 'Ho', tokens: 1, seconds: 0.01, done: false },
    ]);
    t = 70;
    b.add({ column: 'tuned', text: '!', tokens: 2, seconds: 0.07, done: true });
    expect(b.take()).toBe(null);
    expect(b.take(true)).toEqual([{ column: 'tuned', text: '!', tokens: 2, seconds: 0.07, done: true }]);
    expect(b.take(true)).toBe(null);
  });
});

describe('checkRequest', () => {
  it('accepts good settings and names what is wrong with bad ones', () => {
    expect(() => checkRequest(REQUEST)).not.toThrow();
    expect(() => checkRequest({ ...REQUEST, strength: 2 })).not.toThrow();
    expect(() => checkRequest({ ...REQUEST, prompt: '  ' })).toThrow(/prompt is empty/);
    expect(() => checkRequest({ ...REQUEST, maxNewTokens: 0 })).toThrow(/Max new tokens/);
    expect(() => checkRequest({ ...REQUEST, maxNewTokens: 2.5 })).toThrow(/Max new tokens/);
    expect(() => checkRequest({ ...REQUEST, seed: -1 })).toThrow(/seed/);
    expect(() => checkRequest({ ...REQUEST, strength: 2.01 })).toThrow(/strength/);
    expect(() => checkRequest({ ...REQUEST, strength: Number.NaN })).toThrow(/strength/);
    expect(() => checkRequest({ ...REQUEST, temperature: -1 })).toThrow(/temperature/);
    expect(() => checkRequest({ ...REQUEST, topP: 0 })).toThrow(/top-p/);
    expect(() => checkRequest({ ...REQUEST, topK: 1.5 })).toThrow(/top-k/);
  });
});

describe('run adapters in the store', () => {
  it('reads run ids from adapter config keys only', () => {
    expect(runOfAdapterKey('runs/abc-1/adapter/adapter_config.json')).toBe('abc-1');
    expect(runOfAdapterKey('runs/abc-1/adapter/adapter_model.safetensors')).toBe(null);
    expect(runOfAdapterKey('runs/abc-1/checkpoint/adapter_config.json')).toBe(null);
    expect(runOfAdapterKey('runs/a/b/adapter/adapter_config.json')).toBe(null);
  });

  it('lists finished runs with what their config says, and marks an unreadable config', async () => {
    const store = new MemoryBlobStore();
    const put = async (key: string, text: string) => {
      const bytes = new TextEncoder().encode(text);
      await store.append(key, bytes);
      await store.finalize(key, { size: bytes.byteLength });
    };
    await put('runs/b/adapter/adapter_config.json', JSON.stringify({ r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: 'demo' }));
    await put('runs/b/adapter/adapter_model.safetensors', 'xxxx');
    await put('runs/a/adapter/adapter_config.json', '{not json');
    await put('runs/a/adapter/adapter_model.safetensors', 'yy');
    await put('runs/c/adapter/adapter_config.json', '{}'); // no weights yet
    await store.append('runs/d/adapter/adapter_config.json', new Uint8Array(3)); // partial
    const service = new PlaygroundService({ store: () => store, active: () => null });
    const list = await service.listAdapters();
    expect(list.map((a) => a.id)).toEqual(['run:a', 'run:b']);
    expect(list[1]).toEqual({ id: 'run:b', name: 'b', source: 'run', r: 8, alpha: 16, targets: 'q_proj, v_proj', baseModel: 'demo', bytes: list[1].bytes, method: null, methodLabel: null, strengthNote: null, error: null });
    expect(list[0].error?.message).toMatch(/runs\/a\/adapter\/adapter_config.json.*not readable JSON/);
    await expect(service.generate(REQUEST, () => undefined, new AbortController().signal)).rejects.toThrow(/No model is loaded/);
  });
});
