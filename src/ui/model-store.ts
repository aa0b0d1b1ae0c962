// UI state of the Model screen (zustand): the curated Hub list with its estimates, the cached models
// and the site's storage, the loaded model, the download and the load in progress with their abort
// handles, and the Hub settings. It calls the worker and keeps what comes back; it computes nothing.
//
// The Hub endpoint is https://huggingface.co unless the page is opened with `?hubEndpoint=URL`
// (a mirror, or a local stand-in in tests) or one is saved in the settings field (localStorage).

import { create } from 'zustand';
import type { SerializedError } from '../engine/errors.ts';
import { requestPersistentStorage } from '../engine/store/persist.ts';
import type { CachedModels, CatalogItem, DownloadStatus, LoadProgress, ModelSummary, Result } from '../worker/engine-api.ts';
import { type AbortHandle, abortHandle, progressCallback } from '../worker/client.ts';
import { getEngine } from './store.ts';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';
const ENDPOINT_KEY = 'whetstone.hubEndpoint';

/** The endpoint from `?hubEndpoint=`, else the saved one, else the Hub. */
function initialEndpoint(): string {
  const fromQuery = new URLSearchParams(location.search).get('hubEndpoint');
  if (fromQuery) return fromQuery;
  try {
    return localStorage.getItem(ENDPOINT_KEY) || DEFAULT_HUB_ENDPOINT;
  } catch {
    return DEFAULT_HUB_ENDPOINT;
  }
}

export interface Job<P> {
  /** What is being loaded or downloaded, for display. */
  label: string;
  progress: P | null;
  abort: AbortHandle;
}

export interface Outcome {
  kind: 'ok' | 'error';
  text: string;
  error?: SerializedError;
}

interface ModelState {
  catalog: CatalogItem[] | null;
  cached: CachedModels | null;
  cachedError: SerializedError | null;
  loaded: ModelSummary | null;
  loading: Job<LoadProgress> | null;
  loadOutcome: Outcome | null;
  download: (Job<DownloadStatus> & { id: string }) | null;
  downloadOutcome: Outcome | null;
  persisted: boolean | null;
  hubEndpoint: string;
  token: string;
  refresh: () => Promise<void>;
  loadDemo: () => Promise<void>;
  loadCached: (id: string) => Promise<void>;
  /** Loads the Compress screen's stored result `id` as the model, named `name`. */
  loadCompressed: (id: string, name: string) => Promise<void>;
  loadFiles: (files: File[]) => Promise<void>;
  cancelLoad: () => void;
  startDownload: (id: string) => Promise<void>;
  cancelDownload: () => void;
  deleteCached: (id: string) => Promise<void>;
  askPersistence: () => Promise<void>;
  setHubEndpoint: (endpoint: string) => void;
  setToken: (token: string) => void;
}

export const useModels = create<ModelState>((set, get) => {
  /** Runs one model load; a later load replaces the loaded model. */
  const load = async (label: string, call: (onProgress: (p: LoadProgress) => void, abort: AbortHandle) => Promise<Result<ModelSummary>>) => {
    if (get().loading) return;
    const abort = abortHandle();
    set({ loading: { label, progress: null, abort }, loadOutcome: null });
    const onProgress = progressCallback((p: LoadProgress) => {
      const job = get().loading;
      if (job && job.abort === abort) set({ loading: { ...job, progress: p } });
    });
    const r = await call(onProgress, abort);
    const loaded = await getEngine().loadedModel();
    set({
      loading: null,
      loaded,
      loadOutcome: r.ok
        ? null
        : r.error.name === 'CancelledError'
          ? { kind: 'ok', text: `Loading ${label} was cancelled${loaded ? '' : '; no model is loaded now'}.` }
          : { kind: 'error', text: `Could not load ${label}.`, error: r.error },
    });
  };

  return {
    catalog: null,
    cached: null,
    cachedError: null,
    loaded: null,
    loading: null,
    loadOutcome: null,
    download: null,
    downloadOutcome: null,
    persisted: null,
    hubEndpoint: initialEndpoint(),
    token: '',

    async refresh() {
      const engine = getEngine();
      // Each part shows as soon as it arrives: the catalog waits for the GPU's limits, the store does not.
      await Promise.all([
        engine.loadedModel().then((loaded) => set({ loaded })),
        engine.listCachedModels().then((cached) =>
          set(
            cached.ok
              ? { cached: cached.value, cachedError: null, persisted: cached.value.storage?.persisted ?? null }
              : { cachedError: cached.error },
          ),
        ),
        engine.hubCatalog().then((catalog) => set({ catalog })),
      ]);
    },

    loadDemo: () => load('the demo model', (p, a) => getEngine().loadDemoModel(p, a.token)),
    loadCached: (id) => load(id.replace(/^hub:/, ''), (p, a) => getEngine().loadCachedModel(id, p, a.token)),
    loadCompressed: (id, name) => load(name, (p, a) => getEngine().loadCompressedModel(id, name, p, a.token)),
    loadFiles: (files) => load(files.length === 1 ? files[0].name : `${files.length} files`, (p, a) => getEngine().loadModelFiles(files, p, a.token)),

    cancelLoad() {
      get().loading?.abort.abort();
    },

    async startDownload(id) {
      if (get().download) return;
      const abort = abortHandle();
      set({ download: { id, label: id, progress: null, abort }, downloadOutcome: null });
      void get().askPersistence();
      const onProgress = progressCallback((p: DownloadStatus) => {
        const job = get().download;
        if (job && job.abort === abort) set({ download: { ...job, progress: p } });
      });
      const endpoint = get().hubEndpoint.trim();
      const r = await getEngine().downloadHubModel({ id, token: get().token.trim() || undefined, endpoint: endpoint || undefined }, onProgress, abort.token);
      set({
        download: null,
        downloadOutcome: r.ok
          ? { kind: 'ok', text: `Downloaded ${r.value.repo} into the cache.` }
          : r.error.name === 'CancelledError'
            ? { kind: 'ok', text: `Download of ${id} cancelled; the bytes saved so far are kept and a new download resumes from them.` }
            : { kind: 'error', text: `Could not download ${id}.`, error: r.error },
      });
      await get().refresh();
    },

    cancelDownload() {
      get().download?.abort.abort();
    },

    async deleteCached(id) {
      const r = await getEngine().deleteCachedModel(id);
      if (r.ok) set({ cached: r.value, cachedError: null });
      else set({ cachedError: r.error });
    },

    async askPersistence() {
      const granted = await requestPersistentStorage();
      if (granted !== null) set({ persisted: granted });
    },

    setHubEndpoint(endpoint) {
      set({ hubEndpoint: endpoint });
      try {
        if (endpoint.trim() && endpoint.trim() !== DEFAULT_HUB_ENDPOINT) localStorage.setItem(ENDPOINT_KEY, endpoint.trim());
        else localStorage.removeItem(ENDPOINT_KEY);
      } catch {
        // Storage may be blocked; the endpoint then lasts for this page only.
      }
    },

    setToken(token) {
      set({ token });
    },
  };
});
