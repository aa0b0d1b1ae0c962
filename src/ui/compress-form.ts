// The Compress screen's form logic, free of the studio's stores: the techniques with their help
// text, the options as typed, `techniqueFromDraft` turning them into the worker's CompressTechnique
// (or the first wrong field's message; the worker checks them against the model again), the
// progress stages in words, and the before/after table's rows with units and changes.

import type { CompressKind, CompressProgress, CompressResult, CompressTechnique } from '../worker/engine-api.ts';

/** The options of every technique as the form holds them (text, as typed). */
export interface CompressDraft {
  kind: CompressKind;
  layers: string;
  headsRemove: string;
  headsMode: 'kv-groups' | 'query-heads';
  neuronsRemove: string;
  sparsityPercent: string;
  scope: 'layer' | 'global';
  shareGroup: string;
  clusterK: '16' | '256';
  clusterTargets: 'projections' | 'all-matrices';
}

export const DEFAULT_DRAFT: CompressDraft = {
  kind: 'drop-layers',
  layers: '',
  headsRemove: '1',
  headsMode: 'kv-groups',
  neuronsRemove: '64',
  sparsityPercent: '50',
  scope: 'layer',
  shareGroup: '2',
  clusterK: '16',
  clusterTargets: 'projections',
};

export const TECHNIQUES: { kind: CompressKind; label: string; help: string }[] = [
  { kind: 'drop-layers', label: 'Drop layers', help: 'Removes whole decoder blocks; the rest are renumbered. Smaller file and faster.' },
  { kind: 'heads', label: 'Prune attention heads', help: 'Removes the least important heads (by weight magnitude) in every layer. Smaller file and faster.' },
  { kind: 'neurons', label: 'Prune MLP neurons', help: 'Removes the least important MLP channels (by weight magnitude) in every layer. Smaller file and faster.' },
  { kind: 'sparsity', label: 'Unstructured sparsity', help: 'Sets the smallest weights of each projection to zero. The zeros are stored: the file does not shrink.' },
  { kind: 'nm-2-4', label: '2:4 sparsity', help: 'In every group of 4 consecutive weights of a row, the 2 smallest become zero. The zeros are stored: the file does not shrink.' },
  { kind: 'share-layers', label: 'Share blocks across depth', help: 'Groups of consecutive layers run with one set of block weights (their mean), stored once.' },
  { kind: 'cluster', label: 'k-means clustering', help: 'Each weight is replaced by the nearest of k centroids; one index (8 bits, or 4 for k = 16) is stored per value plus the codebook.' },
];

/** A whole number of at least `min`, or an error message naming the field. */
function whole(text: string, field: string, min: number): number | string {
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isInteger(n) || n < min) return `${field} must be a whole number of at least ${min}.`;
  return n;
}

/** The technique the draft describes, or the message of its first wrong field. */
export function techniqueFromDraft(d: CompressDraft): { technique: CompressTechnique } | { error: string } {
  switch (d.kind) {
    case 'drop-layers': {
      const parts = d.layers.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (parts.length === 0) return { error: 'Layers to drop: give one or more layer numbers, e.g. 1 or 1, 2.' };
      const layers = parts.map(Number);
      if (layers.some((n) => !Number.isInteger(n) || n < 0)) return { error: 'Layers to drop must be layer numbers (0, 1, 2, …) separated by commas.' };
      return { technique: { kind: 'drop-layers', layers } };
    }
    case 'heads': {
      const n = whole(d.headsRemove, 'Heads removed', 1);
      return typeof n === 'string' ? { error: n } : { technique: { kind: 'heads', remove: n, mode: d.headsMode } };
    }
    case 'neurons': {
      const n = whole(d.neuronsRemove, 'Neurons removed', 1);
      return typeof n === 'string' ? { error: n } : { technique: { kind: 'neurons', remove: n } };
    }
    case 'sparsity': {
      const p = Number(d.sparsityPercent.trim());
      if (d.sparsityPercent.trim() === '' || !(p > 0 && p < 100)) return { error: 'Sparsity must be a percentage above 0 and below 100.' };
      return { technique: { kind: 'sparsity', sparsity: p / 100, scope: d.scope } };
    }
    case 'nm-2-4':
      return { technique: { kind: 'nm-2-4' } };
    case 'share-layers': {
      const n = whole(d.shareGroup, 'Layers per shared block', 2);
      return typeof n === 'string' ? { error: n } : { technique: { kind: 'share-layers', group: n } };
    }
    case 'cluster':
      return { technique: { kind: 'cluster', k: d.clusterK === '256' ? 256 : 16, targets: d.clusterTargets } };
  }
}

/** The draft with the layer to drop defaulting to the model's middle layer. */
export function draftFor(layers: number, d: CompressDraft): CompressDraft {
  return d.layers ? d : { ...d, layers: String(Math.floor(layers / 2)) };
}

export const STAGE_LABELS: Record<CompressProgress['stage'], string> = {
  preparing: 'Preparing the evaluation rows…',
  'evaluating-before': 'Measuring the loaded model…',
  writing: 'Writing the compressed model…',
  'evaluating-after': 'Loading and measuring the compressed model…',
};

/** One row of the before/after table, formatted with units. */
export interface ComparisonRow {
  label: string;
  before: string;
  after: string;
  change: string;
}

function ratioChange(before: number, after: number): string {
  if (before === 0) return '—';
  const pct = ((after - before) / before) * 100;
  return `${pct > 0 ? '+' : pct < 0 ? '−' : '±'}${Math.abs(pct).toFixed(1)} %`;
}

/** The rows of the before/after table: weight bytes, parameters and the loss. */
export function comparisonRows(r: CompressResult, fmtBytes: (n: number) => string): ComparisonRow[] {
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const loss = (x: number | null) => (x === null ? 'no dataset' : x.toFixed(4));
  const rows: ComparisonRow[] = [
    { label: 'Weight file size', before: fmtBytes(r.before.weightBytes), after: fmtBytes(r.after.weightBytes), change: ratioChange(r.before.weightBytes, r.after.weightBytes) },
    { label: 'Parameters', before: int(r.before.parameters), after: int(r.after.parameters), change: ratioChange(r.before.parameters, r.after.parameters) },
  ];
  const lossChange = r.before.loss === null || r.after.loss === null ? '—' : `${r.after.loss - r.before.loss >= 0 ? '+' : '−'}${Math.abs(r.after.loss - r.before.loss).toFixed(4)}`;
  rows.push({ label: r.evalRows > 0 ? `Eval loss (${int(r.evalRows)} rows, ${int(r.evalTokens)} tokens)` : 'Eval loss', before: loss(r.before.loss), after: loss(r.after.loss), change: lossChange });
  return rows;
}
