// The studio's engine worker: an EngineApi on the browser's WebGPU, exposed through comlink, with
// downloads and training runs kept in IndexedDB and the demo model served beside the studio (public/models/demo/).
import { expose } from 'comlink';
import { openBrowserGpu } from '../engine/gpu/browser.ts';
import { IdbRunTables, estimateStorage, openIdbStore } from '../engine/store/store-idb.ts';
import { EngineApi } from './engine-api.ts';
import { IdbRunStore } from './runs.ts';

const store = openIdbStore();
const runs = new IdbRunStore(new IdbRunTables());

expose(
  new EngineApi(() => openBrowserGpu(), {
    store: () => store,
    demoModelUrl: new URL(`${import.meta.env.BASE_URL}models/demo/`, self.location.origin).href,
    storageReport: estimateStorage,
    runs: () => runs,
    deviceMemoryBytes: () => {
      const gib = (navigator as { deviceMemory?: number }).deviceMemory;
      return typeof gib === 'number' && gib > 0 ? gib * 1024 ** 3 : null;
    },
  }),
);
