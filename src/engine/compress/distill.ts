// Knowledge distillation of a student language model from a teacher of the same family and
// vocabulary: every weight of the student (a small f32 model, e.g. the teacher with layers dropped)
// is trained with AdamW on
//   alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · cross-entropy,
// averaged over the counted tokens (autograd/ops.ts distillLoss, kernels/distill.ts). Each step runs
// the teacher forward only (a LoRA teacher is the base model seen through peft/lora withAdapter) on
// the same GPU batch, then the student forward and backward, then the optimizer update, in one
// command encoder; the teacher's logits exist a chunk of tokens at a time inside the loss kernel.
// Data order, batching and the upload of batches are the trainer's (train/batches.ts), the learning
// rate its schedule (optim/schedule.ts). evaluateDistill measures a held-out set: the student's and
// teacher's cross-entropy and the teacher‖student KL. Writing the student out is export-model.ts.

import { distillLoss } from '../autograd/ops.ts';
import { Tape, type Var } from '../autograd/tape.ts';
import { CancelledError, InvalidArgumentError } from '../errors.ts';
import { Batch } from '../gpu/batch.ts';
import { readTensor } from '../gpu/readback.ts';
import { type Tensor, createTensor } from '../gpu/tensor.ts';
import { fill } from '../kernels/elementwise.ts';
import { TokenGroups } from '../kernels/embedding.ts';
import { type LlamaModel, planBatches } from '../model/llama.ts';
import { AdamWOptimizer, type OptimizerParam } from '../optim/optimizer.ts';
import { type ScheduleName, learningRate, resolveWarmupSteps } from '../optim/schedule.ts';
import { type Row, type TrainExample, planEpoch, prepareRows, uploadBatch } from '../train/batches.ts';
import { TrainingDivergedError } from '../train/divergence.ts';
import { evaluateRows } from '../train/evaluate.ts';

/** Bytes of one (tokens, vocab) logits chunk; the loss holds two (student and teacher). */
const LOGITS_CHUNK_BYTES = 16 * 1024 * 1024;

export interface DistillOptions {
  /** Optimizer steps. */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** Softmax temperature of the KL term. Default 2. */
  temperature?: number;
  /** Weight of the KL term in [0, 1]; the rest weighs the cross-entropy with the labels. Default 0.5. */
  alpha?: number;
  /** Rows per batch. Default 8. */
  batchSize?: number;
  /** Longest sequence; longer examples are cut. */
  seqLen: number;
  /** Seed of the data order. */
  seed: number;
  schedule?: ScheduleName;
  /** Warmup steps, or a ratio of the run when below 1. Default 0. */
  warmup?: number;
  /** Global gradient-norm clipping (0: off). Default 1. */
  maxGradNorm?: number;
  weightDecay?: number;
}

export interface DistillArgs {
  /** The teacher; an adapted model (withAdapter) applies its adapter in forward. */
  teacher: LlamaModel;
  /** Trained in place: its weights must be f32. */
  student: LlamaModel;
  train: readonly TrainExample[];
  options: DistillOptions;
  /** Called after each step with its loss (the step's distillation loss) and learning rate. */
  onStep?: (s: { step: number; totalSteps: number; loss: number; lr: number }) => void;
  signal?: AbortSignal;
}

export interface DistillResult {
  steps: number;
  /** Loss of every step, in order. */
  losses: number[];
}

/** Checks that the two models can be distilled one into the other. */
function checkPair(teacher: LlamaModel, student: LlamaModel): void {
  teacher.assertLive();
  student.assertLive();
  if (teacher.config.vocabSize !== student.config.vocabSize) {
    throw new InvalidArgumentError(`The teacher's vocabulary (${teacher.config.vocabSize}) and the student's (${student.config.vocabSize}) differ; distillation compares their distributions token by token.`);
  }
  if (teacher.gpu !== student.gpu) throw new InvalidArgumentError('The teacher and the student must be on the same GPU device.');
  if (teacher.params[teacher.headName].dtype !== 'f32') throw new InvalidArgumentError('The teacher\'s lm_head must be f32.');
}

/** Trains every weight of `student` towards `teacher`'s distributions; see the file header. */
export async function distillStudent(args: DistillArgs): Promise<DistillResult> {
  const { teacher, student, options: o, signal } = args;
  checkPair(teacher, student);
  if (student.weightDtype !== 'f32') throw new InvalidArgumentError('The student is trained in full: load it with f32 weights.');
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new InvalidArgumentError(`Distillation needs a positive whole number of steps; got ${o.steps}.`);
  if (!(o.lr > 0)) throw new InvalidArgumentError(`The learning rate must be positive; got ${o.lr}.`);
  const temperature = o.temperature ?? 2;
  const alpha = o.alpha ?? 0.5;
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new InvalidArgumentError(`The temperature must be a positive number; got ${temperature}.`);
  if (!(alpha >= 0 && alpha <= 1)) throw new InvalidArgumentError(`alpha must be in [0, 1]; got ${alpha}.`);
  const batchSize = o.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new InvalidArgumentError(`The batch size must be a positive integer; got ${batchSize}.`);
  const V = student.config.vocabSize;
  const rows = prepareRows(args.train, V, o.seqLen, 'example').rows;
  if (rows.length === 0) throw new InvalidArgumentError('No training example has a token to learn from.');
  const gpu = student.gpu;
  const schedule = { name: o.schedule ?? 'linear', totalSteps: o.steps, warmupSteps: resolveWarmupSteps(o.warmup ?? 0, o.steps) };

  // One gradient buffer per distinct tensor (tied embeddings and shared blocks have one).
  const names = new Map<Tensor, string[]>();
  for (const [name, t] of Object.entries(student.params)) names.set(t, [...(names.get(t) ?? []), name]);
  const params: OptimizerParam[] = [];
  const gradOf = new Map<Tensor, Tensor>();
  try {
    for (const [t, ns] of names) {
      const grad = createTensor(gpu, t.shape, 'f32', { label: `${ns[0]}.grad` });
      gradOf.set(t, grad);
      params.push({ name: ns[0], value: t, grad, weightDecay: t.shape.length === 1 ? 0 : undefined });
    }
  } catch (e) {
    for (const g of gradOf.values()) g.release();
    throw e;
  }
  const lengths = rows.map((r) => r.ids.length);
  const capacity = batchSize * Math.max(...lengths);
  let optimizer: AdamWOptimizer | null = null;
  let groups: TokenGroups | null = null;
  let scalar: Tensor | null = null;
  const losses: number[] = [];
  try {
    optimizer = new AdamWOptimizer(gpu, params, { maxGradNorm: o.maxGradNorm ?? 1, weightDecay: o.weightDecay ?? 0 });
    groups = new TokenGroups(gpu, capacity);
    scalar = createTensor(gpu, [1], 'f32', { label: 'distill.loss' });
    const chunkTokens = Math.max(1, Math.floor(LOGITS_CHUNK_BYTES / (V * 4)));
    let epoch = 0;
    let plan = planEpoch(lengths, { batchSize }, o.seed, epoch);
    let at = 0;
    for (let step = 1; step <= o.steps; step++) {
      if (signal?.aborted) throw new CancelledError('Distillation was cancelled.');
      if (at >= plan.length) {
        plan = planEpoch(lengths, { batchSize }, o.seed, ++epoch);
        at = 0;
      }
      const inputs = uploadBatch(gpu, rows, plan[at++], groups);
      const teacherTape = new Tape();
      teacherTape.recording = false;
      const tape = new Tape();
      const lr = learningRate(o.lr, schedule, step);
      try {
        const b = new Batch(gpu, `distill step ${step}`);
        optimizer.zeroGrad(b);
        const hT = teacher.forward(teacherTape, b, inputs); // (N, Ct)
        const leaves: Record<string, Var> = {};
        const leafOf = new Map<Tensor, Var>();
        for (const [name, t] of Object.entries(student.params)) {
          let v = leafOf.get(t);
          if (!v) leafOf.set(t, (v = tape.leaf(t, { grad: gradOf.get(t), name })));
          leaves[name] = v;
        }
        const hS = student.forward(tape, b, inputs, { params: leaves }); // (N, Cs)
        const loss = distillLoss(tape, b, hS, leaves[student.headName], hT.value, teacher.params[teacher.headName], inputs.targets as Tensor, inputs.count, {
          chunkTokens,
          temperature,
          alpha,
        }); // (1)
        b.encoder.copyBufferToBuffer(loss.value.buffer, 0, scalar.buffer, 0, 4);
        const seed = createTensor(gpu, [1], 'f32', { transient: true, label: 'distill.seed' }); // (1), taken by the tape
        fill(b, seed, 1);
        tape.backward(b, loss, seed);
        optimizer.record(b, lr);
        b.submit();
      } catch (e) {
        tape.discard();
        throw e;
      } finally {
        teacherTape.releaseUnrecorded();
        inputs.release();
      }
      const value = (await readTensor(scalar as Tensor & { dtype: 'f32' }))[0];
      if (!Number.isFinite(value)) {
        throw new TrainingDivergedError(`The distillation loss became ${value} at step ${step}; lower the learning rate or the temperature.`, {
          reason: 'nan-loss',
          step,
          loss: value,
          gradNorm: NaN,
          checkpointStep: null,
        });
      }
      losses.push(value);
      args.onStep?.({ step, totalSteps: o.steps, loss: value, lr });
    }
    return { steps: o.steps, losses };
  } finally {
    optimizer?.release();
    groups?.release();
    scalar?.release();
    for (const g of gradOf.values()) g.release();
  }
}

export interface DistillEvaluation {
  /** Mean cross-entropy of the student and of the teacher over the counted tokens. */
  studentLoss: number;
  teacherLoss: number;
  /** Mean KL(teacher ‖ student) at temperature 1 over the counted tokens. */
  kl: number;
  tokens: number;
}

/** Held-out measures of a teacher/student pair (forward only). */
export async function evaluateDistill(
  teacher: LlamaModel,
  student: LlamaModel,
  examples: readonly TrainExample[],
  options: { seqLen: number; batchTokens?: number },
): Promise<DistillEvaluation> {
  checkPair(teacher, student);
  const rows: Row[] = prepareRows(examples, student.config.vocabSize, options.seqLen, 'validation example').rows;
  if (rows.length === 0) throw new InvalidArgumentError('The held-out set has no token to evaluate.');
  const s = await evaluateRows(student, null, rows, { batchTokens: options.batchTokens });
  const t = await evaluateRows(teacher, null, rows, { batchTokens: options.batchTokens });
  const gpu = student.gpu;
  const batches = planBatches(rows.map((r) => r.ids.length), options.batchTokens ?? 2048);
  const capacity = Math.max(...batches.map((bb) => bb.length * Math.max(...bb.map((i) => rows[i].ids.length))));
  const groups = new TokenGroups(gpu, capacity);
  const out = createTensor(gpu, [batches.length], 'f32', { label: 'distill.eval' });
  const counts: number[] = [];
  try {
    batches.forEach((batch, i) => {
      const inputs = uploadBatch(gpu, rows, batch, groups);
      counts.push(inputs.count);
      const tt = new Tape();
      tt.recording = false;
      const st = new Tape();
      st.recording = false;
      try {
        const b = new Batch(gpu, 'distill eval');
        const hT = teacher.forward(tt, b, inputs); // (N, Ct)
        const hS = student.forward(st, b, inputs); // (N, Cs)
        const head = st.leaf(student.params[student.headName]);
        const V = student.config.vocabSize;
        const loss = distillLoss(st, b, hS, head, hT.value, teacher.params[teacher.headName], inputs.targets as Tensor, inputs.count, {
          chunkTokens: Math.max(1, Math.floor(LOGITS_CHUNK_BYTES / (V * 4))),
          temperature: 1,
          alpha: 1,
        });
        b.encoder.copyBufferToBuffer(loss.value.buffer, 0, out.buffer, i * 4, 4);
        b.submit();
      } finally {
        tt.releaseUnrecorded();
        st.releaseUnrecorded();
        inputs.release();
      }
    });
    const values = await readTensor(out as Tensor & { dtype: 'f32' });
    let sum = 0;
    let tokens = 0;
    counts.forEach((n, i) => {
      sum += values[i] * n;
      tokens += n;
    });
    return { studentLoss: s.loss, teacherLoss: t.loss, kl: tokens > 0 ? sum / tokens : NaN, tokens };
  } finally {
    out.release();
    groups.release();
  }
}
