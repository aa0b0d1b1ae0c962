// EngineApi: the one interface the studio and the CLI use to reach the engine. In the browser it
// lives in a Web Worker behind comlink (engine.worker.ts); in Node the CLI constructs it directly.
// Results are plain, cloneable objects; errors that the UI must explain come back as values.

import { type SerializedError, describeError } from '../engine/errors.ts';
import type { AllocatorStats } from '../engine/gpu/allocator.ts';
import type { AdapterSummary, Gpu } from '../engine/gpu/device.ts';
import { type SelfTestReport, runSelfTest } from '../engine/selftest.ts';

export type GpuStatus = { ok: true; adapter: AdapterSummary } | { ok: false; error: SerializedError };

export class EngineApi {
  private gpu: Promise<Gpu> | null = null;
  private readonly open: () => Promise<Gpu>;

  constructor(open: () => Promise<Gpu>) {
    this.open = open;
  }

  /** Opens the GPU (once) and describes it, or says why there is none. */
  async connect(): Promise<GpuStatus> {
    try {
      const gpu = await this.device();
      return { ok: true, adapter: gpu.summary };
    } catch (e) {
      this.gpu = null;
      return { ok: false, error: describeError(e) };
    }
  }

  /** Runs the kernel self-test against the float64 reference. */
  async selfTest(seed?: number): Promise<SelfTestReport> {
    return runSelfTest(await this.device(), seed);
  }

  async memory(): Promise<AllocatorStats> {
    return (await this.device()).allocator.stats();
  }

  private device(): Promise<Gpu> {
    if (!this.gpu) this.gpu = this.open();
    return this.gpu;
  }
}
