#!/usr/bin/env node
// Quantization-aware training (QAT) vs post-training quantization (PTQ) on a tiny model, with the
// same seeds and steps for each arm; docs/quantization.md quotes the output. Two parts:
//
// --weights: 4-bit weights. The tiny Llama of the trainer tests is fully fine-tuned on the successor
//   task three ways: in f32 and then quantized (PTQ: the f32 fine-tune's folder through
//   `whetstone quantize`'s path); with its projections fake-quantized in every forward (QAT, from
//   the base weights, as many steps); and the f32 fine-tune trained on with QAT for a few more steps
//   (QAT after f32, the common recipe), against its control: the same extra steps in f32, then PTQ.
//   Each quantized result is the exported folder, loaded back and evaluated on held-out rows. Prints
//   a Markdown table and one JSON line (progress goes to stderr).
// --activations: INT8 activations. LoRA (rank 8, every projection) is trained twice over the same
//   NF4 (double-quantized) base — once plainly (then evaluated with dynamic per-token INT8
//   activations: PTQ), once with the activations fake-quantized during training (QAT) — and both are
//   evaluated on held-out rows with and without INT8 activations. Prints one JSON line.
//
//   node scripts/qat-vs-ptq.mjs [--weights] [--activations] [--steps 40] [--lr 3e-3] [--finetune-steps 10]
// Both parts run when neither is named. Takes minutes on SwiftShader.
import { mkdtemp, rm } from 'node:fs/promises';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { register as registerTsx } from 'tsx/esm/api';

register('../bin/raw-hooks.mjs', import.meta.url);
registerTsx();
const { makeTinyTokenizer } = await import('./tiny/tokenizer.ts');
const { openNodeGpu } = await import('../src/engine/gpu/node.ts');
const { blobFileSet, openModelFolder } = await import('../src/engine/io/model-folder.ts');
const { openModelDirectory } = await import('../src/engine/io/model-folder-node.ts');
const { evaluateLoss, loadModel } = await import('../src/engine/model/llama.ts');
const { writeTinyModel } = await import('../src/engine/model/llama-testing.ts');
const { withForwardOptions } = await import('../src/engine/peft/adapter.ts');
const { createFullFineTune } = await import('../src/engine/peft/full/index.ts');
const { createLoraConfig } = await import('../src/engine/peft/lora/config.ts');
const { createLora, withAdapter } = await import('../src/engine/peft/lora/model.ts');
const { activationQuantAware, dynamicInt8Activations } = await import('../src/engine/quant/activation.ts');
const { quantizeFolderFiles } = await import('../src/engine/quant/fake-quant.ts');
const { Rng } = await import('../src/engine/random.ts');
const { MemoryCheckpointStore } = await import('../src/engine/train/checkpoint.ts');
const { evaluateRows, tokenRowToRow } = await import('../src/engine/train/evaluate.ts');
const { train } = await import('../src/engine/train/trainer.ts');

const { values: args } = parseArgs({
  options: {
    weights: { type: 'boolean', default: false },
    activations: { type: 'boolean', default: false },
    steps: { type: 'string', default: '40' },
    lr: { type: 'string', default: '3e-3' },
    'finetune-steps': { type: 'string', default: '10' },
  },
});
const both = !args.weights && !args.activations;

/** Rows following a 40-token cycle (the trainer tests' successor mapping); the first 2 labels masked. */
function successorRows(n, seed) {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = 8 + rng.int(5);
    const start = rng.int(40);
    const inputIds = Array.from({ length: len }, (_, t) => 100 + ((start + t) % 40));
    return { inputIds, labels: inputIds.map((id, t) => (t < 2 ? -100 : id)) };
  });
}

const folderOf = async (files) => openModelFolder(blobFileSet(Object.fromEntries([...files].map(([name, bytes]) => [name, new Blob([bytes])]))));

/** The loss on `rows` of a model folder held in memory, loaded as it is stored (quantized or not). */
async function folderLoss(gpu, files, rows) {
  const model = await loadModel(gpu, await folderOf(files));
  try {
    return (await evaluateLoss(model, rows)).loss;
  } finally {
    model.release();
  }
}

async function weightsPart(gpu, root) {
  const tiny = await writeTinyModel(join(root, 'weights-model'), { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 5 }, makeTinyTokenizer());
  const source = await openModelDirectory(tiny.dir);
  const model = await loadModel(gpu, source);
  const trainRows = successorRows(24, 1);
  const valRows = successorRows(16, 2);
  const steps = Number(args.steps);
  const lr = Number(args.lr);
  const fineSteps = Number(args['finetune-steps']);
  const options = { lr, schedule: 'cosine', warmup: 2, batchSize: 8, maxSteps: steps, seqLen: 16, seed: 7 };
  const formats = [
    { label: 'NF4 (block 64)', q: { format: 'nf4', block: 64 } },
    { label: 'NF4 (block 32)', q: { format: 'nf4', block: 32 } },
    { label: 'INT4 (group 32, symmetric)', q: { format: 'int4', block: 32 } },
  ];
  const out = { settings: { model: 'tiny Llama (hidden 32, intermediate 48, 2 layers, tied), seed 5', trainRows: 24, valRows: 16, ...options, fineSteps } };
  const table = [];
  try {
    const baseFiles = await (async () => {
      const full = createFullFineTune(model, { source });
      try {
        return await full.exportFiles();
      } finally {
        full.release();
      }
    })();
    const row = { arm: 'base (no training)', f32: (await evaluateLoss(model, valRows)).loss };
    for (const f of formats) row[f.label] = await folderLoss(gpu, (await quantizeFolderFiles(baseFiles, f.q)).files, valRows);
    table.push(row);

    // f32 full fine-tune, then PTQ of its folder.
    const ft = createFullFineTune(model, { source });
    await train({ model, adapter: ft, train: trainRows, checkpoints: new MemoryCheckpointStore(), options });
    const ftFiles = await ft.exportFiles();
    const ptq = { arm: `f32 fine-tune (${steps} steps), then PTQ`, f32: (await evaluateRows(model, ft, valRows.map(tokenRowToRow))).loss };
    for (const f of formats) ptq[f.label] = await folderLoss(gpu, (await quantizeFolderFiles(ftFiles, f.q)).files, valRows);
    table.push(ptq);
    console.error(`done: ${ptq.arm}`);

    // QAT from the base weights, the same steps and seeds; one run per format.
    const qat = { arm: `QAT fine-tune (${steps} steps)`, f32: null };
    const after = { arm: `f32 fine-tune (${steps} steps), then QAT (${fineSteps} steps)`, f32: null };
    const extra = { ...options, schedule: 'constant', warmup: 0, lr: lr / 10, maxSteps: fineSteps };
    const control = { arm: `f32 fine-tune (${steps} + ${fineSteps} steps), then PTQ`, f32: null };
    {
      const ftModel = await loadModel(gpu, await folderOf(ftFiles));
      const more = createFullFineTune(ftModel, { source: { rawConfig: source.rawConfig, files: source.files } });
      try {
        await train({ model: ftModel, adapter: more, train: trainRows, checkpoints: new MemoryCheckpointStore(), options: extra });
        control.f32 = (await evaluateRows(ftModel, more, valRows.map(tokenRowToRow))).loss;
        const moreFiles = await more.exportFiles();
        for (const f of formats) control[f.label] = await folderLoss(gpu, (await quantizeFolderFiles(moreFiles, f.q)).files, valRows);
      } finally {
        more.release();
        ftModel.release();
      }
      console.error(`done: ${control.arm}`);
    }
    for (const f of formats) {
      const run = createFullFineTune(model, { source, qat: f.q });
      try {
        await train({ model, adapter: run, train: trainRows, checkpoints: new MemoryCheckpointStore(), options });
        const trainedLoss = (await evaluateRows(model, run, valRows.map(tokenRowToRow))).loss;
        qat[f.label] = await folderLoss(gpu, (await run.exportQuantizedFiles()).files, valRows);
        out[`QAT ${f.label}: training forward vs exported folder`] = [trainedLoss, qat[f.label]];
      } finally {
        run.release();
      }
      // The common recipe: start from the f32 fine-tune and train a few steps with QAT (a fresh
      // optimizer, a constant learning rate of a tenth of the peak).
      const ftModel = await loadModel(gpu, await folderOf(ftFiles));
      try {
        const tuned = createFullFineTune(ftModel, { source: { rawConfig: source.rawConfig, files: source.files }, qat: f.q });
        try {
          await train({ model: ftModel, adapter: tuned, train: trainRows, checkpoints: new MemoryCheckpointStore(), options: extra });
          after[f.label] = await folderLoss(gpu, (await tuned.exportQuantizedFiles()).files, valRows);
        } finally {
          tuned.release();
        }
      } finally {
        ftModel.release();
      }
      console.error(`done: QAT ${f.label}`);
    }
    ft.release();
    table.push(qat, control, after);
  } finally {
    model.release();
  }
  const cols = ['f32', ...formats.map((f) => f.label)];
  const fmt = (v) => (typeof v === 'number' ? v.toFixed(4) : '—');
  console.log(`| Full fine-tune of the tiny Llama, eval loss on 16 held-out rows | ${cols.join(' | ')} |`);
  console.log(`|---|${cols.map(() => '---:').join('|')}|`);
  for (const r of table) console.log(`| ${r.arm} | ${cols.map((c) => fmt(r[c])).join(' | ')} |`);
  out.table = table;
  console.log(JSON.stringify(out));
}

async function activationsPart(gpu, root) {
  const tiny = await writeTinyModel(join(root, 'model'), { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 5 }, makeTinyTokenizer());
  const model = await loadModel(gpu, await openModelDirectory(tiny.dir), { quant: { format: 'nf4', block: 64, doubleQuant: true } });
  const trainRows = successorRows(24, 1);
  const valRows = successorRows(16, 2);
  const options = { lr: 3e-2, schedule: 'cosine', warmup: 1, batchSize: 8, epochs: 4, seqLen: 16, seed: 7 };
  const out = {
    'base W4': (await evaluateLoss(model, valRows)).loss,
    'base W4A8': (await evaluateLoss(withForwardOptions(model, { projectionInput: dynamicInt8Activations() }), valRows)).loss,
  };
  for (const mode of ['PTQ', 'QAT']) {
    const adapter = createLora(model, createLoraConfig({ r: 8, lora_alpha: 16, target_modules: 'all-linear' }), { seed: 3 });
    await train({ model, adapter: mode === 'QAT' ? activationQuantAware(adapter) : adapter, train: trainRows, checkpoints: new MemoryCheckpointStore(), options });
    out[`${mode} W4`] = (await evaluateLoss(withAdapter(model, adapter), valRows)).loss;
    out[`${mode} W4A8`] = (await evaluateRows(model, activationQuantAware(adapter), valRows.map(tokenRowToRow))).loss;
    adapter.release();
  }
  model.release();
  console.log(JSON.stringify(out));
}

const root = await mkdtemp(join(tmpdir(), 'whetstone-qat-'));
const gpu = await openNodeGpu();
try {
  if (both || args.weights) await weightsPart(gpu, root);
  if (both || args.activations) await activationsPart(gpu, root);
} finally {
  gpu.destroy();
  await rm(root, { recursive: true, force: true });
}
