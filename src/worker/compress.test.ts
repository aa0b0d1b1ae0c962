// The worker's compression logic without a GPU: technique → the engine options the CLI passes
// (checked against the model's sizes), recovery settings, the held-out split, technique labels and
// compressed-folder ids.

import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../engine/model/config.ts';
import { type CompressTechnique, checkRecovery, newCompressedId, splitRows, techniqueLabel, techniqueOptions } from './compress.ts';

const raw = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 100,
  max_position_embeddings: 128,
  rms_norm_eps: 1e-5,
};
const config = parseModelConfig(raw);

describe('techniqueOptions', () => {
  it('maps each technique onto the options the CLI gives pruneModel / shareModel', () => {
    expect(techniqueOptions({ kind: 'drop-layers', layers: [2, 1, 2] }, config)).toEqual({ prune: { dropLayers: [1, 2] } });
    expect(techniqueOptions({ kind: 'heads', remove: 1, mode: 'kv-groups' }, config)).toEqual({ prune: { heads: { mode: 'kv-groups', remove: 1 } } });
    expect(techniqueOptions({ kind: 'neurons', remove: 32 }, config)).toEqual({ prune: { neurons: { remove: 32 } } });
    expect(techniqueOptions({ kind: 'sparsity', sparsity: 0.5, scope: 'global' }, config)).toEqual({ prune: { unstructured: { sparsity: 0.5, scope: 'global' } } });
    expect(techniqueOptions({ kind: 'nm-2-4' }, config)).toEqual({ prune: { nm: { n: 2, m: 4 } } });
    expect(techniqueOptions({ kind: 'share-layers', group: 2 }, config)).toEqual({ share: { layerSource: [0, 0, 2, 2], init: 'mean' } });
    expect(techniqueOptions({ kind: 'share-layers', group: 4, init: 'first' }, config)).toEqual({ share: { layerSource: [0, 0, 0, 0], init: 'first' } });
    expect(techniqueOptions({ kind: 'cluster', k: 256, targets: 'all-matrices' }, config)).toEqual({ share: { cluster: { k: 256, seed: 0, targets: 'all-matrices' } } });
    expect(techniqueOptions({ kind: 'wanda', pattern: 'unstructured', sparsity: 0.5, calibrationRows: 8 }, config)).toEqual({
      prune: { unstructured: { sparsity: 0.5, scope: 'layer' }, criterion: 'wanda' },
      calibrationRows: 8,
    });
    expect(techniqueOptions({ kind: 'wanda', pattern: '2:4', sparsity: 0.5, calibrationRows: 8 }, config)).toEqual({ prune: { nm: { n: 2, m: 4 }, criterion: 'wanda' }, calibrationRows: 8 });
    const distill: CompressTechnique = { kind: 'distill', dropLayers: [3, 1], teacherAdapterRun: null, alpha: 0.5, temperature: 2, steps: 4, lr: 1e-3 };
    expect(techniqueOptions(distill, config)).toEqual({ distill: { student: { from: 'teacher', prune: { dropLayers: [1, 3] } }, teacherAdapterRun: null, alpha: 0.5, temperature: 2, steps: 4, lr: 1e-3 } });
    // The student may lose heads and MLP neurons too, or instead of layers.
    expect(techniqueOptions({ ...distill, dropLayers: [], heads: { remove: 1, mode: 'query-heads' }, neurons: 32 }, config)).toMatchObject({
      distill: { student: { from: 'teacher', prune: { heads: { mode: 'query-heads', remove: 1 }, neurons: { remove: 32 } } } },
    });
    expect(techniqueOptions({ ...distill, heads: { remove: 1, mode: 'kv-groups' }, neurons: null }, config)).toMatchObject({
      distill: { student: { from: 'teacher', prune: { dropLayers: [1, 3], heads: { mode: 'kv-groups', remove: 1 } } } },
    });
  });

  it('refuses options the model cannot take, saying which', () => {
    expect(() => techniqueOptions({ kind: 'drop-layers', layers: [4] }, config)).toThrow(/Layer 4 does not exist: the model has layers 0 to 3/);
    expect(() => techniqueOptions({ kind: 'drop-layers', layers: [0, 1, 2, 3] }, config)).toThrow(/keep at least one/);
    expect(() => techniqueOptions({ kind: 'drop-layers', layers: [] }, config)).toThrow(/at least one layer/);
    expect(() => techniqueOptions({ kind: 'heads', remove: 2, mode: 'kv-groups' }, config)).toThrow(/from 1 to 1/);
    expect(() => techniqueOptions({ kind: 'heads', remove: 2, mode: 'query-heads' }, config)).toThrow(/from 1 to 1/);
    expect(() => techniqueOptions({ kind: 'neurons', remove: 128 }, config)).toThrow(/from 1 to 127/);
    expect(() => techniqueOptions({ kind: 'sparsity', sparsity: 1, scope: 'layer' }, config)).toThrow(/below 1/);
    expect(() => techniqueOptions({ kind: 'share-layers', group: 1 }, config)).toThrow(/at least 2 layers/);
    expect(() => techniqueOptions({ kind: 'share-layers', group: 2, init: 'last' as 'first' }, config)).toThrow(/"mean" or its "first"/);
    expect(() => techniqueOptions({ kind: 'cluster', k: 8 as 16, targets: 'projections' }, config)).toThrow(/16 or 256/);
    expect(() => techniqueOptions({ kind: 'cluster', k: 16, targets: 'projections' }, config)).not.toThrow();
    expect(() => techniqueOptions({ kind: 'wanda', pattern: 'unstructured', sparsity: 0, calibrationRows: 8 }, config)).toThrow(/above 0 and below 1/);
    expect(() => techniqueOptions({ kind: 'wanda', pattern: 'unstructured', sparsity: 0.5, calibrationRows: 0 }, config)).toThrow(/Calibration rows/);
    const distill = { kind: 'distill' as const, dropLayers: [1], teacherAdapterRun: null, alpha: 0.5, temperature: 2, steps: 4, lr: 1e-3 };
    expect(() => techniqueOptions({ ...distill, dropLayers: [0, 1, 2, 3] }, config)).toThrow(/keep at least one/);
    expect(() => techniqueOptions({ ...distill, alpha: 2 }, config)).toThrow(/alpha/);
    expect(() => techniqueOptions({ ...distill, temperature: 0 }, config)).toThrow(/temperature/);
    expect(() => techniqueOptions({ ...distill, steps: 0 }, config)).toThrow(/Distillation steps/);
    expect(() => techniqueOptions({ ...distill, lr: 0 }, config)).toThrow(/learning rate/);
    expect(() => techniqueOptions({ ...distill, teacherAdapterRun: '../x' }, config)).toThrow(/no training run/);
    expect(() => techniqueOptions({ ...distill, dropLayers: [] }, config)).toThrow(/student must be smaller than the teacher/);
    expect(techniqueOptions({ ...distill, dropLayers: [], studentModel: 'org/small' }, config)).toMatchObject({ distill: { student: { from: 'cached', ref: { repo: 'org/small', revision: 'main' } } } });
    expect(() => techniqueOptions({ ...distill, studentModel: 'org/small' }, config)).toThrow(/not both/);
    expect(() => techniqueOptions({ ...distill, dropLayers: [], studentModel: 'not a repo' }, config)).toThrow();
    expect(() => techniqueOptions({ ...distill, heads: { remove: 2, mode: 'kv-groups' } }, config)).toThrow(/KV head groups removed must be a whole number from 1 to 1/);
    expect(() => techniqueOptions({ ...distill, neurons: 128 }, config)).toThrow(/MLP neurons removed must be a whole number from 1 to 127/);
    const mha = parseModelConfig({ ...raw, num_key_value_heads: 4 });
    expect(() => techniqueOptions({ kind: 'heads', remove: 1, mode: 'query-heads' }, mha)).toThrow(/one query head, which must stay; remove KV head groups instead/);
    const mqa = parseModelConfig({ ...raw, num_key_value_heads: 1 });
    expect(() => techniqueOptions({ kind: 'heads', remove: 1, mode: 'kv-groups' }, mqa)).toThrow(/one KV head group, which must stay/);
    expect(() => techniqueOptions({ kind: 'heads', remove: 1, mode: 'groups' as 'kv-groups' }, config)).toThrow(/"kv-groups" or "query-heads"/);
    expect(() => checkRecovery({ steps: 0, rank: 8, lr: 1e-3 })).toThrow(/Recovery steps/);
    expect(() => checkRecovery({ steps: 2, rank: 0, lr: 1e-3 })).toThrow(/rank/);
    expect(() => checkRecovery({ steps: 2, rank: 8, lr: 2 })).toThrow(/learning rate/);
    expect(() => checkRecovery({ steps: 2, rank: 8, lr: 1e-3 })).not.toThrow();
  });

  it('holds out a fifth of the rows (seeded, capped), the rest calibrate and train', () => {
    const rows = Array.from({ length: 50 }, (_, i) => ({ inputIds: [i, i + 1] }));
    const s = splitRows(rows, 32);
    expect(s.held).toHaveLength(10);
    expect(s.train).toHaveLength(40);
    expect(new Set([...s.held, ...s.train]).size).toBe(50);
    expect(splitRows(rows, 32)).toEqual(s);
    expect(splitRows(rows, 3).held).toHaveLength(3);
    expect(splitRows(rows.slice(0, 1), 32)).toEqual({ held: [rows[0]], train: [] });
    expect(splitRows(rows.slice(0, 2), 32)).toMatchObject({ held: [expect.anything()], train: [expect.anything()] });
  });

  it('labels techniques and makes distinct ids', () => {
    expect(techniqueLabel({ kind: 'drop-layers', layers: [1] })).toBe('drop layer 1');
    expect(techniqueLabel({ kind: 'sparsity', sparsity: 0.5, scope: 'layer' })).toBe('50 % magnitude sparsity (per tensor)');
    expect(techniqueLabel({ kind: 'cluster', k: 16, targets: 'projections' })).toBe('k-means clustering, k = 16 (projections)');
    expect(techniqueLabel({ kind: 'wanda', pattern: 'unstructured', sparsity: 0.5, calibrationRows: 8 })).toBe('50 % Wanda sparsity');
    expect(techniqueLabel({ kind: 'distill', dropLayers: [], heads: { remove: 1, mode: 'query-heads' }, neurons: 64, teacherAdapterRun: null, alpha: 0.5, temperature: 2, steps: 4, lr: 1e-3 })).toBe(
      'distillation into a student with 1 query head per group and 64 MLP neurons per layer fewer',
    );
    expect(techniqueLabel({ kind: 'distill', dropLayers: [1, 2], heads: { remove: 2, mode: 'kv-groups' }, teacherAdapterRun: null, alpha: 0.5, temperature: 2, steps: 4, lr: 1e-3 })).toBe(
      'distillation into a student without layers 1, 2 and with 2 KV head groups fewer',
    );
    expect(techniqueLabel({ kind: 'distill', dropLayers: [2], teacherAdapterRun: 'r1', alpha: 0.5, temperature: 2, steps: 4, lr: 1e-3 })).toBe(
      'distillation into a student without layer 2 (teacher with the adapter of run r1)',
    );
    expect(newCompressedId(1000, 0.1)).not.toBe(newCompressedId(1000, 0.2));
    expect(newCompressedId(1000, 0.1)).toMatch(/^c[0-9a-z]+$/);
  });
});
