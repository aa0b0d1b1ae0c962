// Compressed folders on the GPU against the float64 reference (reference/llama.ts): a structurally
// pruned model (KV groups, neurons, a dropped layer), a model with blocks shared across depth and
// clustered weights (the reference reconstructs codebook[index] itself from the raw file) load and
// give the reference's logits and loss; the calibration norms of activationNorms equal ‖X_j‖ of
// the first layer's input computed in float64.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { testGpu } from '../gpu/testing.ts';
import type { ModelFolder } from '../io/model-folder.ts';
import { openModelDirectory } from '../io/model-folder-node.ts';
import { readSafetensorsIndex, readTensor } from '../io/safetensors.ts';
import { openFileSource } from '../io/source-node.ts';
import { type TokenRow, loadModel } from '../model/llama.ts';
import { writeTinyModel } from '../model/llama-testing.ts';
import { relL2 } from '../reference/compare.ts';
import { embedding } from '../reference/embedding.ts';
import { type LlamaRefParams, type LlamaRefRow, llamaLoss } from '../reference/llama.ts';
import { rmsnorm } from '../reference/rmsnorm.ts';
import { Rng } from '../random.ts';
import { activationNorms } from './calibrate.ts';
import { WeightReader } from './folder.ts';
import { writeFolderFiles } from './folder-node.ts';
import { pruneModel } from './prune.ts';
import { groupedLayerSource, shareModel } from './share.ts';

const tokenizer = makeTinyTokenizer();
let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-compress-gpu-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function rows(V: number): TokenRow[] {
  const rng = new Rng(12);
  const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
  return [{ inputIds: ids(9) }, { inputIds: ids(5) }];
}

/** Loads `folder` and compares logits and loss with the reference on `params`. */
async function expectReference(folder: ModelFolder, params: LlamaRefParams): Promise<void> {
  const gpu = await testGpu();
  const model = await loadModel(gpu, folder);
  try {
    const r = rows(folder.config.vocabSize);
    const want = llamaLoss(folder.config, params, r as LlamaRefRow[]);
    const got = await model.logits(r.map((x) => x.inputIds));
    got.forEach((z, i) => expect(relL2(z, want.logits[i])).toBeLessThan(1e-5));
  } finally {
    model.release();
  }
}

/** Every stored weight of a folder, widened to float64 (clustered ones as the folder reader gives them). */
async function storedParams(folder: ModelFolder): Promise<LlamaRefParams> {
  const reader = new WeightReader(folder);
  const out: LlamaRefParams = {};
  for (const w of folder.weights) out[w.name] = Float64Array.from(await reader.read(w.name));
  return out;
}

describe('compressed folders load and match the reference', () => {
  it('structured pruning and layer dropping', async () => {
    const tiny = await writeTinyModel(join(root, 'src'), { architecture: 'qwen2', tied: true, fileDtype: 'F32', seed: 21, layers: 3 }, tokenizer);
    const { files } = await pruneModel(await openModelDirectory(tiny.dir), { heads: { mode: 'kv-groups', remove: 1 }, neurons: { remove: 20 }, dropLayers: [1] });
    await writeFolderFiles(join(root, 'pruned'), files);
    const folder = await openModelDirectory(join(root, 'pruned'));
    expect(folder.config.numHiddenLayers).toBe(2);
    expect(folder.config.intermediateSize).toBe(28);
    await expectReference(folder, await storedParams(folder));
  });

  it('shared blocks with clustered weights (k = 16), reconstructed independently in float64', async () => {
    const tiny = await writeTinyModel(join(root, 'src4'), { architecture: 'llama', tied: false, fileDtype: 'F32', seed: 22, layers: 4 }, tokenizer);
    const { files } = await shareModel(await openModelDirectory(tiny.dir), { layerSource: groupedLayerSource(4, 2), init: 'first', cluster: { k: 16, seed: 1 } });
    const dir = join(root, 'shared');
    await writeFolderFiles(dir, files);
    const folder = await openModelDirectory(dir);
    // The reference: every layer's weights from the raw file, codebook[index] decoded here.
    const source = await openFileSource(join(dir, 'model.safetensors'), 'model.safetensors');
    const params: LlamaRefParams = {};
    try {
      const index = await readSafetensorsIndex(source);
      const f32 = async (name: string) => {
        const b = await readTensor(source, index.tensors.get(name)!);
        return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      };
      for (const [name, entry] of index.tensors) {
        if (name.endsWith('.codebook')) continue;
        if (name.endsWith('.indices')) {
          const base = name.slice(0, -'.indices'.length);
          const book = await f32(`${base}.codebook`);
          const packed = await readTensor(source, entry);
          const n = packed.length * 2;
          const w = new Float64Array(n);
          for (let i = 0; i < n; i++) w[i] = book[i % 2 === 0 ? packed[i >> 1] >> 4 : packed[i >> 1] & 15];
          params[base] = w;
        } else params[name] = Float64Array.from(await f32(name));
      }
    } finally {
      await source.close?.();
    }
    for (const l of [1, 3]) {
      for (const name of Object.keys(params)) {
        if (name.startsWith(`model.layers.${l - 1}.`)) params[name.replace(`layers.${l - 1}.`, `layers.${l}.`)] = params[name];
      }
    }
    expect(Object.keys(params).filter((n) => n.startsWith('model.layers.3.')).length).toBeGreaterThan(0);
    await expectReference(folder, params);
  });

  it('activation norms of the first projection input equal the float64 ones', async () => {
    const tiny = await writeTinyModel(join(root, 'cal'), { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 23 }, tokenizer);
    const folder = await openModelDirectory(tiny.dir);
    const gpu = await testGpu();
    const model = await loadModel(gpu, folder);
    try {
      const r = rows(folder.config.vocabSize);
      const norms = await activationNorms(model, r);
      expect(norms.size).toBe(14);
      const C = folder.config.hiddenSize;
      const want = new Float64Array(C);
      for (const row of r) {
        const x = embedding(tiny.params['model.embed_tokens.weight'], row.inputIds, folder.config.vocabSize, C);
        const { y } = rmsnorm(x, tiny.params['model.layers.0.input_layernorm.weight'], row.inputIds.length, C, folder.config.rmsNormEps);
        for (let i = 0; i < y.length; i++) want[i % C] += y[i] * y[i];
      }
      expect(relL2(norms.get('model.layers.0.self_attn.q_proj')!, want.map(Math.sqrt))).toBeLessThan(1e-5);
      expect(norms.get('model.layers.1.mlp.down_proj')!.length).toBe(folder.config.intermediateSize);
    } finally {
      model.release();
    }
  });
});
