// Compression through EngineApi (as the studio's worker runs it) on the demo model and the sample
// dataset: dropping one layer and clustering to 16 centroids each store a folder under
// compressed/<id>/ whose reported weight bytes and parameters are the written folder's, whose
// "after" loss is the written folder loaded back and evaluated by the engine on the held-out rows,
// whose "before" loss is the loaded model's, and which downloads as a zip with config.json and
// model.safetensors. Wanda with a 2-step LoRA recovery keeps half of every row's weights at zero and
// reports its calibration rows and steps; distillation (teacher: the loaded model with the LoRA
// adapter of a stored run; the student loses a layer, a query head per group and 64 MLP neurons)
// reports the teacher's and student's held-out losses as the engine measures them and writes the
// smaller config; a downloaded student (a finished Hub download in the store) is distilled the same
// way, and one of another vocabulary or tokenizer, or not downloaded, is refused with its reason; a
// compressed folder loads as the model, compresses again, and survives the pruning of the store; cancelling mid-recovery keeps nothing.

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
import { splitHeldOut } from '../engine/compress/pipeline.ts';
import { WeightReader } from '../engine/compress/folder.ts';
import { pruneModel } from '../engine/compress/prune.ts';
import { blobFileSet, openModelFolder } from '../engine/io/model-folder.ts';
import { downloadRecordKey, hubStorePrefix, parseHubRef } from '../engine/io/hub.ts';
import { tmpdir } from 'node:os';
import { mkdtempSync } from 'node:fs';
import { writeTinyModel } from '../engine/model/llama-testing.ts';
import { makeTinyTokenizer } from '../../scripts/tiny/tokenizer.ts';
import { createLora, createLoraConfig, withAdapter } from '../engine/peft/lora/index.ts';
import { exportPeftLora } from '../engine/io/export-peft.ts';
import { HELD_OUT_FRACTION, openCompressedFolder } from './compress.ts';
import { type CompressProgress, type CompressRequest, EngineApi } from './engine-api.ts';

const DEMO = 'public/models/demo';
const SAMPLE = readFileSync('public/datasets/alpaca-facts.jsonl');
const store = new MemoryBlobStore();
const api = new EngineApi(() => testGpu(), { store: () => store });
/** A few short rows and a short speed measure keep the CPU adapter's evaluations quick. */
const evaluation = { rows: 2, maxTokens: 24, genTokens: 2, genRepeats: 1 };
const dataset = { file: new Blob([SAMPLE]), fileName: 'alpaca-facts.jsonl', import: { trainOnPrompt: false, skipBadRows: false } };

beforeAll(async () => {
  const files = readdirSync(DEMO).map((name) => new File([readFileSync(join(DEMO, name))], name));
  const r = await api.loadModelFiles(files);
  expect(r.ok).toBe(true);
});

/** The held-out rows the worker measures on (and the rest), prepared here independently. */
async function split() {
  const demo = await openModelDirectory(DEMO);
  const prepared = await prepareDataset(blobSource(new Blob([SAMPLE]), 'alpaca-facts.jsonl'), {
    tokenizer: await loadFolderTokenizer(demo),
    maxLength: evaluation.maxTokens,
    trainOnPrompt: false,
    skipBadRows: false,
    valFraction: 0,
    seed: 0,
  });
  const all = prepared.train.map((e) => ({ inputIds: Array.from(e.inputIds), labels: Array.from(e.labels) }));
  return splitHeldOut(all, HELD_OUT_FRACTION, 0, evaluation.rows);
}

async function rows() {
  return (await split()).held;
}

/** A folder's exported files as bytes by name. */
async function fileBytes(files: readonly { name: string; chunks(): AsyncGenerator<Uint8Array> }[]): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const f of files) {
    const parts: BlobPart[] = [];
    for await (const c of f.chunks()) parts.push(c.slice());
    out[f.name] = new Uint8Array(await new Blob(parts).arrayBuffer());
  }
  return out;
}

/** The held-out loss of a folder given as bytes, loaded with f32 weights (as a distillation student is). */
async function folderLoss(files: Record<string, Uint8Array>, held: Awaited<ReturnType<typeof rows>>): Promise<number> {
  const blobs = Object.fromEntries(Object.entries(files).map(([n, b]) => [n, new Blob([b.slice()])]));
  const model = await loadModel(await testGpu(), await openModelFolder(blobFileSet(blobs)), { dtype: 'f32' });
  try {
    return (await evaluateLoss(model, held)).loss;
  } finally {
    model.release();
  }
}

/** Puts a model folder into the store as a finished Hub download of `id`, with its download record. */
async function putCached(id: string, files: Record<string, Uint8Array>): Promise<void> {
  const ref = parseHubRef(id);
  for (const [name, bytes] of Object.entries(files)) {
    await store.append(hubStorePrefix(ref) + name, bytes);
    await store.finalize(hubStorePrefix(ref) + name, { size: bytes.byteLength });
  }
  const record = new TextEncoder().encode(
    JSON.stringify({ repo: ref.repo, revision: ref.revision, commit: null, files: Object.entries(files).map(([name, b]) => ({ name, size: b.byteLength })), finished: new Date().toISOString() }),
  );
  await store.append(downloadRecordKey(ref), record);
  await store.finalize(downloadRecordKey(ref), { size: record.byteLength });
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
      expect(res.before.tokensPerSecond).toBeGreaterThan(0);
      expect(res.after.tokensPerSecond).toBeGreaterThan(0);
      expect(res.recovery).toBeNull();
      expect(res.distill).toBeNull();
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

  it('measures no loss without a dataset, refuses bad requests and stores nothing when a recovery is cancelled', async () => {
    const r = await api.compressModel({ technique: { kind: 'nm-2-4' }, dataset: null, evaluation });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.before.loss).toBeNull();
    expect(r.value.after.loss).toBeNull();
    expect(r.value.after.weightBytes).toBe(r.value.before.weightBytes);
    const bad = await api.compressModel({ technique: { kind: 'drop-layers', layers: [99] }, dataset: null });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.message).toMatch(/Layer 99 does not exist/);
    const wanda = await api.compressModel({ technique: { kind: 'wanda', pattern: 'unstructured', sparsity: 0.5, calibrationRows: 4 }, dataset: null });
    expect(wanda.ok).toBe(false);
    if (!wanda.ok) expect(wanda.error.message).toMatch(/Wanda pruning needs rows/);
    // Cancelled inside the recovery's training loop: nothing stays, not even the pruned folder it started from.
    const before = (await store.list('compressed/')).length;
    const controller = new AbortController();
    const cancelled = await api.compressModel(
      { technique: { kind: 'drop-layers', layers: [2] }, recovery: { steps: 50, rank: 4, lr: 1e-3 }, dataset, evaluation },
      (p) => {
        if (p.stage === 'recovering' && p.step && p.step.done >= 1) controller.abort();
      },
      controller.signal,
    );
    expect(cancelled.ok).toBe(false);
    if (!cancelled.ok) expect(cancelled.error.name).toBe('CancelledError');
    expect((await store.list('compressed/')).length).toBe(before);
  });

  it('Wanda 50 % with a 2-step LoRA recovery: zeros kept in every row, progress in rows and steps', async () => {
    const seen: CompressProgress[] = [];
    const r = await api.compressModel(
      { technique: { kind: 'wanda', pattern: 'unstructured', sparsity: 0.5, calibrationRows: 4 }, recovery: { steps: 2, rank: 4, lr: 1e-3 }, dataset, evaluation },
      (p) => seen.push(p),
    );
    if (!r.ok) throw new Error(r.error.message);
    const res = r.value;
    const calibrated = Math.min(4, (await split()).train.length);
    expect(res.calibrationRows).toBe(calibrated);
    expect(res.recovery?.steps).toBe(2);
    expect(Number.isFinite(res.recovery?.firstLoss)).toBe(true);
    expect(Number.isFinite(res.recovery?.lastLoss)).toBe(true);
    const calib = seen.filter((p) => p.stage === 'calibrating').map((p) => p.step);
    expect(calib.at(-1)).toEqual({ done: calibrated, total: calibrated, unit: 'rows' });
    const steps = seen.filter((p) => p.stage === 'recovering' && p.step).map((p) => p.step!.done);
    expect(steps).toEqual([0, 1, 2]);
    // Only the result is stored: the pruned folder the recovery started from is gone.
    const keys = (await store.list('compressed/')).map((b) => b.key);
    expect(keys.some((k) => k.includes('-staging'))).toBe(false);
    const written = await openCompressedFolder(store, res.id);
    const reader = new WeightReader(written);
    const q = await reader.read('model.layers.0.self_attn.q_proj.weight'); // (out, in)
    const [, cols] = reader.shape('model.layers.0.self_attn.q_proj.weight');
    for (let row = 0; row < q.length / cols; row++) {
      const zeros = q.subarray(row * cols, (row + 1) * cols).filter((v) => v === 0).length;
      expect(zeros).toBeGreaterThanOrEqual(cols / 2);
    }
    const gpu = await testGpu();
    const model = await loadModel(gpu, written);
    const after = (await evaluateLoss(model, await rows())).loss;
    model.release();
    expect(res.after.loss).toBeCloseTo(after, 5);
  });

  it('distils into a student without layer 1, with one query head per group and 64 MLP neurons fewer, from the loaded model with a stored run adapter', async () => {
    const gpu = await testGpu();
    const demo = await openModelDirectory(DEMO);
    // A LoRA adapter with random A and B (init_lora_weights false), stored as a finished run stores it.
    const base = await loadModel(gpu, demo);
    const config = createLoraConfig({ r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: false });
    const lora = createLora(base, config, { seed: 7 });
    const files = exportPeftLora({ config: lora.config, tensors: await lora.toTensors(), modelConfig: base.config });
    for (const [name, bytes] of files) {
      await store.append(`runs/r-teacher/adapter/${name}`, bytes);
      await store.finalize(`runs/r-teacher/adapter/${name}`, { size: bytes.byteLength });
    }
    const { held } = await split();
    const teacherLoss = (await evaluateLoss(withAdapter(base, lora), held)).loss;
    const baseLoss = (await evaluateLoss(base, held)).loss;
    lora.release();
    base.release();
    const seen: CompressProgress[] = [];
    // The student as pruneModel makes it from the demo folder, loaded and measured independently.
    const pruned = await fileBytes((await pruneModel(demo, { dropLayers: [1], heads: { mode: 'query-heads', remove: 1 }, neurons: { remove: 64 } })).files);
    const untrainedLoss = await folderLoss(pruned, held);
    const technique = {
      kind: 'distill' as const,
      dropLayers: [1],
      heads: { mode: 'query-heads' as const, remove: 1 },
      neurons: 64,
      teacherAdapterRun: 'r-teacher',
      alpha: 0.5,
      temperature: 2,
      steps: 2,
      lr: 1e-3,
    };
    const r = await api.compressModel({ technique, dataset, evaluation }, (p) => seen.push(p));
    if (!r.ok) throw new Error(r.error.message);
    const d = r.value.distill!;
    expect(d.rows).toBe(held.length);
    expect(d.teacher).toBeCloseTo(teacherLoss, 4);
    expect(d.teacher).not.toBeCloseTo(baseLoss, 2);
    expect(d.student).toBe('pruned');
    expect(d.studentBefore).toBeCloseTo(untrainedLoss, 4);
    expect(r.value.before.loss).toBeCloseTo(baseLoss, 5);
    // The written student (bf16 like the demo) against the trained f32 student: close.
    expect(r.value.after.loss).toBeCloseTo(d.studentAfter, 1);
    expect(d.klBefore).toBeGreaterThan(0);
    expect(seen.filter((p) => p.stage === 'distilling' && p.step).map((p) => p.step!.done)).toEqual([0, 1, 2]);
    const written = await openCompressedFolder(store, r.value.id);
    expect(written.config.numHiddenLayers).toBe(demo.config.numHiddenLayers - 1);
    expect(written.config.numAttentionHeads).toBe(demo.config.numAttentionHeads - demo.config.numKeyValueHeads);
    expect(written.config.numKeyValueHeads).toBe(demo.config.numKeyValueHeads);
    expect(written.config.intermediateSize).toBe(demo.config.intermediateSize - 64);
    expect(r.value.after.parameters).toBe(parameterCount(written.config));
    expect(r.value.after.parameters).toBeLessThan(r.value.before.parameters);
    expect((await store.list('compressed/')).some((b) => b.key.includes('-staging'))).toBe(false);
  });


  it('distils into a downloaded student of the same family, and refuses one with another vocabulary or tokenizer, or not downloaded', async () => {
    const demo = await openModelDirectory(DEMO);
    const { held } = await split();
    // The student: the demo without layers 1 and 2, as a finished Hub download in the store.
    const student = await fileBytes((await pruneModel(demo, { dropLayers: [1, 2] })).files);
    await putCached('hub:test/student@main', student);
    const untrainedLoss = await folderLoss(student, held);
    const technique = { kind: 'distill' as const, dropLayers: [], studentModel: 'hub:test/student@main', teacherAdapterRun: null, alpha: 0.5, temperature: 2, steps: 1, lr: 1e-3 };
    const r = await api.compressModel({ technique, dataset, evaluation });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.label).toBe('distillation into test/student@main');
    const d = r.value.distill!;
    expect(d.student).toBe('hub:test/student@main');
    expect(d.studentBefore).toBeCloseTo(untrainedLoss, 4);
    const written = await openCompressedFolder(store, r.value.id);
    expect(written.config.numHiddenLayers).toBe(2);
    // The cached student is read, not changed.
    expect((await store.stat(hubStorePrefix(parseHubRef('hub:test/student')) + 'model.safetensors'))?.size).toBe(student['model.safetensors'].byteLength);

    // Another family: the tiny test tokenizer's vocabulary is not the demo's.
    const dir = mkdtempSync(join(tmpdir(), 'whetstone-student-'));
    await writeTinyModel(dir, { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 3 }, makeTinyTokenizer());
    await putCached('hub:test/other@main', Object.fromEntries(readdirSync(dir).map((n) => [n, new Uint8Array(readFileSync(join(dir, n)))])));
    const other = await api.compressModel({ technique: { ...technique, studentModel: 'hub:test/other@main' }, dataset, evaluation });
    expect(other.ok).toBe(false);
    if (!other.ok) expect(other.error.message).toMatch(/The student test\/other@main has a vocabulary of \d+ tokens and the teacher 512/);
    // The same vocabulary size, but "e" and "t" swap ids: the same text becomes other tokens.
    const tok = JSON.parse(new TextDecoder().decode(student['tokenizer.json']));
    [tok.model.vocab.e, tok.model.vocab.t] = [tok.model.vocab.t, tok.model.vocab.e];
    await putCached('hub:test/swapped@main', { ...student, 'tokenizer.json': new TextEncoder().encode(JSON.stringify(tok)) });
    const swapped = await api.compressModel({ technique: { ...technique, studentModel: 'hub:test/swapped@main' }, dataset, evaluation });
    expect(swapped.ok).toBe(false);
    if (!swapped.ok) expect(swapped.error.message).toMatch(/The student test\/swapped@main splits text into other tokens than the teacher/);
    const missing = await api.compressModel({ technique: { ...technique, studentModel: 'hub:test/absent@main' }, dataset, evaluation });
    expect(missing.ok).toBe(false);
    if (!missing.ok) expect(missing.error).toMatchObject({ name: 'MissingFileError', message: expect.stringMatching(/test\/absent@main is not completely downloaded/) });
    const both = await api.compressModel({ technique: { ...technique, dropLayers: [1] }, dataset, evaluation });
    expect(both.ok).toBe(false);
    if (!both.ok) expect(both.error.message).toMatch(/not both/);
  });

  it('loads a compressed folder as the model, compresses it again, and keeps the loaded folder when pruning the store', async () => {
    const dropped = await api.compressModel({ technique: { kind: 'drop-layers', layers: [1] }, dataset: null, evaluation });
    if (!dropped.ok) throw new Error(dropped.error.message);
    try {
      const loaded = await api.loadCompressedModel(dropped.value.id, 'Demo, drop layer 1');
      if (!loaded.ok) throw new Error(loaded.error.message);
      expect(dropped.value.modelId).toBe(`compressed:${dropped.value.id}`);
      expect(loaded.value).toMatchObject({ id: dropped.value.modelId, name: 'Demo, drop layer 1', source: 'compressed', layers: 3 });
      const again = await api.compressModel({ technique: { kind: 'drop-layers', layers: [0] }, dataset: null, evaluation });
      if (!again.ok) throw new Error(again.error.message);
      expect(again.value.before.parameters).toBe(dropped.value.after.parameters);
      expect(again.value.after.parameters).toBeLessThan(again.value.before.parameters);
      const kept = await api.keepCompressedModel(again.value.id);
      if (!kept.ok) throw new Error(kept.error.message);
      expect(kept.value).not.toContain(dropped.value.id);
      const ids = new Set((await store.list('compressed/')).map((b) => b.key.split('/')[1]));
      expect([...ids].sort()).toEqual([dropped.value.id, again.value.id].sort());
      expect(await api.loadCompressedModel('c-none', 'x')).toMatchObject({ ok: false, error: { name: 'MissingFileError' } });
    } finally {
      // The other tests compress the demo model.
      const files = readdirSync(DEMO).map((name) => new File([readFileSync(join(DEMO, name))], name));
      expect((await api.loadModelFiles(files)).ok).toBe(true);
    }
  });
});
