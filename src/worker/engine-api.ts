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
import { type AdapterEntry, type ColumnDelta, type PlaygroundRequest, type PlaygroundResult, PlaygroundService } from './playground.ts';
import { type Result, attempt } from './result.ts';
import { type ExportFormat, type ExportProgress, type ExportedDownload, exportRun } from './run-export.ts';
import {
  type CompressProgress,
  type CompressRequest,
  type CompressResult,
  compressLoaded,
  compressedFiles,
  compressedModelId,
  deleteCompressed,
  downloadCompressed,
  pruneCompressed,
} from './compress.ts';
import { MemoryRunStore, type RunRecord, type RunStore } from './runs.ts';
import { type RunOverview, type RunUpdate, type StartTrainingRequest, type TrainingLock, type TrainingPlan, TrainingService, trainingLock } from './training.ts';
import type { TrainSettings } from './train-settings.ts';
import type { StepMetrics } from '../engine/train/metrics.ts';

export type { AbortToken } from './abort.ts';
export type { CachedModel, CachedModels, DownloadRequest, DownloadStatus, LoadOptions, LoadProgress, ModelSummary } from './models.ts';
export type { DatasetImport, DatasetImportOptions, PreviewExample, PreviewPiece } from './datasets.ts';
export type { MemoryEstimate } from './memory-estimate.ts';
export type { Result } from './result.ts';
export type { ExportFormat, ExportProgress, ExportedDownload } from './run-export.ts';
export type { CompressDataset, CompressKind, CompressMeasure, CompressProgress, CompressRequest, CompressResult, CompressStage, CompressTechnique, DistillMeasures, RecoverySettings } from './compress.ts';
export type { RunRecord, RunStatus } from './runs.ts';
export type { RunOverview, RunUpdate, StartTrainingRequest, TrainingPlan } from './training.ts';
export type { RunPlan } from './train-plan.ts';
export type { AdapterEntry, ColumnDelta, ColumnResult, PlaygroundRequest, PlaygroundResult } from './playground.ts';

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
  /** Where training runs are recorded; in memory (lost on exit) by default. */
  runs?: () => RunStore;
  /** One training at a time across tabs; Web Locks where available by default. */
  trainingLock?: TrainingLock;
  /** GPU memory a training run may use, in bytes (a run planned above it is refused); unknown (null) by default. */
  trainingMemoryBudgetBytes?: () => number | null;
}

export class EngineApi {
  private gpu: Promise<Gpu> | null = null;
  private readonly open: () => Promise<Gpu>;
  private readonly options: EngineOptions;
  private readonly models: ModelService;
  private readonly playground: PlaygroundService;
  private readonly training: TrainingService;
  private readonly runStores: { store: () => BlobStore; runs: () => RunStore; models: ModelService };
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
    this.playground = new PlaygroundService({ store, active: () => this.models.active() });
    let memoryRuns: RunStore | null = null;
    const runs = options.runs ?? (() => (memoryRuns ??= new MemoryRunStore()));
    this.runStores = { store, runs, models: this.models };
    this.training = new TrainingService({ store, runs, models: this.models, jobs: this.jobs, lock: options.trainingLock ?? trainingLock(), memoryBudget: options.trainingMemoryBudgetBytes });
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
    return this.withSignal(abort, (signal) => this.jobs.run('loading a model', () => this.models.loadDemo(signal, onProgress, options)));
  }

  /** Loads a downloaded Hub model from the store. */
  async loadCachedModel(id: string, onProgress?: (p: LoadProgress) => void, abort?: AbortToken, options?: LoadOptions): Promise<Result<ModelSummary>> {
    return this.withSignal(abort, (signal) => this.jobs.run('loading a model', () => this.models.loadCached(id, signal, onProgress, options)));
  }

  /** Loads a model from the files of a model folder (dropped or picked); nothing is copied to the store. */
  async loadModelFiles(files: File[], onProgress?: (p: LoadProgress) => void, abort?: AbortToken, options?: LoadOptions): Promise<Result<ModelSummary>> {
    return this.withSignal(abort, (signal) => this.jobs.run('loading a model', () => this.models.loadFiles(files, signal, onProgress, options)));
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

  /** PEFT LoRA adapters for the Playground: finished training runs in the store, then dropped ones. */
  async listAdapters(): Promise<Result<AdapterEntry[]>> {
    return attempt(() => this.playground.listAdapters());
  }

  /** Takes a dropped PEFT adapter folder (or its two files), checked against the loaded model. */
  async addAdapterFiles(files: File[]): Promise<Result<AdapterEntry>> {
    return attempt(() => this.playground.addAdapterFiles(files));
  }

  /** Loads an adapter onto the loaded model to check that it fits (AdapterMismatchError when not). */
  async checkAdapter(id: string): Promise<Result<AdapterEntry>> {
    return attempt(() => this.jobs.run('checking an adapter', () => this.playground.checkAdapter(id)));
  }

  /**
   * Base and tuned model answer one prompt side by side, streamed through `onChunk` in small
   * batches; a GPU job, so it fails with EngineBusyError while another one (training) runs.
   */
  async generate(request: PlaygroundRequest, onChunk: (deltas: ColumnDelta[]) => void, abort?: AbortToken): Promise<Result<PlaygroundResult>> {
    return this.withSignal(abort, (signal) => this.jobs.run('generation', () => this.playground.generate(request, onChunk, signal)));
  }

  /**
   * Starts a training run on the loaded model with a dataset file (the Data screen's) and settings
   * (train-settings.ts). Resolves when the run stops: completed, paused or cancelled (its record);
   * a failure (divergence, a full store …) comes back as the error, with the run marked failed.
   * `onUpdate` gets the run's progress and `onMetrics` one record per optimizer step.
   */
  async startTraining(request: StartTrainingRequest, onUpdate?: (u: RunUpdate) => void, onMetrics?: (m: StepMetrics) => void): Promise<Result<RunRecord>> {
    return attempt(() => this.training.start(request, onUpdate, onMetrics));
  }

  /** Continues a paused or interrupted run from its last checkpoint (loading its model when it is the demo or a cached one). */
  async resumeTraining(runId: string, onUpdate?: (u: RunUpdate) => void, onMetrics?: (m: StepMetrics) => void): Promise<Result<RunRecord>> {
    return attempt(() => this.training.resume(runId, onUpdate, onMetrics));
  }

  /** Pauses the run training here: the GPU stops after the current step; resume continues from the last checkpoint. */
  async pauseTraining(runId?: string): Promise<boolean> {
    return this.training.stop('pause', runId);
  }

  /** Cancels a run: the one training here stops; a paused or interrupted one is marked cancelled. Its checkpoints go. */
  async cancelTraining(runId: string): Promise<Result<RunRecord | null>> {
    if (this.training.stop('cancel', runId)) return { ok: true, value: null };
    return attempt(() => this.training.cancelStopped(runId));
  }

  /** The memory plan of training settings on the loaded model, and why the run would not fit (null when it fits). */
  async planTraining(settings: TrainSettings): Promise<Result<TrainingPlan>> {
    return attempt(async () => this.training.plan(settings));
  }

  /** Every training run (newest first), the one training here, and whether another tab trains. */
  async listRuns(): Promise<Result<RunOverview>> {
    return attempt(() => this.training.overview());
  }

  /** A run's metrics, one record per optimizer step. */
  async runMetrics(runId: string): Promise<Result<StepMetrics[]>> {
    return attempt(() => this.training.metrics(runId));
  }

  /** Deletes a run with its checkpoints, adapter and metrics; returns the runs left. */
  async deleteRun(runId: string): Promise<Result<RunOverview>> {
    return attempt(async () => {
      await this.training.deleteRun(runId);
      return this.training.overview();
    });
  }

  /** A finished run's adapter as a zip: PEFT files with the model card, GGUF with a Modelfile, or the merged model. */
  async exportRun(runId: string, format: ExportFormat, onProgress?: (p: ExportProgress) => void, abort?: AbortToken): Promise<Result<ExportedDownload>> {
    return this.withSignal(abort, (signal) => this.jobs.run(`exporting (${format})`, () => exportRun(this.runStores, runId, format, signal, onProgress)));
  }

  /**
   * Compresses the loaded model with one technique (pruning by magnitude or Wanda with an optional LoRA
   * recovery, sparsity, shared blocks, clustering, distillation into fewer layers), keeps the new
   * folder in the store under compressed/<id>/ and measures weight bytes, parameters, generation speed
   * and (with a dataset) the held-out loss before and after; a GPU job that the abort token cancels.
   */
  async compressModel(request: CompressRequest, onProgress?: (p: CompressProgress) => void, abort?: AbortToken): Promise<Result<CompressResult>> {
    return this.withSignal(abort, (signal) => this.jobs.run('compressing', () => compressLoaded({ store: this.runStores.store, models: this.models }, request, signal, onProgress)));
  }

  /** A compressed folder from the store as a zip. */
  async downloadCompressedModel(id: string, onProgress?: (p: ExportProgress) => void, abort?: AbortToken): Promise<Result<ExportedDownload>> {
    return this.withSignal(abort, (signal) => downloadCompressed(this.runStores.store(), id, signal, onProgress));
  }

  /** Removes a compressed folder from the store. */
  async deleteCompressedModel(id: string): Promise<Result<void>> {
    return attempt(() => deleteCompressed(this.runStores.store(), id));
  }

  /**
   * Removes every compressed folder but `id` and the one the loaded model was read from (a
   * compressed model loaded as the model keeps its files); returns the ids removed.
   */
  async keepCompressedModel(id: string): Promise<Result<string[]>> {
    return attempt(() => {
      const active = this.models.active()?.summary.id ?? '';
      const loaded = active.startsWith(compressedModelId('')) ? [active.slice(compressedModelId('').length)] : [];
      return pruneCompressed(this.runStores.store(), [id, ...loaded]);
    });
  }

  /** Loads the compressed folder `id` from the store as the model, named `name`. */
  async loadCompressedModel(id: string, name: string, onProgress?: (p: LoadProgress) => void, abort?: AbortToken): Promise<Result<ModelSummary>> {
    return this.withSignal(abort, (signal) =>
      this.jobs.run('loading a model', async () =>
        this.models.loadStored(await compressedFiles(this.runStores.store(), id), { id: compressedModelId(id), name, source: 'compressed' }, signal, onProgress),
      ),
    );
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
