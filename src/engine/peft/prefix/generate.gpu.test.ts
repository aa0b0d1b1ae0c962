// Generation with a prefix-tuning adapter through the KV cache (model/generate.ts puts the prefix
// keys and values at the front of the cache and starts the prompt's positions after them) against
// full recomputation without a cache: the forward over the whole sequence with the prefix hook and
// positions from nvt, as training and evaluation compute it (adaptRows). On the tiny
// llama3-untied-f32 (2 layers, grouped-query attention).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../../scripts/tiny/models.ts';
import { Tape } from '../../autograd/tape.ts';
import { Batch } from '../../gpu/batch.ts';
import { testGpu } from '../../gpu/testing.ts';
import { blobFileSet, openModelFolder } from '../../io/model-folder.ts';
import { Generation, generate } from '../../model/generate.ts';
import { type LlamaModel, loadModel, makeInputs, readF32 } from '../../model/llama.ts';
import { relL2 } from '../../reference/compare.ts';
import { withForwardOptions } from '../adapter.ts';
import { createPrefixTuningConfig } from './config.ts';
import { type PrefixTuningAdapter, createPrefixTuning } from './model.ts';

const NVT = 3;
const PROMPT = [5, 17, 200, 3, 88];

let model: LlamaModel;
let adapter: PrefixTuningAdapter;
beforeAll(async () => {
  const gpu = await testGpu();
  const spec = TINY_MODELS.find((s) => s.name === 'llama3-untied-f32');
  if (!spec) throw new Error('no tiny model llama3-untied-f32');
  const files = makeTinyModel(spec);
  const folder = await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])])), spec.name));
  model = await loadModel(gpu, folder);
  adapter = createPrefixTuning(model, createPrefixTuningConfig({ num_virtual_tokens: NVT }), { seed: 5 });
});
afterAll(() => {
  adapter?.release();
  model?.release();
});

/** The logits (V) of the last position of `ids`, by a full forward (no cache) with positions from nvt. */
async function recomputedLastLogits(view: LlamaModel, ids: readonly number[]): Promise<Float32Array> {
  const inputs = makeInputs(view, [{ inputIds: ids }], { targets: false, positionOffset: NVT });
  try {
    const tape = new Tape();
    tape.recording = false;
    const b = new Batch(view.gpu, 'test');
    const h = view.forward(tape, b, inputs); // (n, C)
    const z = view.headLogits(tape, b, h); // (n, V)
    tape.releaseUnrecorded([z]);
    b.submit();
    const all = await readF32(z.value);
    z.value.release();
    const V = view.config.vocabSize;
    return all.slice((ids.length - 1) * V);
  } finally {
    inputs.release();
  }
}

describe('prefix tuning: generation with a KV cache', () => {
  it('gives the forward logits first and picks the tokens full recomputation picks', async () => {
    const view = withForwardOptions(model, adapter.inferenceOptions());
    const first: Float32Array[] = [];
    const out = await generate(view, PROMPT, { maxNewTokens: 4, temperature: 0, onLogits: (l, i) => i === 0 && first.push(l) });
    expect(out.tokens).toHaveLength(4);
    expect(out.promptTokens).toBe(PROMPT.length);

    const want = await recomputedLastLogits(view, PROMPT);
    console.log(`prefix generation: first logits relL2 vs the forward ${relL2(first[0], want).toExponential(2)}; tokens ${out.tokens.join(' ')}`);
    expect(relL2(first[0], want)).toBeLessThan(1e-5);
    // The prefix matters: the base model's logits differ.
    expect(relL2(await recomputedLastLogits(model, PROMPT), want)).toBeGreaterThan(1e-3);

    const seq = [...PROMPT];
    for (const id of out.tokens) {
      const last = await recomputedLastLogits(view, seq);
      expect(id).toBe(last.indexOf(Math.max(...last)));
      seq.push(id);
    }
  });

  it('decodes every step from the cache as recomputation does (logits of each step)', async () => {
    const view = withForwardOptions(model, adapter.inferenceOptions());
    const steps: Float32Array[] = [];
    const g = new Generation(view, PROMPT, { maxNewTokens: 3, temperature: 0, onLogits: (l) => steps.push(l) });
    try {
      while ((await g.step()) !== null && !g.done);
    } finally {
      g.release();
    }
    const seq = [...PROMPT];
    for (let i = 0; i < steps.length; i++) {
      expect(relL2(steps[i], await recomputedLastLogits(view, seq))).toBeLessThan(1e-5);
      seq.push(g.tokens[i]);
    }
  });
});
