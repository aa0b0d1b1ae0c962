// UI state of the studio shell (zustand): the selected screen, the engine connection and the GPU
// self-test. It holds results the worker sent; it computes nothing. The Model and Data screens keep
// their own stores (model-store.ts, data-store.ts) and reach the worker through `engine()`.
import { create } from 'zustand';
import type { SerializedError } from '../engine/errors.ts';
import type { AdapterSummary } from '../engine/gpu/device.ts';
import type { SelfTestReport } from '../engine/selftest.ts';
import { type EngineClient, startEngineWorker } from '../worker/client.ts';

export type GpuPhase = 'connecting' | 'ready' | 'unavailable';
export type Screen = 'model' | 'data' | 'train' | 'export' | 'playground' | 'compress' | 'gpu';
export const SCREENS: readonly Screen[] = ['model', 'data', 'train', 'export', 'playground', 'compress', 'gpu'];
export type SelfTestPhase = 'idle' | 'running' | 'done' | 'failed';

interface StudioState {
  screen: Screen;
  engine: EngineClient | null;
  gpuPhase: GpuPhase;
  adapter: AdapterSummary | null;
  gpuError: SerializedError | null;
  selfTestPhase: SelfTestPhase;
  selfTest: SelfTestReport | null;
  selfTestError: string | null;
  setScreen: (screen: Screen) => void;
  connect: () => Promise<void>;
  runSelfTest: () => Promise<void>;
}

/** The screen named by the page's hash (#model, #data, #train, #export, #playground, #compress, #gpu), or the Model screen. */
function screenFromHash(): Screen {
  const h = typeof location === 'undefined' ? '' : location.hash.slice(1);
  return (SCREENS as readonly string[]).includes(h) ? (h as Screen) : 'model';
}

export const useStudio = create<StudioState>((set, get) => ({
  screen: screenFromHash(),
  engine: null,
  gpuPhase: 'connecting',
  adapter: null,
  gpuError: null,
  selfTestPhase: 'idle',
  selfTest: null,
  selfTestError: null,

  setScreen(screen) {
    set({ screen });
    if (location.hash !== `#${screen}`) history.replaceState(null, '', `#${screen}`);
  },

  async connect() {
    const engine = getEngine();
    set({ gpuPhase: 'connecting', gpuError: null });
    const status = await engine.connect();
    if (status.ok) {
      set({ gpuPhase: 'ready', adapter: status.adapter });
      await get().runSelfTest();
    } else {
      set({ gpuPhase: 'unavailable', gpuError: status.error });
    }
  },

  async runSelfTest() {
    const engine = get().engine;
    if (!engine || get().selfTestPhase === 'running') return;
    set({ selfTestPhase: 'running', selfTestError: null });
    try {
      const report = await engine.selfTest();
      set({ selfTest: report, selfTestPhase: 'done' });
    } catch (e) {
      set({ selfTestPhase: 'failed', selfTestError: e instanceof Error ? e.message : String(e) });
    }
  },
}));

/** The engine worker's API, started on first use. */
export function getEngine(): EngineClient {
  let engine = useStudio.getState().engine;
  if (!engine) {
    engine = startEngineWorker();
    useStudio.setState({ engine });
  }
  return engine;
}
