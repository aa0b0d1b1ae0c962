// The LoRA training-step part of `whetstone bench`: loads a model folder, adds a LoRA adapter and
// times optimizer steps recorded as the trainer records one (one micro-batch, no accumulation):
// zero the gradients, forward with the adapter's hook, loss, backward, AdamW update, in one command
// encoder. Each step is timed from recording to queue completion; the median of the repeats after
// one warm-up step is reported with the dispatches of a step and the peak GPU memory during one.

import { Tape } from '../engine/autograd/tape.ts';
import { Batch } from '../engine/gpu/batch.ts';
import type { Gpu } from '../engine/gpu/device.ts';
import { createTensor } from '../engine/gpu/tensor.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { fill } from '../engine/kernels/elementwise.ts';
import { type LlamaModel, loadModel, makeInputs } from '../engine/model/llama.ts';
import { AdamWOptimizer } from '../engine/optim/optimizer.ts';
import { createLoraConfig } from '../engine/peft/lora/config.ts';
import { createLora } from '../engine/peft/lora/model.ts';
import { Rng } from '../engine/random.ts';

/** The studio's demo model folder, relative to the repository root. */
export const DEMO_MODEL_DIR = 'public/models/demo';

export interface TrainStepResult {
  model: string;
  targets: string;
  rank: number;
  trainableParams: number;
  batch: number;
  seqLen: number;
  /** Input tokens of a step (batch × seqLen, no padding). */
  tokens: number;
  ms: number;
  tokensPerSecond: number;
  dispatches: number;
  /** Bytes of the model's weights on the GPU. */
  weightBytes: number;
  /** Bytes in use before a step: weights, adapter and its gradients, optimizer state, inputs (the idle transient pool left out). */
  inUseBytes: number;
  /** Highest bytes the allocator held during a step, the transient pool included (the warm-up step, which fills the pool, counts). */
  peakBytes: number;
}

export interface TrainBenchOptions {
  /** Model folders to measure; the first is usually the demo model. */
  dirs: string[];
  repeats: number;
  /** Rows and tokens per row of the step. */
  batch: number;
  seqLen: number;
}

const TARGETS: { label: string; modules: string[] | string }[] = [
  { label: 'q_proj,v_proj', modules: ['q_proj', 'v_proj'] },
  { label: 'all-linear', modules: 'all-linear' },
];
const RANK = 8;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** Times LoRA steps on every folder of `o.dirs` for each target set; prints a markdown table and returns the rows. */
export async function benchTrainSteps(gpu: Gpu, o: TrainBenchOptions): Promise<TrainStepResult[]> {
  console.log('');
  console.log(`LoRA training step (rank ${RANK}, AdamW, batch ${o.batch} × ${o.seqLen} tokens; median of ${o.repeats} after a warm-up)`);
  console.log('| model | targets | trainable | tokens/step | step ms | tokens/s | dispatches/step | weights MiB | in use before MiB | peak MiB |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  const out: TrainStepResult[] = [];
  for (const dir of o.dirs) {
    const model = await loadModel(gpu, await openModelDirectory(dir));
    try {
      for (const t of TARGETS) {
        const r = await timeLoraStep(model, dir, t.label, t.modules, o);
        out.push(r);
        console.log(
          `| ${r.model} | ${r.targets} | ${r.trainableParams.toLocaleString('en-US')} | ${r.tokens} | ${r.ms.toFixed(1)} | ${r.tokensPerSecond.toFixed(0)} | ${r.dispatches} | ${mb(r.weightBytes)} | ${mb(r.inUseBytes)} | ${mb(r.peakBytes)} |`,
        );
      }
    } finally {
      model.release();
    }
  }
  return out;
}

async function timeLoraStep(model: LlamaModel, dir: string, label: string, modules: string[] | string, o: TrainBenchOptions): Promise<TrainStepResult> {
  const gpu = model.gpu;
  const seqLen = Math.min(o.seqLen, model.config.maxPositionEmbeddings);
  const rng = new Rng(7);
  const V = model.config.vocabSize;
  const rows = Array.from({ length: o.batch }, () => ({ inputIds: Array.from({ length: seqLen }, () => rng.int(V)) }));
  const adapter = createLora(model, createLoraConfig({ r: RANK, lora_alpha: 2 * RANK, lora_dropout: 0, target_modules: modules }), { seed: 1 });
  const optimizer = new AdamWOptimizer(gpu, adapter.params, { maxGradNorm: 1 });
  const inputs = makeInputs(model, rows);
  try {
    const times: number[] = [];
    let dispatches = 0;
    let peakBytes = 0;
    let inUseBytes = 0;
    for (let i = 0; i < o.repeats + 1; i++) {
      await gpu.sync();
      inUseBytes = gpu.allocator.stats().inUseBytes;
      gpu.allocator.resetPeak();
      const d0 = gpu.counters.dispatches;
      const t0 = performance.now();
      const tape = new Tape();
      try {
        const b = new Batch(gpu, `bench lora step ${i}`);
        optimizer.zeroGrad(b);
        const leaves = adapter.leaves(tape);
        const loss = model.loss(tape, b, inputs, { projection: adapter.hook(tape, leaves, i) }); // (1)
        const seed = createTensor(gpu, [1], 'f32', { transient: true, label: 'bench.seed' }); // (1) the tape takes it
        fill(b, seed, 1);
        tape.backward(b, loss, seed);
        optimizer.record(b, 1e-4);
        b.submit();
      } catch (e) {
        tape.discard();
        throw e;
      }
      await gpu.device.queue.onSubmittedWorkDone();
      const ms = performance.now() - t0;
      gpu.check();
      if (i > 0) times.push(ms);
      dispatches = gpu.counters.dispatches - d0;
      peakBytes = Math.max(peakBytes, gpu.allocator.stats().peakBytes);
    }
    const ms = median(times);
    const tokens = o.batch * seqLen;
    return {
      model: dir === DEMO_MODEL_DIR ? 'demo' : dir,
      targets: label,
      rank: RANK,
      trainableParams: adapter.parameterCount,
      batch: o.batch,
      seqLen,
      tokens,
      ms,
      tokensPerSecond: tokens / (ms / 1000),
      dispatches,
      weightBytes: model.parameterBytes,
      inUseBytes,
      peakBytes,
    };
  } finally {
    inputs.release();
    optimizer.release();
    adapter.release();
  }
}
