// The AdamW optimizer object on the GPU against the float64 reference (reference/adamw.ts): clipped
// updates over several tensors with per-tensor weight decay, the norm measured without clipping,
// and a state exported, imported into a fresh optimizer and continued, equal to an uninterrupted run.

import { describe, expect, it } from 'vitest';
import { Batch } from '../gpu/batch.ts';
import type { Gpu } from '../gpu/device.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, tensorFromArray, writeTensor } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { Rng } from '../random.ts';
import { adamwStep, clipGradNorm } from '../reference/adamw.ts';
import { relL2 } from '../reference/compare.ts';
import { AdamWOptimizer, type OptimizerParam } from './optimizer.ts';

const SHAPES: [string, number[]][] = [
  ['a', [5, 7]],
  ['b', [300]],
  ['c', [3, 4, 2]],
];

interface Fixture {
  params: OptimizerParam[];
  /** Gradients per step and tensor. */
  grads: Float32Array[][];
  init: Float32Array[];
}

function fixture(gpu: Gpu, steps: number, gradScale: number): Fixture {
  const rng = new Rng(11);
  const init = SHAPES.map(([, s]) => rng.fill(s.reduce((a, d) => a * d, 1)));
  const grads = Array.from({ length: steps }, () => SHAPES.map(([, s]) => rng.fill(s.reduce((a, d) => a * d, 1), (r) => gradScale * r.normal())));
  const params = SHAPES.map(([name, shape], i) => ({
    name,
    value: tensorFromArray(gpu, init[i], shape),
    grad: tensorFromArray(gpu, new Float32Array(init[i].length), shape),
    weightDecay: name === 'b' ? 0 : undefined,
  }));
  return { params, grads, init };
}

function release(ts: Tensor[]): void {
  for (const t of ts) t.release();
}

/** Runs `steps` updates from step `from` with learning rate lr(step). */
function runSteps(gpu: Gpu, opt: AdamWOptimizer, f: Fixture, from: number, to: number, lr: (s: number) => number): void {
  for (let s = from; s < to; s++) {
    f.params.forEach((p, i) => writeTensor(p.grad, f.grads[s][i]));
    const b = new Batch(gpu, 'optimizer test');
    opt.record(b, lr(s + 1));
    b.submit();
  }
}

describe('AdamWOptimizer', () => {
  it('follows clipped AdamW of the reference over several tensors, with per-tensor weight decay', async () => {
    const gpu = await testGpu();
    const STEPS = 4;
    const f = fixture(gpu, STEPS, 2);
    const opt = new AdamWOptimizer(gpu, f.params, { weightDecay: 0.1, maxGradNorm: 1 });
    const lr = (s: number) => 0.01 * s;
    const ref = f.init.map((x) => Float64Array.from(x));
    const m = ref.map((x) => new Float64Array(x.length));
    const v = ref.map((x) => new Float64Array(x.length));
    let lastNorm = 0;
    let lastCoef = 0;
    for (let s = 0; s < STEPS; s++) {
      runSteps(gpu, opt, f, s, s + 1, lr);
      const g = f.grads[s].map((x) => Float64Array.from(x));
      const { norm, coef } = clipGradNorm(g, 1);
      lastNorm = norm;
      lastCoef = coef;
      ref.forEach((p, i) => adamwStep(p, g[i], m[i], v[i], s + 1, { lr: lr(s + 1), weightDecay: SHAPES[i][0] === 'b' ? 0 : 0.1 }));
    }
    expect(opt.step).toBe(STEPS);
    expect(lastCoef).toBeLessThan(1);
    expect(Math.abs((await readTensor(opt.norm))[0] - lastNorm) / lastNorm).toBeLessThan(1e-5);
    expect(Math.abs((await readTensor(opt.coef))[0] - lastCoef) / lastCoef).toBeLessThan(1e-5);
    for (let i = 0; i < SHAPES.length; i++) {
      expect(relL2(await readTensor(f.params[i].value), ref[i]), SHAPES[i][0]).toBeLessThan(1e-5);
    }
    opt.release();
    release(f.params.flatMap((p) => [p.value, p.grad]));
  });

  it('measures the norm without clipping and leaves the coefficient at 1', async () => {
    const gpu = await testGpu();
    const f = fixture(gpu, 1, 5);
    const opt = new AdamWOptimizer(gpu, f.params, { maxGradNorm: 0 });
    expect(opt.clipping).toBe(false);
    runSteps(gpu, opt, f, 0, 1, () => 1e-3);
    const want = Math.sqrt(f.grads[0].reduce((n, g) => n + g.reduce((a, x) => a + x * x, 0), 0));
    expect(want).toBeGreaterThan(1);
    expect(Math.abs((await readTensor(opt.norm))[0] - want) / want).toBeLessThan(1e-5);
    expect((await readTensor(opt.coef))[0]).toBe(1);
    opt.release();
    release(f.params.flatMap((p) => [p.value, p.grad]));
  });

  it('exports and imports its state: a run split in two equals an uninterrupted one, bit for bit', async () => {
    const gpu = await testGpu();
    const STEPS = 5;
    const lr = () => 0.02;
    const whole = fixture(gpu, STEPS, 1);
    const optWhole = new AdamWOptimizer(gpu, whole.params, { weightDecay: 0.05 });
    runSteps(gpu, optWhole, whole, 0, STEPS, lr);

    const first = fixture(gpu, STEPS, 1);
    const optFirst = new AdamWOptimizer(gpu, first.params, { weightDecay: 0.05 });
    runSteps(gpu, optFirst, first, 0, 2, lr);
    const state = await optFirst.exportState();
    const values = await Promise.all(first.params.map((p) => readTensor(p.value as Tensor & { dtype: 'f32' })));
    expect(state.step).toBe(2);
    expect(state.tensors.map((t) => t.name)).toEqual(['a', 'b', 'c']);
    expect(state.tensors[0].m.some((x) => x !== 0)).toBe(true);

    const second = fixture(gpu, STEPS, 1);
    second.params.forEach((p, i) => writeTensor(p.value, values[i]));
    const optSecond = new AdamWOptimizer(gpu, second.params, { weightDecay: 0.05 });
    optSecond.importState(state);
    runSteps(gpu, optSecond, second, 2, STEPS, lr);
    expect(optSecond.step).toBe(STEPS);
    for (let i = 0; i < SHAPES.length; i++) {
      expect(Array.from(await readTensor(second.params[i].value)), SHAPES[i][0]).toEqual(Array.from(await readTensor(whole.params[i].value)));
    }
    const bad = { step: 1, tensors: state.tensors.slice(1) };
    expect(() => optSecond.importState(bad)).toThrow(/holds 2 tensors/);
    expect(() => optSecond.importState({ step: 1, tensors: [state.tensors[1], state.tensors[0], state.tensors[2]] })).toThrow(/expected "a"/);
    for (const o of [optWhole, optFirst, optSecond]) o.release();
    release([whole, first, second].flatMap((x) => x.params.flatMap((p) => [p.value, p.grad])));
  });

  it('refuses bad configurations', async () => {
    const gpu = await testGpu();
    const f = fixture(gpu, 1, 1);
    expect(() => new AdamWOptimizer(gpu, [])).toThrow(/at least one/);
    expect(() => new AdamWOptimizer(gpu, [f.params[0], f.params[0]])).toThrow(/Two trainable tensors/);
    expect(() => new AdamWOptimizer(gpu, f.params, { beta1: 1 })).toThrow(/beta1/);
    expect(() => new AdamWOptimizer(gpu, [{ ...f.params[0], grad: f.params[1].grad }])).toThrow(/does not match/);
    const opt = new AdamWOptimizer(gpu, f.params);
    expect(() => opt.record(new Batch(gpu), Number.NaN)).toThrow(/learning rate/);
    opt.release();
    expect(() => opt.zeroGrad(new Batch(gpu))).toThrow(/released/);
    release(f.params.flatMap((p) => [p.value, p.grad]));
  });
});
