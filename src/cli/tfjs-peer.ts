// TensorFlow.js's WebGPU backend on the same Node WebGPU adapter, as the benchmark's peer: the same
// matmul shapes run through it in the same process, so the ratio ours/theirs says something even
// on a CPU adapter. Benchmark-only; the engine never uses TensorFlow.js.

import { create, globals } from 'webgpu';

export interface TfjsPeer {
  /** Milliseconds for one y = op(a)·op(b) of the given sizes, timed to queue completion. */
  timeMatmul(M: number, N: number, K: number, transA: boolean, transB: boolean, repeats: number): Promise<number[]>;
  dispose(): void;
}

const instances: GPU[] = [];

export async function startTfjsPeer(): Promise<TfjsPeer> {
  Object.assign(globalThis, globals);
  const instance = create([]);
  instances.push(instance);
  const nav = ((globalThis as { navigator?: object }).navigator ??= {}) as object;
  Object.defineProperty(nav, 'gpu', { value: instance, configurable: true });
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js could not start its WebGPU backend on this adapter.');
  await tf.ready();
  const backend = tf.backend() as unknown as { device: GPUDevice; endComputePassEncoder(): void; submitQueue(): void };

  return {
    async timeMatmul(M, N, K, transA, transB, repeats) {
      const a = tf.randomNormal(transA ? [K, M] : [M, K]);
      const b = tf.randomNormal(transB ? [N, K] : [K, N]);
      const times: number[] = [];
      for (let i = 0; i < repeats + 1; i++) {
        const t0 = performance.now();
        const c = tf.matMul(a, b, transA, transB);
        backend.endComputePassEncoder();
        backend.submitQueue();
        await backend.device.queue.onSubmittedWorkDone();
        const dt = performance.now() - t0;
        c.dispose();
        if (i > 0) times.push(dt); // the first run compiles the pipeline
      }
      a.dispose();
      b.dispose();
      return times;
    },
    dispose() {
      tf.disposeVariables();
    },
  };
}
