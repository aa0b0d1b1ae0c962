// The Compress screen's form logic: typed options → the worker's technique (or the wrong field's
// message), and the before/after table's rows with units and changes.

import { describe, expect, it } from 'vitest';
import type { CompressResult } from '../worker/engine-api.ts';
import { DEFAULT_DRAFT, comparisonRows, draftFor, techniqueFromDraft } from './compress-form.ts';

describe('the Compress form', () => {
  it('parses typed options into a technique or names the wrong field', () => {
    const d = draftFor(4, DEFAULT_DRAFT);
    expect(d.layers).toBe('2');
    expect(techniqueFromDraft(d)).toEqual({ technique: { kind: 'drop-layers', layers: [2] } });
    expect(techniqueFromDraft({ ...d, layers: '1, 3' })).toEqual({ technique: { kind: 'drop-layers', layers: [1, 3] } });
    expect(techniqueFromDraft({ ...d, layers: '1, x' })).toEqual({ error: expect.stringMatching(/layer numbers/) });
    expect(techniqueFromDraft({ ...d, kind: 'sparsity', sparsityPercent: '40' })).toEqual({ technique: { kind: 'sparsity', sparsity: 0.4, scope: 'layer' } });
    expect(techniqueFromDraft({ ...d, kind: 'sparsity', sparsityPercent: '100' })).toEqual({ error: expect.stringMatching(/percentage/) });
    expect(techniqueFromDraft({ ...d, kind: 'heads', headsRemove: '0' })).toEqual({ error: expect.stringMatching(/Heads removed/) });
    expect(techniqueFromDraft({ ...d, kind: 'share-layers', shareGroup: '1' })).toEqual({ error: expect.stringMatching(/at least 2/) });
    expect(techniqueFromDraft({ ...d, kind: 'cluster', clusterK: '256' })).toEqual({ technique: { kind: 'cluster', k: 256, targets: 'projections' } });
    expect(draftFor(4, { ...d, layers: '0' }).layers).toBe('0');
  });

  it('formats the before/after rows with units and changes', () => {
    const r: CompressResult = {
      id: 'c1',
      label: 'drop layer 1',
      before: { weightBytes: 2000, parameters: 1000, loss: 8.5 },
      after: { weightBytes: 1500, parameters: 750, loss: 8.25 },
      evalRows: 4,
      evalTokens: 120,
      files: [],
    };
    const rows = comparisonRows(r, (n) => `${n} B`);
    expect(rows.map((x) => [x.label, x.before, x.after, x.change])).toEqual([
      ['Weight file size', '2000 B', '1500 B', '−25.0 %'],
      ['Parameters', '1,000', '750', '−25.0 %'],
      ['Eval loss (4 rows, 120 tokens)', '8.5000', '8.2500', '−0.2500'],
    ]);
    const none = comparisonRows({ ...r, evalRows: 0, before: { ...r.before, loss: null }, after: { ...r.after, loss: null } }, String);
    expect(none[2]).toEqual({ label: 'Eval loss', before: 'no dataset', after: 'no dataset', change: '—' });
  });
});
