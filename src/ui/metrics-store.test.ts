// The metrics channel of the charts: steps arrive in order; a resumed run recomputes steps after its
// checkpoint, which replace the records held for them.
import { describe, expect, it } from 'vitest';
import type { StepMetrics } from '../engine/train/metrics.ts';
import { useMetrics, withStep } from './metrics-store.ts';

const m = (step: number, loss = 1): StepMetrics => ({ step, epoch: 0, loss, lr: 1, gradNorm: 1, tokens: 1, targets: 1, tokensPerSecond: 1, elapsedMs: 0, peakBytes: 0 });

describe('withStep', () => {
  it('appends later steps and replaces a step and the ones after it', () => {
    expect(withStep([], m(1)).map((p) => p.step)).toEqual([1]);
    expect(withStep([m(1), m(2)], m(3)).map((p) => p.step)).toEqual([1, 2, 3]);
    const replaced = withStep([m(1), m(2), m(3), m(4)], m(3, 7));
    expect(replaced.map((p) => [p.step, p.loss])).toEqual([[1, 1], [2, 1], [3, 7]]);
  });

  it('drives the store: reset sorts, push adds', () => {
    useMetrics.getState().reset('r', [m(2), m(1)]);
    useMetrics.getState().push(m(3));
    expect(useMetrics.getState()).toMatchObject({ runId: 'r' });
    expect(useMetrics.getState().points.map((p) => p.step)).toEqual([1, 2, 3]);
  });
});
