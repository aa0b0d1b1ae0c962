// The training loop on a tiny Llama (2 layers, hidden 32) with LoRA, learning a fixed successor
// mapping (each token is followed by the next one of a 40-token cycle): training lowers the
// validation loss that evaluateLoss measures; two runs with one seed give the same losses; a run
// cancelled after a checkpoint and resumed gives the uninterrupted run's losses, loss for loss (with
// LoRA dropout on); a cancellation during an evaluation keeps the earlier checkpoint; two
// accumulated micro-batches equal one batch of both; gradient checkpointing changes nothing; packed
// sequences evaluate as the examples they hold; an absurd learning rate, NaN weights and a NaN loss
// stop the run with TrainingDivergedError and keep the last good checkpoint. The absurd learning
// rate continues the first test's trained checkpoint (a model whose loss is already low), so that
// test runs first.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { CancelledError } from '../errors.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, writeTensor } from '../gpu/tensor.ts';
import { testGpu } from '../gpu/testing.ts';
import { openModelDirectory } from '../io/model-folder-node.ts';
import { type LlamaModel, type TokenRow, evaluateLoss, loadModel } from '../model/llama.ts';
import { writeTinyModel } from '../model/llama-testing.ts';
import { createLoraConfig } from '../peft/lora/config.ts';
import { type LoraAdapter, createLora, withAdapter } from '../peft/lora/model.ts';
import { Rng } from '../random.ts';
import { prepareRows } from './batches.ts';
import { MemoryCheckpointStore } from './checkpoint.ts';
import { TrainingDivergedError } from './divergence.ts';
import { evaluateRows } from './evaluate.ts';
import type { StepMetrics } from './metrics.ts';
import { type TrainOptions, train } from './trainer.ts';

const CYCLE = 40;
const FIRST = 100;

/** `n` rows of `len` tokens following the cycle from a random start; the first 2 labels are masked (a "prompt"). */
function successorRows(n: number, seed: number, minLen = 8, maxLen = 12): TokenRow[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = minLen + rng.int(maxLen - minLen + 1);
    const start = rng.int(CYCLE);
    const inputIds = Array.from({ length: len }, (_, t) => FIRST + ((start + t) % CYCLE));
    return { inputIds, labels: inputIds.map((id, t) => (t < 2 ? -100 : id)) };
  });
}

let root = '';
/** The first test's checkpoints (the trained adapter), continued by the divergence test. */
const trainedStore = new MemoryCheckpointStore();
let model: LlamaModel;
const trainRows = successorRows(24, 1);
const valRows = successorRows(8, 2);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-train-'));
  const tiny = await writeTinyModel(join(root, 'model'), { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 5 }, makeTinyTokenizer());
  model = await loadModel(await testGpu(), await openModelDirectory(tiny.dir));
});
afterAll(async () => {
  model?.release();
  await rm(root, { recursive: true, force: true });
});

/** LoRA on q_proj and v_proj (PEFT's default targets), or on every projection. */
function lora(dropout = 0, seed = 3, targets: string[] | string = ['q_proj', 'v_proj']): LoraAdapter {
  return createLora(model, createLoraConfig({ r: 8, lora_alpha: 16, lora_dropout: dropout, target_modules: targets }), { seed });
}

const BASE: TrainOptions = { lr: 1e-2, schedule: 'cosine', warmup: 2, batchSize: 4, seqLen: 16, seed: 7, maxGradNorm: 1 };
/** The first test's run: LoRA on every projection. */
const TRAINED_TARGETS = 'all-linear';
const TRAINED: TrainOptions = { ...BASE, lr: 3e-2, batchSize: 8, epochs: 4, evalEvery: 3, saveEvery: 3, keepCheckpoints: 2 };

async function params(adapter: LoraAdapter): Promise<Float32Array[]> {
  return Promise.all(adapter.params.map((p) => readTensor(p.value as Tensor & { dtype: 'f32' })));
}

describe('train()', () => {
  it('lowers the validation loss, reports one metrics record per step and checkpoints on schedule', async () => {
    const adapter = lora(0, 3, TRAINED_TARGETS);
    const gpu = model.gpu;
    const created = new Map<number, number>();
    const before = await evaluateLoss(model, valRows);
    const records: StepMetrics[] = [];
    const phases = new Set<string>();
    const t = performance.now();
    const result = await train({
      model,
      adapter,
      train: trainRows,
      validation: valRows,
      options: TRAINED,
      checkpoints: trainedStore,
      onMetrics: (m) => {
        records.push(m);
        created.set(m.step, gpu.allocator.stats().createdBuffers);
      },
      onProgress: (p) => phases.add(p.phase),
    });
    const ms = performance.now() - t;
    const after = await evaluateLoss(withAdapter(model, adapter), valRows);
    const end = records[records.length - 1];
    console.log(
      `validation loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)} (trainer's ${result.valLoss?.toFixed(4)}) over ${result.steps} steps in ${(ms / 1000).toFixed(1)} s; ` +
        `train loss ${records[0].loss.toFixed(4)} → ${end.loss.toFixed(4)}; ${end.tokensPerSecond.toFixed(0)} tokens/s; peak ${end.peakBytes} bytes`,
    );
    expect(result.steps).toBe(12); // 4 epochs × 24 rows / 8
    expect(result.totalSteps).toBe(12);
    expect(result.epochs).toBe(4);
    expect(after.loss).toBeLessThan(0.5 * before.loss);
    expect(Math.abs((result.valLoss as number) - after.loss)).toBeLessThan(1e-4);
    expect(records.map((m) => m.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(result.metrics).toEqual(records);
    // Warmup of 2: the first update runs at learning rate 0, the third at the peak.
    expect(records[0].lr).toBe(0);
    expect(records[1].lr).toBeCloseTo(1.5e-2, 12);
    expect(records[2].lr).toBeCloseTo(3e-2, 12);
    const vals = records.filter((m) => m.valLoss !== undefined);
    expect(vals.map((m) => m.step)).toEqual([3, 6, 9, 12]);
    expect(vals[3].valLoss).toBeLessThan(vals[0].valLoss as number);
    expect(records[2].epoch).toBe(1);
    expect(records[3].epoch).toBeCloseTo(4 / 3, 12);
    for (const m of records) {
      expect(m.targets).toBeGreaterThan(0);
      expect(m.tokens).toBeGreaterThan(m.targets);
      expect(m.gradNorm).toBeGreaterThan(0);
      expect(m.tokensPerSecond).toBeGreaterThan(0);
      expect(m.peakBytes).toBeGreaterThan(0);
    }
    expect(phases).toEqual(new Set(['train', 'eval', 'checkpoint']));
    // Ordinary steps (no evaluation or checkpoint in between) create no GPU buffer: everything comes from the pool.
    expect(created.get(5)).toBe(created.get(4));
    expect(created.get(8)).toBe(created.get(7));
    // Saved at 3, 6, 9 and 12; all but the two most recent pruned.
    expect(await trainedStore.list()).toEqual([9, 12]);
    const last = await trainedStore.load(12);
    expect(last.metrics).toEqual(records);
    expect(last.params.map((p) => p.name)).toEqual(adapter.params.map((p) => p.name));
    expect(last.params.map((p) => Array.from(p.value))).toEqual((await params(adapter)).map((p) => Array.from(p)));
    adapter.release();
  });

  it('repeats exactly with the same seed, and a cancelled run resumed from its checkpoint continues loss for loss', async () => {
    const options: TrainOptions = { ...BASE, maxSteps: 6, saveEvery: 2 };
    const run = async (store: MemoryCheckpointStore, extra: Partial<Parameters<typeof train>[0]> = {}) => {
      const adapter = lora(0.1);
      const losses: number[] = [];
      try {
        const result = await train({ model, adapter, train: trainRows, options, checkpoints: store, onMetrics: (m) => losses.push(m.loss), ...extra });
        return { losses, result, weights: await params(adapter), error: null };
      } catch (error) {
        return { losses, result: null, weights: await params(adapter), error };
      } finally {
        adapter.release();
      }
    };
    const t = performance.now();
    const a = await run(new MemoryCheckpointStore());
    const b = await run(new MemoryCheckpointStore());
    expect(b.losses).toEqual(a.losses);
    expect(b.weights.map((w) => Array.from(w))).toEqual(a.weights.map((w) => Array.from(w)));

    // Cancelled when step 3's metrics arrive: step 4 is already on the GPU and finishes, nothing after it starts.
    const store = new MemoryCheckpointStore();
    const controller = new AbortController();
    const cutLosses: number[] = [];
    const onMetrics = (m: StepMetrics) => {
      cutLosses.push(m.loss);
      if (m.step === 3) controller.abort();
    };
    const cut = await run(store, { signal: controller.signal, onMetrics });
    expect(cut.error).toBeInstanceOf(CancelledError);
    expect((cut.error as Error).message).toMatch(/cancelled after step 4 of 6/);
    expect(cutLosses).toEqual(a.losses.slice(0, 4));
    // The checkpoint of step 4, read when step 4 ended, is stored by the cancellation.
    expect(await store.list()).toEqual([2, 4]);
    expect((await store.load(4)).metrics.map((m) => m.loss)).toEqual(a.losses.slice(0, 4));
    const resumed = await run(store, { resume: await store.load(2) });
    console.log(
      `uninterrupted ${a.losses.map((l) => l.toFixed(5)).join(' ')}; resumed from step ${resumed.result?.resumedFrom}: ` +
        `${resumed.losses.map((l) => l.toFixed(5)).join(' ')} (${((performance.now() - t) / 1000).toFixed(1)} s for 4 runs)`,
    );
    expect(resumed.result?.resumedFrom).toBe(2);
    expect(resumed.losses).toEqual(a.losses.slice(2));
    expect(resumed.result?.metrics.map((m) => m.loss)).toEqual(a.losses);
    expect(resumed.weights.map((w) => Array.from(w))).toEqual(a.weights.map((w) => Array.from(w)));
    expect(await store.list()).toEqual([2, 4, 6]);
    const again = await run(store, { resume: true });
    expect(again.result?.resumedFrom).toBe(6);
    expect(again.losses).toEqual([]);
    const other = lora(0.1);
    await expect(train({ model, adapter: other, train: trainRows, options: { ...options, seed: 8 }, checkpoints: store, resume: true })).rejects.toThrow(
      /written by a run with other data or batching \(seed 7 → 8\)/,
    );
    await expect(train({ model, adapter: other, train: trainRows, options, checkpoints: store })).rejects.toThrow(/already holds checkpoints \(steps 2, 4, 6\)/);
    other.release();
  });

  it('cancels during an evaluation: the step is reported without a validation loss, the earlier checkpoint kept', async () => {
    const adapter = lora();
    const store = new MemoryCheckpointStore();
    const controller = new AbortController();
    const seen: StepMetrics[] = [];
    const err = await train({
      model,
      adapter,
      train: trainRows,
      validation: valRows,
      options: { ...BASE, maxSteps: 4, evalEvery: 2, saveEvery: 1, evalBatchTokens: 16 },
      checkpoints: store,
      signal: controller.signal,
      onMetrics: (m) => seen.push(m),
      onProgress: (p) => {
        if (p.phase === 'eval') controller.abort();
      },
    }).catch((e: unknown) => e);
    adapter.release();
    expect(err).toBeInstanceOf(CancelledError);
    expect((err as Error).message).toBe('Training was cancelled after step 2 of 4.');
    expect((err as InstanceType<typeof CancelledError>).hint).toMatch(/checkpoint of step 1/);
    expect(seen.map((m) => [m.step, m.valLoss])).toEqual([
      [1, undefined],
      [2, undefined],
    ]);
    expect(await store.list()).toEqual([1]);
  });

  it('accumulates two micro-batches of one row into the gradient of one batch of both', async () => {
    // Two rows of different lengths and counted tokens, so a plain mean of the micro-batch means would differ.
    const rows = [successorRows(1, 9, 6, 6)[0], successorRows(1, 10, 12, 12)[0]];
    const run = async (options: Partial<TrainOptions>) => {
      const adapter = lora(0, 4);
      const losses: number[] = [];
      const norms: number[] = [];
      await train({
        model,
        adapter,
        train: rows,
        options: { ...BASE, warmup: 0, schedule: 'constant', maxSteps: 4, ...options },
        checkpoints: new MemoryCheckpointStore(),
        onMetrics: (m) => (losses.push(m.loss), norms.push(m.gradNorm)),
      });
      const w = await params(adapter);
      adapter.release();
      return { losses, norms, w };
    };
    const accumulated = await run({ batchSize: 1, gradAccum: 2 });
    const whole = await run({ batchSize: 2, gradAccum: 1 });
    const rel = (x: number, y: number) => Math.abs(x - y) / Math.abs(y);
    const worst = Math.max(...accumulated.losses.map((l, i) => rel(l, whole.losses[i])), ...accumulated.norms.map((n, i) => rel(n, whole.norms[i])));
    let wErr = 0;
    accumulated.w.forEach((w, i) => w.forEach((x, j) => (wErr = Math.max(wErr, Math.abs(x - whole.w[i][j])))));
    console.log(`accumulation vs one batch: worst relative loss/norm difference ${worst.toExponential(2)}, worst weight difference ${wErr.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-5);
    expect(wErr).toBeLessThan(1e-5);
    expect(accumulated.losses[3]).toBeLessThan(accumulated.losses[0]);
  });

  it('gives the same updates with gradient checkpointing per block (LoRA dropout masks replayed in the recompute)', async () => {
    const run = async (checkpointBlocks: boolean) => {
      const adapter = lora(0.1, 5, ['q_proj', 'v_proj', 'down_proj']);
      const losses: number[] = [];
      await train({
        model,
        adapter,
        train: trainRows.slice(0, 8),
        options: { ...BASE, warmup: 0, maxSteps: 2, checkpointBlocks },
        checkpoints: new MemoryCheckpointStore(),
        onMetrics: (m) => losses.push(m.loss),
      });
      const w = await params(adapter);
      adapter.release();
      return { losses, w };
    };
    const plain = await run(false);
    const ckpt = await run(true);
    let worst = 0;
    plain.losses.forEach((l, i) => (worst = Math.max(worst, Math.abs(l - ckpt.losses[i]) / l)));
    plain.w.forEach((w, i) => w.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - ckpt.w[i][j])))));
    console.log(`gradient checkpointing: worst loss/weight difference ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-5);
  });

  it('evaluates packed sequences as the separate examples they hold, and a fresh LoRA as the base model', async () => {
    const [a, b, c] = successorRows(3, 12, 5, 7);
    const packed = {
      inputIds: [...a.inputIds, ...b.inputIds],
      // The packer masks the label of each example's first token; the boundary target is never counted anyway.
      labels: [...(a.labels as number[]), -100, ...(b.labels as number[]).slice(1)],
      segments: [...a.inputIds.map(() => 0), ...b.inputIds.map(() => 1)],
      positions: [...a.inputIds.map((_, t) => t), ...b.inputIds.map((_, t) => t)],
    };
    const want = await evaluateLoss(model, [a, b, c]);
    const got = await evaluateRows(model, null, prepareRows([packed, c], model.config.vocabSize, 64).rows, { batchTokens: 64 });
    console.log(`packed evaluation ${got.loss.toFixed(6)} vs separate rows ${want.loss.toFixed(6)} over ${got.tokens} tokens`);
    expect(got.tokens).toBe(want.tokens);
    expect(Math.abs(got.loss - want.loss) / want.loss).toBeLessThan(1e-5);
    const fresh = lora();
    const withFresh = await evaluateRows(model, fresh, prepareRows([a, b, c], model.config.vocabSize, 64).rows);
    expect(Math.abs(withFresh.loss - want.loss) / want.loss).toBeLessThan(1e-5);
    expect(fresh.training).toBe(true);
    fresh.release();
  });

  it('stops on an absurd learning rate and drops the checkpoint whose weights caused it', async () => {
    // Continue the trained adapter (loss about 1) with a learning rate of 1e30 and a checkpoint every
    // step: update 13 wrecks the weights, so step 14's loss is NaN or, where the kernels saturate,
    // that of a uniform guess (ln 384 ≈ 5.95: suspect at 14, stopping at 15 with a patience of 2).
    const adapter = lora(0, 3, TRAINED_TARGETS);
    const store = new MemoryCheckpointStore();
    const seen: StepMetrics[] = [];
    const err = await train({
      model,
      adapter,
      train: trainRows,
      options: { ...TRAINED, lr: 1e30, epochs: 6, saveEvery: 1 },
      checkpoints: store,
      resume: await trainedStore.load(12),
      onMetrics: (m) => seen.push(m),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    const d = err as InstanceType<typeof TrainingDivergedError>;
    console.log(`absurd learning rate: ${d.message} (reason ${d.reason}, checkpoint kept: step ${d.checkpointStep})`);
    expect(['nan-loss', 'nan-grad-norm', 'exploding-loss']).toContain(d.reason);
    expect([14, 15]).toContain(d.step);
    expect(seen.map((m) => m.step)).toEqual(d.step === 14 ? [13] : [13, 14]);
    expect(d.hint).toMatch(/Lower the learning rate/);
    expect(d.hint).toMatch(/step 12/);
    // Step 13's checkpoint held the weights that gave step 14's loss: it was never stored.
    expect(d.checkpointStep).toBe(12);
    expect(await store.list()).toEqual([]);
    adapter.release();
  });

  it('stops on NaN weights before checkpointing them, and on a NaN loss; the earlier checkpoint stays as it was', async () => {
    const poisoned = async (saveEvery: number, poisonAfter: number) => {
      const adapter = lora();
      const store = new MemoryCheckpointStore();
      const err = await train({
        model,
        adapter,
        train: trainRows,
        options: { ...BASE, maxSteps: 10, saveEvery },
        checkpoints: store,
        onMetrics: (m) => {
          // Poison a trained tensor, as a blown-up update would. Step m.step + 1 is already on the GPU.
          if (m.step === poisonAfter) writeTensor(adapter.params[1].value, new Float32Array(adapter.params[1].value.numel).fill(Number.NaN));
        },
      }).catch((e: unknown) => e);
      adapter.release();
      expect(err).toBeInstanceOf(TrainingDivergedError);
      return { d: err as InstanceType<typeof TrainingDivergedError>, store };
    };
    // Saved at 2 (stored once step 3's loss passed); poisoned after step 3; step 4's save finds the NaN.
    const atSave = await poisoned(2, 3);
    console.log(`poisoned before a save: ${atSave.d.message} (reason ${atSave.d.reason}, checkpoint kept: step ${atSave.d.checkpointStep})`);
    expect(atSave.d.reason).toBe('nan-weights');
    expect(atSave.d.step).toBe(4);
    expect(atSave.d.checkpointStep).toBe(2);
    expect(await atSave.store.list()).toEqual([2]);
    expect((await atSave.store.load(2)).params.every((p) => p.value.every(Number.isFinite))).toBe(true);
    // Saved at 4 (stored once step 5's loss passed); poisoned after step 5; step 7 computes with NaN weights.
    const inLoss = await poisoned(4, 5);
    console.log(`poisoned between saves: ${inLoss.d.message} (reason ${inLoss.d.reason}, checkpoint kept: step ${inLoss.d.checkpointStep})`);
    expect(['nan-loss', 'nan-grad-norm']).toContain(inLoss.d.reason);
    expect(inLoss.d.step).toBe(7);
    expect(inLoss.d.checkpointStep).toBe(4);
    expect(await inLoss.store.list()).toEqual([4]);
  });
});
