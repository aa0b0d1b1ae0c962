// UI state of the Compress screen (zustand): the chosen technique and its options as typed text
// (compress-form.ts), the adapters of finished runs a distillation teacher can use, the run in
// progress with its stage and abort handle, the last result (the before/after table) and the zip
// download in progress. The rows a run uses are the Data screen's dataset (with its import settings)
// or the studio's sample dataset, fetched here.

import { create } from 'zustand';
import type { AdapterEntry, CachedModel, CompressDataset, CompressProgress, CompressResult, ExportProgress } from '../worker/engine-api.ts';
import { type AbortHandle, abortHandle, progressCallback } from '../worker/client.ts';
import { useData } from './data-store.ts';
import { type CompressDraft, DEFAULT_DRAFT, checkDraft, downloadNotice, draftFor } from './compress-form.ts';
import { formatBytes } from './format.ts';
import { SAMPLE_DATASET } from './DataScreen.tsx';
import { useModels } from './model-store.ts';
import { getEngine } from './store.ts';
import { saveBlob } from './train-store.ts';

export type Notice = { kind: 'ok' | 'error'; text: string; hint?: string };

interface CompressState {
  draft: CompressDraft;
  running: { abort: AbortHandle; progress: CompressProgress | null } | null;
  result: CompressResult | null;
  /** The name of the model the result was made from. */
  resultOf: string | null;
  downloading: { abort: AbortHandle; progress: ExportProgress | null } | null;
  notice: Notice | null;
  /** Adapters of finished training runs (a distillation teacher can use one); null until listed. */
  adapters: AdapterEntry[] | null;
  /** Finished Hub downloads in the store (a distillation student can be one); null until listed. */
  students: CachedModel[] | null;
  setDraft: (patch: Partial<CompressDraft>) => void;
  /** Lists the runs' adapters and the downloaded models distillation can use. */
  loadDistillChoices: () => Promise<void>;
  run: () => Promise<void>;
  cancel: () => void;
  download: () => Promise<void>;
  cancelDownload: () => void;
  /** Loads the result as the model (Playground, Train and a further compression then use it). */
  loadResult: () => Promise<void>;
}

export const useCompress = create<CompressState>((set, get) => ({
  draft: DEFAULT_DRAFT,
  running: null,
  result: null,
  resultOf: null,
  downloading: null,
  notice: null,
  adapters: null,
  students: null,

  setDraft(patch) {
    set({ draft: { ...get().draft, ...patch } });
  },

  async loadDistillChoices() {
    const [r, cached] = await Promise.all([getEngine().listAdapters(), getEngine().listCachedModels()]);
    // Adapters of runs only (dropped files stay with the Playground); prompt tuning's virtual tokens do not fit distillation.
    set({
      adapters: r.ok ? r.value.filter((a) => a.source === 'run' && a.error === null && a.method !== 'prompt') : [],
      students: cached.ok ? cached.value.models.filter((m) => m.complete) : [],
    });
  },

  async run() {
    if (get().running || get().downloading) return;
    const data = useData.getState();
    const hasDataset = data.file !== null && data.result !== null && !data.result.error;
    const loaded = useModels.getState().loaded;
    const layers = loaded?.layers ?? 0;
    const parsed = checkDraft(draftFor(layers, get().draft), { layers, hasDataset });
    if (!parsed.ok) {
      set({ notice: { kind: 'error', text: Object.values(parsed.errors)[0] ?? 'Check the settings.' } });
      return;
    }
    const abort = abortHandle();
    set({ running: { abort, progress: null }, notice: null });
    const s = data.settings;
    let dataset: CompressDataset | null = null;
    if (parsed.value.data === 'dataset' && data.file) {
      dataset = {
        file: data.file,
        fileName: data.file.name,
        import: {
          fileFormat: s.fileFormat ?? undefined,
          format: s.format ?? undefined,
          mapping: Object.keys(s.mapping).length > 0 ? (s.mapping as Record<string, string>) : undefined,
          trainOnPrompt: s.trainOnPrompt,
          skipBadRows: s.skipBadRows,
        },
      };
    } else if (parsed.value.data === 'sample') {
      let file: Blob | null = null;
      let why = '';
      try {
        const res = await fetch(`${import.meta.env.BASE_URL}${SAMPLE_DATASET}`);
        if (res.ok) file = await res.blob();
        else why = `HTTP ${res.status}`;
      } catch (e) {
        why = e instanceof Error ? e.message : String(e);
      }
      if (!file) {
        set({ running: null, notice: { kind: 'error', text: `The sample dataset could not be read (${why}).`, hint: 'Import a dataset on the Data screen instead.' } });
        return;
      }
      dataset = { file, fileName: SAMPLE_DATASET.split('/').pop() as string, import: { trainOnPrompt: false, skipBadRows: false } };
    }
    const onProgress = progressCallback((p: CompressProgress) => {
      if (get().running?.abort === abort) set({ running: { abort, progress: p } });
    });
    const r = await getEngine().compressModel({ technique: parsed.value.technique, recovery: parsed.value.recovery, dataset }, onProgress, abort.token);
    if (r.ok) {
      set({ running: null, result: r.value, resultOf: loaded?.name ?? null, notice: null });
      // Only the latest compressed model is kept in the store, and the one loaded as the model.
      void getEngine().keepCompressedModel(r.value.id);
    } else if (r.error.name === 'CancelledError') {
      set({ running: null, notice: { kind: 'ok', text: 'The compression was cancelled; nothing was kept.' } });
    } else {
      set({ running: null, notice: { kind: 'error', text: r.error.message, hint: r.error.hint } });
    }
  },

  cancel() {
    get().running?.abort.abort();
  },

  async download() {
    const result = get().result;
    if (!result || get().downloading || get().running) return;
    const abort = abortHandle();
    set({ downloading: { abort, progress: null }, notice: null });
    const onProgress = progressCallback((p: ExportProgress) => {
      if (get().downloading?.abort === abort) set({ downloading: { abort, progress: p } });
    });
    const r = await getEngine().downloadCompressedModel(result.id, onProgress, abort.token);
    set({ downloading: null });
    if (r.ok) {
      saveBlob(r.value.blob, r.value.fileName);
      set({ notice: { kind: 'ok', text: downloadNotice(r.value.fileName, r.value.bytes, result.files, formatBytes) } });
    } else if (r.error.name === 'CancelledError') {
      set({ notice: { kind: 'ok', text: 'The download was cancelled.' } });
    } else {
      set({ notice: { kind: 'error', text: r.error.message, hint: r.error.hint } });
    }
  },

  cancelDownload() {
    get().downloading?.abort.abort();
  },

  async loadResult() {
    const { result, resultOf } = get();
    if (!result || get().running || get().downloading) return;
    const name = `${resultOf ?? 'Compressed model'}, ${result.label}`;
    await useModels.getState().loadCompressed(result.id, name);
    const m = useModels.getState();
    if (m.loaded?.id === result.modelId) {
      set({ notice: { kind: 'ok', text: `Loaded "${name}" as the model: the Playground, Train and Compress screens use it now.` } });
    } else if (m.loadOutcome) {
      const e = m.loadOutcome.error;
      set({ notice: { kind: m.loadOutcome.kind, text: e ? `${m.loadOutcome.text} ${e.message}` : m.loadOutcome.text, hint: e?.hint } });
    }
  },
}));
