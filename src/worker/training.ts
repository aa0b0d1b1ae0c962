// The worker's training service: starts a run on the loaded model with the dataset the Data screen
// imported, continues a paused or interrupted run from its last checkpoint, pauses and cancels, and
// records everything in a RunStore (IndexedDB in the studio) and the BlobStore (runs.ts lists the
// keys), so that a reload or another tab finds the run where it was. The loop itself is the engine's
// train(); this file wires it to the stores, the locks and the studio's callbacks.
//
// One run at a time, on two levels: the engine's job slot (EngineJobs: one GPU job per worker) and
// the training lock shared by every tab of the site (Web Locks, `whetstone-training`; a process-wide
// flag where Web Locks are missing, as in Node). A run with status "running" whose lock nobody
// holds was interrupted (a reload, a crash, a closed tab) and is resumable.
//
// Pause stops the loop at once (the trainer's cancellation: the step on the GPU finishes, the
// checkpoint waiting for confirmation is stored, then the job ends and the GPU is idle); Resume
// continues from the last checkpoint with the trainer's exact resume, so the steps after that
// checkpoint are computed again and give the values an uninterrupted run gives. Cancel stops the
// same way and removes the run's checkpoints.

import { type DatasetStats, prepareDataset } from '../engine/data/dataset.ts';
import type { ColumnMapping, ExampleFormat } from '../engine/data/formats.ts';
import type { DatasetFileFormat } from '../engine/data/readers.ts';
import { CancelledError, EngineBusyError, InvalidArgumentError, MissingFileError, type SerializedError, describeError } from '../engine/errors.ts';
import type { CardMethod } from '../engine/io/model-card.ts';
import { type LlamaModel, loadModel } from '../engine/model/llama.ts';
import type { PeftAdapter } from '../engine/peft/adapter.ts';
import { findMethod } from '../engine/peft/methods.ts';
import { FullFineTune } from '../engine/peft/full/index.ts';
import type { LoraConfig } from '../engine/peft/lora/config.ts';
import type { BlobStore } from '../engine/store/store.ts';
import { trainedModelCard } from '../engine/train/adapter-files.ts';
import { BlobCheckpointStore, type CheckpointStore, type TrainCheckpoint, latestCheckpoint } from '../engine/train/checkpoint.ts';
import type { StepMetrics, TrainProgress } from '../engine/train/metrics.ts';
import { type TrainOptions, train } from '../engine/train/trainer.ts';
import type { EngineJobs } from './busy.ts';
import type { ModelService } from './models.ts';
import { type RunDatasetImport, type RunRecord, type RunStore, isResumable, newRunId, runKeys, runPrefix } from './runs.ts';
import { type RunPlan, checkRunPlan, planRun, withMeasuredAdapter } from './train-plan.ts';
import { METHODS, type ModelFacts, type TrainSettings, draftOf, engineMethodOf, fieldsOf, parseSettings } from './train-settings.ts';

/** The name of the Web Lock that the tab training now holds. */
export const TRAINING_LOCK = 'whetstone-training';
/** How long a resume waits for the lock (a reloaded page's previous worker may still hold it briefly). */
const LOCK_WAIT_MS = 5000;
/** Checkpoints kept per run while it trains. */
const KEEP_CHECKPOINTS = 2;

/** One training at a time across every tab of the site. */
export interface TrainingLock {
  /** Runs `fn` holding the lock; EngineBusyError when another tab holds it for longer than `waitMs`. */
  run<T>(fn: () => Promise<T>, waitMs?: number): Promise<T>;
  /** Whether another tab (another holder than this one) holds the lock. */
  heldElsewhere(): Promise<boolean>;
}

interface LockManagerLike {
  request(name: string, options: { ifAvailable?: boolean; signal?: AbortSignal }, fn: (lock: unknown) => Promise<unknown>): Promise<unknown>;
  query(): Promise<{ held?: { name?: string }[] }>;
}

const busyHere = () => new EngineBusyError('A run is training now.', { hint: 'Wait for it to finish, or pause or cancel it, then start the next one.' });
const busyElsewhere = () =>
  new EngineBusyError('Another tab of the studio is training a model.', { hint: 'Wait for that run to finish, or pause or cancel it in its tab; its progress shows here as it goes.' });

/** Web Locks where the platform has them (browsers, workers included), else a flag for this process. */
export function trainingLock(): TrainingLock {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  let mine = false;
  if (!locks) {
    return {
      async run(fn) {
        if (mine) throw busyHere();
        mine = true;
        try {
          return await fn();
        } finally {
          mine = false;
        }
      },
      async heldElsewhere() {
        return false;
      },
    };
  }
  return {
    async run<T>(fn: () => Promise<T>, waitMs = 0): Promise<T> {
      if (mine) throw busyHere();
      const NOT_ACQUIRED = Symbol('not acquired');
      const body = async (lock: unknown) => {
        if (lock === null) return NOT_ACQUIRED;
        mine = true;
        try {
          return { value: await fn() };
        } finally {
          mine = false;
        }
      };
      let out: unknown;
      try {
        out = waitMs > 0 ? await locks.request(TRAINING_LOCK, { signal: AbortSignal.timeout(waitMs) }, body) : await locks.request(TRAINING_LOCK, { ifAvailable: true }, body);
      } catch (e) {
        if ((e as { name?: string })?.name === 'TimeoutError' || (e as { name?: string })?.name === 'AbortError') throw busyElsewhere();
        throw e;
      }
      if (out === NOT_ACQUIRED) throw busyElsewhere();
      return (out as { value: T }).value;
    },
    async heldElsewhere() {
      if (mine) return false;
      const state = await locks.query();
      return (state.held ?? []).some((l) => l.name === TRAINING_LOCK);
    },
  };
}

/** What the Train screen sends to start a run. */
export interface StartTrainingRequest {
  /** The dataset file the Data screen imported, and how it imported it. */
  file: Blob;
  fileName: string;
  datasetImport: RunDatasetImport;
  settings: TrainSettings;
}

/** Where a run is, sent to the studio as it goes. */
export interface RunUpdate {
  run: RunRecord;
  stage: 'loading-model' | 'quantizing' | 'preparing' | 'training' | 'saving' | 'reloading-base' | 'stopped';
  /** The trainer's last progress event (null before the first). */
  progress: TrainProgress | null;
  /** The run's memory plan, checked against the device before it trains (null before). */
  plan?: RunPlan | null;
}

/** A run's memory plan on the loaded model, before it starts. */
export interface TrainingPlan {
  plan: RunPlan;
  /** Why the run would not fit on this device (GpuOutOfMemoryError), or null. */
  problem: SerializedError | null;
  /** The GPU memory a run may use, when known. */
  budgetBytes: number | null;
}

/** Every run, newest first, and who trains now. */
export interface RunOverview {
  runs: RunRecord[];
  /** The run this worker trains now, or null. */
  activeRunId: string | null;
  /** Another tab holds the training lock. */
  trainingElsewhere: boolean;
}

export interface TrainingDeps {
  store: () => BlobStore;
  runs: () => RunStore;
  models: ModelService;
  jobs: EngineJobs;
  lock: TrainingLock;
  /** GPU memory a run may use in bytes, when known (a run planned above it is refused before it starts). */
  memoryBudget?: () => number | null;
}

/** The card's method rows: the settings of the method's own form fields. */
function cardMethod(s: TrainSettings): CardMethod {
  const spec = METHODS[s.method];
  const draft = draftOf(s);
  const own = fieldsOf(s.method).slice(0, spec.fields.length);
  const loraFamily = s.lora !== undefined;
  return {
    id: s.method,
    label: spec.name,
    peftType: spec.engine.peftType,
    // LoRA's rows come from its config; the others' from their fields.
    settings: loraFamily ? own.filter((f) => f.key.startsWith('quant.')).map((f) => [f.label, f.options?.find((o) => o.value === draft[f.key])?.label ?? draft[f.key]]) : own.map((f) => [f.label, draft[f.key] === '' ? 'default' : (f.options?.find((o) => o.value === draft[f.key])?.label ?? draft[f.key])]),
    mergeable: spec.engine.exports.includes('merged'),
  };
}

/** The trainer's options for a run's settings. */
export function trainOptions(s: TrainSettings, maxPositions: number): TrainOptions {
  return {
    lr: s.lr,
    schedule: s.schedule,
    warmup: s.warmup,
    epochs: s.steps > 0 ? undefined : s.epochs,
    maxSteps: s.steps > 0 ? s.steps : undefined,
    batchSize: s.batchSize,
    gradAccum: s.gradAccum,
    seqLen: Math.min(s.seqLen, maxPositions),
    seed: s.seed,
    evalEvery: s.evalEvery,
    saveEvery: s.saveEvery,
    keepCheckpoints: KEEP_CHECKPOINTS,
  };
}

/** base_model_name_or_path of a run's adapter: the Hub repo, the folder name, or "demo". */
export function baseModelName(run: Pick<RunRecord, 'model'>): string {
  if (run.model.source === 'hub') return run.model.id.replace(/^hub:/, '').split('@')[0];
  if (run.model.source === 'demo') return 'demo';
  return run.model.name;
}

/** Throws InvalidArgumentError listing every wrong setting. */
export function checkSettings(settings: TrainSettings, model: ModelFacts): void {
  const { errors } = parseSettings(draftOf(settings), model);
  const list = Object.values(errors);
  if (list.length > 0) throw new InvalidArgumentError(`The training settings are not valid: ${list.join(' ')}`, { hint: 'Correct the marked fields on the Train screen.' });
}

/** Serialises the run's store writes in order; the first failure is kept and stops the run. */
class WriteQueue {
  private tail: Promise<void> = Promise.resolve();
  failure: unknown = null;

  constructor(private readonly onFailure: (e: unknown) => void) {}

  push(write: () => Promise<void>): void {
    this.tail = this.tail.then(async () => {
      if (this.failure !== null) return;
      try {
        await write();
      } catch (e) {
        this.failure = e;
        this.onFailure(e);
      }
    });
  }

  async flush(): Promise<void> {
    await this.tail;
  }
}

/** A CheckpointStore that reports each stored checkpoint. */
class ReportingCheckpoints implements CheckpointStore {
  readonly name: string;

  constructor(
    private readonly inner: CheckpointStore,
    private readonly onSaved: (step: number) => Promise<void>,
  ) {
    this.name = inner.name;
  }

  list(): Promise<number[]> {
    return this.inner.list();
  }

  async save(c: TrainCheckpoint): Promise<void> {
    await this.inner.save(c);
    await this.onSaved(c.step);
  }

  load(step: number): Promise<TrainCheckpoint> {
    return this.inner.load(step);
  }

  remove(step: number): Promise<void> {
    return this.inner.remove(step);
  }
}

/** Copies a Blob into the store under `key` in slices (a large dataset never sits in memory at once). */
async function storeBlob(store: BlobStore, key: string, blob: Blob): Promise<void> {
  const SLICE = 8 * 1024 * 1024;
  await store.delete(key);
  for (let at = 0; at < blob.size; at += SLICE) await store.append(key, new Uint8Array(await blob.slice(at, Math.min(blob.size, at + SLICE)).arrayBuffer()));
  await store.finalize(key, { size: blob.size });
}

type Stop = 'pause' | 'cancel';
type ActiveModel = NonNullable<ReturnType<ModelService['active']>>;

export class TrainingService {
  private active: { runId: string; controller: AbortController; stop: Stop | null } | null = null;

  constructor(private readonly deps: TrainingDeps) {}

  async overview(): Promise<RunOverview> {
    return { runs: await this.deps.runs().list(), activeRunId: this.active?.runId ?? null, trainingElsewhere: await this.deps.lock.heldElsewhere() };
  }

  /** The memory plan of `settings` on the loaded model and why it would not fit there (null when it fits). */
  plan(settings: TrainSettings): TrainingPlan {
    const loaded = this.deps.models.active();
    if (!loaded) throw new InvalidArgumentError('No model is loaded.', { hint: 'Load a model on the Model screen to see the memory plan.' });
    checkSettings(settings, loaded.summary);
    const plan = planRun(loaded.model.config, settings, loaded.model.weightDtype === 'bf16' ? 'bf16' : 'f32');
    let problem: SerializedError | null = null;
    try {
      checkRunPlan(plan, loaded.model.gpu.device.limits, this.deps.memoryBudget?.() ?? null);
    } catch (e) {
      problem = describeError(e);
    }
    return { plan, problem, budgetBytes: this.deps.memoryBudget?.() ?? null };
  }

  async metrics(runId: string): Promise<StepMetrics[]> {
    return this.deps.runs().metrics(runId);
  }

  /** Starts a new run on the loaded model; resolves when it stops (completed, paused, cancelled) with its record. */
  async start(request: StartTrainingRequest, onUpdate?: (u: RunUpdate) => void, onMetrics?: (m: StepMetrics) => void): Promise<RunRecord> {
    const loaded = this.deps.models.active();
    if (!loaded) throw new InvalidArgumentError('No model is loaded.', { hint: 'Load a model on the Model screen (the demo model works offline), then start training.' });
    const folder = this.deps.models.activeFolder();
    checkSettings(request.settings, loaded.summary);
    if (!(request.file instanceof Blob) || request.file.size === 0) {
      throw new InvalidArgumentError('No dataset is imported.', { hint: 'Drop a dataset on the Data screen (or use the sample dataset), then start training.' });
    }
    // A run that cannot fit is refused before it is recorded.
    checkRunPlan(planRun(loaded.model.config, request.settings, loaded.model.weightDtype === 'bf16' ? 'bf16' : 'f32'), loaded.model.gpu.device.limits, this.deps.memoryBudget?.() ?? null);
    return this.exclusive(0, async () => {
      const id = newRunId();
      const now = Date.now();
      const record: RunRecord = {
        id,
        createdAt: now,
        updatedAt: now,
        status: 'running',
        model: { id: loaded.summary.id, name: loaded.summary.name, source: loaded.summary.source, parameters: loaded.summary.parameters, config: folder?.rawConfig ?? null },
        dataset: {
          name: request.fileName,
          bytes: request.file.size,
          key: runKeys.dataset(id, request.fileName),
          import: request.datasetImport,
          trainExamples: null,
          validationExamples: null,
          tokens: null,
        },
        settings: request.settings,
        step: 0,
        totalSteps: 0,
        checkpointStep: null,
        elapsedMs: 0,
        trainableParameters: null,
        result: null,
        error: null,
      };
      const store = this.deps.store();
      try {
        await storeBlob(store, record.dataset.key, request.file);
      } catch (e) {
        await store.delete(runPrefix(id)).catch(() => undefined);
        throw e;
      }
      await this.deps.runs().put(record);
      return this.execute(record, loaded, new AbortController(), onUpdate, onMetrics);
    });
  }

  /** Continues a paused or interrupted run from its last checkpoint, loading its model first when it is the demo or a cached Hub model. */
  async resume(runId: string, onUpdate?: (u: RunUpdate) => void, onMetrics?: (m: StepMetrics) => void): Promise<RunRecord> {
    return this.exclusive(LOCK_WAIT_MS, async () => {
      const record = await this.deps.runs().get(runId);
      if (!record) throw new MissingFileError(`There is no run ${runId}.`, { hint: 'It was deleted; start a new run.' });
      if (!isResumable(record)) throw new InvalidArgumentError(`Run ${runId} is ${record.status}; only paused or interrupted runs continue.`);
      // The model is loaded before the run counts as training: a model that cannot be loaded leaves the run as it was.
      const controller = new AbortController();
      const active = { runId, controller, stop: null as Stop | null };
      this.active = active;
      let loaded;
      try {
        loaded = await this.modelFor(record, controller.signal, () => onUpdate?.({ run: record, stage: 'loading-model', progress: null }));
      } catch (e) {
        this.active = null;
        if (!(e instanceof CancelledError)) throw e;
        // Stopped while its model loaded: a pause leaves the run as it was, a cancel ends it.
        if (active.stop !== 'cancel') return record;
        await this.deps.store().delete(runKeys.checkpoints(runId));
        const done: RunRecord = { ...record, status: 'cancelled', checkpointStep: null, updatedAt: Date.now() };
        await this.deps.runs().put(done);
        return done;
      }
      return this.execute(record, loaded, controller, onUpdate, onMetrics, true);
    });
  }

  /** Asks the run this worker trains to pause or to cancel; false when it trains none (or another run). */
  stop(kind: Stop, runId?: string): boolean {
    const a = this.active;
    if (!a || (runId !== undefined && a.runId !== runId)) return false;
    a.stop ??= kind;
    if (kind === 'cancel') a.stop = 'cancel';
    a.controller.abort();
    return true;
  }

  /** Marks a paused or interrupted run cancelled and removes its checkpoints (no tab may be training it). */
  async cancelStopped(runId: string): Promise<RunRecord> {
    return this.exclusive(0, async () => {
      const record = await this.deps.runs().get(runId);
      if (!record) throw new MissingFileError(`There is no run ${runId}.`);
      if (!isResumable(record)) return record;
      await this.deps.store().delete(runKeys.checkpoints(runId));
      const done: RunRecord = { ...record, status: 'cancelled', checkpointStep: null, updatedAt: Date.now() };
      await this.deps.runs().put(done);
      return done;
    });
  }

  /** Removes a run: its record, metrics and files. Refused while it trains here or in another tab. */
  async deleteRun(runId: string): Promise<void> {
    if (this.active?.runId === runId) throw new EngineBusyError('This run is training.', { hint: 'Cancel it first, then delete it.' });
    const record = await this.deps.runs().get(runId);
    if (record?.status === 'running' && (await this.deps.lock.heldElsewhere())) {
      throw new EngineBusyError('This run may be training in another tab.', { hint: 'Cancel it in that tab (or wait for it to finish), then delete it.' });
    }
    await this.deps.store().delete(runPrefix(runId));
    await this.deps.runs().delete(runId);
  }

  private exclusive<T>(waitMs: number, fn: () => Promise<T>): Promise<T> {
    return this.deps.lock.run(() => this.deps.jobs.run('training', fn), waitMs);
  }

  /** Trains `record` to its end (or until stopped), recording as it goes. */
  private async execute(
    record: RunRecord,
    loaded: ActiveModel,
    controller: AbortController,
    onUpdate?: (u: RunUpdate) => void,
    onMetrics?: (m: StepMetrics) => void,
    resume = false,
  ): Promise<RunRecord> {
    const active = this.active?.controller === controller ? this.active : { runId: record.id, controller, stop: null as Stop | null };
    this.active = active;
    const store = this.deps.store();
    const runs = this.deps.runs();
    const writes = new WriteQueue(() => controller.abort());
    const save = () => {
      record.updatedAt = Date.now();
      const copy = structuredClone(record);
      writes.push(() => runs.put(copy));
    };
    let progress: TrainProgress | null = null;
    let plan: RunPlan | null = null;
    const update = (stage: RunUpdate['stage']) => onUpdate?.({ run: structuredClone(record), stage, progress, plan });
    let adapter: PeftAdapter | null = null;
    let quantized: LlamaModel | null = null;
    let reloadBase: (() => Promise<void>) | null = null;
    /** Frees the run's GPU tensors and, after a QLoRA run, reads the full-precision base again. */
    const finishBase = async () => {
      adapter?.release();
      adapter = null;
      quantized?.release();
      quantized = null;
      const reload = reloadBase;
      reloadBase = null;
      if (reload) {
        update('reloading-base');
        await reload();
      }
    };
    try {
      const s = record.settings;
      const spec = METHODS[s.method];
      if (!spec) throw new InvalidArgumentError(`Run ${record.id} uses the method ${JSON.stringify(s.method)}, which this studio does not offer.`, { hint: 'Start a new run with one of the methods on the Train screen.' });
      // The plan is checked before anything is allocated; the adapter's measured size replaces the estimate below.
      plan = planRun(loaded.model.config, s, loaded.model.weightDtype === 'bf16' ? 'bf16' : 'f32');
      const limits = loaded.model.gpu.device.limits;
      const budget = this.deps.memoryBudget?.() ?? null;
      checkRunPlan(plan, limits, budget);
      update('preparing');
      const source = await store.read(record.dataset.key);
      let dataset;
      try {
        const imp = record.dataset.import;
        dataset = await prepareDataset(source, {
          tokenizer: loaded.tokenizer,
          format: imp.format as ExampleFormat | undefined,
          mapping: imp.mapping as ColumnMapping | undefined,
          maxLength: Math.min(s.seqLen, loaded.model.config.maxPositionEmbeddings),
          trainOnPrompt: imp.trainOnPrompt,
          skipBadRows: imp.skipBadRows,
          valFraction: s.valFraction,
          seed: s.seed,
          read: imp.fileFormat ? { format: imp.fileFormat as DatasetFileFormat } : undefined,
          signal: controller.signal,
        });
      } finally {
        await source.close?.();
      }
      const stats: DatasetStats = dataset.stats;
      record.dataset.trainExamples = stats.trainExamples;
      record.dataset.validationExamples = stats.validationExamples;
      record.dataset.tokens = stats.tokens;
      // QLoRA trains over a copy of the base quantized as it loads. The full-precision weights are
      // freed meanwhile, so the run needs the room of the quantized base only, and read again from
      // the same files when the run stops.
      const folder = this.deps.models.activeFolder();
      let model = loaded.model;
      if (spec.quantized) {
        if (!folder || !s.quant) throw new InvalidArgumentError('QLoRA needs the base model\'s files to quantize it.', { hint: 'Load the model again on the Model screen, then start the run.' });
        const reload = this.deps.models.releaseWeights();
        reloadBase = () => reload();
        update('quantizing');
        quantized = await loadModel(loaded.model.gpu, folder, { quant: { format: s.quant.format, block: s.quant.block, doubleQuant: s.quant.doubleQuant }, signal: controller.signal });
        model = quantized;
      }
      const { method, values } = engineMethodOf(s);
      adapter = await findMethod(method.id).create(model, values, {
        seed: s.seed,
        baseModel: baseModelName(record),
        encode: (text) => loaded.tokenizer.encode(text),
        source: folder ?? undefined,
      });
      adapter.training = true;
      if (s.qat) {
        if (!(adapter instanceof FullFineTune)) throw new InvalidArgumentError(`Quantization-aware training trains full fine-tunes; ${spec.name} has no such option.`);
        adapter.quantAware({ format: s.qat.format, block: s.qat.block });
      }
      plan = withMeasuredAdapter(plan, adapter.parameterCount);
      checkRunPlan(plan, limits, budget);
      record.plan = plan;
      record.trainableParameters = adapter.parameterCount;

      const checkpoints = new ReportingCheckpoints(new BlobCheckpointStore(store, runKeys.checkpoints(record.id)), async (step) => {
        record.checkpointStep = step;
        save();
      });
      let checkpoint: TrainCheckpoint | null = null;
      if (resume) {
        checkpoint = await latestCheckpoint(checkpoints);
        record.step = checkpoint?.step ?? 0;
        record.checkpointStep = checkpoint?.step ?? null;
        record.elapsedMs = checkpoint?.elapsedMs ?? 0;
        // The steps after the checkpoint are computed again; their old records go.
        await runs.truncateMetrics(record.id, record.step);
        // A run interrupted before its first checkpoint starts over: its partial checkpoint folders go too.
        if (!checkpoint) await store.delete(runKeys.checkpoints(record.id));
      }
      record.status = 'running';
      record.error = null;
      save();
      const options = trainOptions(s, loaded.model.config.maxPositionEmbeddings);
      update('training');
      const result = await train({
        model,
        adapter,
        train: dataset.train,
        validation: dataset.validation.length > 0 ? dataset.validation : undefined,
        options,
        checkpoints,
        resume: checkpoint ?? false,
        signal: controller.signal,
        onMetrics: (m) => {
          record.step = m.step;
          record.elapsedMs = m.elapsedMs;
          writes.push(() => runs.addMetrics(record.id, [m]));
          save();
          onMetrics?.(m);
        },
        onProgress: (p) => {
          progress = p;
          record.totalSteps = p.totalSteps;
          update('training');
        },
      });
      await writes.flush();
      if (writes.failure !== null) throw writes.failure;

      update('saving');
      // The method's own files (PEFT's where PEFT has the method; a model folder for full fine-tuning) and a model card;
      // a quantization-aware run also keeps the model in its format under <format>/, as `whetstone train --qat` writes it.
      const files = await adapter.exportFiles();
      if (s.qat && adapter instanceof FullFineTune) {
        for (const [name, bytes] of (await adapter.exportQuantizedFiles()).files) files.set(`${s.qat.format}/${name}`, bytes);
      }
      const card = trainedModelCard(
        s.lora ? (adapter.savedConfig as unknown as LoraConfig) : undefined,
        model.config,
        {
          baseModel: baseModelName(record),
          options,
          result,
          precision: s.quant ? `${plan.quantization} (QLoRA)` : s.qat ? `${model.weightDtype}, quantization-aware for ${s.qat.format}${s.qat.format === 'int8' ? '' : ` (block ${s.qat.block})`}` : model.weightDtype,
          dataset: { name: record.dataset.name, format: stats.format, trainExamples: stats.trainExamples, validationExamples: stats.validationExamples, tokens: stats.tokens, countedTokens: stats.countedTokens },
        },
        cardMethod(s),
      );
      files.set('README.md', new TextEncoder().encode(card));
      await store.delete(runKeys.adapterFolder(record.id));
      const written: { key: string; bytes: number }[] = [];
      for (const [name, bytes] of files) {
        const key = runKeys.adapterFile(record.id, name);
        await store.append(key, bytes);
        await store.finalize(key, { size: bytes.byteLength });
        written.push({ key, bytes: bytes.byteLength });
      }
      // The adapter is stored: the checkpoints have served their purpose.
      await store.delete(runKeys.checkpoints(record.id));
      record.status = 'completed';
      record.step = result.steps;
      record.totalSteps = result.totalSteps;
      record.checkpointStep = null;
      record.elapsedMs = result.elapsedMs;
      record.result = {
        steps: result.steps,
        epochs: result.epochs,
        trainLoss: result.trainLoss,
        valLoss: result.valLoss,
        elapsedMs: result.elapsedMs,
        warmupSteps: result.warmupSteps,
        files: written,
      };
      save();
      await writes.flush();
      await finishBase();
      update('stopped');
      return record;
    } catch (e) {
      await writes.flush();
      const failure = writes.failure ?? e;
      if (failure instanceof CancelledError && active.stop === 'cancel') {
        record.status = 'cancelled';
        record.checkpointStep = null;
        await store.delete(runKeys.checkpoints(record.id)).catch(() => undefined);
      } else if (failure instanceof CancelledError) {
        record.status = 'paused';
      } else {
        record.status = 'failed';
        record.error = describeError(failure);
      }
      record.updatedAt = Date.now();
      // The record must say how the run ended even when the queue failed (a full store may take a small write).
      await runs.put(structuredClone(record)).catch(() => undefined);
      await finishBase();
      update('stopped');
      if (record.status === 'failed') throw failure;
      return record;
    } finally {
      // Where the paths above did not get to it (a throw before them): the run's tensors go and the
      // base is read again; if that fails, no model is loaded and the run's own error is the one thrown.
      await finishBase().catch(() => undefined);
      if (this.active === active) this.active = null;
    }
  }

  /** The loaded model when it is the run's, else the run's model loaded (demo or cached Hub model). */
  private async modelFor(record: RunRecord, signal: AbortSignal, onLoading: () => void): Promise<ActiveModel> {
    const loaded = this.deps.models.active();
    if (loaded && loaded.summary.id === record.model.id) return loaded;
    if (record.model.source === 'files') {
      throw new InvalidArgumentError(`This run trains ${record.model.name}, which was loaded from files${loaded ? `; ${loaded.summary.name} is loaded now` : ''}.`, {
        hint: 'Drop the same model folder on the Model screen, then resume the run.',
      });
    }
    onLoading();
    if (record.model.source === 'demo') await this.deps.models.loadDemo(signal);
    else await this.deps.models.loadCached(record.model.id, signal);
    const now = this.deps.models.active();
    if (!now) throw new MissingFileError(`${record.model.name} could not be loaded.`);
    return now;
  }
}
