// Training runs as the studio keeps them: the run record (settings, status, progress, results), the
// per-step metrics, and where a run's files live in the BlobStore. RunStore is the interface the
// training service writes through; MemoryRunStore keeps runs in memory (Node, tests) and IdbRunStore
// in IndexedDB (the browser, tables described in src/engine/store/store-idb.ts). Also the pure
// helpers the studio shows runs with. It trains nothing.
//
// Blob keys of a run (the Playground lists finished adapters by the `runs/` prefix and
// `adapter/adapter_config.json`; keep them):
//   runs/<runId>/dataset/<file name>                the dataset file the run trains on
//   runs/<runId>/checkpoints/checkpoint-<step>/     trainer_state.json + checkpoint.safetensors
//   runs/<runId>/adapter/adapter_config.json        PEFT files of a finished run
//   runs/<runId>/adapter/adapter_model.safetensors
//   runs/<runId>/adapter/README.md                  its model card

import type { SerializedError } from '../engine/errors.ts';
import type { IdbRunTables, StoredRun } from '../engine/store/store-idb.ts';
import type { StepMetrics } from '../engine/train/metrics.ts';
import type { ModelSource } from './models.ts';
import type { RunPlan } from './train-plan.ts';
import type { TrainSettings } from './train-settings.ts';

/**
 * running: training now, or interrupted (a reload, a crash) when no tab holds the training lock;
 * paused: stopped by Pause, resumable; completed: the adapter is stored; failed: stopped by an
 * error (divergence among them); cancelled: stopped by Cancel, its checkpoints removed.
 */
export type RunStatus = 'running' | 'paused' | 'completed' | 'failed' | 'cancelled';

/** How the dataset file was imported (the Data screen's settings). */
export interface RunDatasetImport {
  fileFormat?: string;
  format?: string;
  mapping?: Record<string, string>;
  trainOnPrompt: boolean;
  skipBadRows: boolean;
}

export interface RunRecord {
  id: string;
  /** ms since the epoch. */
  createdAt: number;
  updatedAt: number;
  status: RunStatus;
  model: {
    /** ModelSummary.id: `demo`, `hub:ORG/NAME@REV`, `files:<name>`. */
    id: string;
    name: string;
    source: ModelSource;
    parameters: number;
    /** The base model's config.json, for exports that need no GPU. */
    config: unknown;
  };
  dataset: {
    name: string;
    bytes: number;
    /** Blob key of the stored file. */
    key: string;
    import: RunDatasetImport;
    /** Filled once the run read it. */
    trainExamples: number | null;
    validationExamples: number | null;
    tokens: number | null;
  };
  settings: TrainSettings;
  /** Optimizer steps done and planned (0 planned until the run has read its data). */
  step: number;
  totalSteps: number;
  /** The last checkpoint stored, or null. */
  checkpointStep: number | null;
  /** Training time, across resumes, in ms. */
  elapsedMs: number;
  trainableParameters: number | null;
  /** The memory plan the run was checked against (set once its adapter exists). */
  plan?: RunPlan | null;
  /** Set once the run completed. */
  result: {
    steps: number;
    epochs: number;
    trainLoss: number | null;
    valLoss: number | null;
    elapsedMs: number;
    warmupSteps: number;
    /** Blob keys of the adapter files with their sizes. */
    files: { key: string; bytes: number }[];
  } | null;
  /** Why the run failed, or the last error of a stopped run. */
  error: SerializedError | null;
}

/** Where runs are recorded. Every write is atomic; metrics are kept per step. */
export interface RunStore {
  readonly name: string;
  get(id: string): Promise<RunRecord | null>;
  /** Every run, newest first. */
  list(): Promise<RunRecord[]>;
  put(run: RunRecord): Promise<void>;
  /** Removes the record and its metrics (the blobs are the caller's). */
  delete(id: string): Promise<void>;
  addMetrics(runId: string, metrics: readonly StepMetrics[]): Promise<void>;
  /** The run's metrics by step. */
  metrics(runId: string): Promise<StepMetrics[]>;
  /** Forgets the metrics of steps after `step` (a resume from its checkpoint recomputes them). */
  truncateMetrics(runId: string, step: number): Promise<void>;
}

export const RUNS_PREFIX = 'runs/';

/** The blob folder of a run: `runs/<runId>`. */
export function runPrefix(runId: string): string {
  return `${RUNS_PREFIX}${runId}`;
}

/** Blob keys of a run's files. */
export const runKeys = {
  dataset: (runId: string, fileName: string) => `${runPrefix(runId)}/dataset/${safeFileName(fileName)}`,
  checkpoints: (runId: string) => `${runPrefix(runId)}/checkpoints`,
  adapterFolder: (runId: string) => `${runPrefix(runId)}/adapter/`,
  adapterFile: (runId: string, name: string) => `${runPrefix(runId)}/adapter/${name}`,
};

/** A file name usable as one key segment: no '/', no control characters, not empty. */
export function safeFileName(name: string): string {
  const clean = Array.from(name, (c) => (c === '/' || c === '\\' || c.charCodeAt(0) < 0x20 ? '_' : c)).join('').replace(/^\.+/, '_').slice(0, 120);
  return clean === '' ? 'dataset' : clean;
}

/** A new run id: the start time and a random tail, sortable by time ("20261130-121530-4f2a9c"). */
export function newRunId(now: Date = new Date(), random: () => number = Math.random): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  const tail = Math.floor(random() * 0xffffff).toString(16).padStart(6, '0');
  return `${stamp}-${tail}`;
}

/** Whether a run can continue: it stopped (paused or interrupted) before finishing. */
export function isResumable(run: RunRecord): boolean {
  return run.status === 'running' || run.status === 'paused';
}

/** Newest first. */
export function sortRuns(runs: RunRecord[]): RunRecord[] {
  return runs.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
}

/** A download name for a run's export: "whetstone-demo-lora-20261130-1215-peft.zip". */
export function exportFileName(run: RunRecord, what: string): string {
  const model = run.model.source === 'demo' ? 'demo' : run.model.source === 'hub' ? (run.model.id.replace(/^hub:/, '').split('@')[0].split('/').pop() ?? 'model') : run.model.name;
  const slug = model.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'model';
  return `whetstone-${slug}-${run.settings.method}-${run.id.slice(0, 13)}-${what}.zip`;
}

/** Runs in memory, copied in and out as IndexedDB would (nothing shared with the caller). */
export class MemoryRunStore implements RunStore {
  readonly name = 'memory';
  private readonly runs = new Map<string, RunRecord>();
  private readonly steps = new Map<string, Map<number, StepMetrics>>();

  async get(id: string): Promise<RunRecord | null> {
    const r = this.runs.get(id);
    return r ? structuredClone(r) : null;
  }

  async list(): Promise<RunRecord[]> {
    return sortRuns([...this.runs.values()].map((r) => structuredClone(r)));
  }

  async put(run: RunRecord): Promise<void> {
    this.runs.set(run.id, structuredClone(run));
  }

  async delete(id: string): Promise<void> {
    this.runs.delete(id);
    this.steps.delete(id);
  }

  async addMetrics(runId: string, metrics: readonly StepMetrics[]): Promise<void> {
    const m = this.steps.get(runId) ?? new Map<number, StepMetrics>();
    for (const s of metrics) m.set(s.step, structuredClone(s));
    this.steps.set(runId, m);
  }

  async metrics(runId: string): Promise<StepMetrics[]> {
    return [...(this.steps.get(runId)?.values() ?? [])].sort((a, b) => a.step - b.step).map((s) => structuredClone(s));
  }

  async truncateMetrics(runId: string, step: number): Promise<void> {
    const m = this.steps.get(runId);
    if (!m) return;
    for (const k of [...m.keys()]) if (k > step) m.delete(k);
  }
}

/** Runs in IndexedDB: the `runs` and `run-metrics` stores of the studio's database. */
export class IdbRunStore implements RunStore {
  readonly name: string;

  constructor(private readonly tables: IdbRunTables) {
    this.name = tables.name;
  }

  async get(id: string): Promise<RunRecord | null> {
    return (await this.tables.getRun(id)) as unknown as RunRecord | null;
  }

  async list(): Promise<RunRecord[]> {
    return sortRuns((await this.tables.listRuns()) as unknown as RunRecord[]);
  }

  async put(run: RunRecord): Promise<void> {
    await this.tables.putRun(run as unknown as StoredRun);
  }

  async delete(id: string): Promise<void> {
    await this.tables.deleteRun(id);
  }

  async addMetrics(runId: string, metrics: readonly StepMetrics[]): Promise<void> {
    await this.tables.putMetrics(metrics.map((m) => ({ runId, step: m.step, metrics: m })));
  }

  async metrics(runId: string): Promise<StepMetrics[]> {
    return (await this.tables.metrics(runId)).map((r) => r.metrics as StepMetrics);
  }

  async truncateMetrics(runId: string, step: number): Promise<void> {
    await this.tables.deleteMetricsAfter(runId, step);
  }
}
