// UI state of the Train and Export screens (zustand): the settings form (a draft of strings, its
// defaults made for the loaded model), the runs the worker lists (its own, and one another tab
// trains), the run this tab trains with its last progress event, Pause/Resume/Cancel, and the export
// in progress with its abort handle. It calls the worker and keeps what comes back; per-step
// metrics go to metrics-store.ts, which only the charts read. Checking the form uses the same pure
// functions the worker checks with (train-settings.ts).

import { create } from 'zustand';
import type { SerializedError } from '../engine/errors.ts';
import type { StepMetrics } from '../engine/train/metrics.ts';
import type { ExportFormat, ExportProgress, RunOverview, RunRecord, RunUpdate } from '../worker/engine-api.ts';
import { type AbortHandle, abortHandle, progressCallback } from '../worker/client.ts';
import { type MethodId, type ModelFacts, type SettingsDraft, defaultDraft, parseSettings } from '../worker/train-settings.ts';
import { useData } from './data-store.ts';
import { useMetrics } from './metrics-store.ts';
import { useModels } from './model-store.ts';
import { getEngine } from './store.ts';

/** Defaults before a model is loaded: the demo model's size. */
export const DEMO_FACTS: ModelFacts = { parameters: 900_000, maxPositionEmbeddings: 2048 };

export interface Notice {
  kind: 'ok' | 'error';
  text: string;
  error?: SerializedError;
}

export interface ExportJob {
  runId: string;
  format: ExportFormat;
  progress: ExportProgress | null;
  abort: AbortHandle;
}

interface TrainState {
  draft: SettingsDraft;
  /** The model the draft's defaults were made for ('' for the demo defaults before any model). */
  draftFor: string;
  overview: RunOverview | null;
  /** The run this tab trains (or trained last), as the worker last reported it. */
  current: RunUpdate | null;
  /** A start or resume was asked and has not answered yet. */
  busy: boolean;
  stopping: 'pause' | 'cancel' | null;
  notice: Notice | null;
  exporting: ExportJob | null;
  exportNotice: (Notice & { runId: string }) | null;
  setField: (key: string, value: string) => void;
  setMethod: (method: MethodId) => void;
  /** Defaults for the loaded model, made once per model (or when asked). */
  syncDefaults: (modelId: string, facts: ModelFacts, force?: boolean) => void;
  refresh: () => Promise<void>;
  start: () => Promise<void>;
  resume: (runId: string) => Promise<void>;
  pause: () => Promise<void>;
  cancel: (runId: string) => Promise<void>;
  deleteRun: (runId: string) => Promise<void>;
  download: (runId: string, format: ExportFormat) => Promise<void>;
  cancelExport: () => void;
  /** Shows a run's stored metrics in the charts. */
  showMetrics: (runId: string, upTo?: number | null) => Promise<void>;
}

/** Saves a Blob through an object URL and an anchor with a file name. */
export function saveBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The model the worker has loaded now, also shown by the Model screen and the status bar. */
async function loadedModel() {
  const loaded = await getEngine().loadedModel();
  useModels.setState({ loaded });
  return loaded;
}

export const useTrain = create<TrainState>((set, get) => {
  /** Callbacks of a start or resume: progress into this store, steps into the metrics store. */
  const callbacks = () => ({
    onUpdate: progressCallback((u: RunUpdate) => {
      if (useMetrics.getState().runId !== u.run.id) useMetrics.getState().reset(u.run.id, []);
      set({ current: u });
    }),
    onMetrics: progressCallback((m: StepMetrics) => useMetrics.getState().push(m)),
  });

  /** What a start or resume ended with. */
  const finish = async (r: { ok: true; value: RunRecord } | { ok: false; error: SerializedError }, what: string) => {
    set({ busy: false, stopping: null });
    if (r.ok) {
      const run = r.value;
      const text =
        run.status === 'completed'
          ? `The run finished: ${run.result?.steps ?? run.step} steps. Download the ${run.settings.method === 'full' ? 'model' : 'adapter'} with the button above, or in more formats on the Export screen.`
          : run.status === 'paused'
            ? `Paused at step ${run.step}. Resume continues from the checkpoint of step ${run.checkpointStep ?? 0}.`
            : run.status === 'cancelled'
              ? 'The run was cancelled; its checkpoints were removed.'
              : `The run stopped (${run.status}).`;
      set({ notice: { kind: 'ok', text }, current: get().current && get().current?.run.id === run.id ? { ...(get().current as RunUpdate), run, stage: 'stopped' } : get().current });
    } else {
      set({ notice: { kind: 'error', text: `Could not ${what}.`, error: r.error } });
    }
    await get().refresh();
    // The record as stored tells how the run ended (a failure marks it failed, with its error).
    const cur = get().current;
    if (cur && !r.ok) set({ current: { ...cur, run: get().overview?.runs.find((x) => x.id === cur.run.id) ?? cur.run, stage: 'stopped' } });
    await loadedModel();
  };

  return {
    draft: defaultDraft('lora', DEMO_FACTS),
    draftFor: '',
    overview: null,
    current: null,
    busy: false,
    stopping: null,
    notice: null,
    exporting: null,
    exportNotice: null,

    setField(key, value) {
      set({ draft: { ...get().draft, [key]: value } });
    },

    setMethod(method) {
      const facts = useModels.getState().loaded ?? DEMO_FACTS;
      // The shared settings stay; the method's own fields take its defaults.
      set({ draft: { ...defaultDraft(method, facts), ...Object.fromEntries(Object.entries(get().draft).filter(([k]) => !k.includes('.'))), method } });
    },

    syncDefaults(modelId, facts, force = false) {
      if (!force && get().draftFor === modelId) return;
      set({ draft: defaultDraft((get().draft.method as MethodId) ?? 'lora', facts), draftFor: modelId });
    },

    async refresh() {
      const r = await getEngine().listRuns();
      if (r.ok) set({ overview: r.value });
      else set({ notice: { kind: 'error', text: 'Could not read the training runs.', error: r.error } });
    },

    async start() {
      if (get().busy) return;
      const data = useData.getState();
      const loaded = await loadedModel();
      if (!loaded) {
        set({ notice: { kind: 'error', text: 'Cannot start training.', error: { name: 'InvalidArgumentError', message: 'No model is loaded.', hint: 'Load a model on the Model screen (the demo model works offline).' } } });
        return;
      }
      if (!data.file || !data.result?.stats) {
        set({
          notice: {
            kind: 'error',
            text: 'Cannot start training.',
            error: { name: 'InvalidArgumentError', message: 'No dataset is imported.', hint: 'Drop a dataset on the Data screen, or use the sample dataset there.' },
          },
        });
        return;
      }
      const { settings } = parseSettings(get().draft, loaded);
      if (!settings) {
        set({ notice: { kind: 'error', text: 'Cannot start training.', error: { name: 'InvalidArgumentError', message: 'Some settings are not valid.', hint: 'Correct the marked fields.' } } });
        return;
      }
      set({ busy: true, notice: null, current: null });
      useMetrics.getState().reset(null, []);
      const { onUpdate, onMetrics } = callbacks();
      const s = data.settings;
      const r = await getEngine().startTraining(
        {
          file: data.file,
          fileName: data.file.name,
          datasetImport: {
            fileFormat: s.fileFormat ?? undefined,
            format: s.format ?? undefined,
            mapping: Object.keys(s.mapping).length > 0 ? (s.mapping as Record<string, string>) : undefined,
            trainOnPrompt: s.trainOnPrompt,
            skipBadRows: s.skipBadRows,
          },
          settings,
        },
        onUpdate,
        onMetrics,
      );
      await finish(r, 'train the model');
    },

    async resume(runId) {
      if (get().busy) return;
      const run = get().overview?.runs.find((x) => x.id === runId) ?? null;
      set({ busy: true, notice: null, current: run ? { run, stage: 'preparing', progress: null } : null });
      await get().showMetrics(runId, run?.checkpointStep ?? 0);
      const { onUpdate, onMetrics } = callbacks();
      const r = await getEngine().resumeTraining(runId, onUpdate, onMetrics);
      await finish(r, 'resume the run');
    },

    async pause() {
      const cur = get().current;
      if (!cur || !get().busy) return;
      set({ stopping: 'pause' });
      await getEngine().pauseTraining(cur.run.id);
    },

    async cancel(runId) {
      const training = get().busy && get().current?.run.id === runId;
      if (training) set({ stopping: 'cancel' });
      const r = await getEngine().cancelTraining(runId);
      if (!r.ok) set({ stopping: null, notice: { kind: 'error', text: 'Could not cancel the run.', error: r.error } });
      else if (!training) {
        set({ notice: { kind: 'ok', text: 'The run was cancelled; its checkpoints were removed.' } });
        await get().refresh();
        const cur = get().current;
        const now = get().overview?.runs.find((x) => x.id === runId);
        if (cur && now && cur.run.id === runId) set({ current: { ...cur, run: now, stage: 'stopped' } });
      }
    },

    async deleteRun(runId) {
      const r = await getEngine().deleteRun(runId);
      if (r.ok) {
        set({ overview: r.value, exportNotice: null });
        if (get().current?.run.id === runId) set({ current: null });
        if (useMetrics.getState().runId === runId) useMetrics.getState().reset(null, []);
      } else {
        set({ exportNotice: { runId, kind: 'error', text: 'Could not delete the run.', error: r.error } });
      }
    },

    async download(runId, format) {
      if (get().exporting) return;
      const abort = abortHandle();
      set({ exporting: { runId, format, progress: null, abort }, exportNotice: null });
      const onProgress = progressCallback((p: ExportProgress) => {
        const job = get().exporting;
        if (job && job.abort === abort) set({ exporting: { ...job, progress: p } });
      });
      const r = await getEngine().exportRun(runId, format, onProgress, abort.token);
      set({ exporting: null });
      if (r.ok) {
        saveBlob(r.value.blob, r.value.fileName);
        set({ exportNotice: { runId, kind: 'ok', text: `Downloaded ${r.value.fileName} (${r.value.files.join(', ')}).` } });
      } else if (r.error.name === 'CancelledError') {
        set({ exportNotice: { runId, kind: 'ok', text: 'The export was cancelled; nothing was downloaded.' } });
      } else {
        set({ exportNotice: { runId, kind: 'error', text: 'The export failed.', error: r.error } });
      }
    },

    cancelExport() {
      get().exporting?.abort.abort();
    },

    async showMetrics(runId, upTo = null) {
      const r = await getEngine().runMetrics(runId);
      if (!r.ok) return;
      useMetrics.getState().reset(runId, upTo === null ? r.value : r.value.filter((m) => m.step <= upTo));
    },
  };
});
