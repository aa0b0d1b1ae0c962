// Full fine-tuning against PyTorch: for each fixture under fixtures/full/ (scripts/peft_reference.py
// --methods full, on tiny models of scripts/tiny/models.ts with every weight trainable), a full
// fine-tune made through the method registry gives PyTorch's loss, and after one backward the
// gradients of a sample of weights agree with PyTorch's: the embedding and lm_head (sampled rows),
// layer 0's q_proj (and its bias on Qwen2), layer 1's down_proj (sampled rows), layer 0's input norm
// and the final norm. Llama with an untied head; Qwen2 with a tied one, where the embedding's
// gradient also carries the head's.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { scratch } from '../autograd/ops.ts';
import { Tape } from '../autograd/tape.ts';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { fill } from '../kernels/elementwise.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { blobFileSet, openModelFolder } from '../io/model-folder.ts';
import { loadModel } from '../model/llama.ts';
import { relL2 } from '../reference/compare.ts';
import { uploadBatch } from '../train/batches.ts';
import { evaluateRows, tokenRowToRow } from '../train/evaluate.ts';
import { readMethodFixture } from './fixtures-testing.ts';
import { findMethod, parseMethodOptions } from './methods.ts';

const LOSS_TOL = 1e-5;
const GRAD_TOL = 1e-5;

/** The listed rows of a row-major (R, C) array. */
function pickRows(all: Float32Array, shape: number[], rows: number[] | undefined): Float32Array {
  if (!rows) return all;
  const C = shape[1];
  const out = new Float32Array(rows.length * C);
  rows.forEach((r, i) => out.set(all.subarray(r * C, (r + 1) * C), i * C));
  return out;
}

describe.each(['llama3-untied-f32-full', 'qwen2-tied-f32-full'])('full fine-tuning %s', (name) => {
  const fixture = readMethodFixture(`full/${name}.json`);

  it('gives PyTorch’s loss and gradients', async () => {
    const gpu = await testGpu();
    const spec = TINY_MODELS.find((s) => s.name === fixture.model);
    if (!spec) throw new Error(`no tiny model named ${fixture.model}`);
    const files = makeTinyModel(spec);
    for (const f of files) expect(createHash('sha256').update(f.bytes).digest('hex'), f.name).toBe(fixture.model_files[f.name]);
    const model = await loadModel(gpu, await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])])), spec.name)));
    const method = findMethod('full');
    const adapter = await method.create(model, parseMethodOptions(method, {}), { seed: 1 });
    const rows = fixture.input_ids.map((inputIds, i) => tokenRowToRow({ inputIds, labels: fixture.labels[i] }));
    const groups = new TokenGroups(gpu, 2 * Math.max(...rows.map((r) => r.ids.length)));
    const inputs = uploadBatch(gpu, rows, [0, 1], groups);
    try {
      const evaluated = await evaluateRows(model, adapter, rows);
      expect(evaluated.tokens).toBe(fixture.tokens);
      const lossErr = Math.abs(evaluated.loss - fixture.loss) / Math.abs(fixture.loss);
      expect(lossErr).toBeLessThan(LOSS_TOL);

      const tape = new Tape();
      const b = new Batch(gpu, 'full.parity');
      adapter.zeroGrads(b);
      const loss = model.loss(tape, b, inputs, adapter.forwardOptions(tape, adapter.leaves(tape))); // (1)
      const seed = scratch(b, [1], 'seed'); // (1)
      fill(b, seed, 1);
      tape.backward(b, loss, seed);
      b.submit();

      const names = Object.keys(fixture.grads);
      expect(names.length).toBeGreaterThanOrEqual(spec.tieWordEmbeddings ? 5 : 6);
      let worst = 0;
      for (const key of names) {
        const want = fixture.grads[key];
        const p = adapter.params.find((x) => x.name === key);
        if (!p) throw new Error(`the full fine-tune has no parameter ${key}`);
        expect(p.value.shape, key).toEqual(want.shape);
        const got = pickRows(await readTensor(p.grad as Tensor & { dtype: 'f32' }), want.shape, want.rows);
        expect(got.length, key).toBe(want.values.length);
        const err = relL2(got, want.values);
        worst = Math.max(worst, err);
        expect(err, key).toBeLessThan(GRAD_TOL);
      }
      console.log(`${name}: loss ${evaluated.loss.toFixed(6)} vs PyTorch ${fixture.loss.toFixed(6)} (rel ${lossErr.toExponential(2)}); ${names.length} gradients of ${adapter.params.length} weights, worst relL2 ${worst.toExponential(2)}`);
    } finally {
      inputs.release();
      groups.release();
      adapter.release();
      model.release();
    }
  });
});
