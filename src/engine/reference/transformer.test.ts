import { describe, expect, it } from 'vitest';
import { relL2 } from './compare.ts';
import { IGNORE_INDEX } from './cross_entropy.ts';
import { type TransformerConfig, adamwState, batchFromRows, initParams, paramSpecs, transformerLoss, transformerLossAndGrads, trainStep } from './transformer.ts';

const config: TransformerConfig = { vocab: 11, hidden: 8, layers: 2, heads: 2, kvHeads: 1, headDim: 4, intermediate: 12, rmsEps: 1e-5, ropeTheta: 10000 };
const PAD = 10;

/** Two rows of T = 5: one full, one with two padding tokens; one more label of the full row ignored. */
function toyBatch() {
  const batch = batchFromRows(
    [
      [3, 7, 1, 4, 9],
      [2, 5, 8],
    ],
    5,
    PAD,
  );
  batch.labels[1] = IGNORE_INDEX;
  return batch;
}

describe('reference transformer', () => {
  it('builds padded batches with shifted labels, segments and positions', () => {
    const b = toyBatch();
    expect([...b.ids]).toEqual([3, 7, 1, 4, 9, 2, 5, 8, PAD, PAD]);
    expect([...b.labels]).toEqual([7, -100, 4, 9, -100, 5, 8, -100, -100, -100]);
    expect([...b.segments]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, -1, -1]);
    expect([...b.positions]).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 0, 0]);
  });

  it('starts near ln(vocab) and its gradient of every parameter agrees with central finite differences', () => {
    const params = initParams(config, 3);
    const batch = toyBatch();
    const { loss, grads } = transformerLossAndGrads(config, params, batch);
    expect(loss).toBeCloseTo(transformerLoss(config, params, batch), 14);
    expect(loss).toBeGreaterThan(0.5 * Math.log(config.vocab));
    expect(loss).toBeLessThan(3 * Math.log(config.vocab));

    const h = 1e-5;
    const specs = paramSpecs(config);
    expect(Object.keys(grads).sort()).toEqual(specs.map((s) => s.name).sort());
    for (const spec of specs) {
      const p = params[spec.name];
      const g = grads[spec.name];
      expect(g.length, spec.name).toBe(p.length);
      const fd = Array.from(p, (old, i) => {
        p[i] = old + h;
        const up = transformerLoss(config, params, batch);
        p[i] = old - h;
        const down = transformerLoss(config, params, batch);
        p[i] = old;
        return (up - down) / (2 * h);
      });
      expect(Math.max(...fd.map(Math.abs)), spec.name).toBeGreaterThan(1e-3);
      expect(relL2(g, fd), spec.name).toBeLessThan(1e-7);
    }
    // The padding token and tokens absent from the batch get no embedding gradient.
    const embed = grads['model.embed_tokens.weight'];
    for (const id of [PAD, 0, 6]) {
      for (let c = 0; c < config.hidden; c++) expect(embed[id * config.hidden + c]).toBe(0);
    }
  });

  it('does not depend on what sits on padding or on ignored labels', () => {
    const params = initParams(config, 4);
    const a = toyBatch();
    const b = toyBatch();
    b.ids[8] = 0;
    b.ids[9] = 6;
    expect(transformerLoss(config, params, b)).toBe(transformerLoss(config, params, a));
  });

  it('trains: clipped AdamW steps lower the loss; the first step is clipped and moves weights by about lr', () => {
    const params = initParams(config, 5);
    const state = adamwState(params);
    const batch = toyBatch();
    const hyper = { lr: 0.02, weightDecay: 0.1 };
    const first = trainStep(config, params, state, batch, hyper, 0.5);
    expect(first.norm).toBeGreaterThan(0.5);
    // Adam's first step moves every parameter with a nonzero gradient by about lr (plus decay).
    const lm = initParams(config, 5)['lm_head.weight'];
    const moved = params['lm_head.weight'].map((w, i) => Math.abs(w - lm[i] * (1 - 0.02 * 0.1)));
    expect(Math.max(...moved)).toBeCloseTo(0.02, 6);
    let loss = first.loss;
    for (let i = 0; i < 20; i++) loss = trainStep(config, params, state, batch, hyper, 0.5).loss;
    expect(state.step).toBe(21);
    expect(loss).toBeLessThan(0.5 * first.loss);
  });
});
