// The Gpu for *.gpu.test.ts files: one Node (Dawn) device per test file and option set. A machine
// without a WebGPU adapter makes every GPU test fail with instructions; nothing is skipped.

import { GpuUnavailableError, WhetstoneError } from '../errors.ts';
import { type Gpu, type GpuOptions } from './device.ts';
import { openNodeGpu } from './node.ts';

const opened = new Map<string, Promise<Gpu>>();

/** The shared test device (or one with the given options). Rejects with GpuUnavailableError. */
export function testGpu(options: GpuOptions = {}): Promise<Gpu> {
  const key = JSON.stringify(options);
  let p = opened.get(key);
  if (!p) {
    p = openNodeGpu(options).catch((e: unknown) => {
      // Test runners print the message, not the hint: put the instructions in the message.
      if (e instanceof WhetstoneError && e.hint) {
        throw new GpuUnavailableError(`GPU tests need a WebGPU adapter. ${e.message} How to get one: ${e.hint}`, { cause: e });
      }
      throw e;
    });
    opened.set(key, p);
  }
  return p;
}
