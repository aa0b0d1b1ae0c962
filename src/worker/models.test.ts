// ModelService without a GPU: Hub downloads from the local stand-in into a memory store, the
// cached-model list with sizes and parameters, cancel and resume, delete; model id parsing.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StandIn, startHubStandIn } from '../../e2e/hub-stand-in.ts';
import { parameterCount, parseModelConfig } from '../engine/model/config.ts';
import { MemoryBlobStore } from '../engine/store/store-memory.ts';
import { type DownloadStatus, ModelService, parseModelId } from './models.ts';

const DEMO = join(import.meta.dirname, '../../public/models/demo');
const REPO = 'whetstone-test/demo-tiny';
const demoBytes = readdirSync(DEMO).reduce((n, f) => n + readFileSync(join(DEMO, f)).byteLength, 0);
const demoParams = parameterCount(parseModelConfig(JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'))));

let hub: StandIn;
beforeAll(async () => {
  hub = await startHubStandIn({ repo: REPO, dir: DEMO, pieceBytes: 16 * 1024 });
});
afterAll(async () => {
  await hub.close();
});

function service() {
  const store = new MemoryBlobStore();
  const models = new ModelService({
    gpu: () => Promise.reject(new Error('no GPU in this test')),
    store: () => store,
    demoUrl: null,
    storageReport: async () => ({ usage: 1, quota: 2, persisted: false }),
  });
  return { store, models };
}

describe('parseModelId', () => {
  it('reads ids, refs and Hub URLs', () => {
    expect(parseModelId('Qwen/Qwen3-0.6B')).toEqual({ repo: 'Qwen/Qwen3-0.6B', revision: 'main' });
    expect(parseModelId(' hub:Qwen/Qwen3-0.6B@v1 ')).toEqual({ repo: 'Qwen/Qwen3-0.6B', revision: 'v1' });
    expect(parseModelId('https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct')).toEqual({ repo: 'HuggingFaceTB/SmolLM2-135M-Instruct', revision: 'main' });
    expect(parseModelId('https://huggingface.co/org/name/tree/dev')).toEqual({ repo: 'org/name', revision: 'dev' });
    expect(() => parseModelId('not a model')).toThrow(/not a Hub model reference/);
  });
});

describe('ModelService downloads', () => {
  it('downloads into the store with progress, lists the model with its size and parameters, deletes it', async () => {
    const { models } = service();
    const events: DownloadStatus[] = [];
    const cached = await models.download({ id: REPO, endpoint: hub.url }, new AbortController().signal, (p) => events.push(p));
    expect(cached).toMatchObject({ id: `hub:${REPO}@main`, repo: REPO, revision: 'main', complete: true, bytes: demoBytes, files: 5, partialBytes: 0, parameters: demoParams, architecture: 'LlamaForCausalLM' });
    const last = events.at(-1)!;
    expect(last.bytes).toBe(demoBytes);
    expect(last.total).toBe(demoBytes);
    expect(last.secondsLeft === null || last.secondsLeft === 0).toBe(true);
    const list = await models.listCached();
    expect(list.models.map((m) => m.id)).toEqual([`hub:${REPO}@main`]);
    expect(list.usage.files).toBe(6); // five model files and the download record
    expect(list.storage).toEqual({ usage: 1, quota: 2, persisted: false });
    const after = await models.deleteCached(`hub:${REPO}@main`);
    expect(after.models).toEqual([]);
    expect(after.usage.files).toBe(0);
  });

  it('keeps a cancelled download as partial and resumes it', async () => {
    const { models } = service();
    hub.setPause(30);
    const abort = new AbortController();
    const cancelled = models.download({ id: REPO, endpoint: hub.url }, abort.signal, (p) => {
      if (p.file === 'model.safetensors' && p.fileBytes > 200_000) abort.abort();
    });
    await expect(cancelled).rejects.toThrow(/cancelled/);
    hub.setPause(0);
    const partial = (await models.listCached()).models[0];
    expect(partial.complete).toBe(false);
    expect(partial.partialBytes).toBeGreaterThan(200_000);
    const before = hub.requests.length;
    const done = await models.download({ id: REPO, endpoint: hub.url }, new AbortController().signal);
    expect(done.complete).toBe(true);
    expect(done.bytes).toBe(demoBytes);
    expect(hub.requests.slice(before).some((r) => /model\.safetensors bytes=\d+-$/.test(r))).toBe(true);
  });

  it('refuses to load a model whose download is not finished', async () => {
    const { models } = service();
    await expect(models.loadCached(`hub:${REPO}@main`, new AbortController().signal)).rejects.toThrow(/not completely downloaded/);
  });
});
