// The training loop: trains an adapter's tensors on a tokenized dataset with AdamW, a learning-rate
// schedule, global-norm clipping and gradient accumulation, on the GPU. Each micro-batch is one
// command encoder (zero the gradients on the first, forward, copy the loss out, backward; the last
// also records the optimizer update and the adapter's paramsChanged hook); the step's losses and
// gradient norm are copied into a small buffer whose read is started after the step is submitted
// and awaited only once the next step is on the GPU, so the loop never waits on the GPU between
// ordinary steps. It evaluates on the validation set every N steps, writes checkpoints through a
// CheckpointStore every N steps and at the end (each one stored once the next step's loss, the
// first computed from its weights, passed the checks), resumes from one so that the following
// losses equal an uninterrupted run's, stops on a NaN or exploding loss with a TrainingDivergedError
// (the checkpoints stored before stay, the unconfirmed one is dropped), and stops on an AbortSignal
// with a CancelledError leaving the last checkpoint as it was.
// Gradient accumulation: each micro-batch's mean loss is scaled by its share of the step's counted
// tokens (count_i / Σ count), so the accumulated gradient is that of the mean over every counted
// token of the optimizer step — the same as one batch holding all the micro-batches' rows — and the
// step's loss is that token-weighted mean (transformers' num_items_in_batch behaviour).
// Reading datasets, building the adapter and exporting it are done by the caller.

import { Tape } from '../autograd/tape.ts';
import { CancelledError, InvalidArgumentError } from '../errors.ts';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor, writeTensor } from '../gpu/tensor.ts';
import { fill } from '../kernels/elementwise.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import type { LlamaModel } from '../model/llama.ts';
import { AdamWOptimizer } from '../optim/optimizer.ts';
import { type ScheduleName, type ScheduleOptions, isScheduleName, learningRate, resolveWarmupSteps } from '../optim/schedule.ts';
import { type BatchSizing, type TrainExample, fingerprintRows, planEpoch, prepareRows, stepsInEpoch, uploadBatch } from './batches.ts';
import { type CheckpointStore, type DataPlan, type TrainCheckpoint, latestCheckpoint, pruneCheckpoints } from './checkpoint.ts';
import { DivergenceGuard, type DivergenceOptions, type DivergenceReason, TrainingDivergedError, divergenceMessage } from './divergence.ts';
import { type TrainableAdapter, adapterForward, evaluateRows } from './evaluate.ts';
import type { StepMetrics, TrainProgress } from './metrics.ts';

export type { TrainableAdapter } from './evaluate.ts';
export type { TrainExample } from './batches.ts';

export interface TrainOptions {
  /** Peak learning rate. */
  lr: number;
  /** Default 'linear' (the Trainer's default). */
  schedule?: ScheduleName;
  /** Warmup steps, or a ratio of the run when below 1. Default 0. */
  warmup?: number;
  /** Passes over the training set (whole number). Default 1; ignored when maxSteps is set. */
  epochs?: number;
  /** Optimizer steps of the run; the data order continues into further epochs as needed. */
  maxSteps?: number;
  /** Rows per micro-batch. Default 8 unless batchTokens is given. */
  batchSize?: number;
  /** Instead of batchSize: at most this many padded tokens (rows × longest row) per micro-batch. */
  batchTokens?: number;
  /** Micro-batches per optimizer step. Default 1. */
  gradAccum?: number;
  /** Longest sequence in tokens; longer examples are cut (and counted in the result). */
  seqLen: number;
  /** Seed of the data order; with the same adapter init, the same seed repeats a run exactly. */
  seed: number;
  /** Clip the global gradient norm to this; 0 turns clipping off. Default 1. */
  maxGradNorm?: number;
  /** Decoupled weight decay. Default 0. */
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Evaluate on the validation set every this many steps (and after the last). 0: only after the last. */
  evalEvery?: number;
  /** Padded tokens per evaluation batch. Default: the larger of 2048 and a training micro-batch. */
  evalBatchTokens?: number;
  /** Write a checkpoint every this many steps (and after the last). 0: only after the last. */
  saveEvery?: number;
  /** Checkpoints kept in the store, the most recent ones. Default 3. */
  keepCheckpoints?: number;
  /** Recompute each block's activations in backward instead of keeping them. */
  checkpointBlocks?: boolean;
  /** Loss-explosion detection (NaN and Inf always stop the run); false turns the explosion check off. afterStep defaults to the warmup. */
  divergence?: DivergenceOptions | false;
}

export interface TrainArgs {
  model: LlamaModel;
  adapter: TrainableAdapter;
  train: readonly TrainExample[];
  validation?: readonly TrainExample[];
  options: TrainOptions;
  checkpoints: CheckpointStore;
  /** Called once per optimizer step, in order, with the step's record. */
  onMetrics?: (m: StepMetrics) => void;
  onProgress?: (p: TrainProgress) => void;
  signal?: AbortSignal;
  /** true: continue from the store's latest checkpoint when it has one; or the checkpoint to continue from. */
  resume?: boolean | TrainCheckpoint;
}

export interface TrainResult {
  /** Optimizer steps done, and planned. */
  steps: number;
  totalSteps: number;
  /** Passes over the training set done (fractional). */
  epochs: number;
  /** Every step's record, those before a resume included. */
  metrics: StepMetrics[];
  /** The last step's loss, and the last validation loss measured; null when none. */
  trainLoss: number | null;
  valLoss: number | null;
  /** The checkpoint the run continued from, and the last one written or continued from. */
  resumedFrom: number | null;
  checkpointStep: number | null;
  warmupSteps: number;
  /** Training examples cut to seqLen, and left out for having no counted token. */
  truncatedExamples: number;
  skippedExamples: number;
  elapsedMs: number;
}

/** A step submitted to the GPU whose scalars are being read. */
interface Pending {
  step: number;
  read: Promise<Float32Array>;
  counts: number[];
  total: number;
  tokens: number;
  lr: number;
  epoch: number;
  startedAt: number;
}

interface Resolved {
  sizing: BatchSizing;
  gradAccum: number;
  schedule: ScheduleName;
  evalEvery: number;
  saveEvery: number;
  keep: number;
}

/** Trains `adapter` on `train`; see the file header. Resolves when the run is complete. */
export async function train(args: TrainArgs): Promise<TrainResult> {
  const { model, adapter, options: o, checkpoints: store, signal } = args;
  model.assertLive();
  const r = resolveOptions(o);
  const V = model.config.vocabSize;
  const prepared = prepareRows(args.train, V, o.seqLen, 'example');
  // Batches are planned on the rows as the adapter reads them (prompt tuning adds virtual tokens); the data fingerprint is the examples'.
  const rows = adapter.adaptRows ? adapter.adaptRows(prepared.rows) : prepared.rows;
  if (rows.length === 0) {
    throw new InvalidArgumentError(`None of the ${args.train.length} training examples has a token to learn from (every label is -100 or the example has one token).`, {
      hint: 'Check the loss mask of the dataset (train on the prompt, or fix the assistant turns).',
    });
  }
  const valRows = args.validation ? prepareRows(args.validation, V, o.seqLen, 'validation example').rows : [];
  const lengths = rows.map((row) => row.ids.length);
  const plan: DataPlan = { seed: o.seed, sizing: r.sizing, gradAccum: r.gradAccum, seqLen: o.seqLen, data: fingerprintRows(prepared.rows) };

  // The data order: epoch plans are recomputed from the seed when needed, never stored.
  let cached: { epoch: number; plan: number[][] } | null = null;
  const epochPlan = (e: number) => {
    if (cached?.epoch !== e) cached = { epoch: e, plan: planEpoch(lengths, r.sizing, o.seed, e) };
    return cached.plan;
  };
  const totalSteps = o.maxSteps ?? countSteps(o.epochs ?? 1, (e) => stepsInEpoch(epochPlan(e).length, r.gradAccum));
  const warmupSteps = resolveWarmupSteps(o.warmup ?? 0, totalSteps);
  const schedule: ScheduleOptions = { name: r.schedule, totalSteps, warmupSteps };
  const guard = new DivergenceGuard(o.divergence === false ? { factor: 0 } : { afterStep: warmupSteps, ...o.divergence });

  let checkpoint: TrainCheckpoint | null = null;
  if (args.resume === true) checkpoint = await latestCheckpoint(store);
  else if (args.resume) checkpoint = args.resume;
  else {
    const existing = await store.list();
    if (existing.length > 0) {
      throw new InvalidArgumentError(`${store.name} already holds checkpoints (steps ${existing.join(', ')}).`, {
        hint: 'Resume from them, or start the run with an empty checkpoint folder.',
      });
    }
  }
  if (checkpoint) checkResumable(checkpoint, plan, adapter);

  const gpu = model.gpu;
  const maxLen = Math.max(...lengths);
  const capacity = 'batchSize' in r.sizing ? r.sizing.batchSize * maxLen : Math.max(r.sizing.batchTokens, maxLen);
  const optimizer = new AdamWOptimizer(gpu, adapter.params, { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, maxGradNorm: o.maxGradNorm ?? 1 });
  let groups: TokenGroups | null = null;
  let scalars: Tensor | null = null;
  const wasTraining = adapter.training;
  try {
    groups = new TokenGroups(gpu, capacity);
    scalars = createTensor(gpu, [r.gradAccum + 1], 'f32', { label: 'train.scalars' }); // (gradAccum + 1): micro-batch losses, then the norm

    let step = 0;
    let epoch = 0;
    let batchInEpoch = 0;
    let microSteps = 0;
    let elapsedBase = 0;
    const metrics: StepMetrics[] = [];
    if (checkpoint) {
      checkpoint.params.forEach((p, i) => writeTensor(adapter.params[i].value, p.value));
      if (adapter.paramsChanged) {
        const b = new Batch(gpu, 'train.resume');
        adapter.paramsChanged(b);
        b.submit();
      }
      optimizer.importState(checkpoint.optimizer);
      guard.restore(checkpoint.divergence);
      step = checkpoint.step;
      epoch = checkpoint.epoch;
      batchInEpoch = checkpoint.batchInEpoch;
      microSteps = checkpoint.microSteps;
      elapsedBase = checkpoint.elapsedMs;
      metrics.push(...checkpoint.metrics);
    }
    const resumedFrom = checkpoint?.step ?? null;
    let checkpointStep = resumedFrom;
    let valLoss: number | null = [...metrics].reverse().find((m) => m.valLoss !== undefined)?.valLoss ?? null;
    const epochsDone = () => epoch + batchInEpoch / epochPlan(epoch).length;

    gpu.allocator.resetPeak();
    const t0 = performance.now();
    const sessionStart = step;
    let lastDone = t0;
    let last: StepMetrics | null = null;
    // Progress reports the last step whose results are in (the next one may already be on the GPU).
    let completed = { step, epoch: epochsDone() };
    const eta = (): number | null =>
      completed.step > sessionStart ? ((performance.now() - t0) / (completed.step - sessionStart)) * (totalSteps - completed.step) : null;
    const progress = (phase: TrainProgress['phase'], extra: Partial<TrainProgress> = {}) =>
      args.onProgress?.({
        phase,
        step: completed.step,
        totalSteps,
        epoch: completed.epoch,
        loss: last?.loss,
        lr: last?.lr,
        tokensPerSecond: last?.tokensPerSecond,
        etaMs: eta(),
        ...extra,
      });
    const diverged = (reason: DivergenceReason, at: number, loss: number, gradNorm: number) =>
      new TrainingDivergedError(divergenceMessage(reason, at, loss, gradNorm, guard), {
        reason,
        step: at,
        loss,
        gradNorm,
        checkpointStep,
      });

    /** Awaits a submitted step's scalars and turns them into its metrics record. */
    const finish = async (p: Pending): Promise<StepMetrics> => {
      const values = await p.read; // (gradAccum + 1)
      const now = performance.now();
      let loss = 0;
      p.counts.forEach((n, j) => (loss += (values[j] * n) / p.total));
      const gradNorm = values[r.gradAccum];
      const verdict = guard.check(p.step, loss, gradNorm);
      if (verdict !== 'ok' && verdict !== 'suspect') {
        unconfirmed = null;
        throw diverged(verdict, p.step, loss, gradNorm);
      }
      if (verdict === 'ok' && unconfirmed && unconfirmed.step < p.step) await commit();
      const seconds = Math.max(1e-6, (now - Math.max(p.startedAt, lastDone)) / 1000);
      lastDone = now;
      completed = { step: p.step, epoch: p.epoch };
      return {
        step: p.step,
        epoch: p.epoch,
        loss,
        lr: p.lr,
        gradNorm,
        tokens: p.tokens,
        targets: p.total,
        tokensPerSecond: p.tokens / seconds,
        elapsedMs: elapsedBase + (now - t0),
        peakBytes: gpu.allocator.stats().peakBytes,
      };
    };
    const emit = (m: StepMetrics) => {
      metrics.push(m);
      last = m;
      args.onMetrics?.(m);
      progress('train');
    };

    /**
     * The checkpoint read at a save step waits here until a later step's loss (the next one is the
     * first computed from its weights) passes the divergence checks without being suspect; a
     * divergence drops it, so the store only holds checkpoints whose weights gave a sound loss, and
     * those of a run's end or cancellation. While one waits, later save steps do not replace it.
     */
    let unconfirmed: TrainCheckpoint | null = null;
    const commit = async () => {
      if (!unconfirmed) return;
      const c = unconfirmed;
      unconfirmed = null;
      await store.save(c);
      checkpointStep = c.step;
      await pruneCheckpoints(store, r.keep);
    };
    /** Reads the trained tensors and the optimizer state after `step` (the GPU has finished it). */
    const snapshot = async (): Promise<TrainCheckpoint> => {
      progress('checkpoint');
      const params: TrainCheckpoint['params'] = [];
      for (const p of adapter.params) {
        const value = await readTensor(p.value as Tensor & { dtype: 'f32' });
        if (!value.every(Number.isFinite)) throw diverged('nan-weights', step, last?.loss ?? NaN, last?.gradNorm ?? NaN);
        params.push({ name: p.name, value });
      }
      return {
        step,
        epoch,
        batchInEpoch,
        microSteps,
        plan,
        params,
        optimizer: await optimizer.exportState(),
        divergence: guard.state(),
        metrics: [...metrics],
        elapsedMs: elapsedBase + (performance.now() - t0),
      };
    };

    /** Stores the waiting checkpoint, lets the GPU finish, and gives the error that ends a cancelled run. */
    const cancelled = async () => {
      await commit();
      await gpu.sync();
      return new CancelledError(`Training was cancelled after step ${step} of ${totalSteps}.`, {
        hint: checkpointStep === null ? 'No checkpoint was written yet; start the run again when ready.' : `Resume to continue from the checkpoint of step ${checkpointStep}.`,
      });
    };

    adapter.training = true;
    let inflight: Pending | null = null;
    while (step < totalSteps) {
      if (signal?.aborted) {
        if (inflight) emit(await finish(inflight));
        inflight = null;
        throw await cancelled();
      }
      const startedAt = performance.now();
      const ePlan = epochPlan(epoch);
      const micro = ePlan.slice(batchInEpoch, batchInEpoch + r.gradAccum);
      const counts = micro.map((mb) => mb.reduce((n, i) => n + rows[i].count, 0));
      const total = counts.reduce((a, b) => a + b, 0);
      const tokens = micro.reduce((n, mb) => n + mb.reduce((k, i) => k + rows[i].ids.length, 0), 0);
      const lr = learningRate(o.lr, schedule, step + 1);
      micro.forEach((mb, j) => {
        const inputs = uploadBatch(gpu, rows, mb, groups as TokenGroups);
        const tape = new Tape();
        try {
          const b = new Batch(gpu, `train step ${step + 1}.${j}`);
          if (j === 0) optimizer.zeroGrad(b);
          const leaves = adapter.leaves(tape);
          const loss = model.loss(tape, b, inputs, { ...adapterForward(adapter, tape, leaves, microSteps), checkpointBlocks: o.checkpointBlocks }); // (1)
          b.encoder.copyBufferToBuffer(loss.value.buffer, 0, (scalars as Tensor).buffer, j * 4, 4);
          const seed = createTensor(gpu, [1], 'f32', { transient: true, label: 'train.seed' }); // (1) d(step loss)/d(micro-batch loss); the tape takes it
          fill(b, seed, counts[j] / total);
          tape.backward(b, loss, seed);
          if (j === micro.length - 1) {
            optimizer.record(b, lr);
            adapter.paramsChanged?.(b);
            b.encoder.copyBufferToBuffer(optimizer.norm.buffer, 0, (scalars as Tensor).buffer, r.gradAccum * 4, 4);
          }
          b.submit();
        } catch (e) {
          tape.discard();
          throw e;
        } finally {
          inputs.release();
        }
        microSteps++;
      });
      step++;
      batchInEpoch += micro.length;
      if (batchInEpoch >= ePlan.length) {
        epoch++;
        batchInEpoch = 0;
      }
      const pending: Pending = { step, read: readTensor(scalars as Tensor & { dtype: 'f32' }), counts, total, tokens, lr, epoch: epochsDone(), startedAt };
      if (inflight) emit(await finish(inflight));
      inflight = pending;

      const final = step === totalSteps;
      const evalNow = valRows.length > 0 && (final || (r.evalEvery > 0 && step % r.evalEvery === 0));
      const saveNow = final || (r.saveEvery > 0 && step % r.saveEvery === 0);
      if (evalNow || saveNow) {
        const m = await finish(inflight);
        inflight = null;
        if (evalNow) {
          let v;
          try {
            v = await evaluateRows(model, adapter, valRows, {
              batchTokens: o.evalBatchTokens ?? Math.max(2048, capacity),
              signal,
              onProgress: (p) => progress('eval', p),
            });
          } catch (e) {
            if (!(e instanceof CancelledError)) throw e;
            // The step itself is complete: it is reported, without a validation loss.
            emit(m);
            throw await cancelled();
          }
          if (Number.isFinite(v.loss)) {
            m.valLoss = v.loss;
            valLoss = v.loss;
          }
        }
        emit(m);
        if (final) {
          await commit();
          unconfirmed = await snapshot();
          await commit();
        } else if (saveNow && !unconfirmed) {
          unconfirmed = await snapshot();
        }
      }
    }
    if (inflight) emit(await finish(inflight));
    await commit();
    const lastMetrics = metrics.length > 0 ? metrics[metrics.length - 1] : null;
    return {
      steps: step,
      totalSteps,
      epochs: epochsDone(),
      metrics,
      trainLoss: lastMetrics?.loss ?? null,
      valLoss,
      resumedFrom,
      checkpointStep,
      warmupSteps,
      truncatedExamples: prepared.truncated,
      skippedExamples: prepared.skipped,
      elapsedMs: elapsedBase + (performance.now() - t0),
    };
  } finally {
    adapter.training = wasTraining;
    optimizer.release();
    groups?.release();
    scalars?.release();
  }
}

/** Steps over `epochs` epochs. */
function countSteps(epochs: number, perEpoch: (e: number) => number): number {
  let n = 0;
  for (let e = 0; e < epochs; e++) n += perEpoch(e);
  return n;
}

function resolveOptions(o: TrainOptions): Resolved {
  const positiveInt = (name: string, v: number | undefined) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new InvalidArgumentError(`${name} must be a positive integer; got ${v}.`);
  };
  const countOrZero = (name: string, v: number | undefined) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new InvalidArgumentError(`${name} must be a whole number (0 turns it off); got ${v}.`);
  };
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) throw new InvalidArgumentError(`The learning rate must be a positive number; got ${o.lr}.`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) throw new InvalidArgumentError(`The seed must be an integer in [0, 2³²); got ${o.seed}.`);
  positiveInt('epochs', o.epochs);
  positiveInt('maxSteps', o.maxSteps);
  positiveInt('batchSize', o.batchSize);
  positiveInt('batchTokens', o.batchTokens);
  positiveInt('gradAccum', o.gradAccum);
  positiveInt('keepCheckpoints', o.keepCheckpoints);
  countOrZero('evalEvery', o.evalEvery);
  countOrZero('saveEvery', o.saveEvery);
  if (o.batchSize !== undefined && o.batchTokens !== undefined) throw new InvalidArgumentError('Give batchSize or batchTokens, not both.');
  const schedule = o.schedule ?? 'linear';
  if (!isScheduleName(schedule)) throw new InvalidArgumentError(`Unknown learning-rate schedule ${JSON.stringify(schedule)}; expected constant, linear or cosine.`);
  return {
    sizing: o.batchTokens !== undefined ? { batchTokens: o.batchTokens } : { batchSize: o.batchSize ?? 8 },
    gradAccum: o.gradAccum ?? 1,
    schedule,
    evalEvery: o.evalEvery ?? 0,
    saveEvery: o.saveEvery ?? 0,
    keep: o.keepCheckpoints ?? 3,
  };
}

/** Throws unless `c` continues this run: the same data order and the same trainable tensors. */
function checkResumable(c: TrainCheckpoint, plan: DataPlan, adapter: TrainableAdapter): void {
  const differ: string[] = [];
  if (c.plan.seed !== plan.seed) differ.push(`seed ${c.plan.seed} → ${plan.seed}`);
  if (JSON.stringify(c.plan.sizing) !== JSON.stringify(plan.sizing)) differ.push(`batching ${JSON.stringify(c.plan.sizing)} → ${JSON.stringify(plan.sizing)}`);
  if (c.plan.gradAccum !== plan.gradAccum) differ.push(`gradient accumulation ${c.plan.gradAccum} → ${plan.gradAccum}`);
  if (c.plan.seqLen !== plan.seqLen) differ.push(`sequence length ${c.plan.seqLen} → ${plan.seqLen}`);
  if (c.plan.data !== plan.data) differ.push(`training data ${c.plan.data} → ${plan.data}`);
  if (differ.length > 0) {
    throw new InvalidArgumentError(`The checkpoint of step ${c.step} was written by a run with other data or batching (${differ.join('; ')}).`, {
      hint: 'Resume with the same dataset, seed, batch size, gradient accumulation and sequence length, or start a new run.',
    });
  }
  if (c.params.length !== adapter.params.length) {
    throw new InvalidArgumentError(`The checkpoint holds ${c.params.length} trainable tensors; the adapter has ${adapter.params.length}.`, {
      hint: 'Resume with the adapter settings (method, rank, target modules) the run started with.',
    });
  }
  c.params.forEach((p, i) => {
    const a = adapter.params[i];
    if (p.name !== a.name || p.value.length !== a.value.numel) {
      throw new InvalidArgumentError(`Checkpoint tensor ${i} is "${p.name}" of ${p.value.length} values; the adapter has "${a.name}" of ${a.value.numel}.`, {
        hint: 'Resume with the adapter settings (method, rank, target modules) the run started with.',
      });
    }
  });
}
