// Calibration statistics for pruning: the L2 norm of every input channel of every projection
// (q/k/v/o, gate/up/down of each layer) over the tokens of a calibration set, ‖X_j‖₂ as Wanda uses
// it. The model runs forward only, through its ProjectionHook; at each projection the squares of
// the input (N, K) are summed over the real tokens on the GPU (a masked (1, N) · (N, K) product
// accumulated into one (1, K) buffer per module), and the sums are read once at the end. Padding
// tokens are masked out. It changes no weight; prune.ts uses the norms.

import { Tape } from '../autograd/tape.ts';
import { CancelledError, InvalidArgumentError } from '../errors.ts';
import { Batch } from '../gpu/batch.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { fill, mul } from '../kernels/elementwise.ts';
import { matmul } from '../kernels/matmul.ts';
import { type LlamaModel, type ProjectionHook, type TokenRow, makeInputs, planBatches, readF32 } from '../model/llama.ts';

/** Input-channel L2 norms by module name (e.g. "model.layers.0.mlp.down_proj"), each (in_features). */
export type ActivationNorms = Map<string, Float64Array>;

export interface CalibrateOptions {
  /** Most padded tokens per forward pass. Default 2048. */
  batchTokens?: number;
  signal?: AbortSignal;
  onProgress?: (p: { rowsDone: number; rowsTotal: number }) => void;
}

/** ‖X_j‖₂ of every projection input over every token of `rows` (no labels needed). */
export async function activationNorms(model: LlamaModel, rows: readonly TokenRow[], options: CalibrateOptions = {}): Promise<ActivationNorms> {
  model.assertLive();
  if (rows.length === 0) throw new InvalidArgumentError('Calibration needs at least one row of tokens.');
  const gpu = model.gpu;
  const sums = new Map<string, Tensor>(); // module → (1, K) Σ x²
  let rowsDone = 0;
  try {
    for (const batch of planBatches(rows.map((r) => r.inputIds.length), options.batchTokens ?? 2048)) {
      if (options.signal?.aborted) throw new CancelledError('Calibration was cancelled.');
      const inputs = makeInputs(model, batch.map((i) => ({ inputIds: rows[i].inputIds })), { targets: false });
      const N = inputs.B * inputs.T;
      const host = new Float32Array(N); // (N) 1 for a token, 0 for padding
      batch.forEach((r, k) => host.fill(1, k * inputs.T, k * inputs.T + rows[r].inputIds.length));
      const mask = tensorFromArray(gpu, host, [1, N], 'f32', { label: 'calibrate.mask' }); // (1, N)
      try {
        const tape = new Tape();
        tape.recording = false;
        const b = new Batch(gpu, 'calibrate');
        const hook: ProjectionHook = (_t, bb, module, x, y) => {
          const K = x.value.shape[1];
          let acc = sums.get(module);
          if (!acc) {
            acc = createTensor(gpu, [1, K], 'f32', { label: `calibrate.${module}` });
            fill(bb, acc, 0);
            sums.set(module, acc);
          }
          const sq = createTensor(gpu, [N, K], 'f32', { transient: true, label: 'calibrate.sq' }); // (N, K)
          mul(bb, x.value, x.value, sq);
          matmul(bb, mask, sq, acc, { transB: false, accumulate: true }); // (1, K) += mask · x²
          sq.release();
          return y;
        };
        const h = model.forward(tape, b, inputs, { projection: hook }); // (N, C)
        tape.releaseUnrecorded([h]);
        h.value.release();
        b.submit();
        await gpu.sync();
      } finally {
        mask.release();
        inputs.release();
      }
      rowsDone += batch.length;
      options.onProgress?.({ rowsDone, rowsTotal: rows.length });
    }
    const out: ActivationNorms = new Map();
    for (const [module, t] of sums) out.set(module, Float64Array.from(await readF32(t), (v) => Math.sqrt(Math.max(0, v))));
    return out;
  } finally {
    for (const t of sums.values()) t.release();
  }
}
