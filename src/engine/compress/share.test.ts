// Weight sharing on the CPU: 1-D k-means (deterministic, ascending codebook, nearest assignment,
// better than evenly spaced levels), the packed 4-bit index layout read back by the folder loader,
// and shareModel over a tiny folder: layer_weight_source in config.json, only source blocks stored,
// mean initialisation, clustered tensors stored as <name>.codebook F32 + <name>.indices U8 and
// read back as codebook values.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { ModelConfigError } from '../errors.ts';
import { decodeClusteredValues } from '../io/model-folder.ts';
import { openModelDirectory } from '../io/model-folder-node.ts';
import { parseModelConfig } from '../model/config.ts';
import { writeTinyModel } from '../model/llama-testing.ts';
import { Rng } from '../random.ts';
import { WeightReader } from './folder.ts';
import { writeFolderFiles } from './folder-node.ts';
import { groupedLayerSource, kmeans1d, packIndices, shareModel } from './share.ts';

const tokenizer = makeTinyTokenizer();
let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-share-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('kmeans1d', () => {
  it('is deterministic, ascending, assigns the nearest centroid and beats evenly spaced levels', () => {
    const rng = new Rng(4);
    const x = rng.fill(1001, (r) => r.normal() * 0.1);
    const a = kmeans1d(x, 16, 1);
    const b = kmeans1d(x, 16, 1);
    expect(a.codebook).toEqual(b.codebook);
    expect(a.indices).toEqual(b.indices);
    for (let i = 1; i < 16; i++) expect(a.codebook[i]).toBeGreaterThan(a.codebook[i - 1]);
    let err = 0;
    let uniformErr = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    const step = (hi - lo) / 15;
    x.forEach((v, i) => {
      const d = Math.abs(v - a.codebook[a.indices[i]]);
      for (const c of a.codebook) expect(d).toBeLessThanOrEqual(Math.abs(v - c) + 1e-7);
      err += d * d;
      const u = lo + Math.round((v - lo) / step) * step;
      uniformErr += (v - u) * (v - u);
    });
    expect(err).toBeLessThan(uniformErr);
  });

  it('packs two 4-bit indices per byte, even element high, as the loader reads them', () => {
    const idx = Uint8Array.from([1, 15, 7, 0, 9]);
    const packed = packIndices(idx, true);
    expect(Array.from(packed)).toEqual([0x1f, 0x70, 0x90]);
    const book = Float32Array.from({ length: 16 }, (_, i) => i / 2);
    expect(Array.from(decodeClusteredValues(packed, book, 5, 'w'))).toEqual([0.5, 7.5, 3.5, 0, 4.5]);
    expect(() => decodeClusteredValues(Uint8Array.from([200]), book, 1, 'w')).toThrow(/outside its codebook/);
  });
});

describe('shareModel', () => {
  it('stores source blocks only, averaged, with layer_weight_source', async () => {
    const tiny = await writeTinyModel(join(root, 'src4'), { architecture: 'qwen3', tied: true, fileDtype: 'F32', seed: 3, layers: 4 }, tokenizer);
    const { files, report } = await shareModel(await openModelDirectory(tiny.dir), { layerSource: groupedLayerSource(4, 2), init: 'mean' });
    expect(report.layerSource).toEqual([0, 0, 2, 2]);
    await writeFolderFiles(join(root, 'shared'), files);
    const cfg = JSON.parse(await readFile(join(root, 'shared', 'config.json'), 'utf8'));
    expect(cfg.layer_weight_source).toEqual([0, 0, 2, 2]);
    const out = await openModelDirectory(join(root, 'shared'));
    expect(out.weights.some((w) => w.name.startsWith('model.layers.1.'))).toBe(false);
    const w = await new WeightReader(out).read('model.layers.2.mlp.up_proj.weight');
    const a = tiny.params['model.layers.2.mlp.up_proj.weight'];
    const b = tiny.params['model.layers.3.mlp.up_proj.weight'];
    w.forEach((v, i) => expect(v).toBe(Math.fround((Math.fround(a[i]) + Math.fround(b[i])) / 2)));
  });

  it('stores clustered projections as codebook + indices (packed for k = 16, one byte for k = 256)', async () => {
    const tiny = await writeTinyModel(join(root, 'src2'), { architecture: 'llama', tied: false, fileDtype: 'BF16', seed: 8 }, tokenizer);
    for (const k of [16, 256]) {
      const { files, report } = await shareModel(await openModelDirectory(tiny.dir), { cluster: { k, seed: 2, targets: 'all-matrices' } });
      expect(report.clustered).toContain('lm_head.weight');
      const dir = join(root, `clustered-${k}`);
      await writeFolderFiles(dir, files);
      const out = await openModelDirectory(dir);
      const q = out.weights.find((w) => w.name === 'model.layers.0.self_attn.q_proj.weight')!;
      expect(q.codebook?.shape).toEqual([k]);
      expect(q.entry.dtype).toBe('U8');
      expect(q.entry.shape).toEqual(k === 16 ? [(32 * 32) / 2] : [32, 32]);
      expect(out.unusedTensors).toEqual([]);
      const norm = out.weights.find((w) => w.name === 'model.norm.weight')!;
      expect(norm.codebook).toBeUndefined();
      const values = await new WeightReader(out).read('model.layers.0.self_attn.q_proj.weight');
      expect(new Set(values).size).toBeLessThanOrEqual(k);
    }
  });

  it('refuses clustered tensors of the wrong dtype or shape', async () => {
    const dir = join(root, 'clustered-16');
    const { readSafetensorsIndex, readTensor, writeSafetensors } = await import('../io/safetensors.ts');
    const { openFileSource } = await import('../io/source-node.ts');
    const { writeFile, mkdir, copyFile } = await import('node:fs/promises');
    const src = await openFileSource(join(dir, 'model.safetensors'));
    const index = await readSafetensorsIndex(src);
    const tensors = [];
    for (const [name, e] of index.tensors) tensors.push({ name, dtype: e.dtype, shape: e.shape, data: await readTensor(src, e) });
    await src.close?.();
    const bad = join(root, 'bad-cluster');
    await mkdir(bad, { recursive: true });
    await copyFile(join(dir, 'config.json'), join(bad, 'config.json'));
    const name = 'model.layers.0.mlp.up_proj.weight.indices';
    const broken = tensors.map((t) => (t.name === name ? { ...t, shape: [t.data.length / 2, 2] } : t));
    await writeFile(join(bad, 'model.safetensors'), writeSafetensors(broken));
    await expect(openModelDirectory(bad)).rejects.toThrow(/Clustered weight "model.layers.0.mlp.up_proj.weight": indices have shape/);
  });

  it('rejects a malformed layer_weight_source', () => {
    const base = { architectures: ['LlamaForCausalLM'], hidden_size: 8, intermediate_size: 8, num_hidden_layers: 3, num_attention_heads: 2, vocab_size: 10 };
    expect(parseModelConfig({ ...base, layer_weight_source: [0, 0, 0] }).layerWeightSource).toEqual([0, 0, 0]);
    expect(() => parseModelConfig({ ...base, layer_weight_source: [0, 0] })).toThrow(ModelConfigError);
    expect(() => parseModelConfig({ ...base, layer_weight_source: [0, 2, 2] })).toThrow(/entry 1/);
    expect(() => parseModelConfig({ ...base, layer_weight_source: [0, 0, 1] })).toThrow(/entry 2/);
  });
});
