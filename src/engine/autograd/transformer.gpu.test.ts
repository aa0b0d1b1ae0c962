// A two-block Llama-style toy transformer built from the tape ops and trained on the GPU with
// clipped AdamW, against the float64 reference (reference/transformer.ts) from the same seeded
// initialisation: the loss at every step and the gradients of the first step.

import { describe, expect, it } from 'vitest';
import { Batch } from '../gpu/batch.ts';
import type { Gpu } from '../gpu/device.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, tensorFromArray } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { adamw, clipCoefficient, gradNormSquared } from '../kernels/adamw.ts';
import { affine, fill } from '../kernels/elementwise.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { ropeInvFreq } from '../kernels/rope.ts';
import { Rng } from '../random.ts';
import { relL2 } from '../reference/compare.ts';
import { IGNORE_INDEX, countLabels } from '../reference/cross_entropy.ts';
import * as ref from '../reference/transformer.ts';
import { add, attention, crossEntropyLoss, embedding, linear, rmsnorm, rope, scratch, swiglu } from './ops.ts';
import { Tape, type Var } from './tape.ts';

const config: ref.TransformerConfig = { vocab: 37, hidden: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 4, intermediate: 24, rmsEps: 1e-5, ropeTheta: 10000 };
const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
const MAX_NORM = 1;
const STEPS = 30;
const PAD = 0;

/** Row 0 fills T = 9; row 1 has 6 tokens and 3 of padding, and its second label is masked. */
function toyBatch(): ref.TokenBatch {
  const rng = new Rng(8);
  const tokens = (n: number) => Array.from({ length: n }, () => 1 + rng.int(config.vocab - 1));
  const batch = ref.batchFromRows([tokens(9), tokens(6)], 9, PAD);
  batch.labels[10] = IGNORE_INDEX;
  return batch;
}

/** A trainable parameter with its persistent gradient buffer and AdamW moments. */
interface Param {
  name: string;
  value: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
}

/** The GPU-side inputs of one batch. */
interface Inputs {
  ids: Tensor; // (N) i32
  hostIds: Int32Array;
  labels: Tensor; // (N) i32
  count: number;
  positions: Tensor; // (N) i32
  segments: Tensor; // (N) i32
  invFreq: Tensor; // (D/2)
  groups: TokenGroups;
  B: number;
}

/** Copies a batch to the GPU. */
function upload(gpu: Gpu, batch: ref.TokenBatch): Inputs {
  const N = batch.B * batch.T;
  return {
    ids: tensorFromArray(gpu, batch.ids, [N], 'i32'),
    hostIds: batch.ids,
    labels: tensorFromArray(gpu, batch.labels, [N], 'i32'),
    count: countLabels(batch.labels),
    positions: tensorFromArray(gpu, batch.positions, [N], 'i32'),
    segments: tensorFromArray(gpu, batch.segments, [N], 'i32'),
    invFreq: tensorFromArray(gpu, ropeInvFreq(config.headDim, config.ropeTheta), [config.headDim / 2]),
    groups: new TokenGroups(gpu, N),
    B: batch.B,
  };
}

function releaseInputs(x: Inputs): void {
  for (const t of [x.ids, x.labels, x.positions, x.segments, x.invFreq]) t.release();
  x.groups.release();
}

/** One decoder block on the tape: (N, C) → (N, C). */
function block(tape: Tape, b: Batch, p: Record<string, Var>, x: Inputs, l: number, h: Var): Var {
  const { heads: numHeads, kvHeads: numKvHeads, rmsEps: eps } = config;
  const w = (n: string) => p[`model.layers.${l}.${n}.weight`];
  const y1 = rmsnorm(tape, b, h, w('input_layernorm'), eps); // (N, C)
  const q = rope(tape, b, linear(tape, b, y1, w('self_attn.q_proj')), x.positions, x.invFreq); // (N, Hq·D)
  const k = rope(tape, b, linear(tape, b, y1, w('self_attn.k_proj')), x.positions, x.invFreq); // (N, Hkv·D)
  const v = linear(tape, b, y1, w('self_attn.v_proj')); // (N, Hkv·D)
  const att = attention(tape, b, q, k, v, x.segments, { batchSize: x.B, numHeads, numKvHeads }); // (N, Hq·D)
  const h2 = add(tape, b, h, linear(tape, b, att, w('self_attn.o_proj'))); // (N, C)
  const y2 = rmsnorm(tape, b, h2, w('post_attention_layernorm'), eps); // (N, C)
  const act = swiglu(tape, b, linear(tape, b, y2, w('mlp.gate_proj')), linear(tape, b, y2, w('mlp.up_proj'))); // (N, F)
  return add(tape, b, h2, linear(tape, b, act, w('mlp.down_proj'))); // (N, C)
}

/**
 * The model's forward on the tape: the mean cross-entropy (1). With `checkpointBlocks`, each block
 * keeps no activations and is recomputed in backward.
 */
function forward(tape: Tape, b: Batch, p: Record<string, Var>, x: Inputs, checkpointBlocks = false): Var {
  const eps = config.rmsEps;
  let h = embedding(tape, b, p['model.embed_tokens.weight'], x.ids, x.hostIds, x.groups); // (N, C)
  for (let l = 0; l < config.layers; l++) {
    if (checkpointBlocks) {
      const own = Object.keys(p).filter((n) => n.startsWith(`model.layers.${l}.`)).map((n) => p[n]);
      h = tape.checkpoint(b, [h], own, (t, bb, [hin]) => [block(t, bb, p, x, l, hin)])[0];
    } else {
      h = block(tape, b, p, x, l, h);
    }
  }
  const hf = rmsnorm(tape, b, h, p['model.norm.weight'], eps); // (N, C)
  return crossEntropyLoss(tape, b, hf, p['lm_head.weight'], x.labels, x.count, { chunkTokens: 8 });
}

/** Scalars of the optimizer step. */
interface Scalars {
  loss: Tensor; // (1) copy of the step's loss, read after the step
  sumsq: Tensor; // (1)
  coef: Tensor; // (1)
  norm: Tensor; // (1)
}

/**
 * One training step in one command encoder: zero the gradients, forward, backward, clip the global
 * gradient norm to MAX_NORM, AdamW. The loss is copied out before backward frees it.
 */
function trainStep(gpu: Gpu, params: Param[], x: Inputs, s: Scalars, step: number): void {
  const tape = new Tape();
  const b = new Batch(gpu, `step ${step}`);
  for (const q of params) fill(b, q.grad, 0);
  const vars = Object.fromEntries(params.map((q) => [q.name, tape.leaf(q.value, { grad: q.grad, name: q.name })]));
  const loss = forward(tape, b, vars, x);
  affine(b, loss.value, s.loss, 1);
  const seed = scratch(b, [1], 'seed'); // (1) dloss/dloss = 1; the tape takes it
  fill(b, seed, 1);
  tape.backward(b, loss, seed);
  gradNormSquared(b, params.map((q) => q.grad), s.sumsq);
  clipCoefficient(b, s.sumsq, MAX_NORM, s.coef, s.norm);
  for (const q of params) adamw(b, q.value, q.grad, q.m, q.v, s.coef, { ...hyper, step });
  b.submit();
}

/**
 * One forward and backward from seed `seedValue` at seeded parameters, with the parameters for which
 * `frozen` holds given no gradient buffer. Checks the loss, that frozen parameters get no gradient
 * and that the others get seedValue × the reference gradient; returns the worst gradient relL2.
 */
async function oneBackward(
  gpu: Gpu,
  frozen: (name: string) => boolean,
  seedValue: number,
  inspect?: (name: string, t: Tensor) => void,
  checkpointBlocks = false,
): Promise<number> {
  const batch = toyBatch();
  const refParams = ref.initParams(config, 7);
  const want = ref.transformerLossAndGrads(config, refParams, batch);
  const x = upload(gpu, batch);
  const tape = new Tape();
  const b = new Batch(gpu);
  const owned: Tensor[] = [];
  const vars: Record<string, Var> = {};
  for (const { name, shape } of ref.paramSpecs(config)) {
    const value = tensorFromArray(gpu, refParams[name], shape, 'f32', { label: name });
    inspect?.(name, value);
    owned.push(value);
    if (frozen(name)) {
      vars[name] = tape.leaf(value, { name });
    } else {
      const grad = createTensor(gpu, shape, 'f32', { label: `${name}.grad` });
      fill(b, grad, 0);
      owned.push(grad);
      vars[name] = tape.leaf(value, { grad, name });
    }
  }
  const loss = forward(tape, b, vars, x, checkpointBlocks);
  const lossCopy = createTensor(gpu, [1]); // (1)
  affine(b, loss.value, lossCopy, 1);
  const seed = scratch(b, [1], 'seed'); // (1)
  fill(b, seed, seedValue);
  tape.backward(b, loss, seed);
  b.submit();
  expect(Math.abs((await readTensor(lossCopy))[0] - want.loss) / want.loss).toBeLessThan(1e-5);
  let worst = 0;
  for (const [name, v] of Object.entries(vars)) {
    if (frozen(name)) {
      expect(v.grad, name).toBeNull();
      continue;
    }
    const err = relL2(await readTensor(v.grad!), want.grads[name].map((g) => seedValue * g));
    worst = Math.max(worst, err);
    expect(err, name).toBeLessThan(1e-5);
  }
  for (const t of [...owned, lossCopy]) t.release();
  releaseInputs(x);
  return worst;
}

describe('toy transformer on the tape', () => {
  it(`follows the float64 reference loss curve for ${STEPS} clipped AdamW steps, with matching first-step gradients`, async () => {
    const gpu = await testGpu();
    const batch = toyBatch();
    const refParams = ref.initParams(config, 42);
    const params: Param[] = ref.paramSpecs(config).map(({ name, shape }) => ({
      name,
      value: tensorFromArray(gpu, refParams[name], shape, 'f32', { label: name }),
      grad: createTensor(gpu, shape, 'f32', { label: `${name}.grad` }),
      m: tensorFromArray(gpu, new Float32Array(refParams[name].length), shape),
      v: tensorFromArray(gpu, new Float32Array(refParams[name].length), shape),
    }));
    const x = upload(gpu, batch);
    const s: Scalars = { loss: createTensor(gpu, [1]), sumsq: createTensor(gpu, [1]), coef: createTensor(gpu, [1]), norm: createTensor(gpu, [1]) };
    const state = ref.adamwState(refParams);

    const gpuLoss: number[] = [];
    const refLoss: number[] = [];
    const refNorm: number[] = [];
    let inUse = 0;
    let gradErr = 0;
    for (let step = 1; step <= STEPS; step++) {
      trainStep(gpu, params, x, s, step);
      const r = ref.trainStep(config, refParams, state, batch, hyper, MAX_NORM);
      refLoss.push(r.loss);
      refNorm.push(r.norm);
      gpuLoss.push((await readTensor(s.loss))[0]);
      if (step === 1) {
        // Gradients are only read by the optimizer, so after the step they still hold step 1's.
        for (const q of params) {
          const err = relL2(await readTensor(q.grad), r.grads[q.name]);
          gradErr = Math.max(gradErr, err);
          expect(err, q.name).toBeLessThan(1e-5);
        }
        expect(Math.abs((await readTensor(s.norm))[0] - r.norm) / r.norm).toBeLessThan(1e-5);
        inUse = gpu.allocator.stats().inUseBytes;
      } else {
        // Everything a step allocates goes back to the pool.
        expect(gpu.allocator.stats().inUseBytes).toBe(inUse);
      }
    }

    const rel = gpuLoss.map((l, i) => Math.abs(l - refLoss[i]) / refLoss[i]);
    console.log(
      `loss ${refLoss[0].toFixed(5)} → ${refLoss[STEPS - 1].toFixed(5)}; max relative GPU/reference difference ${Math.max(...rel).toExponential(2)}; ` +
        `grad norm ${refNorm[0].toFixed(3)} → ${refNorm[STEPS - 1].toFixed(3)}; worst step-1 gradient relL2 ${gradErr.toExponential(2)}`,
    );
    for (let i = 0; i < STEPS; i++) expect(rel[i], `step ${i + 1}: GPU ${gpuLoss[i]} vs reference ${refLoss[i]}`).toBeLessThan(1e-4);
    expect(refLoss[0]).toBeGreaterThan(0.8 * Math.log(config.vocab));
    expect(refLoss[STEPS - 1]).toBeLessThan(0.5 * refLoss[0]);
    // Clipping was active at the start, so the GPU's clip coefficient was exercised.
    expect(refNorm[0]).toBeGreaterThan(MAX_NORM);

    for (const q of params) for (const t of [q.value, q.grad, q.m, q.v]) t.release();
    for (const t of Object.values(s)) t.release();
    releaseInputs(x);
  });

  it('gives frozen weights no gradient and scales the others by the gradient fed to the loss', async () => {
    // Embedding, norms and lm_head frozen: rmsnorm without dweight, cross-entropy without dW, and an
    // embedding lookup that is not recorded at all.
    const worst = await oneBackward(await testGpu(), (name) => !name.endsWith('_proj.weight'), 0.5);
    console.log(`frozen embedding, norms and lm_head, seed 0.5: worst gradient relL2 ${worst.toExponential(2)}`);
  });

  it('gives the same gradients with the embedding table and lm_head split across storage buffers', async () => {
    // 2048 bytes per binding: the (37, 16) tables, their gradients and scratch split in two; the
    // activations and the other weights still fit in one.
    const gpu = await testGpu({ maxBindingBytes: 2048 });
    const worst = await oneBackward(gpu, () => false, 1.5, (name, t) => {
      if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') expect(t.isSplit, name).toBe(true);
    });
    console.log(`split embedding and lm_head, seed 1.5: worst gradient relL2 ${worst.toExponential(2)}`);
  });

  it('gives the same gradients with gradient checkpointing per block, holding fewer activations', async () => {
    const gpu = await testGpu();
    const peakOf = async (checkpointBlocks: boolean) => {
      gpu.allocator.trim();
      gpu.allocator.resetPeak();
      const before = gpu.allocator.stats().liveBytes;
      const worst = await oneBackward(gpu, (name) => name === 'model.embed_tokens.weight', 1, undefined, checkpointBlocks);
      return { worst, peak: gpu.allocator.stats().peakBytes - before };
    };
    const plain = await peakOf(false);
    const ckpt = await peakOf(true);
    console.log(`checkpointed blocks: worst gradient relL2 ${ckpt.worst.toExponential(2)}; peak ${ckpt.peak} bytes vs ${plain.peak} without`);
    expect(ckpt.peak).toBeLessThan(plain.peak);
  });
});
