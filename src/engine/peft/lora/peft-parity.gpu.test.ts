// LoRA parity with PyTorch: for each adapter under fixtures/lora/ (PEFT folders that
// scripts/peft_reference.py wrote for tiny models of scripts/tiny/models.ts — a Llama adapter on
// every projection, and a Qwen2 one with rsLoRA, a rank_pattern, an alpha_pattern and BF16 tensors),
// the engine loads the folder with loadLora onto the model generated in memory, and its causal-LM
// loss and the gradients of every lora_A and lora_B after one backward (dropout off) are held to the
// values PyTorch computed with PEFT's semantics.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../../scripts/tiny/models.ts';
import { scratch } from '../../autograd/ops.ts';
import { Tape } from '../../autograd/tape.ts';
import { Batch } from '../../gpu/batch.ts';
import { readTensor } from '../../gpu/readback.ts';
import { type Tensor, createTensor } from '../../gpu/tensor.ts';
import { testGpu } from '../../gpu/testing.ts';
import { affine, fill } from '../../kernels/elementwise.ts';
import { PEFT_KEY_PREFIX } from '../../io/export-peft.ts';
import { blobFileSet, openModelFolder } from '../../io/model-folder.ts';
import { nodeFileSet } from '../../io/model-folder-node.ts';
import { loadModel, makeInputs } from '../../model/llama.ts';
import { relL2 } from '../../reference/compare.ts';
import { loadLora } from './model.ts';

interface LoraFixture {
  name: string;
  model: string;
  model_files: Record<string, string>;
  scaling: Record<string, number>;
  input_ids: number[][];
  labels: number[][];
  tokens: number;
  loss: number;
  grads: Record<string, { shape: number[]; values: number[] }>;
}

const TOLERANCE = 1e-4;
const FIXTURES = new URL('../../../../fixtures/lora/', import.meta.url);
const NAMES = ['llama3-untied-f32-lora', 'qwen2-tied-f32-rslora'];

describe.each(NAMES)('%s', (name) => {
  const fixture = JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as LoraFixture;

  it('loads with loadLora and gives PyTorch’s loss and adapter gradients', async () => {
    const gpu = await testGpu();
    const spec = TINY_MODELS.find((s) => s.name === fixture.model);
    if (!spec) throw new Error(`no tiny model named ${fixture.model}`);
    const files = makeTinyModel(spec);
    // The fixture was computed on exactly these files.
    for (const f of files) expect(createHash('sha256').update(f.bytes).digest('hex'), f.name).toBe(fixture.model_files[f.name]);
    const folder = await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])])), spec.name));
    const model = await loadModel(gpu, folder);
    const adapter = await loadLora(model, await nodeFileSet(fileURLToPath(new URL(`${name}/`, FIXTURES))));
    const inputs = makeInputs(model, fixture.input_ids.map((inputIds, i) => ({ inputIds, labels: fixture.labels[i] })));
    try {
      expect(inputs.count).toBe(fixture.tokens);
      expect(Object.fromEntries(adapter.modules.map((p) => [p, adapter.moduleSpec(p).scaling]))).toEqual(
        Object.fromEntries(Object.entries(fixture.scaling).map(([p, s]) => [p, expect.closeTo(s, 12)])),
      );
      const tape = new Tape();
      const b = new Batch(gpu, 'lora.parity');
      adapter.zeroGrads(b);
      const leaves = adapter.leaves(tape, true);
      const loss = model.loss(tape, b, inputs, { projection: adapter.hook(tape, leaves) });
      const lossCopy = createTensor(gpu, [1]); // (1)
      affine(b, loss.value, lossCopy, 1);
      const seed = scratch(b, [1], 'seed'); // (1)
      fill(b, seed, 1);
      tape.backward(b, loss, seed);
      b.submit();
      const got = (await readTensor(lossCopy))[0];
      lossCopy.release();
      const lossErr = Math.abs(got - fixture.loss) / Math.abs(fixture.loss);
      expect(lossErr).toBeLessThan(TOLERANCE);

      expect(adapter.params.map((p) => PEFT_KEY_PREFIX + p.name).sort()).toEqual(Object.keys(fixture.grads).sort());
      let worst = 0;
      for (const p of adapter.params) {
        const want = fixture.grads[PEFT_KEY_PREFIX + p.name];
        expect(p.grad.shape).toEqual(want.shape);
        const err = relL2(await readTensor(p.grad as Tensor & { dtype: 'f32' }), want.values);
        worst = Math.max(worst, err);
        expect(err, p.name).toBeLessThan(TOLERANCE);
      }
      console.log(`${name}: loss ${got.toFixed(6)} vs PyTorch ${fixture.loss.toFixed(6)} (rel ${lossErr.toExponential(2)}); ${adapter.params.length} gradients, worst relL2 ${worst.toExponential(2)}`);
    } finally {
      inputs.release();
      adapter.release();
      model.release();
    }
  });
});
