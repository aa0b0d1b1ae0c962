// `whetstone prune --model DIR --out DIR [...]`: writes a pruned copy of a model folder. Layer
// dropping, structured pruning of attention heads and MLP neurons (smaller tensors and config), and
// unstructured (per tensor or global) or N:M sparsity, by weight magnitude or by Wanda's
// |W| · ‖X‖ with activation norms from a calibration file; optionally a short LoRA recovery
// fine-tune merged into the result. The last line of output is a JSON summary.

import { parseArgs } from 'node:util';
import { calibrateAndPrune, recoverPrunedFolder } from '../engine/compress/pipeline.ts';
import type { PruneOptions, PruneResult } from '../engine/compress/prune.ts';
import { InvalidArgumentError } from '../engine/errors.ts';
import { openNodeGpu } from '../engine/gpu/node.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { checkOutDir, choiceArg, intList, readTokenRows, writeModelFolder } from './compress-args.ts';
import { intArg, loadCliModel, numberArg, openModelArg } from './model-args.ts';

export const PRUNE_USAGE = `prune --model DIR --out DIR [--sparsity S [--scope layer|global] | --nm N:M]
        [--heads N [--heads-mode kv-groups|query-heads]] [--neurons N] [--drop-layers 1,2]
        [--criterion magnitude|wanda] [--calib FILE] [--calib-rows 64] [--seq-len 256]
        [--recover-steps N --data FILE [--recover-lr 2e-4] [--recover-rank 8]] [--seed 0]`;

const OPTIONS = {
  model: { type: 'string' },
  out: { type: 'string' },
  sparsity: { type: 'string' },
  scope: { type: 'string' },
  nm: { type: 'string' },
  heads: { type: 'string' },
  'heads-mode': { type: 'string' },
  neurons: { type: 'string' },
  'drop-layers': { type: 'string' },
  criterion: { type: 'string' },
  calib: { type: 'string' },
  'calib-rows': { type: 'string' },
  'seq-len': { type: 'string' },
  'recover-steps': { type: 'string' },
  'recover-lr': { type: 'string' },
  'recover-rank': { type: 'string' },
  data: { type: 'string' },
  seed: { type: 'string' },
} as const;

/** The PruneOptions of the flags (without calibration norms). */
export function parsePruneFlags(v: Record<string, string | undefined>): Omit<PruneOptions, 'norms'> {
  const o: Omit<PruneOptions, 'norms'> = { criterion: choiceArg('criterion', v.criterion, ['magnitude', 'wanda'] as const, 'magnitude') };
  if (v.sparsity !== undefined) {
    o.unstructured = { sparsity: numberArg('sparsity', v.sparsity, 0), scope: choiceArg('scope', v.scope, ['layer', 'global'] as const, 'layer') };
  } else if (v.scope !== undefined) throw new InvalidArgumentError('--scope needs --sparsity.');
  if (v.nm !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(v.nm);
    if (!m) throw new InvalidArgumentError(`--nm must look like 2:4; got ${JSON.stringify(v.nm)}.`);
    o.nm = { n: Number(m[1]), m: Number(m[2]) };
  }
  if (v.heads !== undefined) o.heads = { remove: intArg('heads', v.heads, 0, 1), mode: choiceArg('heads-mode', v['heads-mode'], ['kv-groups', 'query-heads'] as const, 'kv-groups') };
  else if (v['heads-mode'] !== undefined) throw new InvalidArgumentError('--heads-mode needs --heads N.');
  if (v.neurons !== undefined) o.neurons = { remove: intArg('neurons', v.neurons, 0, 1) };
  const drop = intList('drop-layers', v['drop-layers']);
  if (drop) o.dropLayers = drop;
  if (!o.unstructured && !o.nm && !o.heads && !o.neurons && !o.dropLayers) {
    throw new InvalidArgumentError('Nothing to prune: give --sparsity, --nm, --heads, --neurons or --drop-layers.');
  }
  return o;
}

export async function pruneCommand(args: string[]): Promise<number> {
  const { values: v } = parseArgs({ args, options: OPTIONS, strict: true });
  const options: PruneOptions = parsePruneFlags(v);
  const out = await checkOutDir(v.out, [v.model]);
  const folder = await openModelArg(v.model);
  const seqLen = intArg('seq-len', v['seq-len'], 256, 2);
  const seed = intArg('seed', v.seed, 0, 0);
  const recoverSteps = v['recover-steps'] === undefined ? 0 : intArg('recover-steps', v['recover-steps'], 0, 1);
  if (recoverSteps > 0 && !v.data) throw new InvalidArgumentError('--recover-steps needs --data FILE: the rows the LoRA recovery trains on.');
  if (options.criterion === 'wanda' && !v.calib) throw new InvalidArgumentError('--criterion wanda needs --calib FILE: rows whose activations weigh the weights.');
  let pruned: PruneResult;
  if (options.criterion === 'wanda') {
    const rows = (await readTokenRows(v.calib!, folder, { maxLength: seqLen })).slice(0, intArg('calib-rows', v['calib-rows'], 64, 1));
    const { gpu, model } = await loadCliModel(folder, 'f32');
    try {
      pruned = await calibrateAndPrune(folder, options, { model, rows });
    } finally {
      model.release();
      gpu.destroy();
    }
  } else pruned = await calibrateAndPrune(folder, options);
  const { files, report } = pruned;
  let bytes = await writeModelFolder(out, files);
  let recovery: Record<string, unknown> | null = null;
  if (recoverSteps > 0) {
    const prunedFolder = await openModelDirectory(out);
    const data = await readTokenRows(v.data!, prunedFolder, { maxLength: seqLen });
    const gpu = await openNodeGpu();
    try {
      const options = { steps: recoverSteps, lr: numberArg('recover-lr', v['recover-lr'], 2e-4), rank: intArg('recover-rank', v['recover-rank'], 8, 1), seqLen, seed };
      const r = await recoverPrunedFolder(gpu, prunedFolder, data, options, (files) => writeModelFolder(out, files));
      bytes = r.written;
      recovery = { steps: recoverSteps, firstLoss: r.firstLoss, lastLoss: r.lastLoss };
    } finally {
      gpu.destroy();
    }
  }
  process.stdout.write(
    `${JSON.stringify({
      out,
      bytes,
      parametersBefore: report.parametersBefore,
      parametersAfter: report.parametersAfter,
      zeroed: report.zeroed,
      sparsity: report.projectionValues > 0 ? report.zeroed / report.projectionValues : 0,
      config: report.configChanges,
      recovery,
    })}\n`,
  );
  return 0;
}
