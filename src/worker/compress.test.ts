// The worker's compression logic without a GPU: technique → the engine options the CLI passes
// (checked against the model's sizes), technique labels and compressed-folder ids.

import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../engine/model/config.ts';
import { newCompressedId, techniqueLabel, techniqueOptions } from './compress.ts';

const config = parseModelConfig({
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
});

describe('techniqueOptions', () => {
  it('maps each technique onto the options the CLI gives pruneModel / shareModel', () => {
    expect(techniqueOptions({ kind: 'drop-layers', layers: [2, 1, 2] }, config)).toEqual({ prune: { dropLayers: [1, 2] } });
    expect(techniqueOptions({ kind: 'heads', remove: 1, mode: 'kv-groups' }, config)).toEqual({ prune: { heads: { mode: 'kv-groups', remove: 1 } } });
    expect(techniqueOptions({ kind: 'neurons', remove: 32 }, config)).toEqual({ prune: { neurons: { remove: 32 } } });
    expect(techniqueOptions({ kind: 'sparsity', sparsity: 0.5, scope: 'global' }, config)).toEqual({ prune: { unstructured: { sparsity: 0.5, scope: 'global' } } });
    expect(techniqueOptions({ kind: 'nm-2-4' }, config)).toEqual({ prune: { nm: { n: 2, m: 4 } } });
    expect(techniqueOptions({ kind: 'share-layers', group: 2 }, config)).toEqual({ share: { layerSource: [0, 0, 2, 2], init: 'mean' } });
    expect(techniqueOptions({ kind: 'cluster', k: 256, targets: 'all-matrices' }, config)).toEqual({ share: { cluster: { k: 256, seed: 0, targets: 'all-matrices' } } });
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
    expect(() => techniqueOptions({ kind: 'cluster', k: 8 as 16, targets: 'projections' }, config)).toThrow(/16 or 256/);
    expect(() => techniqueOptions({ kind: 'cluster', k: 16, targets: 'projections' }, config)).not.toThrow();
  });

  it('labels techniques and makes distinct ids', () => {
    expect(techniqueLabel({ kind: 'drop-layers', layers: [1] })).toBe('drop layer 1');
    expect(techniqueLabel({ kind: 'sparsity', sparsity: 0.5, scope: 'layer' })).toBe('50 % magnitude sparsity (per tensor)');
    expect(techniqueLabel({ kind: 'cluster', k: 16, targets: 'projections' })).toBe('k-means clustering, k = 16 (projections)');
    expect(newCompressedId(1000, 0.1)).not.toBe(newCompressedId(1000, 0.2));
    expect(newCompressedId(1000, 0.1)).toMatch(/^c[0-9a-z]+$/);
  });
});
