import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../engine/errors.ts';
import { parsePruneFlags } from './prune.ts';

describe('prune flags', () => {
  it('maps flags to pruning options', () => {
    expect(parsePruneFlags({ sparsity: '0.5', scope: 'global' })).toEqual({ criterion: 'magnitude', unstructured: { sparsity: 0.5, scope: 'global' } });
    expect(parsePruneFlags({ nm: '2:4', criterion: 'wanda' })).toEqual({ criterion: 'wanda', nm: { n: 2, m: 4 } });
    expect(parsePruneFlags({ heads: '1', 'heads-mode': 'query-heads', neurons: '8', 'drop-layers': '0,3' })).toEqual({
      criterion: 'magnitude',
      heads: { remove: 1, mode: 'query-heads' },
      neurons: { remove: 8 },
      dropLayers: [0, 3],
    });
  });

  it('names the flag that is wrong', () => {
    expect(() => parsePruneFlags({})).toThrow(/Nothing to prune/);
    expect(() => parsePruneFlags({ nm: '2-4' })).toThrow(/--nm/);
    expect(() => parsePruneFlags({ sparsity: 'half' })).toThrow(/--sparsity/);
    expect(() => parsePruneFlags({ heads: '1', 'heads-mode': 'rows' })).toThrow(/--heads-mode/);
    expect(() => parsePruneFlags({ 'drop-layers': '1,,2' })).toThrow(InvalidArgumentError);
    expect(() => parsePruneFlags({ scope: 'global' })).toThrow(/--scope needs --sparsity/);
  });
});
