// UI state of the Compress screen (zustand): the chosen technique and its options as typed text
// (compress-form.ts), the run in progress with its stage and abort handle, the last result (the
// before/after table) and the zip download in progress.

import { create } from 'zustand';
import type { CompressProgress, CompressResult, ExportProgress } from '../worker/engine-api.ts';
import { type AbortHandle, abortHandle, progressCallback } from '../worker/client.ts';
import { useData } from './data-store.ts';
import { type CompressDraft, DEFAULT_DRAFT, techniqueFromDraft } from './compress-form.ts';
import { getEngine } from './store.ts';
import { saveBlob } from './train-store.ts';

export type Notice = { kind: 'ok' | 'error'; text: string; hint?: string };

interface CompressState {
  draft: CompressDraft;
  running: { abort: AbortHandle; progress: CompressProgress | null } | null;
  result: CompressResult | null;
  downloading: { abort: AbortHandle; progress: ExportProgress | null } | null;
  notice: Notice | null;
  setDraft: (patch: Partial<CompressDraft>) => void;
  run: () => Promise<void>;
  cancel: () => void;
  download: () => Promise<void>;
  cancelDownload: () => void;
}

export const useCompress = create<CompressState>((set, get) => ({
  draft: DEFAULT_DRAFT,
  running: null,
  result: null,
  downloading: null,
  notice: null,

  setDraft(patch) {
    set({ draft: { ...get().draft, ...patch } });
  },

  async run() {
    if (get().running || get().downloading) return;
    const parsed = techniqueFromDraft(get().draft);
    if ('error' in parsed) {
      set({ notice: { kind: 'error', text: parsed.error } });
      return;
    }
    const data = useData.getState();
    const s = data.settings;
    const dataset =
      data.file && data.result && !data.result.error
        ? {
            file: data.file,
            fileName: data.file.name,
            import: {
              fileFormat: s.fileFormat ?? undefined,
              format: s.format ?? undefined,
              mapping: Object.keys(s.mapping).length > 0 ? (s.mapping as Record<string, string>) : undefined,
              trainOnPrompt: s.trainOnPrompt,
              skipBadRows: s.skipBadRows,
            },
          }
        : null;
    const abort = abortHandle();
    set({ running: { abort, progress: null }, notice: null });
    const onProgress = progressCallback((p: CompressProgress) => {
      if (get().running?.abort === abort) set({ running: { abort, progress: p } });
    });
    const r = await getEngine().compressModel({ technique: parsed.technique, dataset }, onProgress, abort.token);
    if (r.ok) {
      const old = get().result;
      set({ running: null, result: r.value, notice: null });
      // Only the latest compressed model is kept in the store.
      if (old) void getEngine().deleteCompressedModel(old.id);
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
      set({ notice: { kind: 'ok', text: `Downloaded ${r.value.fileName} (${r.value.files.join(', ')}).` } });
    } else if (r.error.name === 'CancelledError') {
      set({ notice: { kind: 'ok', text: 'The download was cancelled.' } });
    } else {
      set({ notice: { kind: 'error', text: r.error.message, hint: r.error.hint } });
    }
  },

  cancelDownload() {
    get().downloading?.abort.abort();
  },
}));
