// UI state of the Data screen (zustand): the chosen file, the import settings (file type and
// example format overrides, column mapping, sequence length, bad-row handling), the import in
// progress with its abort handle, and the last import's result from the worker. A newer import
// makes the result of an older one stale; stale results are dropped.

import { create } from 'zustand';
import type { PrepareProgress } from '../engine/data/dataset.ts';
import type { ColumnMapping, ExampleFormat } from '../engine/data/formats.ts';
import type { DatasetFileFormat } from '../engine/data/readers.ts';
import type { DatasetImport } from '../worker/engine-api.ts';
import { type AbortHandle, abortHandle, progressCallback } from '../worker/client.ts';
import { getEngine } from './store.ts';

export interface ImportSettings {
  fileFormat: DatasetFileFormat | null;
  format: ExampleFormat | null;
  mapping: ColumnMapping;
  maxLength: number;
  skipBadRows: boolean;
  trainOnPrompt: boolean;
}

export const DEFAULT_SETTINGS: ImportSettings = { fileFormat: null, format: null, mapping: {}, maxLength: 512, skipBadRows: false, trainOnPrompt: false };

interface DataState {
  file: File | null;
  settings: ImportSettings;
  importing: { abort: AbortHandle; progress: PrepareProgress | null } | null;
  result: DatasetImport | null;
  importFile: (file: File) => Promise<void>;
  reimport: () => Promise<void>;
  cancel: () => void;
  setSettings: (patch: Partial<ImportSettings>) => void;
}

let generation = 0;

export const useData = create<DataState>((set, get) => ({
  file: null,
  settings: DEFAULT_SETTINGS,
  importing: null,
  result: null,

  async importFile(file) {
    // A new file starts from detection: overrides and mapping belong to the previous file.
    set({ file, settings: { ...DEFAULT_SETTINGS, maxLength: get().settings.maxLength, skipBadRows: get().settings.skipBadRows, trainOnPrompt: get().settings.trainOnPrompt } });
    await get().reimport();
  },

  async reimport() {
    const file = get().file;
    if (!file) return;
    get().importing?.abort.abort();
    const mine = ++generation;
    const abort = abortHandle();
    set({ importing: { abort, progress: null } });
    const s = get().settings;
    const onProgress = progressCallback((p: PrepareProgress) => {
      if (mine === generation && get().importing) set({ importing: { abort, progress: p } });
    });
    const result = await getEngine().importDataset(
      file,
      {
        fileFormat: s.fileFormat ?? undefined,
        format: s.format ?? undefined,
        mapping: Object.keys(s.mapping).length > 0 ? s.mapping : undefined,
        maxLength: s.maxLength,
        skipBadRows: s.skipBadRows,
        trainOnPrompt: s.trainOnPrompt,
        previewCount: 4,
      },
      onProgress,
      abort.token,
    );
    if (mine !== generation) return;
    set({ importing: null, result });
  },

  cancel() {
    get().importing?.abort.abort();
  },

  setSettings(patch) {
    set({ settings: { ...get().settings, ...patch } });
  },
}));
