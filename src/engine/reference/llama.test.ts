// The float64 Llama-family reference checked against the older toy-transformer reference on the
// plain Llama case, and each feature it adds (tied head, biases, q/k norms, llama3 RoPE, labels)
// against a property that holds exactly.

import { describe, expect, it } from 'vitest';
import { relL2 } from './compare.ts';
import { type LlamaRefConfig, llamaLogits, llamaLoss, llamaParamSpecs, randomLlamaParams, shiftedTargets } from './llama.ts';
import { batchFromRows, initParams, transformerLoss } from './transformer.ts';

const base: LlamaRefConfig = {
  vocabSize: 23,
  hiddenSize: 8,
  intermediateSize: 12,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  tieWordEmbeddings: false,
  attentionBias: false,
  outputBias: false,
  qkNorm: false,
};
const rows = [[3, 7, 1, 4, 9, 22], [2, 5, 8]];

describe('float64 Llama-family reference', () => {
  it('equals the toy-transformer reference on the plain Llama case, over rows taken together', () => {
    const tc = { vocab: 23, hidden: 8, layers: 2, heads: 4, kvHeads: 2, headDim: 4, intermediate: 12, rmsEps: 1e-5, ropeTheta: 10000 };
    const params = initParams(tc, 5);
    const want = transformerLoss(tc, params, batchFromRows(rows, 6, 0));
    const got = llamaLoss(base, params, rows.map((inputIds) => ({ inputIds })));
    expect(got.tokens).toBe(5 + 2);
    expect(Math.abs(got.loss - want) / want).toBeLessThan(1e-12);
  });

  it('shifts labels inside and ignores -100, like Hugging Face', () => {
    expect([...shiftedTargets({ inputIds: [4, 5, 6, 7] })]).toEqual([5, 6, 7, -100]);
    expect([...shiftedTargets({ inputIds: [4, 5, 6, 7], labels: [-100, -100, 6, 7] })]).toEqual([-100, 6, 7, -100]);
    const p = randomLlamaParams(base, 1);
    const all = llamaLoss(base, p, [{ inputIds: rows[0] }]);
    const masked = llamaLoss(base, p, [{ inputIds: rows[0], labels: [-100, -100, -100, 4, 9, 22] }]);
    expect(masked.tokens).toBe(3);
    expect(masked.loss).not.toBeCloseTo(all.loss, 6);
  });

  it('a tied head is the untied model with lm_head = embed_tokens', () => {
    const tied = { ...base, tieWordEmbeddings: true };
    const p = randomLlamaParams(tied, 2);
    expect(llamaParamSpecs(tied).some((s) => s.name === 'lm_head.weight')).toBe(false);
    const untied = { ...p, 'lm_head.weight': p['model.embed_tokens.weight'] };
    expect(relL2(llamaLogits(tied, p, rows[0]), llamaLogits(base, untied, rows[0]))).toBe(0);
  });

  it('zero biases change nothing, non-zero ones do', () => {
    const biased = { ...base, attentionBias: true, outputBias: true };
    const p = randomLlamaParams(biased, 3);
    const zero = { ...p };
    for (const s of llamaParamSpecs(biased)) if (s.kind === 'bias') zero[s.name] = new Float64Array(s.shape[0]);
    expect(relL2(llamaLogits(biased, zero, rows[0]), llamaLogits(base, zero, rows[0]))).toBe(0);
    expect(relL2(llamaLogits(biased, p, rows[0]), llamaLogits(base, p, rows[0]))).toBeGreaterThan(1e-3);
  });

  it('q/k norms sit before RoPE: scaling q_proj and k_proj leaves a q/k-normed model unchanged', () => {
    const qk = { ...base, qkNorm: true, headDim: 6, rmsNormEps: 1e-14 };
    const p = randomLlamaParams(qk, 4);
    const scaled = { ...p };
    for (const l of [0, 1]) {
      for (const m of ['q_proj', 'k_proj']) scaled[`model.layers.${l}.self_attn.${m}.weight`] = p[`model.layers.${l}.self_attn.${m}.weight`].map((v) => 3 * v);
    }
    expect(relL2(llamaLogits(qk, scaled, rows[0]), llamaLogits(qk, p, rows[0]))).toBeLessThan(1e-12);
    const plain = { ...qk, qkNorm: false };
    expect(relL2(llamaLogits(plain, scaled, rows[0]), llamaLogits(plain, p, rows[0]))).toBeGreaterThan(1e-3);
  });

  it('llama3 RoPE scaling changes the logits only when its original context is short', () => {
    const p = randomLlamaParams(base, 6);
    const scaled = (original: number) => ({ ...base, ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: original } });
    // Every wavelength (at most 2π·10000^(1/2) ≈ 628 for D = 4) is below 8192 / 4: nothing is scaled.
    expect(relL2(llamaLogits(scaled(8192), p, rows[0]), llamaLogits(base, p, rows[0]))).toBe(0);
    expect(relL2(llamaLogits(scaled(16), p, rows[0]), llamaLogits(base, p, rows[0]))).toBeGreaterThan(1e-4);
  });
});
