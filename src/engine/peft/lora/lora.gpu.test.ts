// LoRA on the GPU against the float64 references: the op (with seeded dropout) against
// reference/lora.ts; whole tiny models (written with writeTinyModel) with an adapter against
// reference/llama.ts on merged weights W + scale · B · A, for logits, loss and, by central
// differences, the adapter gradients; PEFT's init, rsLoRA and rank/alpha patterns; strength;
// merge and unmerge; save and load; dropout masks replayed through gradient checkpointing;
// generation with the adapter; and the merged Hugging Face export loading back.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../../scripts/tiny/tokenizer.ts';
import { scratch } from '../../autograd/ops.ts';
import { Tape } from '../../autograd/tape.ts';
import { AdapterConfigError, AdapterMismatchError, InvalidArgumentError } from '../../errors.ts';
import { Batch } from '../../gpu/batch.ts';
import type { Gpu } from '../../gpu/device.ts';
import { readTensor } from '../../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../../gpu/tensor.ts';
import { testGpu } from '../../gpu/testing.ts';
import { affine, fill } from '../../kernels/elementwise.ts';
import { exportPeftLora } from '../../io/export-peft.ts';
import { blobFileSet, openModelFolder } from '../../io/model-folder.ts';
import { nodeFileSet, openModelDirectory } from '../../io/model-folder-node.ts';
import { generate } from '../../model/generate.ts';
import { type LlamaModel, type TokenRow, evaluateLoss, loadModel, makeInputs } from '../../model/llama.ts';
import { type TinyModel, type TinyModelSpec, writeTinyModel } from '../../model/llama-testing.ts';
import { argmax } from '../../model/sampling.ts';
import { relL2 } from '../../reference/compare.ts';
import { type LlamaRefParams, type LlamaRefRow, llamaLoss, roundProjectionsToBf16 } from '../../reference/llama.ts';
import { bf16ToF32, f32ToBf16 } from '../../reference/matmul_lowp.ts';
import { type LoraRefModule, loraBackward, loraForward, mergedLlamaParams } from '../../reference/lora.ts';
import { Rng } from '../../random.ts';
import { type LoraConfig, type LoraTensors, createLoraConfig } from './config.ts';
import { loraTerm } from './layer.ts';
import { type LoraAdapter, createLora, exportMergedModel, exportedBytes, loadLora, mergeLora, unmergeLora, withAdapter } from './model.ts';

const tokenizer = makeTinyTokenizer();
let root = '';
let gpu: Gpu;
/** Untied Llama with q/k/v/o biases and llama3 RoPE, f32 checkpoint. */
let llama: TinyModel;
let model: LlamaModel;

const LLAMA: TinyModelSpec = { architecture: 'llama', tied: false, fileDtype: 'F32', seed: 21 };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-lora-'));
  gpu = await testGpu();
  llama = await writeTinyModel(join(root, 'llama'), LLAMA, tokenizer);
  model = await loadModel(gpu, await openModelDirectory(llama.dir));
});
afterAll(async () => {
  model?.release();
  await rm(root, { recursive: true, force: true });
});

/** Three rows of different lengths; the second has masked labels, the third is short. */
function testRows(V: number): TokenRow[] {
  const rng = new Rng(11);
  const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
  const second = ids(12);
  return [{ inputIds: ids(9) }, { inputIds: second, labels: second.map((t, i) => (i < 5 ? -100 : t)) }, { inputIds: ids(3) }];
}

/** Every projection, a per-module rank and alpha, and random A and B (init_lora_weights false). */
const RANDOM_CONFIG: Partial<LoraConfig> = {
  r: 4,
  lora_alpha: 8,
  target_modules: 'all-linear',
  rank_pattern: { 'layers.1.mlp.down_proj': 2 },
  alpha_pattern: { v_proj: 12 },
  init_lora_weights: false,
};

/** The adapter's modules for reference/lora.ts, with its current factors and scales. */
function refModules(adapter: LoraAdapter, tensors: LoraTensors): LoraRefModule[] {
  return adapter.modules.map((path) => {
    const s = adapter.moduleSpec(path);
    const pair = tensors.get(path)!;
    return { path, A: pair.A, B: pair.B, r: s.r, scale: s.scaling * adapter.strength };
  });
}

/** Worst relL2 over rows between GPU logits and reference logits. */
function worstRows(got: Float32Array[], want: Float64Array[]): number {
  return Math.max(...got.map((g, i) => relL2(g, want[i])));
}

describe('the LoRA op', () => {
  it('computes scale · dropout(x) · Aᵀ · Bᵀ and its gradients as the float64 reference does, mask replayed in backward', async () => {
    const [N, inF, outF, r] = [37, 48, 40, 5];
    const rng = new Rng(3);
    const x = rng.fill(N * inF, (q) => q.normal()); // (N, in)
    const A = rng.fill(r * inF, (q) => q.normal() / Math.sqrt(inF)); // (r, in)
    const B = rng.fill(outF * r, (q) => q.normal()); // (out, r)
    const dy = rng.fill(N * outF, (q) => q.normal()); // (N, out)
    const d = { N, inFeatures: inF, outFeatures: outF, r };
    for (const dropout of [null, { p: 0.3, seed: 1234 }]) {
      const tape = new Tape();
      const b = new Batch(gpu, 'lora.op');
      const tensors: Tensor[] = [
        tensorFromArray(gpu, x, [N, inF]),
        tensorFromArray(gpu, A, [r, inF]),
        tensorFromArray(gpu, B, [outF, r]),
      ];
      const grads = tensors.map((t) => {
        const g = createTensor(gpu, t.shape, 'f32');
        fill(b, g, 0);
        return g;
      });
      const [xv, av, bv] = tensors.map((t, i) => tape.leaf(t, { grad: grads[i] }));
      const y = loraTerm(tape, b, xv, av, bv, { scale: 1.5, dropout: dropout?.p, seed: dropout?.seed });
      const yCopy = createTensor(gpu, [N, outF]);
      affine(b, y.value, yCopy, 1);
      tape.backward(b, y, tensorFromArray(gpu, dy, [N, outF], 'f32', { transient: true }));
      b.submit();
      const want = loraForward(x, A, B, d, 1.5, dropout);
      const wantGrads = loraBackward(x, A, B, dy, d, 1.5, dropout);
      const errs = [
        relL2(await readTensor(yCopy), want.y),
        relL2(await readTensor(grads[0]), wantGrads.dx),
        relL2(await readTensor(grads[1]), wantGrads.dA),
        relL2(await readTensor(grads[2]), wantGrads.dB),
      ];
      console.log(`LoRA op ${dropout ? 'with' : 'without'} dropout: relL2 y ${errs.map((e) => e.toExponential(2)).join(', dx/dA/dB ')}`);
      for (const e of errs) expect(e).toBeLessThan(1e-5);
      for (const t of [...tensors, ...grads, yCopy]) t.release();
    }
  });
});

describe('LoRA on a tiny Llama', () => {
  it('starts as the base model: PEFT init gives A in U(−1/√in, 1/√in) (or N(0, 1/r²)) and B = 0, and the logits do not change', async () => {
    const rows = testRows(llama.config.vocabSize).map((r) => r.inputIds);
    const base = await model.logits(rows);
    for (const init of ['kaiming', 'gaussian'] as const) {
      const adapter = createLora(model, createLoraConfig({ r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj', 'down_proj'] }), { seed: 1, init });
      try {
        expect(adapter.modules).toHaveLength(6);
        expect(adapter.params.map((p) => p.name).slice(0, 2)).toEqual(['model.layers.0.self_attn.q_proj.lora_A.weight', 'model.layers.0.self_attn.q_proj.lora_B.weight']);
        const t = await adapter.toTensors();
        const down = t.get('model.layers.1.mlp.down_proj')!; // in = 48
        const q = t.get('model.layers.0.self_attn.q_proj')!; // in = 32
        for (const pair of t.values()) expect(pair.B.every((v) => v === 0)).toBe(true);
        const std = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
        if (init === 'kaiming') {
          expect(Math.max(...down.A.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(48));
          expect(Math.max(...q.A.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(32));
          expect(Math.max(...q.A.map(Math.abs))).toBeGreaterThan(0.9 / Math.sqrt(32));
          expect(std(q.A)).toBeCloseTo(1 / Math.sqrt(3 * 32), 1);
        } else {
          expect(std(q.A)).toBeGreaterThan(0.8 / 8);
          expect(std(q.A)).toBeLessThan(1.2 / 8);
        }
        const got = await withAdapter(model, adapter).logits(rows);
        got.forEach((g, i) => expect(g).toEqual(base[i]));
      } finally {
        adapter.release();
      }
    }
  });

  it('with random A and B matches the reference on merged weights (logits and loss), rank/alpha patterns included; strength scales it', async () => {
    const adapter = createLora(model, createLoraConfig(RANDOM_CONFIG), { seed: 2 });
    try {
      expect(adapter.modules).toHaveLength(14);
      expect(adapter.moduleSpec('model.layers.1.mlp.down_proj')).toMatchObject({ r: 2, scaling: 4 });
      expect(adapter.moduleSpec('model.layers.0.self_attn.v_proj')).toMatchObject({ r: 4, scaling: 3 });
      const tensors = await adapter.toTensors();
      const rows = testRows(llama.config.vocabSize);
      for (const strength of [1, 0.5]) {
        adapter.strength = strength;
        const want = llamaLoss(llama.config, mergedLlamaParams(llama.params, refModules(adapter, tensors)), rows as LlamaRefRow[]);
        const view = withAdapter(model, adapter);
        const logitsErr = worstRows(await view.logits(rows.map((r) => r.inputIds)), want.logits);
        const ev = await evaluateLoss(view, rows);
        const lossErr = Math.abs(ev.loss - want.loss) / want.loss;
        console.log(`random adapter, strength ${strength}: logits relL2 ${logitsErr.toExponential(2)}, loss rel ${lossErr.toExponential(2)} (loss ${ev.loss.toFixed(5)})`);
        expect(logitsErr).toBeLessThan(1e-5);
        expect(lossErr).toBeLessThan(1e-5);
        expect(ev.tokens).toBe(want.tokens);
      }
      // The adapter changes the model for real.
      const base = llamaLoss(llama.config, llama.params, rows as LlamaRefRow[]);
      adapter.strength = 1;
      expect(Math.abs((await evaluateLoss(withAdapter(model, adapter), rows)).loss - base.loss)).toBeGreaterThan(1e-2);
      // Strength 0 is the base model, exactly.
      adapter.strength = 0;
      const ids = rows.map((r) => r.inputIds);
      const [zero, plain] = [await withAdapter(model, adapter).logits(ids), await model.logits(ids)];
      zero.forEach((z, i) => expect(z).toEqual(plain[i]));
    } finally {
      adapter.release();
    }
  });

  it('gives adapter gradients that match central differences of the reference, and the frozen base gets no gradient', async () => {
    const adapter = createLora(model, createLoraConfig(RANDOM_CONFIG), { seed: 3 });
    const rows = testRows(llama.config.vocabSize);
    const inputs = makeInputs(model, rows);
    try {
      const tensors = await adapter.toTensors();
      const step = async () => {
        const tape = new Tape();
        const b = new Batch(gpu, 'lora.grad');
        adapter.zeroGrads(b);
        const leaves = adapter.leaves(tape);
        expect([...leaves.values()].every((v) => v.requiresGrad && v.grad !== null)).toBe(true);
        const base = model.vars(tape);
        const loss = model.loss(tape, b, inputs, { params: base, projection: adapter.hook(tape, leaves) });
        const lossCopy = createTensor(gpu, [1]); // (1)
        affine(b, loss.value, lossCopy, 1);
        const seed = scratch(b, [1], 'seed'); // (1)
        fill(b, seed, 1);
        tape.backward(b, loss, seed);
        b.submit();
        // Frozen weights: no leaf of the base model requires or received a gradient.
        expect(Object.values(base).every((v) => !v.requiresGrad && v.grad === null)).toBe(true);
        const value = (await readTensor(lossCopy))[0];
        lossCopy.release();
        return value;
      };
      const got0 = await step();
      const ref = (t: LoraTensors) => llamaLoss(llama.config, mergedLlamaParams(llama.params, refModules(adapter, t)), rows as LlamaRefRow[]).loss;
      const want = ref(tensors);
      expect(Math.abs(got0 - want) / want).toBeLessThan(1e-5);

      // Central differences on 6 random entries of every lora_A and lora_B.
      const rng = new Rng(9);
      const got: number[] = [];
      const fd: number[] = [];
      const h = 1e-4;
      for (const p of adapter.params) {
        const g = await readTensor(p.grad as Tensor & { dtype: 'f32' });
        const path = p.name.slice(0, p.name.indexOf('.lora_'));
        const which = p.name.includes('.lora_A.') ? 'A' : 'B';
        for (let k = 0; k < 6; k++) {
          const i = rng.int(g.length);
          const at = (delta: number) => {
            const pair = tensors.get(path)!;
            const moved = Float32Array.from(pair[which]);
            const t = new Map(tensors);
            const values = Float64Array.from(moved);
            values[i] += delta;
            t.set(path, { ...pair, [which]: values as unknown as Float32Array });
            return ref(t);
          };
          got.push(g[i]);
          fd.push((at(h) - at(-h)) / (2 * h));
        }
      }
      const err = relL2(got, fd);
      console.log(`adapter gradients vs central differences of the float64 reference (${got.length} entries of ${adapter.params.length} tensors): relL2 ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
    } finally {
      inputs.release();
      adapter.release();
    }
  });

  it('takes training steps (dropout 0.2, a model with q/k/v biases) that leave no GPU memory behind', async () => {
    // Frozen-path values that no recorded op consumes (the pre-bias projections, the normed input
    // that only frozen ops read under dropout) must be freed with the step too.
    const qwen = await writeTinyModel(join(root, 'qwen2-step'), { architecture: 'qwen2', tied: true, fileDtype: 'F32', seed: 24 }, tokenizer);
    const m = await loadModel(gpu, await openModelDirectory(qwen.dir));
    const adapter = createLora(m, createLoraConfig({ ...RANDOM_CONFIG, lora_dropout: 0.2 }), { seed: 10 });
    const inputs = makeInputs(m, testRows(qwen.config.vocabSize));
    try {
      const step = async (n: number) => {
        const tape = new Tape();
        const b = new Batch(gpu, 'lora.step');
        adapter.zeroGrads(b);
        const loss = m.loss(tape, b, inputs, { projection: adapter.hook(tape, adapter.leaves(tape), n) });
        const seed = scratch(b, [1], 'seed'); // (1)
        fill(b, seed, 1);
        tape.backward(b, loss, seed);
        b.submit();
        await gpu.sync();
      };
      // The first step creates what persists across steps (pipelines, uniform pages).
      await step(0);
      const before = gpu.allocator.stats().inUseBytes;
      await step(1);
      await step(2);
      expect(gpu.allocator.stats().inUseBytes).toBe(before);
    } finally {
      inputs.release();
      adapter.release();
      m.release();
    }
  });

  it('replays its dropout masks: a step draws the same masks again, checkpointed blocks recompute them, another step differs', async () => {
    const adapter = createLora(model, createLoraConfig({ ...RANDOM_CONFIG, lora_dropout: 0.3 }), { seed: 4 });
    const rows = testRows(llama.config.vocabSize);
    const inputs = makeInputs(model, rows);
    try {
      const run = async (step: number, checkpointBlocks: boolean) => {
        const tape = new Tape();
        const b = new Batch(gpu, 'lora.dropout');
        adapter.zeroGrads(b);
        const leaves = adapter.leaves(tape, true);
        const loss = model.loss(tape, b, inputs, { projection: adapter.hook(tape, leaves, step), checkpointBlocks });
        const lossCopy = createTensor(gpu, [1]); // (1)
        affine(b, loss.value, lossCopy, 1);
        const seed = scratch(b, [1], 'seed'); // (1)
        fill(b, seed, 1);
        tape.backward(b, loss, seed);
        b.submit();
        const value = (await readTensor(lossCopy))[0];
        lossCopy.release();
        const grads = await Promise.all(adapter.params.map((p) => readTensor(p.grad as Tensor & { dtype: 'f32' })));
        return { value, grads: Float32Array.from(grads.flatMap((g) => [...g])) };
      };
      const a = await run(7, false);
      const again = await run(7, true);
      const other = await run(8, false);
      adapter.training = false;
      const off = await run(7, false);
      console.log(`dropout 0.3: loss ${a.value.toFixed(5)} at step 7, ${again.value.toFixed(5)} recomputed through checkpoints, ${other.value.toFixed(5)} at step 8, ${off.value.toFixed(5)} without dropout`);
      expect(Math.abs(again.value - a.value) / a.value).toBeLessThan(1e-6);
      expect(relL2(again.grads, a.grads)).toBeLessThan(1e-5);
      expect(Math.abs(other.value - a.value)).toBeGreaterThan(1e-4);
      expect(Math.abs(off.value - a.value)).toBeGreaterThan(1e-4);
      // Without dropout the loss is the reference's on merged weights.
      const want = llamaLoss(llama.config, mergedLlamaParams(llama.params, refModules(adapter, await adapter.toTensors())), rows as LlamaRefRow[]).loss;
      expect(Math.abs(off.value - want) / want).toBeLessThan(1e-5);
    } finally {
      inputs.release();
      adapter.release();
    }
  });

  it('merges into the f32 weights with the same logits, unmerges back to the base weights, and refuses bf16-stored weights', async () => {
    const adapter = createLora(model, createLoraConfig(RANDOM_CONFIG), { seed: 5 });
    try {
      const ids = testRows(llama.config.vocabSize).map((r) => r.inputIds);
      const base = await model.logits(ids);
      const names = adapter.modules.map((m) => `${m}.weight`);
      const original = await Promise.all(names.map((n) => readTensor(model.params[n] as Tensor & { dtype: 'f32' })));
      const unmerged = await withAdapter(model, adapter).logits(ids);
      mergeLora(model, adapter);
      expect(adapter.merged).toBe(true);
      expect(() => mergeLora(model, adapter)).toThrow(/already merged/);
      const merged = await model.logits(ids);
      const viaView = await withAdapter(model, adapter).logits(ids); // the hook adds nothing while merged
      const mergeErr = Math.max(...merged.map((m, i) => relL2(m, unmerged[i])));
      expect(mergeErr).toBeLessThan(1e-5);
      viaView.forEach((v, i) => expect(v).toEqual(merged[i]));
      unmergeLora(model, adapter);
      expect(adapter.merged).toBe(false);
      expect(() => unmergeLora(model, adapter)).toThrow(/not merged/);
      let weightErr = 0;
      for (let i = 0; i < names.length; i++) weightErr = Math.max(weightErr, relL2(await readTensor(model.params[names[i]] as Tensor & { dtype: 'f32' }), original[i]));
      const restored = await model.logits(ids);
      const restoreErr = Math.max(...restored.map((r, i) => relL2(r, base[i])));
      console.log(`merge: logits relL2 ${mergeErr.toExponential(2)} vs unmerged adapter; unmerge: weights relL2 ${weightErr.toExponential(2)}, logits ${restoreErr.toExponential(2)} vs base`);
      expect(weightErr).toBeLessThan(1e-6);
      expect(restoreErr).toBeLessThan(1e-6);
    } finally {
      adapter.release();
    }
    const bf16 = await loadModel(gpu, await openModelDirectory(llama.dir), { dtype: 'bf16' });
    const adapter16 = createLora(bf16, createLoraConfig(RANDOM_CONFIG), { seed: 5 });
    try {
      expect(() => mergeLora(bf16, adapter16)).toThrow(InvalidArgumentError);
      expect(() => mergeLora(bf16, adapter16)).toThrow(/stored as bf16/);
      expect(adapter16.merged).toBe(false);
    } finally {
      adapter16.release();
      bf16.release();
    }
  });

  it('saves as PEFT files and loads back to identical outputs; generation uses the adapter', async () => {
    const adapter = createLora(model, createLoraConfig({ ...RANDOM_CONFIG, lora_dropout: 0.1 }), { seed: 6 });
    try {
      const files = exportPeftLora({ config: adapter.config, tensors: await adapter.toTensors(), modelConfig: model.config });
      const loaded = await loadLora(model, files);
      try {
        expect(loaded.training).toBe(false);
        expect(loaded.modules).toEqual(adapter.modules);
        expect(loaded.config.lora_dropout).toBe(0.1);
        expect(loaded.moduleSpec('model.layers.1.mlp.down_proj').r).toBe(2);
        const ids = testRows(llama.config.vocabSize).map((r) => r.inputIds);
        const [a, b] = [await withAdapter(model, adapter).logits(ids), await withAdapter(model, loaded).logits(ids)];
        a.forEach((x, i) => expect(b[i]).toEqual(x));
        // Greedy generation with the adapter's hook: the first token is the argmax of the adapted logits.
        const prompt = ids[1];
        const out = await generate(model, prompt, { maxNewTokens: 4, projection: loaded.inference() });
        const viaView = await generate(withAdapter(model, loaded), prompt, { maxNewTokens: 4 });
        expect(viaView.tokens).toEqual(out.tokens);
        const V = llama.config.vocabSize;
        expect(out.tokens[0]).toBe(argmax(a[1].subarray((prompt.length - 1) * V)));
        const [full] = await withAdapter(model, loaded).logits([[...prompt, ...out.tokens.slice(0, 3)]]);
        expect(out.tokens[3]).toBe(argmax(full.subarray((prompt.length + 2) * V)));
      } finally {
        loaded.release();
      }
    } finally {
      adapter.release();
    }
  });

  it('refuses configs it does not compute and adapters made for another model, with typed errors', async () => {
    const refused: [Partial<LoraConfig>, RegExp][] = [
      [{ use_dora: true }, /"use_dora" is true: DoRA/],
      [{ bias: 'all' }, /"bias" is "all"/],
      [{ modules_to_save: ['lm_head'] }, /"modules_to_save"/],
      [{ init_lora_weights: 'pissa' }, /"init_lora_weights" is "pissa"/],
      [{ alora_invocation_tokens: [1, 2] }, /activated LoRA/],
    ];
    for (const [c, message] of refused) {
      expect(() => createLora(model, createLoraConfig(c), { seed: 0 }), message.source).toThrow(AdapterConfigError);
      expect(() => createLora(model, createLoraConfig(c), { seed: 0 })).toThrow(message);
    }
    expect(() => createLora(model, createLoraConfig(), { seed: -1 })).toThrow(InvalidArgumentError);
    // The fixture adapter belongs to a model with hidden size 64; this one has 32.
    const fixtureDir = fileURLToPath(new URL('../../../../fixtures/lora/llama3-untied-f32-lora/', import.meta.url));
    await expect(loadLora(model, await nodeFileSet(fixtureDir))).rejects.toThrow(AdapterMismatchError);
    await expect(loadLora(model, await nodeFileSet(fixtureDir))).rejects.toThrow(/in the adapter but \(out=32, in=32\) in the base model/);
  });

  it('scales by alpha / sqrt(r) with rsLoRA (Qwen2 with q/k/v biases)', async () => {
    const qwen = await writeTinyModel(join(root, 'qwen2'), { architecture: 'qwen2', tied: true, fileDtype: 'F32', seed: 22 }, tokenizer);
    const m = await loadModel(gpu, await openModelDirectory(qwen.dir));
    const adapter = createLora(m, createLoraConfig({ r: 4, lora_alpha: 8, use_rslora: true, target_modules: ['q_proj', 'k_proj', 'up_proj'], init_lora_weights: false }), { seed: 7 });
    try {
      expect(adapter.moduleSpec('model.layers.0.self_attn.k_proj').scaling).toBe(4);
      const rows = testRows(qwen.config.vocabSize);
      const tensors = await adapter.toTensors();
      const want = llamaLoss(qwen.config, mergedLlamaParams(qwen.params, refModules(adapter, tensors)), rows as LlamaRefRow[]);
      const plainScale = adapter.modules.map((path) => ({ ...refModules(adapter, tensors).find((x) => x.path === path)!, scale: 2 }));
      const wrong = llamaLoss(qwen.config, mergedLlamaParams(qwen.params, plainScale), rows as LlamaRefRow[]);
      const ev = await evaluateLoss(withAdapter(m, adapter), rows);
      const err = Math.abs(ev.loss - want.loss) / want.loss;
      console.log(`rsLoRA: loss rel ${err.toExponential(2)} (alpha/r would be off by ${(Math.abs(wrong.loss - want.loss) / want.loss).toExponential(2)})`);
      expect(err).toBeLessThan(1e-5);
      expect(Math.abs(ev.loss - wrong.loss) / wrong.loss).toBeGreaterThan(1e-3);
    } finally {
      adapter.release();
      m.release();
    }
  });

  it('exports a merged Hugging Face folder that loads back: from bf16 storage, from weights merged on the GPU, and a bf16 checkpoint kept in bf16', async () => {
    // An f32 checkpoint loaded with bf16 projections: the export adds the adapter to the stored values.
    const folder = await openModelDirectory(llama.dir);
    const m16 = await loadModel(gpu, folder, { dtype: 'bf16' });
    const adapter = createLora(m16, createLoraConfig(RANDOM_CONFIG), { seed: 8 });
    const ids = testRows(llama.config.vocabSize).map((r) => r.inputIds);
    try {
      const files = await exportedBytes(await exportMergedModel(m16, adapter, folder));
      expect([...files.keys()].sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      expect(files.get('tokenizer.json')).toEqual(new Uint8Array(await readFile(join(llama.dir, 'tokenizer.json'))));
      const back = await openModelFolder(blobFileSet(Object.fromEntries([...files].map(([k, v]) => [k, new Blob([v as Uint8Array<ArrayBuffer>])]))));
      expect(back.weights.every((w) => w.dtype === 'F32')).toBe(true);
      const merged = await loadModel(gpu, back);
      try {
        const err = worstRows(await merged.logits(ids), (await withAdapter(m16, adapter).logits(ids)).map((z) => Float64Array.from(z)));
        console.log(`merged export (f32 file from bf16 storage): logits relL2 ${err.toExponential(2)} vs the unmerged adapter`);
        expect(err).toBeLessThan(1e-5);
      } finally {
        merged.release();
      }
    } finally {
      adapter.release();
      m16.release();
    }

    // An adapter already merged on the GPU is exported as the weights hold it; --dtype bf16 rounds every tensor.
    const adapter3 = createLora(model, createLoraConfig(RANDOM_CONFIG), { seed: 11 });
    try {
      const mergedRef = mergedLlamaParams(llama.params, refModules(adapter3, await adapter3.toTensors()));
      const allBf16 = Object.fromEntries(Object.entries(mergedRef).map(([k, v]) => [k, v.map((x) => bf16ToF32(f32ToBf16(x)))]));
      const want = llamaLoss(llama.config, allBf16, ids.map((inputIds) => ({ inputIds }))).logits;
      mergeLora(model, adapter3);
      const files = await exportedBytes(await exportMergedModel(model, adapter3, await openModelDirectory(llama.dir), { dtype: 'bf16' }));
      unmergeLora(model, adapter3);
      const back = await openModelFolder(blobFileSet(Object.fromEntries([...files].map(([k, v]) => [k, new Blob([v as Uint8Array<ArrayBuffer>])]))));
      expect(back.weights.every((w) => w.dtype === 'BF16')).toBe(true);
      expect(back.rawConfig.torch_dtype).toBe('bfloat16');
      const merged = await loadModel(gpu, back);
      try {
        const err = worstRows(await merged.logits(ids), want);
        console.log(`merged export of a GPU-merged adapter as bf16: logits relL2 ${err.toExponential(2)} vs the reference with every tensor rounded to bf16`);
        expect(err).toBeLessThan(1e-5);
      } finally {
        merged.release();
      }
    } finally {
      adapter3.release();
    }

    // A bf16 checkpoint: the merged weights are written in bf16, as the reference rounds them.
    const q16 = await writeTinyModel(join(root, 'qwen2-bf16'), { architecture: 'qwen2', tied: true, fileDtype: 'BF16', seed: 23 }, tokenizer);
    const folder16 = await openModelDirectory(q16.dir);
    const m = await loadModel(gpu, folder16);
    const adapter2 = createLora(m, createLoraConfig(RANDOM_CONFIG), { seed: 9 });
    try {
      const tensors = await adapter2.toTensors();
      const files = await exportedBytes(await exportMergedModel(m, adapter2, folder16));
      const back = await openModelFolder(blobFileSet(Object.fromEntries([...files].map(([k, v]) => [k, new Blob([v as Uint8Array<ArrayBuffer>])]))));
      expect(back.weights.every((w) => w.dtype === 'BF16')).toBe(true);
      expect(back.rawConfig.torch_dtype).toBe('bfloat16');
      const merged = await loadModel(gpu, back);
      try {
        const refParams: LlamaRefParams = roundProjectionsToBf16(mergedLlamaParams(q16.params, refModules(adapter2, tensors)));
        const want = llamaLoss(q16.config, refParams, ids.map((inputIds) => ({ inputIds })));
        const err = worstRows(await merged.logits(ids), want.logits);
        console.log(`merged export (bf16 file): logits relL2 ${err.toExponential(2)} vs the reference with merged weights rounded to bf16`);
        expect(err).toBeLessThan(1e-5);
      } finally {
        merged.release();
      }
    } finally {
      adapter2.release();
      m.release();
    }
  });
});
