// Pruning on the CPU: the masks and scores of prune-math.ts against direct definitions, and
// pruneModel over a tiny Qwen2 folder (q/k/v biases) and a tiny Llama folder: shapes and config of
// structured pruning and layer dropping, the rows and columns kept, and the zeros of unstructured,
// global, Wanda and 2:4 pruning.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { InvalidArgumentError } from '../errors.ts';
import { openModelDirectory } from '../io/model-folder-node.ts';
import { writeTinyModel } from '../model/llama-testing.ts';
import { Rng } from '../random.ts';
import { WeightReader } from './folder.ts';
import { writeFolderFiles } from './folder-node.ts';
import { GlobalThreshold, applyThreshold, keepLargest, magnitudePrune, nmPrune, wandaPrune } from './prune-math.ts';
import { pruneModel } from './prune.ts';

const tokenizer = makeTinyTokenizer();
let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-prune-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const zeros = (w: ArrayLike<number>) => Array.from(w).filter((x) => x === 0).length;

describe('prune-math', () => {
  it('magnitude pruning zeroes exactly the smallest |w|', () => {
    const w = new Float32Array(new Rng(1).fill(101));
    const sorted = Array.from(w, Math.abs).sort((a, b) => a - b);
    magnitudePrune(w, 0.3);
    expect(zeros(w)).toBe(30);
    for (const x of w) if (x !== 0) expect(Math.abs(x)).toBeGreaterThanOrEqual(sorted[30]);
  });

  it('Wanda compares |W|·‖X‖ within each row', () => {
    const w = new Float32Array([1, 2, 3, 4, /* row 2 */ 4, 3, 2, 1]);
    wandaPrune(w, 2, 4, [10, 1, 1, 0.1], 0.5);
    // Row 1 scores 10, 2, 3, 0.4 → keep columns 0 and 2; row 2 scores 40, 3, 2, 0.1 → keep 0 and 1.
    expect(Array.from(w)).toEqual([1, 0, 3, 0, 4, 3, 0, 0]);
  });

  it('2:4 keeps the two largest of every group of four', () => {
    const rng = new Rng(2);
    const w = new Float32Array(rng.fill(6 * 12));
    const before = Float32Array.from(w);
    nmPrune(w, 6, 12, 2, 4);
    for (let g = 0; g < w.length; g += 4) {
      const group = Array.from(before.subarray(g, g + 4), Math.abs);
      const kept = keepLargest(group, 2);
      for (let j = 0; j < 4; j++) expect(w[g + j]).toBe(kept.includes(j) ? before[g + j] : 0);
    }
    expect(() => nmPrune(new Float32Array(10), 2, 5, 2, 4)).toThrow(/multiple|groups/);
  });

  it('the global threshold prunes exactly k values over several tensors, ties included', () => {
    const rng = new Rng(3);
    const a = new Float32Array(rng.fill(500));
    const b = new Float32Array(rng.fill(333));
    b.fill(0.125, 0, 40); // ties
    a.fill(-0.125, 0, 30);
    const th = new GlobalThreshold(833, 0.4);
    th.add(a);
    th.add(b);
    th.next();
    th.add(a);
    th.add(b);
    const { t, atThreshold } = th.threshold();
    const all = [...Array.from(a, Math.abs), ...Array.from(b, Math.abs)].sort((x, y) => x - y);
    expect(t).toBe(all[Math.floor(0.4 * 833) - 1]);
    const budget = { left: atThreshold };
    const n = applyThreshold(a, t, budget) + applyThreshold(b, t, budget);
    expect(n).toBe(Math.floor(0.4 * 833));
  });
});

describe('pruneModel', () => {
  it('removes KV groups from a Qwen2 model: shapes, biases, config and the rows kept', async () => {
    const tiny = await writeTinyModel(join(root, 'qwen2'), { architecture: 'qwen2', tied: false, fileDtype: 'F32', seed: 5 }, tokenizer);
    const folder = await openModelDirectory(tiny.dir);
    const { files, report } = await pruneModel(folder, { heads: { mode: 'kv-groups', remove: 1 }, neurons: { remove: 16 } });
    expect(report.configChanges).toEqual({ num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, intermediate_size: 32 });
    await writeFolderFiles(join(root, 'qwen2-pruned'), files);
    const out = await openModelDirectory(join(root, 'qwen2-pruned'));
    expect(out.config.numAttentionHeads).toBe(2);
    expect(out.config.headDim).toBe(8);
    const reader = new WeightReader(out);
    const l0 = report.layers[0];
    expect(l0.queryHeads).toEqual(l0.kvHeads.flatMap((k) => [2 * k, 2 * k + 1]));
    const k = await reader.read('model.layers.0.self_attn.k_proj.weight'); // (8, 32)
    const kb = await reader.read('model.layers.0.self_attn.k_proj.bias'); // (8)
    const kv = l0.kvHeads[0];
    expect(Array.from(k)).toEqual(Array.from(tiny.params['model.layers.0.self_attn.k_proj.weight'].subarray(kv * 8 * 32, (kv + 1) * 8 * 32), Math.fround));
    expect(Array.from(kb)).toEqual(Array.from(tiny.params['model.layers.0.self_attn.k_proj.bias'].subarray(kv * 8, (kv + 1) * 8), Math.fround));
    const down = await reader.read('model.layers.1.mlp.down_proj.weight'); // (32, 32)
    const src = tiny.params['model.layers.1.mlp.down_proj.weight']; // (32, 48)
    report.layers[1].neurons.forEach((j, i) => expect(down[5 * 32 + i]).toBe(Math.fround(src[5 * 48 + j])));
    expect(report.parametersAfter).toBeLessThan(report.parametersBefore);
  });

  it('removes query heads within each group and drops layers', async () => {
    const tiny = await writeTinyModel(join(root, 'llama'), { architecture: 'llama', tied: true, fileDtype: 'BF16', seed: 6, layers: 3 }, tokenizer);
    const folder = await openModelDirectory(tiny.dir);
    const { files, report } = await pruneModel(folder, { heads: { mode: 'query-heads', remove: 1 }, dropLayers: [1] });
    expect(report.configChanges).toEqual({ num_hidden_layers: 2, num_attention_heads: 2, head_dim: 8 });
    expect(report.layers.map((l) => l.source)).toEqual([0, 2]);
    for (const l of report.layers) {
      expect(l.kvHeads).toEqual([0, 1]);
      expect(l.queryHeads.map((h) => Math.floor(h / 2))).toEqual([0, 1]);
    }
    await writeFolderFiles(join(root, 'llama-pruned'), files);
    const out = await openModelDirectory(join(root, 'llama-pruned'));
    expect(out.weights.every((w) => w.dtype === 'BF16')).toBe(true);
    const o = await new WeightReader(out).read('model.layers.1.self_attn.o_proj.weight'); // (32, 16), from source layer 2
    const src = tiny.params['model.layers.2.self_attn.o_proj.weight']; // (32, 32)
    const h = report.layers[1].queryHeads[1];
    expect(o[3 * 16 + 8 + 2]).toBe(Math.fround(src[3 * 32 + h * 8 + 2]));
  });

  it('unstructured magnitude, global, Wanda and 2:4 zero the projections only', async () => {
    const tiny = await writeTinyModel(join(root, 'sparse'), { architecture: 'llama', tied: false, fileDtype: 'F32', seed: 7 }, tokenizer);
    const folder = await openModelDirectory(tiny.dir);
    const norms = new Map<string, Float64Array>();
    const rng = new Rng(9);
    for (let l = 0; l < 2; l++) {
      for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj']) norms.set(`model.layers.${l}.${m}`, Float64Array.from(rng.fill(32), Math.abs));
      norms.set(`model.layers.${l}.mlp.down_proj`, Float64Array.from(rng.fill(48), Math.abs));
    }
    const cases = [
      { unstructured: { sparsity: 0.5 } },
      { unstructured: { sparsity: 0.5, scope: 'global' as const } },
      { unstructured: { sparsity: 0.5 }, criterion: 'wanda' as const, norms },
      { nm: { n: 2, m: 4 } },
    ];
    for (const [i, options] of cases.entries()) {
      const { files, report } = await pruneModel(folder, options);
      await writeFolderFiles(join(root, `sparse-${i}`), files);
      const reader = new WeightReader(await openModelDirectory(join(root, `sparse-${i}`)));
      let z = 0;
      for (const w of folder.weights) {
        const v = await reader.read(w.name);
        if (w.name.endsWith('_proj.weight')) z += zeros(v);
        else expect(zeros(v), w.name).toBe(0);
      }
      expect(report.zeroed).toBe(report.projectionValues / 2);
      expect(z).toBe(report.zeroed);
    }
  });

  it('refuses impossible requests with typed errors', async () => {
    const folder = await openModelDirectory(join(root, 'sparse'));
    await expect(pruneModel(folder, { heads: { mode: 'kv-groups', remove: 2 } })).rejects.toThrow(InvalidArgumentError);
    await expect(pruneModel(folder, { dropLayers: [0, 1] })).rejects.toThrow(/Every layer/);
    await expect(pruneModel(folder, { dropLayers: [5] })).rejects.toThrow(/layers 0 to 1/);
    await expect(pruneModel(folder, { unstructured: { sparsity: 0.5 }, criterion: 'wanda' })).rejects.toThrow(/calibration/);
    await expect(pruneModel(folder, { unstructured: { sparsity: 1.5 } })).rejects.toThrow(/Sparsity/);
  });
});
