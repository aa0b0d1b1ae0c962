// `whetstone compress-report --model DIR --data FILE`: applies every compression technique to one
// model and prints one markdown table (the one in docs/compression.md): per technique the size of
// model.safetensors in bytes, the size of the folder as the studio's zip download (every file
// deflated), the parameters stored, the held-out evaluation loss of the original and of the
// compressed model, and greedy generation speed in tokens/s on this machine's adapter (the median of
// --repeats timed runs). The data rows are split with the seed: 80 % for calibration and the
// recovery / distillation fine-tunes, 20 % held out for the losses. Compressed folders go to --work
// (a temporary folder by default, removed at the end).

import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { activationNorms } from '../engine/compress/calibrate.ts';
import type { ExportedFile } from '../engine/compress/folder.ts';
import { distillToFolder, generationSpeed, recoverPrunedFolder, splitHeldOut } from '../engine/compress/pipeline.ts';
import { type PruneOptions, pruneModel } from '../engine/compress/prune.ts';
import { groupedLayerSource, shareModel } from '../engine/compress/share.ts';
import type { Gpu } from '../engine/gpu/device.ts';
import { InvalidArgumentError } from '../engine/errors.ts';
import { openNodeGpu } from '../engine/gpu/node.ts';
import type { ModelFolder } from '../engine/io/model-folder.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { parameterCount } from '../engine/model/config.ts';
import { evaluateLoss, loadModel } from '../engine/model/llama.ts';
import { zipModelFolder } from '../worker/compress.ts';
import { intList, readTokenRows, writeModelFolder } from './compress-args.ts';
import { intArg, numberArg, openModelArg } from './model-args.ts';

export const COMPRESS_REPORT_USAGE = `compress-report --model DIR --data FILE [--steps 30] [--recover-steps N[,N…]] [--recover-lr 1e-3]
                  [--recover-rank 8] [--seq-len 128] [--gen-tokens 32] [--repeats 5] [--seed 0]
                  [--work DIR] [--json]`;

interface Row {
  technique: string;
  bytes: number;
  /** The folder as the studio's zip download (every file deflated). */
  zipBytes: number;
  parameters: number;
  lossBefore: number;
  lossAfter: number;
  tokensPerSecond: number;
  note: string;
}

export async function compressReportCommand(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      steps: { type: 'string' },
      'recover-steps': { type: 'string' },
      'recover-lr': { type: 'string' },
      'recover-rank': { type: 'string' },
      repeats: { type: 'string' },
      'seq-len': { type: 'string' },
      'gen-tokens': { type: 'string' },
      seed: { type: 'string' },
      work: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const source = await openModelArg(v.model);
  if (!v.data) throw new InvalidArgumentError('--data FILE is required: the rows the losses are measured on (and calibration and fine-tuning use).');
  const steps = intArg('steps', v.steps, 30, 1);
  const recoverSteps = intList('recover-steps', v['recover-steps']) ?? [steps];
  if (recoverSteps.some((n) => n < 1)) throw new InvalidArgumentError(`--recover-steps must be positive step counts; got ${JSON.stringify(v['recover-steps'])}.`);
  const recoverLr = numberArg('recover-lr', v['recover-lr'], 1e-3);
  const recoverRank = intArg('recover-rank', v['recover-rank'], 8, 1);
  const repeats = intArg('repeats', v.repeats, 5, 1);
  const seqLen = intArg('seq-len', v['seq-len'], 128, 2);
  const genTokens = intArg('gen-tokens', v['gen-tokens'], 32, 1);
  const seed = intArg('seed', v.seed, 0, 0);
  const rows = await readTokenRows(v.data, source, { maxLength: seqLen });
  const { held, train } = splitHeldOut(rows, 0.2, seed);
  if (held.length === 0) throw new InvalidArgumentError('--data needs at least 2 rows: one held out for the losses, one for calibration and fine-tuning.');
  const prompt = held[0].inputIds.slice(0, Math.min(8, held[0].inputIds.length));
  const work = v.work ?? (await mkdtemp(join(tmpdir(), 'whetstone-compress-report-')));
  const gpu: Gpu = await openNodeGpu();
  const c = source.config;
  const log = (s: string) => process.stderr.write(`${s}\n`);

  const measure = async (folder: ModelFolder, dir: string | null): Promise<{ loss: number; tps: number; bytes: number; zipBytes: number }> => {
    const model = await loadModel(gpu, folder);
    try {
      const { loss } = await evaluateLoss(model, held);
      const { tokensPerSecond: tps, runs } = await generationSpeed(model, prompt, { tokens: genTokens, repeats });
      log(`  tokens/s of ${repeats} runs: ${runs.map((x) => x.toFixed(1)).join(', ')}`);
      const st = dir ? join(dir, 'model.safetensors') : null;
      const bytes = st ? (await stat(st)).size : folder.shards.reduce((a, s) => a + s.index.size, 0);
      const zipBytes = (await zipModelFolder(folder.files, new AbortController().signal)).size;
      return { loss, tps, bytes, zipBytes };
    } finally {
      model.release();
    }
  };
  const table: Row[] = [];
  let baseLoss = NaN;
  const add = async (technique: string, files: ExportedFile[] | null, note = '') => {
    log(`compress-report: ${technique}`);
    let folder = source;
    let dir: string | null = null;
    if (files) {
      dir = join(work, `${table.length}`);
      await writeModelFolder(dir, files);
      folder = await openModelDirectory(dir);
    }
    const m = await measure(folder, dir);
    if (!files) baseLoss = m.loss;
    table.push({ technique, bytes: m.bytes, zipBytes: m.zipBytes, parameters: parameterCount(folder.config), lossBefore: baseLoss, lossAfter: m.loss, tokensPerSecond: m.tps, note });
    return dir;
  };

  try {
    await add('original', null);
    const base = await loadModel(gpu, source);
    let norms;
    try {
      norms = await activationNorms(base, train);
    } finally {
      base.release();
    }
    const prune = async (name: string, o: PruneOptions, note = '') => add(name, (await pruneModel(source, o)).files, note);
    await prune('magnitude 50 % (per tensor)', { unstructured: { sparsity: 0.5 } }, 'dense storage: zeros are stored');
    await prune('magnitude 50 % (global)', { unstructured: { sparsity: 0.5, scope: 'global' } }, 'dense storage');
    await prune('Wanda 50 %', { unstructured: { sparsity: 0.5 }, criterion: 'wanda', norms }, 'dense storage');
    await prune('2:4 (Wanda)', { nm: { n: 2, m: 4 }, criterion: 'wanda', norms }, 'dense storage');
    if (c.numKeyValueHeads > 1) await prune('heads: −1 KV group (Wanda)', { heads: { mode: 'kv-groups', remove: 1 }, criterion: 'wanda', norms });
    else if (c.numAttentionHeads > 1) await prune('heads: −1 query head per group (Wanda)', { heads: { mode: 'query-heads', remove: 1 }, criterion: 'wanda', norms });
    await prune('MLP neurons −25 % (Wanda)', { neurons: { remove: Math.floor(c.intermediateSize / 4) }, criterion: 'wanda', norms });
    const drop = Math.floor(c.numHiddenLayers / 2);
    if (c.numHiddenLayers > 1) {
      const dropped = await prune(`drop layer ${drop}`, { dropLayers: [drop] });
      const droppedFolder = await openModelDirectory(dropped as string);
      for (const n of recoverSteps) {
        const recoverOptions = { steps: n, lr: recoverLr, rank: recoverRank, seqLen, seed };
        await recoverPrunedFolder(gpu, droppedFolder, train, recoverOptions, (files) =>
          add(`drop layer ${drop} + LoRA recovery`, files, `${n} steps, rank ${recoverRank}, lr ${recoverLr}, merged`),
        );
      }
      const teacher = await loadModel(gpu, source);
      try {
        await distillToFolder({
          teacher,
          studentFolder: droppedFolder,
          train,
          held: [],
          options: { steps, lr: 1e-3, temperature: 2, alpha: 0.5, batchSize: 8, seqLen, seed },
          write: (files) => add(`drop layer ${drop} + distillation`, files, `${steps} steps, T 2, alpha 0.5, all weights`),
        });
      } finally {
        teacher.release();
      }
      await add('shared blocks (pairs, mean)', (await shareModel(source, { layerSource: groupedLayerSource(c.numHiddenLayers, 2), init: 'mean' })).files);
    }
    await add('clustered k = 256 (projections)', (await shareModel(source, { cluster: { k: 256, seed } })).files, 'U8 indices');
    await add('clustered k = 16 (projections)', (await shareModel(source, { cluster: { k: 16, seed } })).files, 'packed 4-bit indices');
    await add('clustered k = 16 (all matrices)', (await shareModel(source, { cluster: { k: 16, seed, targets: 'all-matrices' } })).files, 'embeddings too');
  } finally {
    gpu.destroy();
    if (!v.work) await rm(work, { recursive: true, force: true });
  }

  if (v.json) {
    process.stdout.write(`${JSON.stringify(table)}\n`);
    return 0;
  }
  const lines = [
    `Model: ${v.model} (${c.architecture}, ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}); data: ${v.data}, ${held.length} held-out rows, ${train.length} for calibration and fine-tuning.`,
    `Settings: --steps ${steps} --recover-steps ${recoverSteps.join(',')} --recover-lr ${recoverLr} --recover-rank ${recoverRank} --seq-len ${seqLen} --gen-tokens ${genTokens} --repeats ${repeats} --seed ${seed}.`,
    '',
    '| technique | model.safetensors bytes | zip (deflate) bytes | parameters | eval loss before | eval loss after | tokens/s (median) | note |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...table.map(
      (r) => `| ${r.technique} | ${r.bytes} | ${r.zipBytes} | ${r.parameters} | ${r.lossBefore.toFixed(4)} | ${r.lossAfter.toFixed(4)} | ${r.tokensPerSecond.toFixed(1)} | ${r.note} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
