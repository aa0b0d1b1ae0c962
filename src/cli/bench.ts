// `whetstone bench` (also `npm run bench`): times the kernels on model-shaped problems and, in the
// same run on the same adapter, the same matmul shapes through TensorFlow.js's WebGPU backend.
// Prints a table and writes JSON. Timings are wall-clock from submit to queue completion (no
// readback), median of the repeats after one warm-up run; each matmul repeat runs ours and
// TensorFlow.js's back to back, so both sides of a ratio see the same load. Then, unless
// --no-kernels, the other kernel families, and unless --no-train, LoRA training steps on the demo
// model (and a folder given by --train-model) through bench-train.ts.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { run } from '../engine/gpu/batch.ts';
import type { Gpu } from '../engine/gpu/device.ts';
import { openNodeGpu } from '../engine/gpu/node.ts';
import { createTensor, tensorFromArray } from '../engine/gpu/tensor.ts';
import { matmul } from '../engine/kernels/matmul.ts';
import { Rng } from '../engine/random.ts';
import { type KernelCase, kernelCases } from './bench-kernels.ts';
import { DEMO_MODEL_DIR, type TrainStepResult, benchTrainSteps } from './bench-train.ts';
import { startTfjsPeer, type TfjsPeer } from './tfjs-peer.ts';

/** Layer shapes of the models the studio offers (from their config.json). */
export const MODEL_SHAPES = {
  'SmolLM2-135M': { hidden: 576, intermediate: 1536, heads: 9, kvHeads: 3, headDim: 64, vocab: 49152 },
  'Qwen2.5-0.5B': { hidden: 896, intermediate: 4864, heads: 14, kvHeads: 2, headDim: 64, vocab: 151936 },
  'TinyLlama-1.1B': { hidden: 2048, intermediate: 5632, heads: 32, kvHeads: 4, headDim: 64, vocab: 32000 },
} as const;
export type ModelName = keyof typeof MODEL_SHAPES;

export interface MatmulCase {
  model: ModelName;
  tokens: number;
  /** Which product: a projection forward, or a backward product of the MLP down projection. */
  op: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
}

export interface KernelResult {
  model: ModelName;
  tokens: number;
  kernel: string;
  ms: number;
  throughput: number;
  unit: KernelCase['unit'];
}

export interface MatmulResult extends MatmulCase {
  oursMs: number;
  oursGflops: number;
  tfjsMs?: number;
  tfjsGflops?: number;
  /** ours / theirs in GFLOP/s: above 1 means faster. */
  ratio?: number;
}

export function matmulCases(models: ModelName[], tokens: number[]): MatmulCase[] {
  const out: MatmulCase[] = [];
  for (const model of models) {
    const s = MODEL_SHAPES[model];
    for (const T of tokens) {
      const fwd = (op: string, n: number, k: number) => out.push({ model, tokens: T, op, M: T, N: n, K: k, transA: false, transB: true });
      fwd('q_proj  y = x·Wᵀ', s.heads * s.headDim, s.hidden);
      fwd('k_proj  y = x·Wᵀ', s.kvHeads * s.headDim, s.hidden);
      fwd('gate_proj  y = x·Wᵀ', s.intermediate, s.hidden);
      fwd('down_proj  y = x·Wᵀ', s.hidden, s.intermediate);
      out.push({ model, tokens: T, op: 'down_proj  dX = dY·W', M: T, N: s.intermediate, K: s.hidden, transA: false, transB: false });
      out.push({ model, tokens: T, op: 'down_proj  dW = dYᵀ·X', M: s.hidden, N: s.intermediate, K: T, transA: true, transB: false });
      // LoRA's rank-8 bottleneck on q_proj: u = x·Aᵀ, dU = dY·B, dB = dYᵀ·u.
      const q = s.heads * s.headDim;
      out.push({ model, tokens: T, op: 'LoRA r=8  u = x·Aᵀ', M: T, N: 8, K: s.hidden, transA: false, transB: true });
      out.push({ model, tokens: T, op: 'LoRA r=8  dU = dY·B', M: T, N: 8, K: q, transA: false, transB: false });
      out.push({ model, tokens: T, op: 'LoRA r=8  dB = dYᵀ·u', M: q, N: 8, K: T, transA: true, transB: false });
    }
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Times our product and, when a peer is given, TensorFlow.js's on the same shape, interleaved: each
 * repeat runs ours then theirs back to back, so that load from other processes falls on both sides
 * alike. One warm-up run of each comes first (pipeline compilation). Returns the medians.
 */
async function timeMatmulPair(gpu: Gpu, c: MatmulCase, repeats: number, rng: Rng, peer: TfjsPeer | null): Promise<{ oursMs: number; tfjsMs?: number }> {
  const a = tensorFromArray(gpu, rng.fill(c.M * c.K, (r) => r.normal()), c.transA ? [c.K, c.M] : [c.M, c.K]);
  const b = tensorFromArray(gpu, rng.fill(c.N * c.K, (r) => r.normal()), c.transB ? [c.N, c.K] : [c.K, c.N]);
  const y = createTensor(gpu, [c.M, c.N]);
  const theirs = peer?.prepareMatmul(c.M, c.N, c.K, c.transA, c.transB);
  const ours: number[] = [];
  const tfjs: number[] = [];
  for (let i = 0; i < repeats + 1; i++) {
    const t0 = performance.now();
    run(gpu, (bt) => matmul(bt, a, b, y, { transA: c.transA, transB: c.transB }));
    await gpu.device.queue.onSubmittedWorkDone();
    const dt = performance.now() - t0;
    const dtTheirs = theirs ? await theirs.time() : undefined;
    if (i === 0) continue; // the warm-up compiles the pipelines
    ours.push(dt);
    if (dtTheirs !== undefined) tfjs.push(dtTheirs);
  }
  gpu.check();
  for (const t of [a, b, y]) t.release();
  theirs?.dispose();
  return { oursMs: median(ours), tfjsMs: tfjs.length ? median(tfjs) : undefined };
}

export async function benchCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      tokens: { type: 'string' },
      models: { type: 'string' },
      repeats: { type: 'string', default: '3' },
      out: { type: 'string', default: '.bench/bench.json' },
      'no-tfjs': { type: 'boolean', default: false },
      'no-kernels': { type: 'boolean', default: false },
      'no-train': { type: 'boolean', default: false },
      'train-model': { type: 'string' },
    },
    strict: true,
  });
  const gpu = await openNodeGpu();
  const slow = gpu.summary.architecture === 'swiftshader' || gpu.summary.isFallbackAdapter;
  const tokens = values.tokens ? values.tokens.split(',').map(Number) : slow ? [16] : [128, 512, 2048];
  const models = (values.models ? values.models.split(',') : Object.keys(MODEL_SHAPES)) as ModelName[];
  for (const m of models) if (!(m in MODEL_SHAPES)) throw new Error(`Unknown model "${m}"; known: ${Object.keys(MODEL_SHAPES).join(', ')}`);
  const repeats = Math.max(1, Number(values.repeats));
  const peer: TfjsPeer | null = values['no-tfjs'] ? null : await startTfjsPeer();
  const adapter = `${gpu.summary.vendor} ${gpu.summary.architecture} ${gpu.summary.description}`.trim();
  console.log(`adapter: ${adapter}; tokens ${tokens.join(', ')}; median of ${repeats} after a warm-up`);
  console.log('| model | tokens | product | M×N×K | ours ms | ours GFLOP/s | TF.js ms | TF.js GFLOP/s | ours/TF.js |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  const rng = new Rng(1);
  const results: MatmulResult[] = [];
  for (const c of matmulCases(models, tokens)) {
    const flop = 2 * c.M * c.N * c.K;
    const { oursMs, tfjsMs } = await timeMatmulPair(gpu, c, repeats, rng, peer);
    const r: MatmulResult = { ...c, oursMs, oursGflops: flop / oursMs / 1e6 };
    if (tfjsMs !== undefined) {
      r.tfjsMs = tfjsMs;
      r.tfjsGflops = flop / tfjsMs / 1e6;
      r.ratio = r.oursGflops / r.tfjsGflops;
    }
    results.push(r);
    const f = (v: number | undefined, d: number) => (v === undefined ? '—' : v.toFixed(d));
    console.log(`| ${c.model} | ${c.tokens} | ${c.op} | ${c.M}×${c.N}×${c.K} | ${f(r.oursMs, 1)} | ${f(r.oursGflops, 3)} | ${f(r.tfjsMs, 1)} | ${f(r.tfjsGflops, 3)} | ${f(r.ratio, 2)} |`);
  }
  // The base weights' products and LoRA's rank-8 products are summarised apart, so that the narrow
  // LoRA shapes (where TF.js is far slower) do not lift the headline figure.
  for (const [what, lora] of [
    ['base-weight', false],
    ['LoRA', true],
  ] as const) {
    const ratios = results.filter((r) => r.op.startsWith('LoRA') === lora).map((r) => r.ratio).filter((x): x is number => x !== undefined);
    if (ratios.length === 0) continue;
    const geo = Math.exp(ratios.reduce((s, x) => s + Math.log(x), 0) / ratios.length);
    console.log(`ours/TF.js, ${what} products: geometric mean ${geo.toFixed(2)}, min ${Math.min(...ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)} over ${ratios.length} shapes`);
  }

  const kernels: KernelResult[] = [];
  if (!values['no-kernels']) {
    console.log('');
    console.log('| model | tokens | kernel | ms | throughput |');
    console.log('| --- | --- | --- | --- | --- |');
  }
  for (const model of values['no-kernels'] ? [] : models) {
    for (const T of tokens) {
      const { cases, release } = kernelCases(gpu, MODEL_SHAPES[model], T, rng, slow ? Math.min(2048, MODEL_SHAPES[model].vocab) : undefined);
      for (const k of cases) {
        const times: number[] = [];
        for (let i = 0; i < repeats + 1; i++) {
          const t0 = performance.now();
          run(gpu, k.run);
          await gpu.device.queue.onSubmittedWorkDone();
          if (i > 0) times.push(performance.now() - t0);
        }
        gpu.check();
        const ms = median(times);
        const throughput = k.work / ms / 1e6;
        kernels.push({ model, tokens: T, kernel: k.kernel, ms, throughput, unit: k.unit });
        console.log(`| ${model} | ${T} | ${k.kernel} | ${ms.toFixed(2)} | ${throughput.toFixed(3)} ${k.unit} |`);
      }
      release();
    }
  }

  let train: TrainStepResult[] | undefined;
  if (!values['no-train']) {
    const dirs = [DEMO_MODEL_DIR, ...(values['train-model'] ? [values['train-model']] : [])];
    train = await benchTrainSteps(gpu, { dirs, repeats, batch: 2, seqLen: 64 });
  }

  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, JSON.stringify({ date: new Date().toISOString(), adapter: gpu.summary, tokens, repeats, matmul: results, kernels, train }, null, 2));
  console.log(`wrote ${values.out}`);
  peer?.dispose();
  return 0;
}
