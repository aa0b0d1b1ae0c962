// The worker's model side: the model that is loaded (its GPU weights and tokenizer), the demo model
// served with the studio, Hub downloads into the store with a record of what a finished download
// holds, models from dropped files, and the list of cached models with their sizes. EngineApi calls
// into this; it returns plain objects. It renders nothing and knows nothing of comlink.

import { InvalidArgumentError, MissingFileError } from '../engine/errors.ts';
import type { Gpu } from '../engine/gpu/device.ts';
import { type DownloadProgress, type HubRef, downloadModel, downloadRecordKey, formatHubRef, hubStorePrefix, openCachedModel, parseHubRef, readDownloadRecord } from '../engine/io/hub.ts';
import { type FileSet, type ModelFolder, blobFileSet, openModelFolder, urlFileSet } from '../engine/io/model-folder.ts';
import { readText } from '../engine/io/source.ts';
import { type ModelConfig, parameterCount, parseModelConfig } from '../engine/model/config.ts';
import { type LlamaModel, type WeightStorage, loadModel } from '../engine/model/llama.ts';
import type { Tokenizer } from '../engine/model/tokenizer.ts';
import { loadFolderTokenizer } from '../engine/model/tokenizer-folder.ts';
import type { BlobStore, StoreUsage } from '../engine/store/store.ts';
import type { StorageReport } from '../engine/store/store-idb.ts';

/** The files of the demo model under its URL (public/models/demo/). */
export const DEMO_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
/** Projection weights are stored in bf16 when the f32 weights would take more than this. */
export const F32_WEIGHT_LIMIT = 1024 * 1024 * 1024;

export type ModelSource = 'demo' | 'hub' | 'files' | 'compressed';

/** What the studio shows about the loaded model. */
export interface ModelSummary {
  /** `demo`, `hub:ORG/NAME@REV`, or `files:<names>`. */
  id: string;
  name: string;
  source: ModelSource;
  architecture: string;
  modelType: string | null;
  parameters: number;
  layers: number;
  hiddenSize: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  /** Bytes of the weight files read. */
  checkpointBytes: number;
  /** GPU bytes the weights take as loaded. */
  gpuBytes: number;
  /** How the projection weights are stored. */
  weightDtype: WeightStorage;
  chatTemplate: boolean;
  eosToken: string | null;
  loadMs: number;
}

export interface LoadProgress {
  tensor: string;
  done: number;
  total: number;
  bytesDone: number;
  bytesTotal: number;
}

/** A Hub model in the store. */
export interface CachedModel {
  /** `hub:ORG/NAME@REV`. */
  id: string;
  repo: string;
  revision: string;
  /** Bytes of its files in the store, partial ones included. */
  bytes: number;
  files: number;
  /** A finished download: every file it needs is complete. */
  complete: boolean;
  /** Bytes of partly downloaded files (a download that was cancelled or broke off). */
  partialBytes: number;
  /** From its config.json, when that is in the store and readable. */
  parameters: number | null;
  architecture: string | null;
}

export interface CachedModels {
  models: CachedModel[];
  usage: StoreUsage;
  /** The browser's storage for the site, or null where the Storage API is missing. */
  storage: StorageReport | null;
}

export interface DownloadRequest {
  /** `ORG/NAME`, `ORG/NAME@REVISION`, `hub:ORG/NAME[@REVISION]` or a huggingface.co model URL. */
  id: string;
  /** Access token for gated or private models; used for this download only and never stored. */
  token?: string;
  /** The Hub or a mirror; https://huggingface.co by default. */
  endpoint?: string;
}

export interface DownloadStatus extends DownloadProgress {
  /** Seconds until done at the recent rate, or null while unknown. */
  secondsLeft: number | null;
}

export interface LoadOptions {
  /** Storage of projection weights; f32 unless the f32 weights would exceed 1 GiB. */
  dtype?: WeightStorage;
}


interface Loaded {
  model: LlamaModel;
  tokenizer: Tokenizer;
  summary: ModelSummary;
  /** The folder the model was read from (a merged export copies its files). */
  folder: ModelFolder;
}

export interface ModelServiceDeps {
  gpu: () => Promise<Gpu>;
  store: () => BlobStore;
  /** Absolute URL of the demo model folder (ending in '/'), or null where there is none. */
  demoUrl: string | null;
  storageReport: () => Promise<StorageReport | null>;
}

/** Reads what a person types into a Hub model field as a HubRef. */
export function parseModelId(text: string): HubRef {
  let s = text.trim();
  const url = /^https?:\/\/(?:www\.)?huggingface\.co\/(.+)$/i.exec(s);
  if (url) {
    const parts = url[1].replace(/[?#].*$/, '').split('/').filter(Boolean);
    const rev = parts[2] === 'tree' || parts[2] === 'blob' || parts[2] === 'resolve' ? parts[3] : undefined;
    s = `${parts.slice(0, 2).join('/')}${rev ? `@${rev}` : ''}`;
  }
  return parseHubRef(s.startsWith('hub:') ? s : `hub:${s}`);
}

export class ModelService {
  private loaded: Loaded | null = null;
  private demoTokenizer: Promise<Tokenizer> | null = null;
  private readonly downloading = new Set<string>();

  constructor(private readonly deps: ModelServiceDeps) {}

  current(): ModelSummary | null {
    return this.loaded?.summary ?? null;
  }

  /** The loaded model's GPU weights, tokenizer and summary, or null (for generation and training). */
  active(): { model: LlamaModel; tokenizer: Tokenizer; summary: ModelSummary } | null {
    return this.loaded;
  }

  /** The folder the loaded model was read from, or null. */
  activeFolder(): ModelFolder | null {
    return this.loaded?.folder ?? null;
  }

  /**
   * Frees the loaded model's GPU weights (a QLoRA run trains over its own quantized copy and needs
   * the room) and returns the function that reads them again from the same files, in the same
   * precision. Until then the model must not be used: the worker's job slot keeps generation and
   * exports out. When the reload fails, no model is loaded and the error says so.
   */
  releaseWeights(): (signal?: AbortSignal) => Promise<void> {
    const loaded = this.loaded;
    if (!loaded) throw new InvalidArgumentError('No model is loaded.', { hint: 'Load a model on the Model screen first.' });
    const gpu = loaded.model.gpu;
    const dtype = loaded.model.weightDtype;
    loaded.model.release();
    return async (signal) => {
      try {
        const model = await loadModel(gpu, loaded.folder, { dtype, signal });
        if (this.loaded === loaded) this.loaded = { ...loaded, model };
        else model.release();
      } catch (e) {
        if (this.loaded === loaded) this.loaded = null;
        throw new InvalidArgumentError(`${loaded.summary.name} could not be loaded again after the run: ${(e as Error).message}`, {
          hint: 'Load the model again on the Model screen.',
          cause: e,
        });
      }
    };
  }

  /** The tokenizer datasets are rendered with: the loaded model's, else the demo model's. */
  async datasetTokenizer(): Promise<{ tokenizer: Tokenizer; name: string }> {
    if (this.loaded) return { tokenizer: this.loaded.tokenizer, name: this.loaded.summary.name };
    if (!this.deps.demoUrl) throw new InvalidArgumentError('No model is loaded.', { hint: 'Load a model on the Model screen first.' });
    if (!this.demoTokenizer) {
      this.demoTokenizer = openModelFolder(this.demoFiles()).then(loadFolderTokenizer);
      this.demoTokenizer.catch(() => (this.demoTokenizer = null));
    }
    return { tokenizer: await this.demoTokenizer, name: 'Demo model (built in)' };
  }

  async loadDemo(signal: AbortSignal, onProgress?: (p: LoadProgress) => void, options: LoadOptions = {}): Promise<ModelSummary> {
    if (!this.deps.demoUrl) throw new MissingFileError('This build has no demo model.');
    return this.load(this.demoFiles(), { id: 'demo', name: 'Demo model (built in)', source: 'demo' }, signal, onProgress, options);
  }

  async loadFiles(files: readonly File[], signal: AbortSignal, onProgress?: (p: LoadProgress) => void, options: LoadOptions = {}): Promise<ModelSummary> {
    if (files.length === 0) throw new InvalidArgumentError('No files were given.', { hint: 'Drop the files of a model folder: config.json, *.safetensors and the tokenizer files.' });
    const folderName = commonFolder(files);
    const name = folderName ?? `Model from ${files.length} file${files.length === 1 ? '' : 's'}`;
    return this.load(blobFileSet(files, folderName ?? 'the chosen model folder'), { id: `files:${name}`, name, source: 'files' }, signal, onProgress, options);
  }

  async loadCached(id: string, signal: AbortSignal, onProgress?: (p: LoadProgress) => void, options: LoadOptions = {}): Promise<ModelSummary> {
    const ref = parseModelId(id);
    const files = await openCachedModel(this.deps.store(), ref);
    if (!files) {
      throw new MissingFileError(`${formatHubRef(ref)} is not completely downloaded.`, { hint: 'Download it again; the download resumes from the bytes already saved.' });
    }
    return this.load(files, { id: formatHubRef(ref), name: ref.repo + (ref.revision === 'main' ? '' : `@${ref.revision}`), source: 'hub' }, signal, onProgress, options);
  }

  /** Loads a model folder held in the store (a compressed model, `compressed:<id>`) under `name`. */
  async loadStored(files: FileSet, who: { id: string; name: string; source: ModelSource }, signal: AbortSignal, onProgress?: (p: LoadProgress) => void, options: LoadOptions = {}): Promise<ModelSummary> {
    return this.load(files, who, signal, onProgress, options);
  }

  async download(request: DownloadRequest, signal: AbortSignal, onProgress?: (p: DownloadStatus) => void): Promise<CachedModel> {
    const ref = parseModelId(request.id);
    const id = formatHubRef(ref);
    if (this.downloading.has(id)) throw new InvalidArgumentError(`${id} is already being downloaded.`);
    this.downloading.add(id);
    try {
      const store = this.deps.store();
      await downloadModel(ref, {
        store,
        endpoint: request.endpoint?.trim() || undefined,
        token: request.token,
        signal,
        onProgress: (p) => onProgress?.({ ...p, secondsLeft: p.bytesPerSecond > 0 ? Math.max(0, (p.total - p.bytes) / p.bytesPerSecond) : null }),
      });
      const listed = (await this.listCached()).models.find((m) => m.id === id);
      if (!listed) throw new MissingFileError(`${id} is not in the store after its download.`);
      return listed;
    } finally {
      this.downloading.delete(id);
    }
  }

  async deleteCached(id: string): Promise<CachedModels> {
    const ref = parseModelId(id);
    if (this.downloading.has(formatHubRef(ref))) throw new InvalidArgumentError(`${formatHubRef(ref)} is being downloaded; cancel the download first.`);
    const store = this.deps.store();
    await store.delete(downloadRecordKey(ref));
    await store.delete(hubStorePrefix(ref));
    return this.listCached();
  }

  async listCached(): Promise<CachedModels> {
    const store = this.deps.store();
    const byPrefix = new Map<string, { ref: HubRef; bytes: number; files: number; partialBytes: number }>();
    for (const b of await store.list('models/')) {
      const ref = refOfKey(b.key);
      if (!ref) continue;
      const prefix = hubStorePrefix(ref);
      const m = byPrefix.get(prefix) ?? { ref, bytes: 0, files: 0, partialBytes: 0 };
      m.bytes += b.size;
      m.files++;
      if (!b.complete) m.partialBytes += b.size;
      byPrefix.set(prefix, m);
    }
    const models: CachedModel[] = [];
    for (const [prefix, m] of byPrefix) {
      const record = await readDownloadRecord(store, m.ref);
      const names = new Set((await store.list(prefix)).filter((b) => b.complete).map((b) => b.key.slice(prefix.length)));
      const complete = record !== null && record.files.every((f) => names.has(f.name));
      let parameters: number | null = null;
      let architecture: string | null = null;
      if (names.has('config.json')) {
        try {
          const config = await readConfig(store, `${prefix}config.json`);
          parameters = parameterCount(config);
          architecture = config.architecture;
        } catch {
          // A config the engine cannot read shows without a parameter count; loading explains why.
        }
      }
      models.push({ id: formatHubRef(m.ref), repo: m.ref.repo, revision: m.ref.revision, bytes: m.bytes, files: m.files, complete, partialBytes: m.partialBytes, parameters, architecture });
    }
    models.sort((a, b) => (a.id < b.id ? -1 : 1));
    return { models, usage: await store.usage(), storage: await this.deps.storageReport() };
  }

  private demoFiles(): FileSet {
    return urlFileSet(this.deps.demoUrl as string, DEMO_FILES);
  }



  /** Opens the folder, reads its tokenizer, then replaces the loaded model with its weights. */
  private async load(
    files: FileSet,
    who: { id: string; name: string; source: ModelSource },
    signal: AbortSignal,
    onProgress: ((p: LoadProgress) => void) | undefined,
    options: LoadOptions,
  ): Promise<ModelSummary> {
    const start = performance.now();
    const folder: ModelFolder = await openModelFolder(files, { signal });
    const tokenizer = await loadFolderTokenizer(folder);
    const gpu = await this.deps.gpu();
    const dtype = options.dtype ?? (parameterCount(folder.config) * 4 > F32_WEIGHT_LIMIT ? 'bf16' : 'f32');
    this.loaded?.model.release();
    this.loaded = null;
    const model = await loadModel(gpu, folder, {
      dtype,
      signal,
      onProgress: (p) => onProgress?.({ tensor: p.tensor, done: p.done, total: p.total, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
    });
    const c = folder.config;
    const summary: ModelSummary = {
      ...who,
      architecture: c.architecture,
      modelType: c.modelType,
      parameters: parameterCount(c),
      layers: c.numHiddenLayers,
      hiddenSize: c.hiddenSize,
      vocabSize: c.vocabSize,
      maxPositionEmbeddings: c.maxPositionEmbeddings,
      checkpointBytes: folder.weightBytes,
      gpuBytes: model.parameterBytes,
      weightDtype: dtype,
      chatTemplate: tokenizer.chatTemplate !== null,
      eosToken: tokenizer.eosToken,
      loadMs: Math.round(performance.now() - start),
    };
    this.loaded = { model, tokenizer, summary, folder };
    return summary;
  }
}

/** The model a `models/…` key belongs to: the segments through the first one holding '@'. */
function refOfKey(key: string): HubRef | null {
  const segments = key.split('/').slice(1);
  const at = segments.findIndex((s) => s.includes('@'));
  if (at < 0 || at > 1 || at === segments.length - 1) return null;
  const last = segments[at];
  const repo = [...segments.slice(0, at), last.slice(0, last.indexOf('@'))].join('/');
  try {
    return parseHubRef(`hub:${repo}@${decodeURIComponent(last.slice(last.indexOf('@') + 1))}`);
  } catch {
    return null;
  }
}

/** A FileSet over complete blobs of the store under `prefix`. */
export function storeFileSet(store: BlobStore, prefix: string, names: readonly string[], name: string): FileSet {
  const listed = new Set(names);
  return {
    name,
    list: () => [...listed].sort(),
    open(file) {
      if (!listed.has(file)) throw new MissingFileError(`${file} is not among the downloaded files of ${name}.`, { file });
      return store.read(prefix + file);
    },
  };
}

async function readConfig(store: BlobStore, key: string): Promise<ModelConfig> {
  const source = await store.read(key);
  return parseModelConfig(JSON.parse(await readText(source, 1 << 20)), key);
}

/** The folder the files were picked from (webkitRelativePath), when they share one. */
function commonFolder(files: readonly File[]): string | null {
  const tops = new Set(files.map((f) => (f.webkitRelativePath || '').split('/')[0]).filter(Boolean));
  return tops.size === 1 ? [...tops][0] : null;
}
