// Compares every tuning method of the registry on one tiny task: the llama3-untied-f32 tiny model of
// scripts/tiny/models.ts (2 layers, hidden 64, f32 weights) learning a successor mapping (each token
// followed by the next of a 40-token cycle). For each method: trainable values, the GPU memory peak
// of the run (weights, adapter, optimizer state and activations, from the allocator), training
// tokens per second (steps after the first), and the validation loss before and after. Prints a
// Markdown table (the one in docs/methods.md). Speed depends on the adapter it runs on (it names it).
//
//   node scripts/bench-methods.mjs [--steps 30] [--methods lora,ia3]

import { parseArgs } from 'node:util';
import { formatBytes } from '../src/engine/gpu/allocator.ts';
import { openNodeGpu } from '../src/engine/gpu/node.ts';
import { blobFileSet, openModelFolder } from '../src/engine/io/model-folder.ts';
import { type TokenRow, loadModel } from '../src/engine/model/llama.ts';
import { METHODS, findMethod, parseMethodOptions } from '../src/engine/peft/methods.ts';
import { Rng } from '../src/engine/random.ts';
import { prepareRows } from '../src/engine/train/batches.ts';
import { MemoryCheckpointStore } from '../src/engine/train/checkpoint.ts';
import { evaluateRows } from '../src/engine/train/evaluate.ts';
import { train } from '../src/engine/train/trainer.ts';
import { TINY_MODELS, makeTinyModel } from './tiny/models.ts';

/** The settings each method trains with: its options as flags, and a learning rate that suits it. */
const SETTINGS: Record<string, { flags: Record<string, string>; lr: number }> = {
  lora: { flags: { rank: '8', alpha: '16', targets: 'all-linear' }, lr: 1e-2 },
  dora: { flags: { rank: '8', alpha: '16', targets: 'all-linear' }, lr: 1e-2 },
  ia3: { flags: {}, lr: 1e-1 },
  prompt: { flags: { 'virtual-tokens': '8', 'prompt-init': 'SAMPLE_VOCAB' }, lr: 1e-1 },
  prefix: { flags: { 'virtual-tokens': '8' }, lr: 5e-2 },
  adapter: { flags: { 'reduction-factor': '8' }, lr: 1e-2 },
  full: { flags: {}, lr: 3e-3 },
};

function successorRows(n: number, seed: number): TokenRow[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = 12 + rng.int(5);
    const start = rng.int(40);
    const inputIds = Array.from({ length: len }, (_, t) => 100 + ((start + t) % 40));
    return { inputIds, labels: inputIds.map((id, t) => (t < 2 ? -100 : id)) };
  });
}

const { values } = parseArgs({ options: { steps: { type: 'string' }, methods: { type: 'string' } }, strict: true });
const steps = Number(values.steps ?? 30);
const ids = values.methods ? values.methods.split(',') : METHODS.map((m) => m.id);

const gpu = await openNodeGpu();
const spec = TINY_MODELS.find((s) => s.name === 'llama3-untied-f32');
if (!spec) throw new Error('no tiny model llama3-untied-f32');
const files = makeTinyModel(spec);
const folder = await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])])), spec.name));
const model = await loadModel(gpu, folder);
const trainRows = successorRows(32, 1);
const valRows = successorRows(8, 2);
const val = prepareRows(valRows, model.config.vocabSize, 64).rows;

const lines = [
  `${spec.name} (${model.config.numHiddenLayers} layers, hidden ${model.config.hiddenSize}, vocab ${model.config.vocabSize}), successor task, ${steps} steps of 8 rows, AdamW, constant LR; adapter: ${gpu.summary.vendor} ${gpu.summary.architecture} (${gpu.summary.backend})`,
  '',
  '| method | trainable values | memory peak | tokens/s | validation loss (start → end) | LR |',
  '|---|---:|---:|---:|---|---:|',
];
for (const id of ids) {
  const method = findMethod(id);
  const s = SETTINGS[id] ?? { flags: {}, lr: 1e-2 };
  const adapter = await method.create(model, parseMethodOptions(method, s.flags), { seed: 1, source: folder });
  try {
    const start = (await evaluateRows(model, adapter, val)).loss;
    const result = await train({
      model,
      adapter,
      train: trainRows,
      validation: valRows,
      options: { lr: s.lr, seqLen: 64, seed: 1, batchSize: 8, maxSteps: steps, schedule: 'constant', saveEvery: 0 },
      checkpoints: new MemoryCheckpointStore(),
    });
    const later = result.metrics.slice(1);
    const tokens = later.reduce((n, m) => n + m.tokens, 0);
    const seconds = later.length > 0 ? (later[later.length - 1].elapsedMs - result.metrics[0].elapsedMs) / 1000 : NaN;
    const peak = Math.max(...result.metrics.map((m) => m.peakBytes));
    lines.push(
      `| ${method.label} | ${adapter.parameterCount.toLocaleString('en-US')} | ${formatBytes(peak)} | ${(tokens / seconds).toFixed(0)} | ${start.toFixed(3)} → ${result.valLoss?.toFixed(3)} | ${s.lr} |`,
    );
    process.stderr.write(`${lines[lines.length - 1]}\n`);
  } finally {
    adapter.release();
  }
}
process.stdout.write(`${lines.join('\n')}\n`);
model.release();
gpu.destroy();
