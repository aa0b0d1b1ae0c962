// Compression through EngineApi (as the studio's worker runs it) on the demo model and the sample
// dataset: dropping one layer and clustering to 16 centroids each store a folder under
// compressed/<id>/ whose reported weight bytes and parameters are the written folder's, whose
// "after" loss is the written folder loaded back and evaluated by the engine, whose "before" loss
// is the loaded model's, and which downloads as a zip with config.json and model.safetensors.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../engine/gpu/testing.ts';
import { parameterCount } from '../engine/model/config.ts';
import { evaluateLoss, loadModel } from '../engine/model/llama.ts';
import { MemoryBlobStore } from '../engine/store/store-memory.ts';
import { prepareDataset } from '../engine/data/dataset.ts';
import { blobSource } from '../engine/io/source.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { loadFolderTokenizer } from '../engine/model/tokenizer-folder.ts';
import { openCompressedFolder } from './compress.ts';
import { type CompressRequest, EngineApi } from './engine-api.ts';

const DEMO = 'public/models/demo';
const SAMPLE = readFileSync('public/datasets/alpaca-facts.jsonl');
const store = new MemoryBlobStore();
const api = new EngineApi(() => testGpu(), { store: () => store });
/** A few short rows keep the CPU adapter's evaluations quick. */
const evaluation = { rows: 2, maxTokens: 24 };
const dataset = { file: new Blob([SAMPLE]), fileName: 'alpaca-facts.jsonl', import: { trainOnPrompt: false, skipBadRows: false } };

beforeAll(async () => {
  const files = readdirSync(DEMO).map((name) => new File([readFileSync(join(DEMO, name))], name));
  const r = await api.loadModelFiles(files);
  expect(r.ok).toBe(true);
});

/** The evaluation rows the worker measures on, prepared here independently. */
async function rows() {
  const demo = await openModelDirectory(DEMO);
  const prepared = await prepareDataset(blobSource(new Blob([SAMPLE]), 'alpaca-facts.jsonl'), {
    tokenizer: await loadFolderTokenizer(demo),
    maxLength: evaluation.maxTokens,
    trainOnPrompt: false,
    skipBadRows: false,
    valFraction: 0,
    seed: 0,
  });
  return prepared.train.slice(0, evaluation.rows).map((e) => ({ inputIds: Array.from(e.inputIds), labels: Array.from(e.labels) }));
}

describe('compression through EngineApi', () => {
  it('drops a layer and clusters: numbers match the written folders, which download as zips', async () => {
    const demo = await openModelDirectory(DEMO);
    const evalRows = await rows();
    const gpu = await testGpu();
    const base = await loadModel(gpu, demo);
    const baseLoss = (await evaluateLoss(base, evalRows)).loss;
    base.release();
    const stages = new Set<string>();
    for (const technique of [{ kind: 'drop-layers', layers: [1] }, { kind: 'cluster', k: 16, targets: 'projections' }] as CompressRequest['technique'][]) {
      const r = await api.compressModel({ technique, dataset, evaluation }, (p) => stages.add(p.stage));
      if (!r.ok) throw new Error(r.error.message);
      const res = r.value;
      const written = await openCompressedFolder(store, res.id);
      const st = await store.stat(`compressed/${res.id}/model.safetensors`);
      expect(res.after.weightBytes).toBe(st?.size);
      expect(res.before.weightBytes).toBe(readFileSync(join(DEMO, 'model.safetensors')).byteLength);
      expect(res.before.parameters).toBe(parameterCount(demo.config));
      expect(res.after.parameters).toBe(parameterCount(written.config));
      expect(res.evalRows).toBe(evalRows.length);
      expect(res.before.loss).toBeCloseTo(baseLoss, 5);
      const model = await loadModel(gpu, written);
      const after = (await evaluateLoss(model, evalRows)).loss;
      model.release();
      expect(res.after.loss).toBeCloseTo(after, 5);
      if (technique.kind === 'drop-layers') {
        expect(written.config.numHiddenLayers).toBe(demo.config.numHiddenLayers - 1);
        expect(res.after.weightBytes).toBeLessThan(res.before.weightBytes);
        expect(res.after.parameters).toBeLessThan(res.before.parameters);
      } else {
        expect(written.weights.some((w) => w.codebook !== undefined)).toBe(true);
        expect(res.after.parameters).toBe(res.before.parameters);
        expect(res.after.weightBytes).toBeLessThan(res.before.weightBytes / 2);
      }
      const progress: number[] = [];
      const d = await api.downloadCompressedModel(res.id, (p) => progress.push(p.bytesDone));
      if (!d.ok) throw new Error(d.error.message);
      const zip = unzipSync(new Uint8Array(await d.value.blob.arrayBuffer()));
      expect(Object.keys(zip)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors']));
      expect(zip['model.safetensors'].byteLength).toBe(res.after.weightBytes);
      expect(progress.length).toBeGreaterThan(0);
    }
    expect([...stages]).toEqual(['preparing', 'evaluating-before', 'writing', 'evaluating-after']);
  });

  it('measures no loss without a dataset, refuses a bad option and stores nothing on cancel', async () => {
    const r = await api.compressModel({ technique: { kind: 'nm-2-4' }, dataset: null });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.before.loss).toBeNull();
    expect(r.value.after.loss).toBeNull();
    expect(r.value.after.weightBytes).toBe(r.value.before.weightBytes);
    const bad = await api.compressModel({ technique: { kind: 'drop-layers', layers: [99] }, dataset: null });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.message).toMatch(/Layer 99 does not exist/);
    const before = (await store.list('compressed/')).length;
    const controller = new AbortController();
    const cancelled = await api.compressModel({ technique: { kind: 'cluster', k: 256, targets: 'projections' }, dataset: null }, (p) => {
      if (p.stage === 'writing') controller.abort();
    }, controller.signal);
    expect(cancelled.ok).toBe(false);
    if (!cancelled.ok) expect(cancelled.error.name).toBe('CancelledError');
    expect((await store.list('compressed/')).length).toBe(before);
  });
});
