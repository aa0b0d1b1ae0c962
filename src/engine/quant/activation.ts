// INT8 quantization of the projections' input activations at run time, simulated in f32 (each value
// replaced by its point on a symmetric 8-bit grid, kernels/quant_act.ts): dynamic (one step per
// token, from that token's max |x|) or static (one step per projection, calibrated beforehand as the
// largest max |x| seen on a calibration set, then fixed). Applied through the model's projection-
// input hook, so every projection — and an adapter on it — reads the quantized input. With a
// weight-quantized base this is W4A8 / W8A8 numerics. On a recording tape the gradient passes
// straight through (dx = dy), the straight-through estimator, which activationQuantAware uses to
// train an adapter under the quantization it will run with (quantization-aware training).

import { Tape, type Var } from '../autograd/tape.ts';
import { scratch } from '../autograd/ops.ts';
import { InvalidArgumentError } from '../errors.ts';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor } from '../gpu/tensor.ts';
import { affine } from '../kernels/elementwise.ts';
import { fakeQuantInt8, rowScales } from '../kernels/quant_act.ts';
import { type LlamaModel, type ProjectionInputHook, type TokenRow, makeInputs } from '../model/llama.ts';
import { type TrainableAdapter, adapterForward } from '../train/evaluate.ts';

/** x on the INT8 grid, per token (dynamic) or with a fixed step; backward passes dy straight through. */
export function fakeQuantActivations(tape: Tape, b: Batch, x: Var, staticScale?: number): Var {
  const [rows, cols] = x.value.shape;
  const scales = scratch(b, [Math.max(1, rows)], 'actq.scales'); // (N)
  if (staticScale === undefined) rowScales(b, x.value, scales);
  const y = scratch(b, [rows, cols], 'actq'); // (N, K)
  fakeQuantInt8(b, x.value, y, scales, staticScale);
  scales.release();
  return tape.record('fakeQuantActivations', [x], [y], [], (bb, [dy], needs) => {
    if (!needs[0]) return [null];
    const dx = scratch(bb, [rows, cols], 'actq.dx'); // straight-through: dx = dy
    affine(bb, dy!, dx, 1, 0);
    return [dx];
  })[0];
}

/** The projection-input hook of dynamic per-token INT8 activations. */
export function dynamicInt8Activations(): ProjectionInputHook {
  return (tape, b, _module, x) => fakeQuantActivations(tape, b, x);
}

/** The projection-input hook of static INT8 activations with calibrated steps by module name. */
export function staticInt8Activations(steps: ReadonlyMap<string, number>): ProjectionInputHook {
  return (tape, b, module, x) => {
    const s = steps.get(module);
    if (s === undefined) throw new InvalidArgumentError(`No calibrated INT8 activation scale for "${module}"; calibrate on the same model.`);
    return fakeQuantActivations(tape, b, x, s);
  };
}

/**
 * Calibrates static INT8 activation steps: runs the model forward (no tape recording) over `rows`
 * and returns, per projection module, the largest max |x| / 127 over every token of its input.
 */
export async function calibrateInt8Activations(model: LlamaModel, rows: readonly TokenRow[]): Promise<Map<string, number>> {
  if (rows.length === 0) throw new InvalidArgumentError('Calibration needs at least one row.');
  const steps = new Map<string, number>();
  // One row per pass: a padded batch would let padding positions raise the maxima.
  for (const row of rows) {
    const inputs = makeInputs(model, [{ inputIds: row.inputIds }], { targets: false });
    const seen: { module: string; scales: Tensor }[] = [];
    try {
      const tape = new Tape();
      tape.recording = false;
      const b = new Batch(model.gpu, 'actq.calibrate');
      const hook: ProjectionInputHook = (_t, bb, module, x) => {
        const scales = createTensor(model.gpu, [x.value.shape[0]], 'f32', { label: `actq.calibrate.${module}` }); // (N)
        rowScales(bb, x.value, scales);
        seen.push({ module, scales });
        return x;
      };
      model.forward(tape, b, inputs, { projectionInput: hook });
      tape.releaseUnrecorded();
      b.submit();
      for (const s of seen) {
        const values = await readTensor(s.scales as Tensor & { dtype: 'f32' });
        let m = steps.get(s.module) ?? 0;
        for (const v of values) m = Math.max(m, v);
        steps.set(s.module, m);
      }
    } finally {
      for (const s of seen) s.scales.release();
      inputs.release();
    }
  }
  return steps;
}

/**
 * Quantization-aware training of an adapter for INT8 activations: the same adapter (its parameters,
 * leaves and training mode are `adapter`'s), whose forward passes also quantize every projection's
 * input per token, with the straight-through gradient. Train with it, then evaluate with
 * dynamicInt8Activations(); compare with the adapter trained without it (post-training quantization).
 */
export function activationQuantAware(adapter: TrainableAdapter): TrainableAdapter {
  const hook = dynamicInt8Activations();
  return {
    get params() {
      return adapter.params;
    },
    get training() {
      return adapter.training;
    },
    set training(on: boolean) {
      adapter.training = on;
    },
    leaves: (tape) => adapter.leaves(tape),
    adaptRows: adapter.adaptRows?.bind(adapter),
    paramsChanged: adapter.paramsChanged?.bind(adapter),
    forwardOptions(tape, leaves, step) {
      const options = adapterForward(adapter, tape, leaves, step);
      if (options.projectionInput) throw new InvalidArgumentError('This adapter rewrites projection inputs itself; INT8 activation training applies to LoRA-style adapters.');
      return { ...options, projectionInput: hook };
    },
  };
}
