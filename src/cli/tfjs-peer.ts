// TensorFlow.js's WebGPU backend on the same Node WebGPU adapter, as the benchmark's peer: the same
// matmul shapes run through it in the same process, so the ratio ours/theirs says something even
// on a CPU adapter. Benchmark-only; the engine never uses TensorFlow.js.

import { create, globals } from 'webgpu';

/** One matmul shape with its operands resident on the peer's device. */
export interface TfjsMatmul {
  /** Milliseconds for one C = op(A)·op(B), timed from the call to queue completion. */
  time(): Promise<number>;
  dispose(): void;
}

export interface TfjsPeer {
  /** Uploads random operands of the given sizes; time() then runs the product once. */
  prepareMatmul(M: number, N: number, K: number, transA: boolean, transB: boolean): TfjsMatmul;
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
    prepareMatmul(M, N, K, transA, transB) {
      const a = tf.randomNormal(transA ? [K, M] : [M, K]);
      const b = tf.randomNormal(transB ? [N, K] : [K, N]);
      return {
        async time() {
          const t0 = performance.now();
          const c = tf.matMul(a, b, transA, transB);
          backend.endComputePassEncoder();
          backend.submitQueue();
          await backend.device.queue.onSubmittedWorkDone();
          const dt = performance.now() - t0;
          c.dispose();
          return dt;
        },
        dispose() {
          a.dispose();
          b.dispose();
        },
      };
    },
    dispose() {
      tf.disposeVariables();
    },
  };
}
