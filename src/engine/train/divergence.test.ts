// The divergence detector on loss sequences: NaN and Inf stop at once, an explosion stops after
// `patience` suspect steps, noise near zero loss and a single lucky batch do not stop a run, the
// warmup is exempt, and the state survives a checkpoint round trip.

import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import { DivergenceGuard, TrainingDivergedError, divergenceMessage } from './divergence.ts';

/** Feeds losses from step 1 and returns the verdicts. */
function run(guard: DivergenceGuard, losses: number[], from = 1): string[] {
  return losses.map((l, i) => guard.check(from + i, l, 1));
}

describe('DivergenceGuard', () => {
  it('stops at once on a NaN or infinite loss or gradient norm', () => {
    const g = new DivergenceGuard();
    expect(run(g, [3, 2.5])).toEqual(['ok', 'ok']);
    expect(g.check(3, Number.NaN, 1)).toBe('nan-loss');
    expect(g.check(3, Number.POSITIVE_INFINITY, 1)).toBe('nan-loss');
    expect(g.check(3, 2, Number.NaN)).toBe('nan-grad-norm');
    expect(g.check(3, 2, Number.POSITIVE_INFINITY)).toBe('nan-grad-norm');
    // The stopping verdicts changed nothing.
    expect(g.state()).toEqual({ recent: [3, 2.5], reference: 2.75, streak: 0 });
  });

  it('stops an explosion after `patience` suspect steps; a suspect step followed by a sound one resets the count', () => {
    const g = new DivergenceGuard({ patience: 2 });
    expect(run(g, [6, 3, 1.2, 1.0, 0.9, 1.1, 1.0])).toEqual(Array(7).fill('ok'));
    expect(g.reference).toBe(1.0); // median of [1.2, 1.0, 0.9, 1.1, 1.0]
    expect(g.check(8, 5.9, 1)).toBe('suspect');
    expect(g.check(9, 1.0, 1)).toBe('ok');
    expect(g.check(10, 5.9, 1)).toBe('suspect');
    expect(g.check(11, 6.1, 1)).toBe('exploding-loss');
  });

  it('takes the median, so a single lucky batch does not lower the reference', () => {
    const g = new DivergenceGuard({ patience: 1 });
    run(g, [2.0, 2.1, 0.1, 1.9, 2.0]);
    // Medians 2, 2.05, 2, 1.95, 2: the 0.1 never sets the reference.
    expect(g.reference).toBeCloseTo(1.95, 12);
    expect(g.check(6, 2.4, 1)).toBe('ok');
  });

  it('does not stop a run near zero loss on an ordinary noisy batch (the rise must exceed minRise nats)', () => {
    const g = new DivergenceGuard({ patience: 1 });
    run(g, [0.05, 0.04, 0.03, 0.03, 0.02]);
    expect(g.check(6, 0.6, 1)).toBe('ok'); // 20× the reference, but only 0.57 nats above it
    expect(g.check(7, 1.2, 1)).toBe('exploding-loss');
  });

  it('checks only NaN during the warmup, and nothing but NaN with factor 0', () => {
    const warm = new DivergenceGuard({ afterStep: 3, patience: 1 });
    expect(run(warm, [1, 9, 9])).toEqual(['ok', 'ok', 'ok']);
    expect(warm.check(4, 40, 1)).toBe('exploding-loss');
    const off = new DivergenceGuard({ factor: 0, patience: 1 });
    expect(run(off, [1, 100, 1000])).toEqual(['ok', 'ok', 'ok']);
    expect(off.check(4, Number.NaN, 1)).toBe('nan-loss');
  });

  it('restores its state so a resumed run judges the next losses as the original would', () => {
    const losses = [4, 3, 2, 1.5, 1.4, 1.2, 9, 9.5];
    const verdicts = run(new DivergenceGuard(), losses);
    expect(verdicts.slice(5)).toEqual(['ok', 'suspect', 'exploding-loss']);
    // Stopped after step 7, a suspect one: the streak travels with the state.
    const first = new DivergenceGuard();
    run(first, losses.slice(0, 7));
    const state = JSON.parse(JSON.stringify(first.state()));
    expect(state.streak).toBe(1);
    const second = new DivergenceGuard();
    second.restore(state);
    expect(run(second, losses.slice(7), 8)).toEqual(verdicts.slice(7));
    expect(() => second.restore({ recent: [1, Number.NaN], reference: 1, streak: 0 })).toThrow(InvalidArgumentError);
    expect(() => second.restore({ recent: [1, 2, 3, 4, 5, 6], reference: 1, streak: 0 })).toThrow(InvalidArgumentError);
  });

  it('refuses bad settings', () => {
    expect(() => new DivergenceGuard({ factor: 1 })).toThrow(InvalidArgumentError);
    expect(() => new DivergenceGuard({ minRise: -1 })).toThrow(InvalidArgumentError);
    expect(() => new DivergenceGuard({ window: 0 })).toThrow(InvalidArgumentError);
    expect(() => new DivergenceGuard({ patience: 1.5 })).toThrow(InvalidArgumentError);
  });
});

describe('TrainingDivergedError', () => {
  it('has a stable name, the step and values, a hint naming the kept checkpoint, and serializes without NaN', () => {
    const g = new DivergenceGuard();
    const e = new TrainingDivergedError(divergenceMessage('nan-loss', 12, Number.NaN, 3, g), { reason: 'nan-loss', step: 12, loss: Number.NaN, gradNorm: 3, checkpointStep: 10 });
    expect(e.name).toBe('TrainingDivergedError');
    expect(e.message).toBe('Training diverged at step 12: the loss is NaN.');
    expect(e.hint).toMatch(/resume from the checkpoint of step 10/);
    expect(JSON.parse(JSON.stringify(e))).toMatchObject({ name: 'TrainingDivergedError', reason: 'nan-loss', step: 12, loss: null, gradNorm: 3, checkpointStep: 10 });
    const none = new TrainingDivergedError('x', { reason: 'exploding-loss', step: 1, loss: 9, gradNorm: 1, checkpointStep: null });
    expect(none.hint).toMatch(/no checkpoint was written yet/);
  });
});
