// EngineApi: the one interface the studio and the CLI use to reach the engine. In the browser it
// lives in a Web Worker behind comlink (engine.worker.ts); in Node the CLI constructs it directly.
// It is a thin facade: the work is in engine modules and in models.ts, datasets.ts and
// memory-estimate.ts beside it. Results are plain, cloneable objects; errors that the UI must
// explain come back as values (Result). Long calls take a progress callback (comlink-proxied from
// the studio) and an AbortToken (a transferred MessagePort, or an AbortSignal in-process).

import { type SerializedError, describeError } from '../engine/errors.ts';
import type { AllocatorStats } from '../engine/gpu/allocator.ts';
import type { AdapterSummary, Gpu } from '../engine/gpu/device.ts';
import type { PrepareProgress } from '../engine/data/dataset.ts';
import { parseModelConfig } from '../engine/model/config.ts';
import { type SelfTestReport, runSelfTest } from '../engine/selftest.ts';
import type { BlobStore } from '../engine/store/store.ts';
import type { StorageReport } from '../engine/store/store-idb.ts';
import { MemoryBlobStore } from '../engine/store/store-memory.ts';
import { type AbortToken, signalOf } from './abort.ts';
import { EngineJobs } from './busy.ts';
import { HUB_CATALOG } from './catalog.ts';
import { type DatasetImport, type DatasetImportOptions, importDataset } from './datasets.ts';
import { type DeviceMemoryLimits, type MemoryEstimate, type MemoryEstimateOptions, estimateMemory } from './memory-estimate.ts';
import {
  type CachedModel,
  type CachedModels,
  type DownloadRequest,
  type DownloadStatus,
  type LoadOptions,
  type LoadProgress,
  type ModelSummary,
  ModelService,
} from './models.ts';
import { type Result, attempt } from './result.ts';

export type { AbortToken } from './abort.ts';
export type { CachedModel, CachedModels, DownloadRequest, DownloadStatus, LoadOptions, LoadProgress, ModelSummary } from './models.ts';
export type { DatasetImport, DatasetImportOptions, PreviewExample, PreviewPiece } from './datasets.ts';
export type { MemoryEstimate } from './memory-estimate.ts';
export type { Result } from './result.ts';

export type GpuStatus = { ok: true; adapter: AdapterSummary } | { ok: false; error: SerializedError };

/** A curated Hub model with its memory estimate on this device. */
export interface CatalogItem {
  repo: string;
  title: string;
  gated: boolean;
  note: string;
  estimate: MemoryEstimate | null;
  error: SerializedError | null;
}

export interface EngineOptions {
  /** Where downloads are cached; a memory store (lost on exit) by default. */
  store?: () => BlobStore;
  /** Absolute URL of the demo model folder, ending in '/'; none by default. */
  demoModelUrl?: string | null;
  /** The browser's storage estimate for the site. */
  storageReport?: () => Promise<StorageReport | null>;
  /** Memory the device reports, in bytes, or null. */
  deviceMemoryBytes?: () => number | null;
}

export class EngineApi {
  private gpu: Promise<Gpu> | null = null;
  private readonly open: () => Promise<Gpu>;
  private readonly options: EngineOptions;
  private readonly models: ModelService;
  /** GPU jobs (training, generation, exports) run one at a time through this. */
  protected readonly jobs = new EngineJobs();

  constructor(open: () => Promise<Gpu>, options: EngineOptions = {}) {
    this.open = open;
    this.options = options;
    let fallback: BlobStore | null = null;
    const store = options.store ?? (() => (fallback ??= new MemoryBlobStore()));
    this.models = new ModelService({
      gpu: () => this.device(),
      store,
      demoUrl: options.demoModelUrl ?? null,
      storageReport: options.storageReport ?? (async () => null),
    });
  }

  /** Opens the GPU (once) and describes it, or says why there is none. */
  async connect(): Promise<GpuStatus> {
    try {
      const gpu = await this.device();
      return { ok: true, adapter: gpu.summary };
    } catch (e) {
      this.gpu = null;
      return { ok: false, error: describeError(e) };
    }
  }

  /** Runs the kernel self-test against the float64 reference. */
  async selfTest(seed?: number): Promise<SelfTestReport> {
    return runSelfTest(await this.device(), seed);
  }

  async memory(): Promise<AllocatorStats> {
    return (await this.device()).allocator.stats();
  }

  /** The GPU job that runs now ("training", "generation", …), or null. */
  async busyWith(): Promise<string | null> {
    return this.jobs.current;
  }

  /** The model that is loaded, or null. */
  async loadedModel(): Promise<ModelSummary | null> {
    return this.models.current();
  }

  /** Hub models in the store with their sizes, the store's usage and the site's storage estimate. */
  async listCachedModels(): Promise<Result<CachedModels>> {
    return attempt(() => this.models.listCached());
  }

  /** Removes a cached Hub model (`hub:ORG/NAME@REV`), finished or partial; returns the new list. */
  async deleteCachedModel(id: string): Promise<Result<CachedModels>> {
    return attempt(() => this.models.deleteCached(id));
  }

  /** Loads the demo model served with the studio. */
  async loadDemoModel(onProgress?: (p: LoadProgress) => void, abort?: AbortToken, options?: LoadOptions): Promise<Result<ModelSummary>> {
    return this.withSignal(abort, (signal) => this.models.loadDemo(signal, onProgress, options));
  }

  /** Loads a downloaded Hub model from the store. */
  async loadCachedModel(id: string, onProgress?: (p: LoadProgress) => void, abort?: AbortToken, options?: LoadOptions): Promise<Result<ModelSummary>> {
    return this.withSignal(abort, (signal) => this.models.loadCached(id, signal, onProgress, options));
  }

  /** Loads a model from the files of a model folder (dropped or picked); nothing is copied to the store. */
  async loadModelFiles(files: File[], onProgress?: (p: LoadProgress) => void, abort?: AbortToken, options?: LoadOptions): Promise<Result<ModelSummary>> {
    return this.withSignal(abort, (signal) => this.models.loadFiles(files, signal, onProgress, options));
  }

  /** Downloads a Hub model into the store (resuming partial files); cancelling keeps what was saved. */
  async downloadHubModel(request: DownloadRequest, onProgress?: (p: DownloadStatus) => void, abort?: AbortToken): Promise<Result<CachedModel>> {
    return this.withSignal(abort, (signal) => this.models.download(request, signal, onProgress));
  }

  /** A memory estimate for a config.json object against this device's limits. */
  async estimateMemory(config: unknown, options?: MemoryEstimateOptions): Promise<Result<MemoryEstimate>> {
    const limits = await this.limits();
    return attempt(async () => estimateMemory(parseModelConfig(config), limits, this.deviceMemory(), options));
  }

  /** The curated Hub models, each with its memory estimate on this device. */
  async hubCatalog(options?: MemoryEstimateOptions): Promise<CatalogItem[]> {
    const limits = await this.limits();
    return HUB_CATALOG.map(({ config, ...entry }) => {
      try {
        return { ...entry, estimate: estimateMemory(parseModelConfig(config, `${entry.repo}/config.json`), limits, this.deviceMemory(), options), error: null };
      } catch (e) {
        return { ...entry, estimate: null, error: describeError(e) };
      }
    });
  }

  /**
   * Imports a dataset file with the loaded model's tokenizer (the demo model's when none is loaded):
   * file type and example format (detected, or as given), column mapping, statistics, a token-level
   * preview; a failure comes back in `error`, with bad rows and their line numbers.
   */
  async importDataset(file: File, options: DatasetImportOptions = {}, onProgress?: (p: PrepareProgress) => void, abort?: AbortToken): Promise<DatasetImport> {
    const { signal, release } = signalOf(abort);
    try {
      return await importDataset(file, options, { tokenizer: () => this.models.datasetTokenizer(), signal, onProgress });
    } finally {
      release();
    }
  }

  private async withSignal<T>(abort: AbortToken | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<Result<T>> {
    const { signal, release } = signalOf(abort);
    try {
      return await attempt(() => fn(signal));
    } finally {
      release();
    }
  }

  private async limits(): Promise<DeviceMemoryLimits | null> {
    const status = await this.connect();
    if (!status.ok) return null;
    return { maxBufferSize: status.adapter.limits.maxBufferSize, maxStorageBufferBindingSize: status.adapter.limits.maxStorageBufferBindingSize };
  }

  private deviceMemory(): number | null {
    return this.options.deviceMemoryBytes?.() ?? null;
  }

  private device(): Promise<Gpu> {
    if (!this.gpu) this.gpu = this.open();
    return this.gpu;
  }
}
