// The studio's compression: one technique (structured pruning of layers, heads or MLP neurons,
// unstructured or 2:4 sparsity, blocks shared across depth, k-means clustering) applied to the
// loaded model's folder with the engine's pruneModel / shareModel, the new folder's files written
// into the store under compressed/<id>/, and the model measured before and after: weight bytes,
// parameters, and the evaluation loss on the Data screen's dataset (when one is imported) of the
// loaded model and of the written folder loaded back on the GPU. The folder downloads as a zip.

import { type ExportedFile, folderBytes } from '../engine/compress/folder.ts';
import { type PruneOptions, pruneModel } from '../engine/compress/prune.ts';
import { type ShareOptions, groupedLayerSource, shareModel } from '../engine/compress/share.ts';
import { prepareDataset } from '../engine/data/dataset.ts';
import type { ColumnMapping, ExampleFormat } from '../engine/data/formats.ts';
import type { DatasetFileFormat } from '../engine/data/readers.ts';
import { CancelledError, InvalidArgumentError, MissingFileError } from '../engine/errors.ts';
import { type ModelFolder, openModelFolder } from '../engine/io/model-folder.ts';
import { blobSource } from '../engine/io/source.ts';
import { type ModelConfig, parameterCount } from '../engine/model/config.ts';
import { type LlamaModel, type TokenRow, evaluateLoss, loadModel } from '../engine/model/llama.ts';
import type { BlobStore } from '../engine/store/store.ts';
import { type ModelService, storeFileSet } from './models.ts';
import { type ExportProgress, type ExportedDownload, zipEntries } from './run-export.ts';
import type { RunDatasetImport } from './runs.ts';

/** One compression technique with its options. */
export type CompressTechnique =
  | { kind: 'drop-layers'; layers: number[] }
  | { kind: 'heads'; remove: number; mode: 'kv-groups' | 'query-heads' }
  | { kind: 'neurons'; remove: number }
  | { kind: 'sparsity'; sparsity: number; scope: 'layer' | 'global' }
  | { kind: 'nm-2-4' }
  | { kind: 'share-layers'; group: number }
  | { kind: 'cluster'; k: 16 | 256; targets: 'projections' | 'all-matrices' };

export type CompressKind = CompressTechnique['kind'];

/** The dataset the Data screen imported, and how it imported it. */
export interface CompressDataset {
  file: Blob;
  fileName: string;
  import: RunDatasetImport;
}

export interface CompressRequest {
  technique: CompressTechnique;
  /** Rows the loss is measured on; null: no loss is measured. */
  dataset: CompressDataset | null;
  /** The first `rows` rows of the dataset (default EVAL_ROWS), each cut to `maxTokens` tokens (default EVAL_MAX_TOKENS). */
  evaluation?: { rows?: number; maxTokens?: number };
}

/** One side of the before/after table. */
export interface CompressMeasure {
  /** Bytes of the weight files (model.safetensors, or all shards). */
  weightBytes: number;
  /** Parameters of the weights the config needs (a shared block counts once; a clustered weight counts its values). */
  parameters: number;
  /** Mean cross-entropy over the evaluation rows' counted tokens; null without a dataset. */
  loss: number | null;
}

export interface CompressResult {
  id: string;
  /** What was done, in words. */
  label: string;
  before: CompressMeasure;
  after: CompressMeasure;
  /** Evaluation rows and counted tokens (0 without a dataset). */
  evalRows: number;
  evalTokens: number;
  /** The files of the compressed folder in the store. */
  files: { name: string; bytes: number }[];
}

export interface CompressProgress {
  stage: 'preparing' | 'evaluating-before' | 'writing' | 'evaluating-after';
  /** Bytes written of the folder (during 'writing'). */
  bytesDone: number;
  bytesTotal: number;
}

/** Rows of the dataset the loss is measured on, at most. */
export const EVAL_ROWS = 32;
/** Tokens per evaluation row, at most. */
export const EVAL_MAX_TOKENS = 256;

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
    case 'share-layers':
      return `blocks shared by groups of ${t.group} layers`;
    case 'cluster':
      return `k-means clustering, k = ${t.k} (${t.targets === 'all-matrices' ? 'all matrices' : 'projections'})`;
  }
}

function positiveInt(n: number, what: string, max: number): void {
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${what} must be a whole number from 1 to ${max}; got ${n}.`);
}

/** The engine options of a technique on a model with config `c`, checked against the model's sizes. */
export function techniqueOptions(t: CompressTechnique, c: ModelConfig): { prune: PruneOptions } | { share: ShareOptions } {
  switch (t.kind) {
    case 'drop-layers': {
      const L = c.numHiddenLayers;
      if (t.layers.length === 0) throw new InvalidArgumentError('Choose at least one layer to drop.');
      const bad = t.layers.find((l) => !Number.isInteger(l) || l < 0 || l >= L);
      if (bad !== undefined) throw new InvalidArgumentError(`Layer ${bad} does not exist: the model has layers 0 to ${L - 1}.`);
      if (new Set(t.layers).size >= L) throw new InvalidArgumentError(`Dropping every layer leaves no model; keep at least one of the ${L}.`);
      return { prune: { dropLayers: [...new Set(t.layers)].sort((a, b) => a - b) } };
    }
    case 'heads': {
      if (t.mode === 'kv-groups') positiveInt(t.remove, 'KV head groups removed', c.numKeyValueHeads - 1);
      else positiveInt(t.remove, 'Query heads removed per KV group', c.numAttentionHeads / c.numKeyValueHeads - 1);
      return { prune: { heads: { mode: t.mode, remove: t.remove } } };
    }
    case 'neurons':
      positiveInt(t.remove, 'MLP neurons removed', c.intermediateSize - 1);
      return { prune: { neurons: { remove: t.remove } } };
    case 'sparsity':
      if (!(t.sparsity > 0 && t.sparsity < 1)) throw new InvalidArgumentError(`Sparsity must be above 0 and below 1 (a fraction of the weights); got ${t.sparsity}.`);
      return { prune: { unstructured: { sparsity: t.sparsity, scope: t.scope } } };
    case 'nm-2-4':
      return { prune: { nm: { n: 2, m: 4 } } };
    case 'share-layers':
      positiveInt(t.group, 'Layers per shared block', c.numHiddenLayers);
      if (t.group < 2) throw new InvalidArgumentError('A shared block needs at least 2 layers.');
      return { share: { layerSource: groupedLayerSource(c.numHiddenLayers, t.group), init: 'mean' } };
    case 'cluster':
      if (t.k !== 16 && t.k !== 256) throw new InvalidArgumentError(`The codebook size must be 16 or 256; got ${String(t.k)}.`);
      return { share: { cluster: { k: t.k, seed: 0, targets: t.targets } } };
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

/** The evaluation rows of the dataset, tokenized with the loaded model's tokenizer. */
async function evalRows(
  dataset: CompressDataset,
  loaded: NonNullable<ReturnType<ModelService['active']>>,
  evaluation: CompressRequest['evaluation'],
  signal: AbortSignal,
): Promise<TokenRow[]> {
  const count = evaluation?.rows ?? EVAL_ROWS;
  const maxTokens = evaluation?.maxTokens ?? EVAL_MAX_TOKENS;
  if (!Number.isInteger(count) || count < 1) throw new InvalidArgumentError(`Evaluation rows must be a whole number of at least 1; got ${count}.`);
  if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new InvalidArgumentError(`Evaluation tokens per row must be a whole number of at least 2; got ${maxTokens}.`);
  const source = blobSource(dataset.file, dataset.fileName);
  try {
    const imp = dataset.import;
    const prepared = await prepareDataset(source, {
      tokenizer: loaded.tokenizer,
      format: imp.format as ExampleFormat | undefined,
      mapping: imp.mapping as ColumnMapping | undefined,
      maxLength: Math.min(maxTokens, loaded.model.config.maxPositionEmbeddings),
      trainOnPrompt: imp.trainOnPrompt,
      skipBadRows: imp.skipBadRows,
      valFraction: 0,
      seed: 0,
      read: imp.fileFormat ? { format: imp.fileFormat as DatasetFileFormat } : undefined,
      signal,
    });
    const rows = prepared.train.slice(0, count).map((e) => ({ inputIds: Array.from(e.inputIds), labels: Array.from(e.labels) }));
    if (rows.length === 0) throw new InvalidArgumentError(`The dataset ${dataset.fileName} has no rows to measure the loss on.`);
    return rows;
  } finally {
    await source.close?.();
  }
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
  const prefix = compressedKeys.folder(id);
  const names = (await store.list(prefix)).filter((b) => b.complete).map((b) => b.key.slice(prefix.length));
  if (!names.includes('config.json')) throw new MissingFileError(`There is no compressed model ${id} in the store.`, { hint: 'Run the compression again.' });
  return openModelFolder(storeFileSet(store, prefix, names, `compressed ${id}`));
}

async function lossOf(model: LlamaModel, rows: readonly TokenRow[] | null): Promise<number | null> {
  return rows ? (await evaluateLoss(model, rows)).loss : null;
}

/** Applies the technique to the loaded model's folder, stores the result and measures both. */
export async function compressLoaded(deps: CompressDeps, request: CompressRequest, signal: AbortSignal, onProgress?: (p: CompressProgress) => void): Promise<CompressResult> {
  const loaded = deps.models.active();
  const folder = deps.models.activeFolder();
  if (!loaded || !folder) throw new InvalidArgumentError('No model is loaded.', { hint: 'Load a model on the Model screen, then compress it.' });
  const options = techniqueOptions(request.technique, folder.config);
  onProgress?.({ stage: 'preparing', bytesDone: 0, bytesTotal: 0 });
  const rows = request.dataset ? await evalRows(request.dataset, loaded, request.evaluation, signal) : null;
  checkAbort(signal);
  onProgress?.({ stage: 'evaluating-before', bytesDone: 0, bytesTotal: 0 });
  const lossBefore = await lossOf(loaded.model, rows);
  checkAbort(signal);
  const { files } = 'prune' in options ? await pruneModel(folder, options.prune) : await shareModel(folder, options.share);
  const store = deps.store();
  const id = newCompressedId();
  try {
    await writeFiles(store, id, files, signal, onProgress);
    onProgress?.({ stage: 'evaluating-after', bytesDone: 0, bytesTotal: 0 });
    const written = await openCompressedFolder(store, id);
    let lossAfter: number | null = null;
    if (rows) {
      const model = await loadModel(loaded.model.gpu, written, { dtype: loaded.model.weightDtype });
      try {
        lossAfter = await lossOf(model, rows);
      } finally {
        model.release();
      }
    }
    checkAbort(signal);
    return {
      id,
      label: techniqueLabel(request.technique),
      before: { weightBytes: weightFileBytes(folder), parameters: parameterCount(folder.config), loss: lossBefore },
      after: { weightBytes: weightFileBytes(written), parameters: parameterCount(written.config), loss: lossAfter },
      evalRows: rows?.length ?? 0,
      evalTokens: rows ? rows.reduce((n, r) => n + (r.labels ?? r.inputIds).slice(1).filter((l) => l >= 0).length, 0) : 0,
      files: files.map((f) => ({ name: f.name, bytes: f.bytes })),
    };
  } catch (e) {
    await store.delete(compressedKeys.folder(id));
    throw e;
  }
}

/** The compressed folder `id` as a zip download (tensors stored, text deflated). */
export async function downloadCompressed(store: BlobStore, id: string, signal: AbortSignal, onProgress?: (p: ExportProgress) => void): Promise<ExportedDownload> {
  const prefix = compressedKeys.folder(id);
  const blobs = (await store.list(prefix)).filter((b) => b.complete);
  if (blobs.length === 0) throw new MissingFileError(`There is no compressed model ${id} in the store.`, { hint: 'Run the compression again.' });
  const entries = blobs.map((b) => ({
    name: b.key.slice(prefix.length),
    bytes: b.size,
    compress: !b.key.endsWith('.safetensors'),
    async *chunks() {
      const src = await store.read(b.key);
      try {
        const SLICE = 8 * 1024 * 1024;
        for (let at = 0; at < src.size; at += SLICE) yield await src.read(at, Math.min(SLICE, src.size - at));
      } finally {
        await src.close?.();
      }
    },
  }));
  const blob = await zipEntries(entries, signal, onProgress);
  return { blob, fileName: `whetstone-compressed-${id}.zip`, bytes: blob.size, files: entries.map((e) => e.name) };
}

/** Removes the compressed folder `id` from the store. */
export async function deleteCompressed(store: BlobStore, id: string): Promise<void> {
  await store.delete(compressedKeys.folder(id));
}
