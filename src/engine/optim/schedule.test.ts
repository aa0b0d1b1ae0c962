// The learning-rate schedules against values computed by hand from transformers' formulas
// (get_*_schedule_with_warmup, num_cycles 0.5 for cosine), the warmup ratio rounding of
// TrainingArguments.get_warmup_steps, and the refusal of bad arguments.

import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors.ts';
import { isScheduleName, learningRate, lrLambda, resolveWarmupSteps } from './schedule.ts';

const at = (name: 'constant' | 'linear' | 'cosine', totalSteps: number, warmupSteps: number, steps: number[]) =>
  steps.map((s) => lrLambda({ name, totalSteps, warmupSteps }, s));

describe('learning-rate schedules', () => {
  it('constant with warmup: step / warmup, then 1', () => {
    expect(at('constant', 10, 4, [0, 1, 2, 3, 4, 9, 10, 50])).toEqual([0, 0.25, 0.5, 0.75, 1, 1, 1, 1]);
    expect(at('constant', 10, 0, [0, 5, 10])).toEqual([1, 1, 1]);
  });

  it('linear with warmup: up over the warmup, then down to 0 at the last step and never below', () => {
    // total 10, warmup 2: (10 − s) / 8 after warmup.
    const got = at('linear', 10, 2, [0, 1, 2, 3, 6, 9, 10, 12]);
    const want = [0, 0.5, 1, 7 / 8, 4 / 8, 1 / 8, 0, 0];
    got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 15));
  });

  it('linear without warmup starts at 1 and loses 1/total a step', () => {
    const got = at('linear', 4, 0, [0, 1, 2, 3, 4]);
    [1, 0.75, 0.5, 0.25, 0].forEach((w, i) => expect(got[i]).toBeCloseTo(w, 15));
  });

  it('cosine with warmup: half a cosine wave from 1 to 0 after the warmup', () => {
    // total 10, warmup 2: progress = (s − 2) / 8; ½(1 + cos(π·progress)).
    const got = at('cosine', 10, 2, [0, 1, 2, 4, 6, 8, 10, 11]);
    const want = [
      0,
      0.5,
      1,
      0.5 * (1 + Math.SQRT1_2), // progress 1/4: cos(π/4) = √½ → 0.853553…
      0.5, // progress 1/2
      0.5 * (1 - Math.SQRT1_2), // progress 3/4 → 0.146446…
      0, // progress 1
      0.5 * (1 + Math.cos((Math.PI * 9) / 8)), // progress 9/8: past the end the wave rises again, as in transformers
    ];
    got.forEach((g, i) => expect(g, `step ${i}`).toBeCloseTo(want[i], 12));
    expect(got[3]).toBeCloseTo(0.8535533905932737, 12);
    expect(got[5]).toBeCloseTo(0.14644660940672624, 12);
  });

  it('cosine without warmup over 3 steps: 1, 0.75, 0.25', () => {
    const got = at('cosine', 3, 0, [0, 1, 2, 3]);
    [1, 0.75, 0.25, 0].forEach((w, i) => expect(got[i]).toBeCloseTo(w, 12));
  });

  it('the optimizer step s runs with lambda(s − 1): with warmup the first update has a learning rate of 0', () => {
    const schedule = { name: 'linear' as const, totalSteps: 10, warmupSteps: 2 };
    expect(learningRate(2e-4, schedule, 1)).toBe(0);
    expect(learningRate(2e-4, schedule, 2)).toBeCloseTo(1e-4, 18);
    expect(learningRate(2e-4, schedule, 3)).toBeCloseTo(2e-4, 18);
    expect(learningRate(2e-4, schedule, 10)).toBeCloseTo(2e-4 / 8, 18);
    expect(() => learningRate(1, schedule, 0)).toThrow(InvalidArgumentError);
  });

  it('a warmup below 1 is a ratio of the run, rounded up; a whole number is a step count', () => {
    expect(resolveWarmupSteps(0, 100)).toBe(0);
    expect(resolveWarmupSteps(0.1, 100)).toBe(10);
    expect(resolveWarmupSteps(0.1, 95)).toBe(10); // ceil(9.5)
    expect(resolveWarmupSteps(0.03, 10)).toBe(1); // ceil(0.3)
    expect(resolveWarmupSteps(7, 100)).toBe(7);
    expect(resolveWarmupSteps(250, 100)).toBe(250);
    expect(() => resolveWarmupSteps(1.5, 100)).toThrow(/neither a ratio/);
    expect(() => resolveWarmupSteps(-1, 100)).toThrow(InvalidArgumentError);
    expect(() => resolveWarmupSteps(Number.NaN, 100)).toThrow(InvalidArgumentError);
  });

  it('rejects unknown names and bad step counts', () => {
    expect(() => lrLambda({ name: 'step' as 'linear', totalSteps: 10 }, 0)).toThrow(/Unknown learning-rate schedule/);
    expect(() => lrLambda({ name: 'linear', totalSteps: 0 }, 0)).toThrow(InvalidArgumentError);
    expect(() => lrLambda({ name: 'linear', totalSteps: 10, warmupSteps: 1.5 }, 0)).toThrow(InvalidArgumentError);
    expect(() => lrLambda({ name: 'linear', totalSteps: 10 }, -1)).toThrow(InvalidArgumentError);
    expect(isScheduleName('cosine')).toBe(true);
    expect(isScheduleName('polynomial')).toBe(false);
  });
});
