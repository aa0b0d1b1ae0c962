// The behaviour every tuning method of the registry shares, one table row per method, on a tiny
// Llama (llama3-untied-f32: 2 layers, hidden 64, f32 weights): a new adapter leaves the logits unchanged where the
// method starts as the identity; saving then loading gives the same logits; one training step
// changes the adapter's tensors and no weight of the model; a disabled adapter gives the base
// logits (prompt tuning: no virtual tokens either); merging (where the method has it) gives the unmerged adapter's logits and unmerging
// restores the base; a few training steps lower the validation loss; generation with prompt tuning
// feeds the virtual tokens through the KV cache as full recomputation does; a full fine-tune
// exports a model folder that loads as a model, and the memory check refuses a model over budget.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, writeTensor } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { type ModelFolder, blobFileSet, openModelFolder } from '../io/model-folder.ts';
import { generate } from '../model/generate.ts';
import { type LlamaModel, type TokenRow, loadModel } from '../model/llama.ts';
import { relL2 } from '../reference/compare.ts';
import { Rng } from '../random.ts';
import { prepareRows } from '../train/batches.ts';
import { MemoryCheckpointStore } from '../train/checkpoint.ts';
import { evaluateRows } from '../train/evaluate.ts';
import { train } from '../train/trainer.ts';
import type { PeftAdapter } from './adapter.ts';
import { withForwardOptions } from './adapter.ts';
import { checkFullFineTune } from './full/index.ts';
import { type MethodOptionValues, findMethod, parseMethodOptions } from './methods.ts';

interface Row {
  id: string;
  /** Flag values as the CLI passes them. */
  flags: Record<string, unknown>;
  /** The new adapter computes the base model: the largest relL2 of its logits from the base's (0: exactly; DoRA's m / ‖W‖ is 1 up to f32 rounding). */
  identity: number | null;
  merge: boolean;
  lr: number;
}

const TABLE: Row[] = [
  { id: 'lora', flags: { rank: '4', alpha: '8', targets: 'all-linear' }, identity: 0, merge: true, lr: 3e-2 },
  { id: 'dora', flags: { rank: '4', alpha: '8', targets: 'q_proj,v_proj,down_proj' }, identity: 1e-6, merge: true, lr: 3e-2 },
  { id: 'ia3', flags: {}, identity: 0, merge: true, lr: 2e-1 },
  { id: 'prompt', flags: { 'virtual-tokens': '4', 'prompt-init': 'SAMPLE_VOCAB' }, identity: null, merge: false, lr: 1e-1 },
  { id: 'prefix', flags: { 'virtual-tokens': '4' }, identity: null, merge: false, lr: 5e-2 },
  { id: 'adapter', flags: { 'reduction-factor': '8' }, identity: 0, merge: false, lr: 2e-2 },
  { id: 'full', flags: {}, identity: 0, merge: false, lr: 3e-3 },
];

const CYCLE = 40;
const FIRST = 100;
function successorRows(n: number, seed: number): TokenRow[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = 8 + rng.int(4);
    const start = rng.int(CYCLE);
    const inputIds = Array.from({ length: len }, (_, t) => FIRST + ((start + t) % CYCLE));
    return { inputIds, labels: inputIds.map((id, t) => (t < 1 ? -100 : id)) };
  });
}
const PROBE = [[5, 17, 200, 3, 88, 41, 9], [120, 121, 122]];

let model: LlamaModel;
let folder: ModelFolder;
beforeAll(async () => {
  const gpu = await testGpu();
  const spec = TINY_MODELS.find((s) => s.name === 'llama3-untied-f32');
  if (!spec) throw new Error('no tiny model llama3-untied-f32');
  const files = makeTinyModel(spec);
  folder = await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])])), spec.name));
  model = await loadModel(gpu, folder);
});
afterAll(() => model?.release());

const flat = (xs: Float32Array[]) => Float32Array.from(xs.flatMap((x) => Array.from(x)));
async function logitsOf(m: LlamaModel, adapter: PeftAdapter | null): Promise<Float32Array> {
  const rows = PROBE.map((ids) => adapter?.promptIds?.(ids) ?? ids);
  const logits = await (adapter ? withForwardOptions(m, adapter.inferenceOptions()) : m).logits(rows);
  // The logits of the real tokens only (virtual positions come first).
  const V = m.config.vocabSize;
  return flat(logits.map((l, i) => l.slice((rows[i].length - PROBE[i].length) * V)));
}
/** Moves every adapter value away from its initialization (deterministically). */
async function perturb(adapter: PeftAdapter, seed: number): Promise<void> {
  const rng = new Rng(seed);
  for (const p of adapter.params) {
    const v = await readTensor(p.value as Tensor & { dtype: 'f32' });
    writeTensor(p.value, v.map((x) => x + 0.3 * rng.normal()));
  }
  await adapter.params[0].value.gpu.sync();
}
async function modelWeights(m: LlamaModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(m.params)) out.set(name, await readTensor(t as Tensor & { dtype: 'f32' }));
  return out;
}

describe.each(TABLE)('$id', (row) => {
  const method = findMethod(row.id);
  const values = (): MethodOptionValues => parseMethodOptions(method, row.flags);

  it('starts as the base model where it defines an identity, and a disabled adapter gives the base logits', async () => {
    const base = await logitsOf(model, null);
    const adapter = await method.create(model, values(), { source: folder, seed: 3 });
    try {
      if (row.identity !== null) expect(relL2(await logitsOf(model, adapter), base)).toBeLessThanOrEqual(row.identity);
      await perturb(adapter, 11);
      expect(relL2(await logitsOf(model, adapter), base)).toBeGreaterThan(1e-3);
      adapter.enabled = false;
      expect(relL2(await logitsOf(model, adapter), base)).toBe(0);
    } finally {
      adapter.release();
    }
  });

  it('saves and loads back to the same logits, detected from its files', async () => {
    const adapter = await method.create(model, values(), { source: folder, seed: 4 });
    try {
      await perturb(adapter, 12);
      const want = await logitsOf(model, adapter);
      const files = await adapter.exportFiles();
      const loaded = await method.load(model, files);
      try {
        expect(loaded.method).toBe(row.id);
        expect(loaded.parameterCount).toBe(adapter.parameterCount);
        expect(relL2(await logitsOf(model, loaded), want)).toBe(0);
      } finally {
        loaded.release();
      }
    } finally {
      adapter.release();
    }
  });

  it('one training step changes adapter tensors and no model weight; a few lower the validation loss', async () => {
    const before = await modelWeights(model);
    const adapter = await method.create(model, values(), { source: folder, seed: 5 });
    const val = prepareRows(successorRows(4, 2), model.config.vocabSize, 32).rows;
    try {
      const initial = await Promise.all(adapter.params.map((p) => readTensor(p.value as Tensor & { dtype: 'f32' })));
      const startLoss = (await evaluateRows(model, adapter, val)).loss;
      const options = { lr: row.lr, seqLen: 32, seed: 1, batchSize: 8, schedule: 'constant' as const, divergence: false as const };
      await train({ model, adapter, train: successorRows(8, 1), options: { ...options, maxSteps: 1 }, checkpoints: new MemoryCheckpointStore() });
      const after = await Promise.all(adapter.params.map((p) => readTensor(p.value as Tensor & { dtype: 'f32' })));
      expect(after.some((v, i) => relL2(v, initial[i]) > 0)).toBe(true);
      const now = await modelWeights(model);
      for (const [name, w] of before) expect(relL2(now.get(name) as Float32Array, w), name).toBe(0);
      const result = await train({ model, adapter, train: successorRows(8, 1), validation: successorRows(4, 2), options: { ...options, maxSteps: 3 }, checkpoints: new MemoryCheckpointStore() });
      console.log(`${row.id}: validation loss ${startLoss.toFixed(4)} → ${result.valLoss?.toFixed(4)} after 4 steps (${adapter.parameterCount} trainable values)`);
      expect(result.valLoss as number).toBeLessThan(startLoss - 0.05);
    } finally {
      adapter.release();
    }
  });

  if (row.id === 'prompt') it('generates with the virtual tokens: KV-cache decoding picks the tokens full recomputation picks', async () => {
    const adapter = await method.create(model, values(), { source: folder, seed: 7 });
    try {
      const view = withForwardOptions(model, adapter.inferenceOptions());
      const prompt = adapter.promptIds?.(PROBE[0]) ?? PROBE[0];
      const out = await generate(view, prompt, { maxNewTokens: 4, temperature: 0 });
      const V = model.config.vocabSize;
      const seq = [...prompt];
      for (const id of out.tokens) {
        const [logits] = await view.logits([seq]);
        const last = logits.subarray((seq.length - 1) * V, seq.length * V);
        expect(id).toBe(last.indexOf(Math.max(...last)));
        seq.push(id);
      }
      expect(out.tokens).toHaveLength(4);
    } finally {
      adapter.release();
    }
  });

  if (row.id === 'full') it('exports a model folder that loads as a model with the trained logits; the memory check refuses a model over budget', async () => {
    const adapter = await method.create(model, values(), { source: folder, seed: 8 });
    try {
      await perturb(adapter, 14);
      const want = await logitsOf(model, adapter);
      const files = await adapter.exportFiles();
      const saved = await openModelFolder(blobFileSet(Object.fromEntries([...files].map(([name, bytes]) => [name, new Blob([bytes as Uint8Array<ArrayBuffer>])])), 'full'));
      const loaded = await loadModel(model.gpu, saved);
      try {
        expect(relL2(await logitsOf(loaded, null), want)).toBe(0);
      } finally {
        loaded.release();
      }
      expect(() => checkFullFineTune(model, 1024 * 1024)).toThrow(/needs about .* of GPU memory .* the budget is 1\.00 MiB/);
    } finally {
      adapter.release();
    }
  });

  if (row.merge) it('merges to the unmerged logits and unmerges back to the base', async () => {
    const base = await logitsOf(model, null);
    const adapter = await method.create(model, values(), { source: folder, seed: 6 });
    try {
      await perturb(adapter, 13);
      const want = await logitsOf(model, adapter);
      await adapter.merge?.(model);
      expect(relL2(await logitsOf(model, null), want)).toBeLessThan(1e-5);
      expect(relL2(await logitsOf(model, adapter), want)).toBeLessThan(1e-5);
      await adapter.unmerge?.(model);
      expect(relL2(await logitsOf(model, null), base)).toBeLessThan(1e-5);
    } finally {
      adapter.release();
    }
  });
});
