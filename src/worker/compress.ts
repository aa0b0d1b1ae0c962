// The studio's compression: one technique applied to the loaded model's folder with the same
// engine functions the CLI uses — structured pruning of layers, heads or MLP neurons, unstructured or
// 2:4 sparsity by magnitude, Wanda (calibrated on the request's rows) with an optional LoRA recovery
// fine-tune after any pruning (compress/pipeline.ts), blocks shared across depth and k-means
// clustering (shareModel), and distillation of the loaded model (optionally with the adapter of a
// finished training run) into a student with fewer layers, heads or MLP neurons initialised from its
// weights, or into a downloaded model of the same family. The new folder's files go into the store
// under compressed/<id>/ (intermediate folders under a second id, removed at the end), and the
// model is measured before and after: weight bytes, parameters, the evaluation loss on the held-out
// rows of the request's dataset, and greedy generation speed (the median of a few timed runs);
// distillation adds the student's and teacher's held-out losses. Long steps report n of N with their
// unit, and every step stops on the abort signal with nothing kept. The folder downloads as a zip
// with every file deflated.

import { type ExportedFile, folderBytes } from '../engine/compress/folder.ts';
import { type StepProgress, calibrateAndPrune, distillToFolder, generationSpeed, recoverPrunedFolder, splitHeldOut } from '../engine/compress/pipeline.ts';
import { type PruneOptions, pruneModel } from '../engine/compress/prune.ts';
import { type ShareOptions, groupedLayerSource, shareModel } from '../engine/compress/share.ts';
import { prepareDataset } from '../engine/data/dataset.ts';
import type { ColumnMapping, ExampleFormat } from '../engine/data/formats.ts';
import type { DatasetFileFormat } from '../engine/data/readers.ts';
import { CancelledError, InvalidArgumentError, MissingFileError } from '../engine/errors.ts';
import { type FileSet, type ModelFolder, openModelFolder } from '../engine/io/model-folder.ts';
import { blobSource } from '../engine/io/source.ts';
import { type ModelConfig, parameterCount } from '../engine/model/config.ts';
import { type LlamaModel, type TokenRow, evaluateLoss, loadModel } from '../engine/model/llama.ts';
import type { Tokenizer } from '../engine/model/tokenizer.ts';
import { type PeftAdapter, withForwardOptions } from '../engine/peft/adapter.ts';
import { loadAdapter } from '../engine/peft/methods.ts';
import type { BlobStore } from '../engine/store/store.ts';
import { F32_WEIGHT_LIMIT, type ModelService, parseModelId, storeFileSet } from './models.ts';
import { type HubRef, formatHubRef, openCachedModel } from '../engine/io/hub.ts';
import { loadFolderTokenizer } from '../engine/model/tokenizer-folder.ts';
import { type ExportProgress, type ExportedDownload, zipEntries } from './run-export.ts';
import type { RunDatasetImport } from './runs.ts';

/** One compression technique with its options. */
export type CompressTechnique =
  | { kind: 'drop-layers'; layers: number[] }
  | { kind: 'heads'; remove: number; mode: 'kv-groups' | 'query-heads' }
  | { kind: 'neurons'; remove: number }
  | { kind: 'sparsity'; sparsity: number; scope: 'layer' | 'global' }
  | { kind: 'nm-2-4' }
  | { kind: 'wanda'; pattern: 'unstructured' | '2:4'; sparsity: number; calibrationRows: number }
  | { kind: 'share-layers'; group: number; /** The shared block's weights: the group's mean (default) or its first layer's. */ init?: 'mean' | 'first' }
  | { kind: 'cluster'; k: 16 | 256; targets: 'projections' | 'all-matrices' }
  | {
      kind: 'distill';
      /**
       * The student made from the loaded model: without these layers, with these heads and MLP
       * neurons pruned in every layer (at least one of the three), when `studentModel` is not set.
       */
      dropLayers: number[];
      heads?: { remove: number; mode: 'kv-groups' | 'query-heads' } | null;
      neurons?: number | null;
      /** A finished Hub download in the store (`hub:ORG/NAME@REV`, as listCachedModels names it) as the student, instead of one made from the loaded model. */
      studentModel?: string | null;
      teacherAdapterRun: string | null;
      alpha: number;
      temperature: number;
      steps: number;
      lr: number;
    };

export type CompressKind = CompressTechnique['kind'];

/** The LoRA recovery fine-tune after pruning: optimizer steps, rank (alpha is twice the rank), peak learning rate. */
export interface RecoverySettings {
  steps: number;
  rank: number;
  lr: number;
}

/** The dataset the Data screen imported (or the studio's sample), and how it is read. */
export interface CompressDataset {
  file: Blob;
  fileName: string;
  import: RunDatasetImport;
}

export interface CompressRequest {
  technique: CompressTechnique;
  /** Rows for the loss (held out), calibration and fine-tuning (the rest); null: no loss is measured, and Wanda, recovery and distillation are refused. */
  dataset: CompressDataset | null;
  /** LoRA recovery after a pruning technique; null or absent: none. */
  recovery?: RecoverySettings | null;
  /**
   * The held-out rows (at most `rows`, default EVAL_ROWS; each row of the dataset cut to
   * `maxTokens` tokens, default EVAL_MAX_TOKENS) and the speed measure (`genTokens` new tokens per
   * run, default SPEED_TOKENS, median of `genRepeats` runs, default SPEED_REPEATS).
   */
  evaluation?: { rows?: number; maxTokens?: number; genTokens?: number; genRepeats?: number };
}

/** One side of the before/after table. */
export interface CompressMeasure {
  /** Bytes of the weight files (model.safetensors, or all shards). */
  weightBytes: number;
  /** Parameters of the weights the config needs (a shared block counts once; a clustered weight counts its values). */
  parameters: number;
  /** Mean cross-entropy over the held-out rows' counted tokens; null without a dataset. */
  loss: number | null;
  /** Greedy generation speed on this device: the median of the timed runs. */
  tokensPerSecond: number;
}

/** Held-out measures of a distillation (forward only, temperature 1). */
export interface DistillMeasures {
  /** 'pruned': made from the teacher's folder; else the Hub id of the downloaded student. */
  student: string;
  rows: number;
  /** The student's cross-entropy before training (as pruned from the teacher, or as downloaded) and after. */
  studentBefore: number;
  studentAfter: number;
  /** The teacher's cross-entropy (with its adapter when one is chosen). */
  teacher: number;
  /** KL(teacher ‖ student) before and after. */
  klBefore: number;
  klAfter: number;
  /** The distillation loss of the first and last step. */
  firstLoss: number;
  lastLoss: number;
}

export interface CompressResult {
  id: string;
  /** The model id the folder has once loaded as the model (ModelSummary.id, `compressed:<id>`). */
  modelId: string;
  /** What was done, in words. */
  label: string;
  before: CompressMeasure;
  after: CompressMeasure;
  /** Held-out evaluation rows and counted tokens (0 without a dataset). */
  evalRows: number;
  evalTokens: number;
  /** Rows the Wanda norms were measured on; null for other techniques. */
  calibrationRows: number | null;
  /** The recovery fine-tune's steps and the training loss of its first and last step; null without recovery. */
  recovery: { steps: number; firstLoss: number | null; lastLoss: number | null } | null;
  /** Distillation's held-out measures; null for other techniques. */
  distill: DistillMeasures | null;
  /** The files of the compressed folder in the store. */
  files: { name: string; bytes: number }[];
}

export type CompressStage =
  | 'preparing'
  | 'evaluating-before'
  | 'calibrating'
  | 'writing'
  | 'recovering'
  | 'distill-before'
  | 'distilling'
  | 'distill-after'
  | 'evaluating-after';

export interface CompressProgress {
  stage: CompressStage;
  /** Bytes written of the folder (during 'writing'). */
  bytesDone: number;
  bytesTotal: number;
  /** Calibration rows, or recovery / distillation steps, done of all (during 'calibrating', 'recovering', 'distilling'). */
  step?: StepProgress;
}

/** Rows of the dataset the loss is measured on, at most. */
export const EVAL_ROWS = 32;
/** Tokens per evaluation row, at most; also the sequence length of calibration and fine-tuning. */
export const EVAL_MAX_TOKENS = 256;
/** Share of the dataset's rows held out for the loss (the rest calibrate and train). */
export const HELD_OUT_FRACTION = 0.2;
/** New tokens per timed generation, and timed generations per speed measure. */
export const SPEED_TOKENS = 8;
export const SPEED_REPEATS = 3;
/** The prompt of the speed measure when there is no dataset. */
const SPEED_PROMPT = 'Once upon a time';

const PREFIX = 'compressed/';

/** Store keys of a compressed folder. */
export const compressedKeys = {
  folder: (id: string) => `${PREFIX}${id}/`,
  file: (id: string, name: string) => `${PREFIX}${id}/${name}`,
};

/** A new compressed folder's id: time-ordered, unique enough within one store. */
export function newCompressedId(now = Date.now(), random = Math.random()): string {
  return `c${now.toString(36)}${Math.floor(random * 36 ** 4).toString(36).padStart(4, '0')}`;
}

/** The technique in words (the table's caption and the zip's name). */
export function techniqueLabel(t: CompressTechnique): string {
  switch (t.kind) {
    case 'drop-layers':
      return `drop layer${t.layers.length === 1 ? '' : 's'} ${t.layers.join(', ')}`;
    case 'heads':
      return t.mode === 'kv-groups' ? `remove ${t.remove} KV head group${t.remove === 1 ? '' : 's'} per layer` : `remove ${t.remove} query head${t.remove === 1 ? '' : 's'} per KV group`;
    case 'neurons':
      return `remove ${t.remove} MLP neuron${t.remove === 1 ? '' : 's'} per layer`;
    case 'sparsity':
      return `${Math.round(t.sparsity * 1000) / 10} % magnitude sparsity (${t.scope === 'global' ? 'global' : 'per tensor'})`;
    case 'nm-2-4':
      return '2:4 sparsity (magnitude)';
    case 'wanda':
      return t.pattern === '2:4' ? '2:4 sparsity (Wanda)' : `${Math.round(t.sparsity * 1000) / 10} % Wanda sparsity`;
    case 'share-layers':
      return `blocks shared by groups of ${t.group} layers (${t.init === 'first' ? "first layer's weights" : 'mean weights'})`;
    case 'cluster':
      return `k-means clustering, k = ${t.k} (${t.targets === 'all-matrices' ? 'all matrices' : 'projections'})`;
    case 'distill': {
      const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
      const fewer = [
        t.heads ? (t.heads.mode === 'kv-groups' ? plural(t.heads.remove, 'KV head group', 'KV head groups') : `${plural(t.heads.remove, 'query head', 'query heads')} per group`) : '',
        t.neurons ? `${plural(t.neurons, 'MLP neuron', 'MLP neurons')} per layer` : '',
      ].filter((x) => x !== '');
      const student = [
        t.dropLayers.length > 0 ? `without layer${t.dropLayers.length === 1 ? '' : 's'} ${t.dropLayers.join(', ')}` : '',
        fewer.length > 0 ? `with ${fewer.join(' and ')} fewer` : '',
      ]
        .filter((x) => x !== '')
        .join(' and ');
      const into = t.studentModel ? formatHubRef(parseModelId(t.studentModel)).replace(/^hub:/, '') : `a student ${student}`;
      return `distillation into ${into}${t.teacherAdapterRun ? ` (teacher with the adapter of run ${t.teacherAdapterRun})` : ''}`;
    }
  }
}

function positiveInt(n: number, what: string, max: number): void {
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${what} must be a whole number from 1 to ${max}; got ${n}.`);
}

/** Head pruning's option, checked against the model's heads (one KV group, or one query head per group, must stay). */
function headsOption(h: { remove: number; mode: 'kv-groups' | 'query-heads' }, c: ModelConfig): NonNullable<PruneOptions['heads']> {
  const perGroup = c.numAttentionHeads / c.numKeyValueHeads;
  if (h.mode === 'kv-groups') {
    if (c.numKeyValueHeads < 2) throw new InvalidArgumentError(`This model has one KV head group, which must stay; remove query heads per group instead.`);
    positiveInt(h.remove, 'KV head groups removed', c.numKeyValueHeads - 1);
  } else if (h.mode === 'query-heads') {
    if (perGroup < 2) throw new InvalidArgumentError(`Each KV group of this model has one query head, which must stay; remove KV head groups instead.`);
    positiveInt(h.remove, 'Query heads removed per KV group', perGroup - 1);
  } else throw new InvalidArgumentError(`What a head is must be "kv-groups" or "query-heads"; got ${JSON.stringify(h.mode)}.`);
  return { mode: h.mode, remove: h.remove };
}

/** Neuron pruning's option, checked against the MLP width (one neuron must stay). */
function neuronsOption(remove: number, c: ModelConfig): NonNullable<PruneOptions['neurons']> {
  positiveInt(remove, 'MLP neurons removed', c.intermediateSize - 1);
  return { remove };
}

function checkLayers(layers: readonly number[], L: number, what: string): number[] {
  if (layers.length === 0) throw new InvalidArgumentError(`${what}: choose at least one layer.`);
  const bad = layers.find((l) => !Number.isInteger(l) || l < 0 || l >= L);
  if (bad !== undefined) throw new InvalidArgumentError(`Layer ${bad} does not exist: the model has layers 0 to ${L - 1}.`);
  if (new Set(layers).size >= L) throw new InvalidArgumentError(`Dropping every layer leaves no model; keep at least one of the ${L}.`);
  return [...new Set(layers)].sort((a, b) => a - b);
}

/** Distillation's settings as the engine takes them. */
export interface DistillSettings {
  /** The student: made from the teacher's folder by pruneModel with these options, or a finished Hub download in the store. */
  student: { from: 'teacher'; prune: Pick<PruneOptions, 'dropLayers' | 'heads' | 'neurons'> } | { from: 'cached'; ref: HubRef };
  teacherAdapterRun: string | null;
  alpha: number;
  temperature: number;
  steps: number;
  lr: number;
}

/** Most optimizer steps of a recovery or distillation run in the studio. */
export const MAX_STUDIO_STEPS = 10000;

/** Checks recovery settings; throws InvalidArgumentError naming the setting. */
export function checkRecovery(r: RecoverySettings): void {
  positiveInt(r.steps, 'Recovery steps', MAX_STUDIO_STEPS);
  positiveInt(r.rank, 'Recovery LoRA rank', 1024);
  if (!(Number.isFinite(r.lr) && r.lr > 0 && r.lr <= 1)) throw new InvalidArgumentError(`The recovery learning rate must be above 0 and at most 1; got ${r.lr}.`);
}

/**
 * The engine options of a technique on a model with config `c`, checked against the model's sizes:
 * pruneModel's (with the calibration rows Wanda takes), shareModel's, or distillation's.
 */
export function techniqueOptions(
  t: CompressTechnique,
  c: ModelConfig,
): { prune: PruneOptions; calibrationRows?: number } | { share: ShareOptions } | { distill: DistillSettings } {
  switch (t.kind) {
    case 'drop-layers':
      return { prune: { dropLayers: checkLayers(t.layers, c.numHiddenLayers, 'Layers to drop') } };
    case 'heads':
      return { prune: { heads: headsOption(t, c) } };
    case 'neurons':
      return { prune: { neurons: neuronsOption(t.remove, c) } };
    case 'sparsity':
      if (!(t.sparsity > 0 && t.sparsity < 1)) throw new InvalidArgumentError(`Sparsity must be above 0 and below 1 (a fraction of the weights); got ${t.sparsity}.`);
      return { prune: { unstructured: { sparsity: t.sparsity, scope: t.scope } } };
    case 'nm-2-4':
      return { prune: { nm: { n: 2, m: 4 } } };
    case 'wanda':
      positiveInt(t.calibrationRows, 'Calibration rows', 100000);
      if (t.pattern === '2:4') return { prune: { nm: { n: 2, m: 4 }, criterion: 'wanda' }, calibrationRows: t.calibrationRows };
      if (t.pattern !== 'unstructured') throw new InvalidArgumentError(`The Wanda pattern must be "unstructured" or "2:4"; got ${JSON.stringify(t.pattern)}.`);
      if (!(t.sparsity > 0 && t.sparsity < 1)) throw new InvalidArgumentError(`Sparsity must be above 0 and below 1 (a fraction of the weights); got ${t.sparsity}.`);
      return { prune: { unstructured: { sparsity: t.sparsity, scope: 'layer' }, criterion: 'wanda' }, calibrationRows: t.calibrationRows };
    case 'share-layers':
      positiveInt(t.group, 'Layers per shared block', c.numHiddenLayers);
      if (t.group < 2) throw new InvalidArgumentError('A shared block needs at least 2 layers.');
      if (t.init !== undefined && t.init !== 'mean' && t.init !== 'first') throw new InvalidArgumentError(`A shared block starts from the group's "mean" or its "first" layer; got ${JSON.stringify(t.init)}.`);
      return { share: { layerSource: groupedLayerSource(c.numHiddenLayers, t.group), init: t.init ?? 'mean' } };
    case 'cluster':
      if (t.k !== 16 && t.k !== 256) throw new InvalidArgumentError(`The codebook size must be 16 or 256; got ${String(t.k)}.`);
      return { share: { cluster: { k: t.k, seed: 0, targets: t.targets } } };
    case 'distill': {
      const shrink: Pick<PruneOptions, 'dropLayers' | 'heads' | 'neurons'> = {};
      if (t.dropLayers.length > 0) shrink.dropLayers = checkLayers(t.dropLayers, c.numHiddenLayers, 'Layers the student drops');
      if (t.heads) shrink.heads = headsOption(t.heads, c);
      if (t.neurons !== undefined && t.neurons !== null) shrink.neurons = neuronsOption(t.neurons, c);
      const shrinks = shrink.dropLayers !== undefined || shrink.heads !== undefined || shrink.neurons !== undefined;
      let student: DistillSettings['student'];
      if (t.studentModel !== undefined && t.studentModel !== null) {
        if (shrinks) throw new InvalidArgumentError('Choose a downloaded model as the student, or make the student from the loaded model (layers, heads, neurons), not both.');
        student = { from: 'cached', ref: parseModelId(t.studentModel) };
      } else if (shrinks) student = { from: 'teacher', prune: shrink };
      else throw new InvalidArgumentError('The student must be smaller than the teacher: drop layers, or remove attention heads or MLP neurons.');
      if (!(t.alpha >= 0 && t.alpha <= 1)) throw new InvalidArgumentError(`alpha (the weight of the teacher's term) must be from 0 to 1; got ${t.alpha}.`);
      if (!(Number.isFinite(t.temperature) && t.temperature > 0 && t.temperature <= 100)) throw new InvalidArgumentError(`The temperature must be above 0 and at most 100; got ${t.temperature}.`);
      positiveInt(t.steps, 'Distillation steps', MAX_STUDIO_STEPS);
      if (!(Number.isFinite(t.lr) && t.lr > 0 && t.lr <= 1)) throw new InvalidArgumentError(`The distillation learning rate must be above 0 and at most 1; got ${t.lr}.`);
      if (t.teacherAdapterRun !== null && (typeof t.teacherAdapterRun !== 'string' || !/^[^/]+$/.test(t.teacherAdapterRun))) {
        throw new InvalidArgumentError(`There is no training run ${JSON.stringify(t.teacherAdapterRun)}.`);
      }
      return { distill: { student, teacherAdapterRun: t.teacherAdapterRun, alpha: t.alpha, temperature: t.temperature, steps: t.steps, lr: t.lr } };
    }
    default:
      throw new InvalidArgumentError(`Unknown compression technique ${JSON.stringify((t as { kind?: unknown }).kind)}.`);
  }
}

/** Bytes of a folder's weight files. */
export function weightFileBytes(folder: ModelFolder): number {
  return folder.shards.reduce((a, s) => a + s.index.size, 0);
}

export interface CompressDeps {
  store: () => BlobStore;
  models: ModelService;
}

function checkAbort(signal: AbortSignal): void {
  if (signal.aborted) throw new CancelledError('The compression was cancelled.', { hint: 'Nothing was kept; run it again when ready.' });
}

/** The dataset's rows, tokenized with the loaded model's tokenizer, each cut to `maxTokens` tokens. */
async function datasetRows(dataset: CompressDataset, tokenizer: Tokenizer, maxTokens: number, signal: AbortSignal): Promise<TokenRow[]> {
  const source = blobSource(dataset.file, dataset.fileName);
  try {
    const imp = dataset.import;
    const prepared = await prepareDataset(source, {
      tokenizer,
      format: imp.format as ExampleFormat | undefined,
      mapping: imp.mapping as ColumnMapping | undefined,
      maxLength: maxTokens,
      trainOnPrompt: imp.trainOnPrompt,
      skipBadRows: imp.skipBadRows,
      valFraction: 0,
      seed: 0,
      read: imp.fileFormat ? { format: imp.fileFormat as DatasetFileFormat } : undefined,
      signal,
    });
    const rows = prepared.train.map((e) => ({ inputIds: Array.from(e.inputIds), labels: Array.from(e.labels) }));
    if (rows.length === 0) throw new InvalidArgumentError(`The dataset ${dataset.fileName} has no rows to measure the loss on.`);
    return rows;
  } finally {
    await source.close?.();
  }
}

/**
 * The request's rows split with seed 0 (compress/pipeline.ts splitHeldOut): HELD_OUT_FRACTION held
 * out for the loss (at most `rows` of them), the rest for calibration and fine-tuning. A dataset of
 * one row is measured on that row and has none to train on.
 */
export function splitRows(rows: readonly TokenRow[], maxHeld: number): { held: TokenRow[]; train: TokenRow[] } {
  if (rows.length === 1) return { held: [rows[0]], train: [] };
  return splitHeldOut(rows, HELD_OUT_FRACTION, 0, maxHeld);
}

async function writeFiles(store: BlobStore, id: string, files: readonly ExportedFile[], signal: AbortSignal, onProgress?: (p: CompressProgress) => void): Promise<void> {
  const total = folderBytes(files);
  let done = 0;
  for (const f of files) {
    const key = compressedKeys.file(id, f.name);
    let size = 0;
    for await (const chunk of f.chunks()) {
      checkAbort(signal);
      await store.append(key, chunk);
      size += chunk.byteLength;
      done += chunk.byteLength;
      onProgress?.({ stage: 'writing', bytesDone: done, bytesTotal: total });
    }
    await store.finalize(key, { size });
  }
}

/** Opens the compressed folder `id` from the store. */
export async function openCompressedFolder(store: BlobStore, id: string): Promise<ModelFolder> {
  return openModelFolder(await compressedFiles(store, id));
}

/** The adapter files of a finished training run (what its method saved; the model card aside). */
async function runAdapterFiles(store: BlobStore, runId: string): Promise<FileSet> {
  const prefix = `runs/${runId}/adapter/`;
  const names = (await store.list(prefix))
    .filter((b) => b.complete)
    .map((b) => b.key.slice(prefix.length))
    .filter((n) => n !== 'README.md' && !n.includes('/'));
  if (!names.includes('adapter_config.json')) {
    throw new MissingFileError(`Training run ${runId} has no adapter in the store.`, { hint: 'Choose a completed run of an adapter method (a full fine-tune is a whole model), or no adapter.' });
  }
  return storeFileSet(store, prefix, names, `training run ${runId}`);
}

/** The loss, when there are rows, and the generation speed of `model`. */
async function measure(model: LlamaModel, rows: readonly TokenRow[] | null, prompt: readonly number[], request: CompressRequest, signal: AbortSignal): Promise<{ loss: number | null; tokensPerSecond: number }> {
  const loss = rows ? (await evaluateLoss(model, rows)).loss : null;
  checkAbort(signal);
  const speed = await generationSpeed(model, prompt, { tokens: request.evaluation?.genTokens ?? SPEED_TOKENS, repeats: request.evaluation?.genRepeats ?? SPEED_REPEATS, signal });
  checkAbort(signal);
  return { loss, tokensPerSecond: speed.tokensPerSecond };
}

const needsData = (what: string) =>
  new InvalidArgumentError(`${what} needs rows of text: choose the Data screen's dataset or the sample dataset.`, { hint: 'Import a dataset on the Data screen, or pick the sample dataset in the Data field.' });

/** Applies the technique to the loaded model's folder, stores the result and measures both. */
export async function compressLoaded(deps: CompressDeps, request: CompressRequest, signal: AbortSignal, onProgress?: (p: CompressProgress) => void): Promise<CompressResult> {
  const loaded = deps.models.active();
  const folder = deps.models.activeFolder();
  if (!loaded || !folder) throw new InvalidArgumentError('No model is loaded.', { hint: 'Load a model on the Model screen, then compress it.' });
  const options = techniqueOptions(request.technique, folder.config);
  const recovery = request.recovery ?? null;
  if (recovery) {
    if (!('prune' in options)) throw new InvalidArgumentError('The LoRA recovery fine-tune follows pruning (layers, heads, neurons or sparsity); this technique has none.');
    checkRecovery(recovery);
  }
  const maxTokens = request.evaluation?.maxTokens ?? EVAL_MAX_TOKENS;
  const maxHeld = request.evaluation?.rows ?? EVAL_ROWS;
  if (!Number.isInteger(maxHeld) || maxHeld < 1) throw new InvalidArgumentError(`Evaluation rows must be a whole number of at least 1; got ${maxHeld}.`);
  if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new InvalidArgumentError(`Evaluation tokens per row must be a whole number of at least 2; got ${maxTokens}.`);
  const seqLen = Math.min(maxTokens, loaded.model.config.maxPositionEmbeddings);
  if (!request.dataset) {
    if (request.technique.kind === 'wanda') throw needsData('Wanda pruning');
    if (request.technique.kind === 'distill') throw needsData('Distillation');
    if (recovery) throw needsData('The LoRA recovery fine-tune');
  }

  onProgress?.({ stage: 'preparing', bytesDone: 0, bytesTotal: 0 });
  const all = request.dataset ? await datasetRows(request.dataset, loaded.tokenizer, seqLen, signal) : null;
  const { held, train } = all ? splitRows(all, maxHeld) : { held: null, train: [] as TokenRow[] };
  if (all && train.length === 0 && (request.technique.kind === 'wanda' || request.technique.kind === 'distill' || recovery)) {
    throw new InvalidArgumentError(`The dataset ${request.dataset!.fileName} has one row: it is held out for the loss, and none is left to calibrate or train on.`, {
      hint: 'Use a dataset with more rows.',
    });
  }
  const fromText = loaded.tokenizer.encode(SPEED_PROMPT);
  const prompt = held ? held[0].inputIds.slice(0, Math.min(8, held[0].inputIds.length)) : fromText.length > 0 ? fromText : [0];
  checkAbort(signal);
  onProgress?.({ stage: 'evaluating-before', bytesDone: 0, bytesTotal: 0 });
  const before = await measure(loaded.model, held, prompt, request, signal);

  const store = deps.store();
  const gpu = loaded.model.gpu;
  const id = newCompressedId();
  // Intermediate folders (the pruned model before recovery, the student before distillation).
  const stagingId = `${id}-staging`;
  const step = (stage: CompressStage) => (p: StepProgress) => onProgress?.({ stage, bytesDone: 0, bytesTotal: 0, step: p });
  const write = (target: string) => async (files: ExportedFile[]) => writeFiles(store, target, files, signal, onProgress);
  let recovered: CompressResult['recovery'] = null;
  let distilled: DistillMeasures | null = null;
  let calibrationRows: number | null = null;
  try {
    if ('prune' in options) {
      let calibration;
      if (options.prune.criterion === 'wanda') {
        const rows = train.slice(0, options.calibrationRows);
        calibrationRows = rows.length;
        onProgress?.({ stage: 'calibrating', bytesDone: 0, bytesTotal: 0, step: { done: 0, total: rows.length, unit: 'rows' } });
        calibration = { model: loaded.model, rows, signal, onProgress: step('calibrating') };
      }
      const pruned = await calibrateAndPrune(folder, options.prune, calibration);
      checkAbort(signal);
      if (recovery) {
        await write(stagingId)(pruned.files);
        const prunedFolder = await openCompressedFolder(store, stagingId);
        onProgress?.({ stage: 'recovering', bytesDone: 0, bytesTotal: 0, step: { done: 0, total: recovery.steps, unit: 'steps' } });
        const r = await recoverPrunedFolder(gpu, prunedFolder, train, { steps: recovery.steps, rank: recovery.rank, alpha: 2 * recovery.rank, lr: recovery.lr, seqLen, seed: 0 }, write(id), {
          signal,
          onProgress: step('recovering'),
        });
        recovered = { steps: recovery.steps, firstLoss: r.firstLoss, lastLoss: r.lastLoss };
      } else await write(id)(pruned.files);
    } else if ('share' in options) {
      await write(id)((await shareModel(folder, options.share)).files);
    } else {
      distilled = await distill(deps, options.distill, { folder, model: loaded.model, tokenizer: loaded.tokenizer }, { train, held: held as TokenRow[], seqLen, stagingId, id }, signal, onProgress);
    }
    checkAbort(signal);
    onProgress?.({ stage: 'evaluating-after', bytesDone: 0, bytesTotal: 0 });
    const written = await openCompressedFolder(store, id);
    const model = await loadModel(gpu, written, { dtype: loaded.model.weightDtype });
    let after;
    try {
      after = await measure(model, held, prompt, request, signal);
    } finally {
      model.release();
    }
    return {
      id,
      modelId: compressedModelId(id),
      label: techniqueLabel(request.technique),
      before: { weightBytes: weightFileBytes(folder), parameters: parameterCount(folder.config), ...before },
      after: { weightBytes: weightFileBytes(written), parameters: parameterCount(written.config), ...after },
      evalRows: held?.length ?? 0,
      evalTokens: held ? held.reduce((n, r) => n + (r.labels ?? r.inputIds).slice(1).filter((l) => l >= 0).length, 0) : 0,
      calibrationRows,
      recovery: recovered,
      distill: distilled,
      files: (await store.list(compressedKeys.folder(id))).filter((b) => b.complete).map((b) => ({ name: b.key.slice(compressedKeys.folder(id).length), bytes: b.size })),
    };
  } catch (e) {
    await store.delete(compressedKeys.folder(id));
    throw e;
  } finally {
    await store.delete(compressedKeys.folder(stagingId));
  }
}

/**
 * A finished Hub download in the store, opened as a distillation student: it must be complete, share
 * the teacher's vocabulary and split text into the same tokens (the rows are the teacher's token
 * ids; the held-out rows' text and a fixed sentence are encoded by both), and fit f32 weights.
 */
async function cachedStudent(
  store: BlobStore,
  ref: HubRef,
  teacher: { model: LlamaModel; tokenizer: Tokenizer },
  held: readonly TokenRow[],
  signal: AbortSignal,
): Promise<ModelFolder> {
  const name = formatHubRef(ref).replace(/^hub:/, '');
  const files = await openCachedModel(store, ref);
  if (!files) {
    throw new MissingFileError(`The student ${name} is not completely downloaded.`, { hint: 'Download it on the Model screen (the download resumes), or make the student from the loaded model.' });
  }
  const folder = await openModelFolder(files, { signal });
  const t = teacher.model.config;
  if (folder.config.vocabSize !== t.vocabSize) {
    throw new InvalidArgumentError(`The student ${name} has a vocabulary of ${folder.config.vocabSize} tokens and the teacher ${t.vocabSize}; distillation compares their distributions token by token.`, {
      hint: 'Choose a student of the same family (the same tokenizer), or make the student from the loaded model.',
    });
  }
  const params = parameterCount(folder.config);
  if (params * 4 > F32_WEIGHT_LIMIT) {
    throw new InvalidArgumentError(
      `The student ${name} has ${params.toLocaleString('en-US')} parameters; the studio trains a student with f32 weights of at most ${F32_WEIGHT_LIMIT / 2 ** 30} GiB (${(F32_WEIGHT_LIMIT / 4).toLocaleString('en-US')} parameters).`,
      { hint: 'Choose a smaller student, or use `whetstone distill --student DIR`.' },
    );
  }
  const tokenizer = await loadFolderTokenizer(folder);
  const texts = [SPEED_PROMPT, ...held.slice(0, 4).map((r) => teacher.tokenizer.decode(r.inputIds))];
  for (const text of texts) {
    const a = teacher.tokenizer.encode(text);
    const b = tokenizer.encode(text);
    if (a.length !== b.length || a.some((id, i) => id !== b[i])) {
      throw new InvalidArgumentError(`The student ${name} splits text into other tokens than the teacher: ${JSON.stringify(text.slice(0, 60))} is ${b.length} tokens for it and ${a.length} for the teacher.`, {
        hint: 'Choose a student with the same tokenizer (the same family), or make the student from the loaded model.',
      });
    }
  }
  return folder;
}

/**
 * Distils the loaded model (through the adapter of a finished run when one is chosen) into a student
 * made from its folder by pruneModel (written to the staging id) or a downloaded model from the store,
 * trained and written to `id`, measuring the student and the teacher on the held-out rows before and
 * after.
 */
async function distill(
  deps: CompressDeps,
  o: DistillSettings,
  loaded: { folder: ModelFolder; model: LlamaModel; tokenizer: Tokenizer },
  at: { train: TokenRow[]; held: TokenRow[]; seqLen: number; stagingId: string; id: string },
  signal: AbortSignal,
  onProgress?: (p: CompressProgress) => void,
): Promise<DistillMeasures> {
  const store = deps.store();
  if (loaded.model.params[loaded.model.headName].dtype !== 'f32') {
    throw new InvalidArgumentError('Distillation needs the teacher (the loaded model) with f32 weights; this model was loaded with 16-bit weights to fit.', {
      hint: 'Distil a smaller model, or use `whetstone distill` on a machine with more memory.',
    });
  }
  let adapter: PeftAdapter | null = null;
  try {
    if (o.teacherAdapterRun) {
      adapter = await loadAdapter(loaded.model, await runAdapterFiles(store, o.teacherAdapterRun));
      if ((adapter.virtualTokens ?? 0) > 0) {
        throw new InvalidArgumentError('A prompt-tuning adapter puts virtual tokens in front of every sequence, so the teacher and the student would not see the same positions.', {
          hint: 'Choose an adapter of another method, or no adapter.',
        });
      }
    }
    const teacher = adapter ? withForwardOptions(loaded.model, adapter.inferenceOptions()) : loaded.model;
    let studentFolder: ModelFolder;
    if (o.student.from === 'cached') {
      studentFolder = await cachedStudent(store, o.student.ref, loaded, at.held, signal);
    } else {
      const student = await pruneModel(loaded.folder, o.student.prune);
      await writeFiles(store, at.stagingId, student.files, signal, onProgress);
      studentFolder = await openCompressedFolder(store, at.stagingId);
    }
    onProgress?.({ stage: 'distilling', bytesDone: 0, bytesTotal: 0, step: { done: 0, total: o.steps, unit: 'steps' } });
    const r = await distillToFolder({
      teacher,
      studentFolder,
      train: at.train,
      held: at.held,
      options: { steps: o.steps, lr: o.lr, temperature: o.temperature, alpha: o.alpha, seqLen: at.seqLen, seed: 0 },
      write: (files) => writeFiles(store, at.id, files, signal, onProgress),
      signal,
      onStage: (s) => {
        if (s !== 'training') onProgress?.({ stage: s === 'measuring-before' ? 'distill-before' : 'distill-after', bytesDone: 0, bytesTotal: 0 });
      },
      onProgress: (p) => onProgress?.({ stage: 'distilling', bytesDone: 0, bytesTotal: 0, step: p }),
    });
    const b = r.before!;
    const a = r.after!;
    return {
      student: o.student.from === 'cached' ? formatHubRef(o.student.ref) : 'pruned',
      rows: a.tokens > 0 ? at.held.length : 0,
      studentBefore: b.studentLoss,
      studentAfter: a.studentLoss,
      teacher: a.teacherLoss,
      klBefore: b.kl,
      klAfter: a.kl,
      firstLoss: r.losses[0],
      lastLoss: r.losses[r.losses.length - 1],
    };
  } finally {
    adapter?.release();
  }
}

/** A model folder's files as zip entries, every file deflated (the zeros of sparse weights and the sign/exponent bytes of floats compress). */
async function folderZipEntries(files: FileSet): Promise<{ name: string; bytes: number; compress: boolean; chunks(): AsyncGenerator<Uint8Array> }[]> {
  const SLICE = 8 * 1024 * 1024;
  const out = [];
  for (const name of files.list()) {
    const probe = await files.open(name);
    const bytes = probe.size;
    await probe.close?.();
    out.push({
      name,
      bytes,
      compress: true,
      async *chunks() {
        const src = await files.open(name);
        try {
          for (let at = 0; at < src.size; at += SLICE) yield await src.read(at, Math.min(SLICE, src.size - at));
        } finally {
          await src.close?.();
        }
      },
    });
  }
  return out;
}

/** A model folder as the studio's compressed download: a zip with every file deflated (level 6). */
export async function zipModelFolder(files: FileSet, signal: AbortSignal, onProgress?: (p: ExportProgress) => void): Promise<Blob> {
  return zipEntries(await folderZipEntries(files), signal, onProgress);
}

/** The compressed folder `id` as a zip download (every file deflated). */
export async function downloadCompressed(store: BlobStore, id: string, signal: AbortSignal, onProgress?: (p: ExportProgress) => void): Promise<ExportedDownload> {
  const files = await compressedFiles(store, id);
  const blob = await zipModelFolder(files, signal, onProgress);
  return { blob, fileName: `whetstone-compressed-${id}.zip`, bytes: blob.size, files: files.list() };
}

/** Removes the compressed folder `id` from the store. */
export async function deleteCompressed(store: BlobStore, id: string): Promise<void> {
  await store.delete(compressedKeys.folder(id));
}

/** The model id of a compressed folder loaded as the model (ModelSummary.id). */
export function compressedModelId(id: string): string {
  return `compressed:${id}`;
}

/** Removes every compressed folder (staging ones included) but those in `keep`. */
export async function pruneCompressed(store: BlobStore, keep: readonly string[]): Promise<string[]> {
  const ids = new Set((await store.list(PREFIX)).map((b) => b.key.slice(PREFIX.length).split('/')[0]));
  const removed: string[] = [];
  for (const id of ids) {
    if (keep.includes(id)) continue;
    await store.delete(compressedKeys.folder(id));
    removed.push(id);
  }
  return removed;
}

/** The compressed folder `id` as a model folder's files (to load it as the model). */
export async function compressedFiles(store: BlobStore, id: string): Promise<FileSet> {
  const prefix = compressedKeys.folder(id);
  const names = (await store.list(prefix)).filter((b) => b.complete).map((b) => b.key.slice(prefix.length));
  if (!names.includes('config.json')) throw new MissingFileError(`There is no compressed model ${id} in the store.`, { hint: 'Run the compression again.' });
  return storeFileSet(store, prefix, names, `compressed ${id}`);
}
