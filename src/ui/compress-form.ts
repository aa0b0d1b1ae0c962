// The Compress screen's form logic, free of the studio's stores: the techniques with their help
// text, the options as typed, `checkDraft` turning them into the worker's request (technique, LoRA
// recovery, which rows) or one message per wrong field (the worker checks them against the model
// again), the progress stages in words with n of N and units, and the before/after table's rows with
// units and changes.

import type { CompressKind, CompressProgress, CompressResult, CompressStage, CompressTechnique, RecoverySettings } from '../worker/engine-api.ts';

/** Where the rows come from: the Data screen's dataset, the studio's sample, or none (no loss measured). */
export type DataChoice = 'dataset' | 'sample' | 'none';

/** The options of every technique as the form holds them (text, as typed). */
export interface CompressDraft {
  kind: CompressKind;
  layers: string;
  headsRemove: string;
  headsMode: 'kv-groups' | 'query-heads';
  neuronsRemove: string;
  sparsityPercent: string;
  scope: 'layer' | 'global';
  wandaPattern: 'unstructured' | '2:4';
  wandaPercent: string;
  calibRows: string;
  shareGroup: string;
  shareInit: 'mean' | 'first';
  clusterK: '16' | '256';
  clusterTargets: 'projections' | 'all-matrices';
  /** LoRA recovery after pruning. */
  recover: boolean;
  recoverSteps: string;
  recoverRank: string;
  recoverLr: string;
  distillLayers: string;
  /** Heads and MLP neurons the student loses in every layer ('' for none). */
  distillHeads: string;
  distillHeadsMode: 'kv-groups' | 'query-heads';
  distillNeurons: string;
  /** A downloaded model (its cache id) as the student, or '' to make the student from the loaded model. */
  distillStudent: string;
  /** Run id of the teacher's adapter, or '' for none. */
  distillAdapter: string;
  distillAlpha: string;
  distillTemperature: string;
  distillSteps: string;
  distillLr: string;
  /** null: the Data screen's dataset when one is imported, else the sample. */
  data: DataChoice | null;
  /** The layer count the layer fields were defaulted for (draftFor); null before a model. */
  defaultsFor: number | null;
}

export type DraftField = Exclude<keyof CompressDraft, 'kind' | 'headsMode' | 'shareInit' | 'distillHeadsMode' | 'distillStudent' | 'scope' | 'wandaPattern' | 'clusterK' | 'clusterTargets' | 'recover' | 'defaultsFor'>;

export const DEFAULT_DRAFT: CompressDraft = {
  kind: 'drop-layers',
  layers: '',
  headsRemove: '1',
  headsMode: 'kv-groups',
  neuronsRemove: '64',
  sparsityPercent: '50',
  scope: 'layer',
  wandaPattern: 'unstructured',
  wandaPercent: '50',
  calibRows: '32',
  shareGroup: '2',
  shareInit: 'mean',
  clusterK: '16',
  clusterTargets: 'projections',
  recover: false,
  recoverSteps: '20',
  recoverRank: '8',
  recoverLr: '0.001',
  distillLayers: '',
  distillHeads: '',
  distillHeadsMode: 'kv-groups',
  distillNeurons: '',
  distillStudent: '',
  distillAdapter: '',
  distillAlpha: '0.5',
  distillTemperature: '2',
  distillSteps: '20',
  distillLr: '0.001',
  data: null,
  defaultsFor: null,
};

export const TECHNIQUES: { kind: CompressKind; label: string; help: string }[] = [
  { kind: 'drop-layers', label: 'Drop layers', help: 'Removes whole decoder blocks; the rest are renumbered. Smaller file and faster.' },
  { kind: 'heads', label: 'Prune attention heads', help: 'Removes the least important heads (by weight magnitude) in every layer. Smaller file and faster.' },
  { kind: 'neurons', label: 'Prune MLP neurons', help: 'Removes the least important MLP channels (by weight magnitude) in every layer. Smaller file and faster.' },
  { kind: 'sparsity', label: 'Unstructured sparsity', help: 'Sets the smallest weights of each projection to zero. The zeros are stored: the weight file does not shrink (the zip does).' },
  { kind: 'nm-2-4', label: '2:4 sparsity', help: 'In every group of 4 consecutive weights of a row, the 2 smallest become zero. The zeros are stored: the weight file does not shrink (the zip does).' },
  {
    kind: 'wanda',
    label: 'Wanda pruning',
    help: 'Zeroes the weights with the smallest |weight| × input activation norm in each row; the norms are measured on calibration rows. The zeros are stored.',
  },
  { kind: 'share-layers', label: 'Share blocks across depth', help: "Groups of consecutive layers run with one set of block weights (their mean, or the first layer's), stored once." },
  { kind: 'cluster', label: 'k-means clustering', help: 'Each weight is replaced by the nearest of k centroids; one index (8 bits, or 4 for k = 16) is stored per value plus the codebook.' },
  {
    kind: 'distill',
    label: 'Distillation',
    help: 'Trains a smaller student (the loaded model with fewer layers, heads or MLP neurons, or a downloaded model of the same family) to match the loaded model, the teacher, on the rows; every student weight trains.',
  },
];

/** Techniques that prune, which the LoRA recovery fine-tune can follow. */
export const PRUNING_KINDS: readonly CompressKind[] = ['drop-layers', 'heads', 'neurons', 'sparsity', 'nm-2-4', 'wanda'];

/** What the form knows beyond the draft: the model's layer count and whether the Data screen has a dataset. */
export interface DraftContext {
  layers: number;
  hasDataset: boolean;
}

/** The request a valid draft makes. */
export interface ParsedDraft {
  technique: CompressTechnique;
  recovery: RecoverySettings | null;
  data: DataChoice;
}

export type DraftErrors = Partial<Record<DraftField, string>>;

/** The rows the draft uses: as chosen, else the Data screen's dataset when there is one, else the sample. */
export function dataChoice(d: CompressDraft, ctx: DraftContext): DataChoice {
  return d.data ?? (ctx.hasDataset ? 'dataset' : 'sample');
}

/** Whether the technique (with its recovery) needs rows of text. */
export function needsRows(d: CompressDraft): boolean {
  return d.kind === 'wanda' || d.kind === 'distill' || (d.recover && PRUNING_KINDS.includes(d.kind));
}

function wholeIn(text: string, field: string, min: number, max: number): number | string {
  const t = text.trim();
  const n = Number(t);
  if (t === '' || !Number.isInteger(n) || n < min || n > max) return `${field} must be a whole number from ${min} to ${max}.`;
  return n;
}

function numberIn(text: string, field: string, ok: (n: number) => boolean, range: string): number | string {
  const t = text.trim();
  const n = Number(t);
  if (t === '' || !Number.isFinite(n) || !ok(n)) return `${field} must be a number ${range}.`;
  return n;
}

function percent(text: string, field: string): number | string {
  const r = numberIn(text, field, (p) => p > 0 && p < 100, 'above 0 and below 100 (a percentage)');
  return typeof r === 'string' ? r : r / 100;
}

/** A whole number from 1 to max, or null when the text is empty (none); a message when wrong. */
function optionalWhole(text: string, field: string, max: number): number | null | string {
  return text.trim() === '' ? null : wholeIn(text, field, 1, max);
}

/** Layer numbers typed as "1, 2", checked against the model's layers; a message when wrong. */
function layerList(text: string, field: string, layers: number): number[] | string {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) return `${field}: give one or more layer numbers, e.g. 1 or 1, 2.`;
  const list = parts.map(Number);
  if (list.some((n) => !Number.isInteger(n) || n < 0)) return `${field} must be layer numbers (0, 1, 2, …) separated by commas.`;
  const bad = list.find((n) => n >= layers);
  if (bad !== undefined) return `${field}: layer ${bad} does not exist; this model has layers 0 to ${layers - 1}.`;
  if (new Set(list).size >= layers) return `${field}: dropping all ${layers} layers leaves no model; keep at least one.`;
  return list;
}

/** The request the draft makes, or one message per wrong field. */
export function checkDraft(d: CompressDraft, ctx: DraftContext): { ok: true; value: ParsedDraft } | { ok: false; errors: DraftErrors } {
  const errors: DraftErrors = {};
  const take = <T>(field: DraftField, v: T | string): T | undefined => {
    if (typeof v === 'string') {
      errors[field] = v;
      return undefined;
    }
    return v;
  };
  let technique: CompressTechnique | undefined;
  switch (d.kind) {
    case 'drop-layers': {
      const layers = take('layers', layerList(d.layers, 'Layers to drop', ctx.layers));
      if (layers) technique = { kind: 'drop-layers', layers };
      break;
    }
    case 'heads': {
      const n = take('headsRemove', wholeIn(d.headsRemove, 'Heads removed', 1, 1024));
      if (n !== undefined) technique = { kind: 'heads', remove: n, mode: d.headsMode };
      break;
    }
    case 'neurons': {
      const n = take('neuronsRemove', wholeIn(d.neuronsRemove, 'MLP neurons removed', 1, 1 << 20));
      if (n !== undefined) technique = { kind: 'neurons', remove: n };
      break;
    }
    case 'sparsity': {
      const s = take('sparsityPercent', percent(d.sparsityPercent, 'Sparsity'));
      if (s !== undefined) technique = { kind: 'sparsity', sparsity: s, scope: d.scope };
      break;
    }
    case 'nm-2-4':
      technique = { kind: 'nm-2-4' };
      break;
    case 'wanda': {
      const s = d.wandaPattern === '2:4' ? 0.5 : take('wandaPercent', percent(d.wandaPercent, 'Sparsity'));
      const rows = take('calibRows', wholeIn(d.calibRows, 'Calibration rows', 1, 100000));
      if (s !== undefined && rows !== undefined) technique = { kind: 'wanda', pattern: d.wandaPattern, sparsity: s, calibrationRows: rows };
      break;
    }
    case 'share-layers': {
      const n = take('shareGroup', wholeIn(d.shareGroup, 'Layers per shared block', 2, Math.max(2, ctx.layers)));
      if (n !== undefined) technique = { kind: 'share-layers', group: n, init: d.shareInit };
      break;
    }
    case 'cluster':
      technique = { kind: 'cluster', k: d.clusterK === '256' ? 256 : 16, targets: d.clusterTargets };
      break;
    case 'distill': {
      // A downloaded student ignores the fields that make one from the loaded model (they are hidden).
      const own = d.distillStudent === '';
      const dropLayers = !own || d.distillLayers.trim() === '' ? [] : take('distillLayers', layerList(d.distillLayers, 'Layers the student drops', ctx.layers));
      const heads = own ? take('distillHeads', optionalWhole(d.distillHeads, 'Heads the student loses', 1024)) : null;
      const neurons = own ? take('distillNeurons', optionalWhole(d.distillNeurons, 'MLP neurons the student loses', 1 << 20)) : null;
      if (own && dropLayers?.length === 0 && heads === null && neurons === null) {
        errors.distillLayers = 'The student must be smaller than the teacher: give layers to drop, or heads or MLP neurons to remove.';
      }
      const alpha = take('distillAlpha', numberIn(d.distillAlpha, 'alpha', (a) => a >= 0 && a <= 1, 'from 0 to 1'));
      const temperature = take('distillTemperature', numberIn(d.distillTemperature, 'Temperature', (t) => t > 0 && t <= 100, 'above 0 and at most 100'));
      const steps = take('distillSteps', wholeIn(d.distillSteps, 'Distillation steps', 1, 10000));
      const lr = take('distillLr', numberIn(d.distillLr, 'Learning rate', (x) => x > 0 && x <= 1, 'above 0 and at most 1, e.g. 0.001'));
      if (!errors.distillLayers && dropLayers && heads !== undefined && neurons !== undefined && alpha !== undefined && temperature !== undefined && steps !== undefined && lr !== undefined) {
        technique = {
          kind: 'distill',
          dropLayers,
          heads: heads === null ? null : { remove: heads, mode: d.distillHeadsMode },
          neurons,
          studentModel: own ? null : d.distillStudent,
          teacherAdapterRun: d.distillAdapter === '' ? null : d.distillAdapter,
          alpha,
          temperature,
          steps,
          lr,
        };
      }
      break;
    }
  }
  let recovery: RecoverySettings | null = null;
  if (d.recover && PRUNING_KINDS.includes(d.kind)) {
    const steps = take('recoverSteps', wholeIn(d.recoverSteps, 'Recovery steps', 1, 10000));
    const rank = take('recoverRank', wholeIn(d.recoverRank, 'LoRA rank', 1, 1024));
    const lr = take('recoverLr', numberIn(d.recoverLr, 'Learning rate', (x) => x > 0 && x <= 1, 'above 0 and at most 1, e.g. 0.001'));
    if (steps !== undefined && rank !== undefined && lr !== undefined) recovery = { steps, rank, lr };
  }
  const data = dataChoice(d, ctx);
  if (data === 'dataset' && !ctx.hasDataset) errors.data = 'No dataset is imported on the Data screen: import one there, or choose the sample dataset.';
  else if (data === 'none' && needsRows(d)) {
    errors.data = `${d.kind === 'wanda' ? 'Wanda pruning needs calibration rows' : d.kind === 'distill' ? 'Distillation needs rows to train on' : 'The recovery fine-tune needs rows to train on'}: choose the Data screen's dataset or the sample.`;
  }
  if (Object.keys(errors).length > 0 || !technique) return { ok: false, errors };
  return { ok: true, value: { technique, recovery, data } };
}

/**
 * The draft for a model of `layers` layers: once per layer count, empty layer fields (the layer to
 * drop, the student's dropped layer) default to the model's middle layer; after that an emptied field
 * stays empty (a student may keep every layer).
 */
export function draftFor(layers: number, d: CompressDraft): CompressDraft {
  if (d.defaultsFor === layers) return d;
  const middle = String(Math.floor(layers / 2));
  return { ...d, layers: d.layers || middle, distillLayers: d.distillLayers || middle, defaultsFor: layers };
}

export const STAGE_LABELS: Record<CompressStage, string> = {
  preparing: 'Reading the rows…',
  'evaluating-before': 'Measuring the loaded model (loss and speed)…',
  calibrating: 'Calibrating (activation norms)',
  writing: 'Writing the model folder…',
  recovering: 'LoRA recovery fine-tune',
  'distill-before': 'Measuring the student and the teacher on the held-out rows…',
  distilling: 'Distilling',
  'distill-after': 'Measuring the trained student on the held-out rows…',
  'evaluating-after': 'Loading and measuring the compressed model (loss and speed)…',
};

/** The progress line: the stage in words, with n of N and units for calibration and training, bytes for writing. */
export function progressDetail(p: CompressProgress | null, fmtBytes: (n: number) => string): string {
  if (!p) return 'Starting…';
  if (p.stage === 'writing') return `${STAGE_LABELS.writing} ${fmtBytes(p.bytesDone)} of ${fmtBytes(p.bytesTotal)}`;
  if (p.step) {
    const what = p.step.unit === 'rows' ? `row ${p.step.done} of ${p.step.total} rows` : `step ${p.step.done} of ${p.step.total} steps`;
    return `${STAGE_LABELS[p.stage]}: ${what}${p.step.loss !== undefined ? `, loss ${p.step.loss.toFixed(4)}` : ''}`;
  }
  return STAGE_LABELS[p.stage];
}

/** The progress bar's value and maximum: bytes while writing, n of N while calibrating or training; null when unknown. */
export function progressValue(p: CompressProgress | null): { value: number | null; max: number | null } {
  if (p?.stage === 'writing') return { value: p.bytesDone, max: p.bytesTotal };
  if (p?.step) return { value: p.step.done, max: p.step.total };
  return { value: null, max: null };
}

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

function diff(before: number | null, after: number | null): string {
  if (before === null || after === null) return '—';
  const d = after - before;
  return `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(4)}`;
}

/** The rows of the before/after table: weight bytes, parameters, the loss, generation speed, and the recovery's or distillation's measures. */
export function comparisonRows(r: CompressResult, fmtBytes: (n: number) => string): ComparisonRow[] {
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const loss = (x: number | null) => (x === null ? 'no dataset' : x.toFixed(4));
  const tps = (x: number) => `${x.toFixed(1)} tokens/s`;
  const rows: ComparisonRow[] = [
    { label: 'Weight file size', before: fmtBytes(r.before.weightBytes), after: fmtBytes(r.after.weightBytes), change: ratioChange(r.before.weightBytes, r.after.weightBytes) },
    { label: 'Parameters', before: int(r.before.parameters), after: int(r.after.parameters), change: ratioChange(r.before.parameters, r.after.parameters) },
    {
      label: r.evalRows > 0 ? `Eval loss (${int(r.evalRows)} held-out rows, ${int(r.evalTokens)} tokens)` : 'Eval loss',
      before: loss(r.before.loss),
      after: loss(r.after.loss),
      change: diff(r.before.loss, r.after.loss),
    },
    { label: 'Generation speed (greedy, median)', before: tps(r.before.tokensPerSecond), after: tps(r.after.tokensPerSecond), change: ratioChange(r.before.tokensPerSecond, r.after.tokensPerSecond) },
  ];
  if (r.recovery) {
    const f = r.recovery.firstLoss;
    const l = r.recovery.lastLoss;
    rows.push({ label: `Recovery training loss (step 1 → step ${int(r.recovery.steps)})`, before: f === null ? '—' : f.toFixed(4), after: l === null ? '—' : l.toFixed(4), change: diff(f, l) });
  }
  if (r.distill) {
    const d = r.distill;
    rows.push(
      { label: `Student held-out loss (${int(d.rows)} rows; before: ${d.student === 'pruned' ? 'as pruned from the teacher' : d.student.replace(/^hub:/, '')}, untrained)`, before: d.studentBefore.toFixed(4), after: d.studentAfter.toFixed(4), change: diff(d.studentBefore, d.studentAfter) },
      { label: 'Teacher held-out loss', before: d.teacher.toFixed(4), after: d.teacher.toFixed(4), change: '—' },
      { label: 'KL(teacher ‖ student), held out', before: d.klBefore.toFixed(4), after: d.klAfter.toFixed(4), change: diff(d.klBefore, d.klAfter) },
      { label: 'Distillation loss (first → last step)', before: d.firstLoss.toFixed(4), after: d.lastLoss.toFixed(4), change: diff(d.firstLoss, d.lastLoss) },
    );
  }
  return rows;
}

/** The notice after a download: the zip's size against the folder it holds, and the files. */
export function downloadNotice(fileName: string, zipBytes: number, files: readonly { name: string; bytes: number }[], fmtBytes: (n: number) => string): string {
  const folder = files.reduce((n, f) => n + f.bytes, 0);
  const pct = folder > 0 ? ((folder - zipBytes) / folder) * 100 : 0;
  const than = `than the ${fmtBytes(folder)} folder`;
  const vs = Math.abs(pct) < 0.05 ? `the size of the ${fmtBytes(folder)} folder` : pct > 0 ? `${pct.toFixed(1)} % smaller ${than}` : `${(-pct).toFixed(1)} % larger ${than}`;
  return `Downloaded ${fileName}: ${fmtBytes(zipBytes)}, ${vs} (${files.map((f) => f.name).join(', ')}).`;
}
