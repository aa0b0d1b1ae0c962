// UI state of the studio shell (zustand): the engine connection and the GPU self-test. It holds
// results the worker sent; it computes nothing.
import { create } from 'zustand';
import type { SerializedError } from '../engine/errors.ts';
import type { AdapterSummary } from '../engine/gpu/device.ts';
import type { SelfTestReport } from '../engine/selftest.ts';
import { type EngineClient, startEngineWorker } from '../worker/client.ts';

export type GpuPhase = 'connecting' | 'ready' | 'unavailable';
export type SelfTestPhase = 'idle' | 'running' | 'done' | 'failed';

interface StudioState {
  engine: EngineClient | null;
  gpuPhase: GpuPhase;
  adapter: AdapterSummary | null;
  gpuError: SerializedError | null;
  selfTestPhase: SelfTestPhase;
  selfTest: SelfTestReport | null;
  selfTestError: string | null;
  connect: () => Promise<void>;
  runSelfTest: () => Promise<void>;
}

export const useStudio = create<StudioState>((set, get) => ({
  engine: null,
  gpuPhase: 'connecting',
  adapter: null,
  gpuError: null,
  selfTestPhase: 'idle',
  selfTest: null,
  selfTestError: null,

  async connect() {
    let engine = get().engine;
    if (!engine) {
      engine = startEngineWorker();
      set({ engine });
    }
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
