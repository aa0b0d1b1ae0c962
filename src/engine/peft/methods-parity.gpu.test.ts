// Parity with PyTorch for the methods beside LoRA (LoRA's own is lora/peft-parity.gpu.test.ts): for
// each adapter under fixtures/<method>/ (PEFT folders that scripts/peft_reference.py wrote for tiny
// models of scripts/tiny/models.ts), the folder is loaded through the method registry (the method
// detected from adapter_config.json), the loss is computed as `whetstone eval --adapter` computes it
// (evaluateLoss on the adapted model), and the gradient of every trainable tensor after one backward
// is held to the values PyTorch computed with PEFT's semantics.
//   ia3:  PEFT's Llama defaults (k_proj, v_proj, down_proj feed-forward) stored F32; a Qwen2 one
//         scaling biased q/k/v outputs plus two feed-forward modules, stored BF16.
//   dora: a Llama one on q/v/o/down; a Qwen2 one with rsLoRA on biased q/k/v and gate_proj.
//   prompt: 4 virtual tokens on Llama (F32), 3 on Qwen2 (BF16); the rows get the virtual positions
//         (labels -100) in front, so the first label of a row counts too.
//   prefix: 3 virtual tokens on Llama (F32), 2 on Qwen2 with grouped-query attention (BF16); keys
//         used without RoPE, the tokens' positions starting at nvt.
//   adapter: bottleneck adapters (Whetstone's layout, not PEFT's) after o_proj and down_proj, on
//         Llama (reduction 16, F32) and Qwen2 (reduction 8, BF16).

import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { scratch } from '../autograd/ops.ts';
import { Tape } from '../autograd/tape.ts';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { fill } from '../kernels/elementwise.ts';
import { PEFT_KEY_PREFIX } from '../io/export-peft.ts';
import { blobFileSet, openModelFolder } from '../io/model-folder.ts';
import { nodeFileSet } from '../io/model-folder-node.ts';
import type { ModelConfig } from '../model/config.ts';
import { evaluateLoss, loadModel } from '../model/llama.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { uploadBatch } from '../train/batches.ts';
import type { PeftAdapter } from './adapter.ts';
import { joinPrefixTable, prefixTokenDim } from './prefix/config.ts';
import { relL2 } from '../reference/compare.ts';
import { withForwardOptions } from './adapter.ts';
import { readMethodFixture } from './fixtures-testing.ts';
import { loadAdapter } from './methods.ts';
import { evaluateRows, tokenRowToRow } from '../train/evaluate.ts';

const TOLERANCE = 1e-4;
const CASES: [method: string, name: string][] = [
  ['ia3', 'llama3-untied-f32-ia3'],
  ['ia3', 'qwen2-tied-f32-ia3'],
  ['dora', 'llama3-untied-f32-dora'],
  ['dora', 'qwen2-tied-f32-dora'],
  ['prompt', 'llama3-untied-f32-prompt'],
  ['prompt', 'qwen2-tied-f32-prompt'],
  ['prefix', 'llama3-untied-f32-prefix'],
  ['prefix', 'qwen2-tied-f32-prefix'],
  ['adapter', 'llama3-untied-f32-adapter'],
  ['adapter', 'qwen2-tied-f32-adapter'],
];

async function prefixTableGrad(adapter: PeftAdapter, config: ModelConfig): Promise<Float32Array> {
  const parts: { k: Float32Array; v: Float32Array }[] = [];
  for (let i = 0; i < adapter.params.length; i += 2) {
    const read = (t: Tensor) => readTensor(t as Tensor & { dtype: 'f32' });
    parts.push({ k: await read(adapter.params[i].grad), v: await read(adapter.params[i + 1].grad) });
  }
  return joinPrefixTable(parts, adapter.virtualTokens as number, prefixTokenDim(config));
}

/** The fixture's key of a parameter: PEFT's state-dict name (prompt_embeddings has no module prefix; bottleneck adapters use their own names). */
const keyOf = (name: string) => (name === 'prompt_embeddings' || name.includes('_adapters.') ? name : PEFT_KEY_PREFIX + name);

describe.each(CASES)('%s %s', (method, name) => {
  const FIXTURES = new URL(`../../../fixtures/${method}/`, import.meta.url);
  const fixture = readMethodFixture(`${method}/${name}.json`);

  it('loads through the registry and gives PyTorch’s loss and gradients', async () => {
    const gpu = await testGpu();
    const spec = TINY_MODELS.find((s) => s.name === fixture.model);
    if (!spec) throw new Error(`no tiny model named ${fixture.model}`);
    const files = makeTinyModel(spec);
    for (const f of files) expect(createHash('sha256').update(f.bytes).digest('hex'), f.name).toBe(fixture.model_files[f.name]);
    const folder = await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])])), spec.name));
    const model = await loadModel(gpu, folder);
    const adapter = await loadAdapter(model, await nodeFileSet(fileURLToPath(new URL(`${name}/`, FIXTURES))));
    const rows = fixture.input_ids.map((inputIds, i) => ({ inputIds, labels: fixture.labels[i] }));
    // As `whetstone eval --adapter` does: rows the adapter rewrites go through evaluateRows.
    const prepared = rows.map(tokenRowToRow);
    const adapted = adapter.adaptRows ? adapter.adaptRows(prepared) : prepared;
    const groups = new TokenGroups(gpu, 2 * Math.max(...adapted.map((r) => r.ids.length)));
    const inputs = uploadBatch(gpu, adapted, [0, 1], groups);
    try {
      expect(adapter.method).toBe(method);
      const evaluated = adapter.adaptRows
        ? await evaluateRows(model, adapter, rows.map(tokenRowToRow))
        : await evaluateLoss(withForwardOptions(model, adapter.inferenceOptions()), rows);
      expect(evaluated.tokens).toBe(fixture.tokens);
      const lossErr = Math.abs(evaluated.loss - fixture.loss) / Math.abs(fixture.loss);
      expect(lossErr).toBeLessThan(TOLERANCE);

      adapter.training = true;
      const tape = new Tape();
      const b = new Batch(gpu, `${method}.parity`);
      adapter.zeroGrads(b);
      const loss = model.loss(tape, b, inputs, adapter.forwardOptions(tape, adapter.leaves(tape)));
      const seed = scratch(b, [1], 'seed'); // (1)
      fill(b, seed, 1);
      tape.backward(b, loss, seed);
      b.submit();
      // Prefix tuning trains per-layer keys and values; PEFT's gradient is that of the table they are cut from.
      const grads =
        method === 'prefix'
          ? [{ name: 'prompt_embeddings', value: await prefixTableGrad(adapter, model.config) }]
          : await Promise.all(adapter.params.map(async (p) => ({ name: p.name, value: await readTensor(p.grad as Tensor & { dtype: 'f32' }) })));
      expect(grads.map((g) => keyOf(g.name)).sort()).toEqual(Object.keys(fixture.grads).sort());
      let worst = 0;
      for (const p of grads) {
        const want = fixture.grads[keyOf(p.name)];
        expect(p.value.length).toBe(want.shape.reduce((a, d) => a * d, 1));
        const err = relL2(p.value, want.values);
        worst = Math.max(worst, err);
        expect(err, p.name).toBeLessThan(TOLERANCE);
      }
      console.log(`${name}: loss ${evaluated.loss.toFixed(6)} vs PyTorch ${fixture.loss.toFixed(6)} (rel ${lossErr.toExponential(2)}); ${grads.length} gradients, worst relL2 ${worst.toExponential(2)}`);
    } finally {
      inputs.release();
      groups.release();
      adapter.release();
      model.release();
    }
  });
});
