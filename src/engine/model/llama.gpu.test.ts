// The GPU Llama-family model against the float64 reference (reference/llama.ts) on tiny checkpoints
// of every supported architecture, tied and untied, stored f32 and bf16, loaded with f32 and bf16
// projection storage: logits of a padded batch, the causal-LM loss, gradients through frozen
// 16-bit projections, KV-cache generation against full recomputation, and evaluation batched
// versus row by row. Folders are written to a temp dir with writeTinyModel.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { Tape } from '../autograd/tape.ts';
import { scratch } from '../autograd/ops.ts';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { createTensor } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { affine, fill } from '../kernels/elementwise.ts';
import { openModelDirectory } from '../io/model-folder-node.ts';
import { relL2 } from '../reference/compare.ts';
import { type LlamaRefParams, type LlamaRefRow, llamaLoss, roundProjectionsToBf16 } from '../reference/llama.ts';
import { Rng } from '../random.ts';
import { argmax } from './sampling.ts';
import { generate } from './generate.ts';
import { type TokenRow, evaluateLoss, loadModel, makeInputs } from './llama.ts';
import { type TinyModel, type TinyModelSpec, writeTinyModel } from './llama-testing.ts';

const tokenizer = makeTinyTokenizer();
let root = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-llama-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Three rows of different lengths; the second has masked labels (a prompt part), the third is short. */
function testRows(V: number): TokenRow[] {
  const rng = new Rng(11);
  const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
  const second = ids(12);
  return [{ inputIds: ids(9) }, { inputIds: second, labels: second.map((t, i) => (i < 5 ? -100 : t)) }, { inputIds: ids(3) }];
}

async function tinyModel(name: string, spec: TinyModelSpec): Promise<TinyModel> {
  return writeTinyModel(join(root, name), spec, tokenizer);
}

/** Loads the folder with `dtype` projection storage and checks logits and loss against the reference. */
async function checkAgainstReference(tiny: TinyModel, dtype: 'f32' | 'bf16'): Promise<{ logits: number; loss: number }> {
  const gpu = await testGpu();
  const folder = await openModelDirectory(tiny.dir);
  const model = await loadModel(gpu, folder, { dtype });
  try {
    const refParams: LlamaRefParams = dtype === 'bf16' ? roundProjectionsToBf16(tiny.params) : tiny.params;
    const rows = testRows(tiny.config.vocabSize);
    const want = llamaLoss(tiny.config, refParams, rows as LlamaRefRow[]);
    const got = await model.logits(rows.map((r) => r.inputIds));
    let worst = 0;
    rows.forEach((_, i) => {
      const err = relL2(got[i], want.logits[i]);
      worst = Math.max(worst, err);
      expect(err, `row ${i} logits`).toBeLessThan(1e-5);
    });
    const ev = await evaluateLoss(model, rows, { batchTokens: 4096 });
    expect(ev.tokens).toBe(want.tokens);
    const lossErr = Math.abs(ev.loss - want.loss) / want.loss;
    expect(lossErr).toBeLessThan(1e-5);
    return { logits: worst, loss: lossErr };
  } finally {
    model.release();
  }
}

describe('Llama-family model on the GPU', () => {
  const cases: [string, TinyModelSpec][] = [
    ['llama (untied, llama3 rope, q/k/v/o biases, f32 file)', { architecture: 'llama', tied: false, fileDtype: 'F32', seed: 1 }],
    ['mistral (tied, f32 file)', { architecture: 'mistral', tied: true, fileDtype: 'F32', seed: 2 }],
    ['qwen2 (tied, q/k/v biases, bf16 file)', { architecture: 'qwen2', tied: true, fileDtype: 'BF16', seed: 3 }],
    ['qwen3 (untied, q/k norms, head_dim 16, bf16 file)', { architecture: 'qwen3', tied: false, fileDtype: 'BF16', seed: 4 }],
  ];
  for (const [name, spec] of cases) {
    it(`${name}: logits and loss match the float64 reference with f32 and bf16 projections`, async () => {
      const tiny = await tinyModel(spec.architecture, spec);
      const f32 = await checkAgainstReference(tiny, 'f32');
      const bf16 = await checkAgainstReference(tiny, 'bf16');
      console.log(
        `${name}: f32 storage logits relL2 ${f32.logits.toExponential(2)}, loss ${f32.loss.toExponential(2)}; ` +
          `bf16 storage logits relL2 ${bf16.logits.toExponential(2)}, loss ${bf16.loss.toExponential(2)}`,
      );
    });
  }

  it('stores projections in 16 bits with dtype bf16, and the rounding shows for an f32 checkpoint', async () => {
    const gpu = await testGpu();
    const tiny = await tinyModel('llama-bf16-storage', { architecture: 'llama', tied: false, fileDtype: 'F32', seed: 5 });
    const model = await loadModel(gpu, await openModelDirectory(tiny.dir), { dtype: 'bf16' });
    try {
      expect(model.params['model.layers.0.self_attn.q_proj.weight'].dtype).toBe('bf16');
      expect(model.params['model.layers.1.mlp.down_proj.weight'].dtype).toBe('bf16');
      expect(model.params['model.embed_tokens.weight'].dtype).toBe('f32');
      expect(model.params['lm_head.weight'].dtype).toBe('f32');
      expect(model.params['model.layers.0.self_attn.q_proj.bias'].dtype).toBe('f32');
      const rows = testRows(tiny.config.vocabSize);
      const [got] = await model.logits([rows[0].inputIds]);
      const unrounded = llamaLoss(tiny.config, tiny.params, [rows[0]] as LlamaRefRow[]).logits[0];
      const rounded = llamaLoss(tiny.config, roundProjectionsToBf16(tiny.params), [rows[0]] as LlamaRefRow[]).logits[0];
      expect(relL2(got, rounded)).toBeLessThan(1e-5);
      expect(relL2(got, unrounded)).toBeGreaterThan(1e-4);
    } finally {
      model.release();
    }
  });

  it('gives gradients through frozen bf16 projections and biases that match finite differences of the reference', async () => {
    const gpu = await testGpu();
    const tiny = await tinyModel('qwen2-grad', { architecture: 'qwen2', tied: true, fileDtype: 'F32', seed: 6 });
    const model = await loadModel(gpu, await openModelDirectory(tiny.dir), { dtype: 'bf16' });
    const ref = roundProjectionsToBf16(tiny.params);
    const rows = testRows(tiny.config.vocabSize);
    const trainable = ['model.layers.0.input_layernorm.weight', 'model.layers.0.self_attn.q_proj.bias', 'model.layers.1.self_attn.v_proj.bias', 'model.norm.weight'];
    const inputs = makeInputs(model, rows);
    const tape = new Tape();
    const b = new Batch(gpu, 'grad');
    const grads = Object.fromEntries(trainable.map((n) => [n, createTensor(gpu, model.params[n].shape, 'f32', { label: `${n}.grad` })]));
    for (const g of Object.values(grads)) fill(b, g, 0);
    const params = Object.fromEntries(trainable.map((n) => [n, tape.leaf(model.params[n], { grad: grads[n], name: n })]));
    const loss = model.loss(tape, b, inputs, { params });
    const lossCopy = createTensor(gpu, [1]); // (1)
    affine(b, loss.value, lossCopy, 1);
    const seed = scratch(b, [1], 'seed'); // (1)
    fill(b, seed, 1);
    tape.backward(b, loss, seed);
    b.submit();
    const want = llamaLoss(tiny.config, ref, rows as LlamaRefRow[]).loss;
    expect(Math.abs((await readTensor(lossCopy))[0] - want) / want).toBeLessThan(1e-5);
    let worst = 0;
    const h = 1e-4;
    for (const name of trainable) {
      const got = await readTensor(grads[name]);
      const fd = new Float64Array(got.length);
      for (let i = 0; i < got.length; i++) {
        const at = (d: number) => {
          const p = { ...ref, [name]: ref[name].map((v, j) => (j === i ? v + d : v)) };
          return llamaLoss(tiny.config, p, rows as LlamaRefRow[]).loss;
        };
        fd[i] = (at(h) - at(-h)) / (2 * h);
      }
      const err = relL2(got, fd);
      worst = Math.max(worst, err);
      expect(err, name).toBeLessThan(1e-4);
    }
    console.log(`gradients through bf16 projections and biases vs central differences: worst relL2 ${worst.toExponential(2)}`);
    for (const t of [...Object.values(grads), lossCopy]) t.release();
    inputs.release();
    model.release();
  });

  it('KV-cache generation picks the same greedy tokens, from the same logits, as recomputing the whole sequence', async () => {
    const gpu = await testGpu();
    for (const spec of [cases[0][1], cases[3][1]]) {
      const tiny = await tinyModel(`${spec.architecture}-gen`, spec);
      const model = await loadModel(gpu, await openModelDirectory(tiny.dir));
      try {
        const prompt = testRows(tiny.config.vocabSize)[1].inputIds;
        // A first run creates what persists across runs (pipelines, the uniform arena's pages).
        await generate(model, prompt, { maxNewTokens: 2 });
        const before = gpu.allocator.stats().inUseBytes;
        const seen: Float32Array[] = [];
        const streamed: number[] = [];
        const out = await generate(model, prompt, { maxNewTokens: 10, onLogits: (z) => seen.push(z), onToken: (id) => streamed.push(id) });
        expect(gpu.allocator.stats().inUseBytes).toBe(before);
        expect(out.finishReason).toBe('length');
        expect(out.tokens).toHaveLength(10);
        expect(streamed).toEqual(out.tokens);
        const seq = [...prompt];
        let worst = 0;
        for (let i = 0; i < out.tokens.length; i++) {
          const [full] = await model.logits([seq]);
          const last = full.subarray((seq.length - 1) * tiny.config.vocabSize);
          const err = relL2(seen[i], last);
          worst = Math.max(worst, err);
          expect(err, `step ${i}`).toBeLessThan(1e-5);
          expect(out.tokens[i], `step ${i}`).toBe(argmax(last));
          seq.push(out.tokens[i]);
        }
        console.log(`${spec.architecture}: KV-cache tokens ${out.tokens.join(' ')}; worst logits relL2 vs recompute ${worst.toExponential(2)}`);
      } finally {
        model.release();
      }
    }
  });

  it('generation stops at an end token, reproduces a seeded sample, and can be cancelled', async () => {
    const gpu = await testGpu();
    const tiny = await tinyModel('mistral-stop', cases[1][1]);
    const model = await loadModel(gpu, await openModelDirectory(tiny.dir));
    try {
      const prompt = testRows(tiny.config.vocabSize)[0].inputIds;
      const greedy = await generate(model, prompt, { maxNewTokens: 4 });
      const stop = await generate(model, prompt, { maxNewTokens: 4, eosTokenIds: [greedy.tokens[1]] });
      expect(stop.finishReason).toBe('eos');
      expect(stop.tokens).toEqual(greedy.tokens.slice(0, greedy.tokens.indexOf(greedy.tokens[1]) + 1));
      const sampling = { maxNewTokens: 6, temperature: 1.5, topK: 50, topP: 0.95 };
      const a = await generate(model, prompt, { ...sampling, seed: 7 });
      const again = await generate(model, prompt, { ...sampling, seed: 7 });
      const other = await generate(model, prompt, { ...sampling, seed: 8 });
      expect(again.tokens).toEqual(a.tokens);
      expect(other.tokens).not.toEqual(a.tokens);
      const controller = new AbortController();
      const cancelled = await generate(model, prompt, { maxNewTokens: 8, signal: controller.signal, onToken: (_, i) => i === 2 && controller.abort() });
      expect(cancelled.finishReason).toBe('cancelled');
      expect(cancelled.tokens).toHaveLength(3);
    } finally {
      model.release();
    }
  });

  it('evaluates a padded batch exactly as row by row, and frees its intermediates block by block', async () => {
    const gpu = await testGpu();
    const spec: TinyModelSpec = { architecture: 'qwen3', tied: true, fileDtype: 'F32', seed: 9 };
    const peaks: number[] = [];
    for (const layers of [2, 6]) {
      const tiny = await tinyModel(`qwen3-eval-${layers}`, { ...spec, layers });
      const model = await loadModel(gpu, await openModelDirectory(tiny.dir));
      try {
        const rows = testRows(tiny.config.vocabSize);
        const single = await evaluateLoss(model, rows, { batchTokens: 1 });
        gpu.allocator.trim();
        gpu.allocator.resetPeak();
        const before = gpu.allocator.stats();
        const batched = await evaluateLoss(model, rows, { batchTokens: 4096 });
        peaks.push(gpu.allocator.stats().peakBytes - before.liveBytes);
        expect(gpu.allocator.stats().inUseBytes).toBe(before.inUseBytes);
        expect(single.tokens).toBe(batched.tokens);
        expect(Math.abs(single.loss - batched.loss) / batched.loss).toBeLessThan(1e-6);
        const want = llamaLoss(tiny.config, tiny.params, rows as LlamaRefRow[]);
        expect(batched.tokens).toBe(want.tokens);
        expect(Math.abs(batched.loss - want.loss) / want.loss).toBeLessThan(1e-5);
        console.log(`${layers} layers: loss ${batched.loss.toFixed(6)} batched vs ${single.loss.toFixed(6)} row by row over ${batched.tokens} tokens`);
      } finally {
        model.release();
      }
    }
    console.log(`eval peak transient bytes: ${peaks[0]} with 2 layers, ${peaks[1]} with 6`);
    expect(peaks[1]).toBeLessThanOrEqual(peaks[0] * 1.05);
  });

  it('works with the embedding, lm_head, logits and MLP activations split across storage bindings', async () => {
    // 8 KiB per binding: the (384, 32) f32 tables and the (N, 384) logits split into several
    // buffers, the (N, 48) MLP activations in two; attention's (N, 32) operands still fit in one.
    const gpu = await testGpu({ maxBindingBytes: 8192 });
    const tiny = await tinyModel('llama-split', { architecture: 'llama', tied: false, fileDtype: 'F32', seed: 12 });
    const model = await loadModel(gpu, await openModelDirectory(tiny.dir), { dtype: 'bf16' });
    try {
      expect(model.params['model.embed_tokens.weight'].isSplit).toBe(true);
      expect(model.params['lm_head.weight'].isSplit).toBe(true);
      const ref = roundProjectionsToBf16(tiny.params);
      const rows = testRows(tiny.config.vocabSize);
      const want = llamaLoss(tiny.config, ref, rows as LlamaRefRow[]);
      const got = await model.logits(rows.map((r) => r.inputIds));
      rows.forEach((_, i) => expect(relL2(got[i], want.logits[i]), `row ${i}`).toBeLessThan(1e-5));
      const ev = await evaluateLoss(model, rows, { batchTokens: 4096 });
      expect(Math.abs(ev.loss - want.loss) / want.loss).toBeLessThan(1e-5);
      const prompt = rows[1].inputIds;
      const out = await generate(model, prompt, { maxNewTokens: 3 });
      const [full] = await model.logits([[...prompt, out.tokens[0], out.tokens[1]]]);
      expect(out.tokens[2]).toBe(argmax(full.subarray((prompt.length + 1) * tiny.config.vocabSize)));
    } finally {
      model.release();
    }
  });

  it('rejects bad rows with the row named, and a cancelled load frees what it uploaded', async () => {
    const gpu = await testGpu();
    const tiny = await tinyModel('llama-errors', cases[0][1]);
    const folder = await openModelDirectory(tiny.dir);
    const before = gpu.allocator.stats().inUseBytes;
    const controller = new AbortController();
    let loaded = 0;
    await expect(
      loadModel(gpu, folder, { signal: controller.signal, onProgress: () => (++loaded === 5 ? controller.abort() : undefined) }),
    ).rejects.toThrowError(/cancelled/);
    expect(gpu.allocator.stats().inUseBytes).toBe(before);
    const model = await loadModel(gpu, folder);
    try {
      const V = tiny.config.vocabSize;
      await expect(evaluateLoss(model, [{ inputIds: [1, 2] }, { inputIds: [1, V] }])).rejects.toThrowError(/Row 1: token id .* at position 1/);
      await expect(evaluateLoss(model, [{ inputIds: [1, 2, 3], labels: [1, 2] }])).rejects.toThrowError(/Row 0: 2 labels for 3 input ids/);
      await expect(evaluateLoss(model, [{ inputIds: [1, 2, 3], labels: [1, -5, 2] }])).rejects.toThrowError(/label -5/);
      await expect(generate(model, [])).rejects.toThrowError(/no tokens/);
    } finally {
      model.release();
    }
  });
});
