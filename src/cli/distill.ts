// `whetstone distill --teacher DIR --data FILE --out DIR (--student DIR | --drop-layers 1,2 ...)`:
// knowledge distillation of a student model from a teacher (optionally the teacher with a PEFT
// LoRA adapter). The student is a given folder of the same family and vocabulary, or is made from
// the teacher by dropping layers and/or pruning heads and neurons (initialised from the teacher's
// weights). Every student weight is trained on alpha·T²·KL + (1 − alpha)·cross-entropy; the
// held-out rows (--val-fraction of the data, chosen with the seed) are measured before and after:
// the student's and teacher's cross-entropy and the teacher‖student KL. The trained student is
// written to --out; the last line of output is a JSON summary.

import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { distillToFolder, splitHeldOut } from '../engine/compress/pipeline.ts';
import { pruneModel } from '../engine/compress/prune.ts';
import { InvalidArgumentError } from '../engine/errors.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { withAdapter } from '../engine/peft/lora/index.ts';
import { checkOutDir, choiceArg, readTokenRows, writeModelFolder } from './compress-args.ts';
import { loadCliAdapter, loadCliModel, intArg, numberArg, openModelArg } from './model-args.ts';
import { parsePruneFlags } from './prune.ts';

export const DISTILL_USAGE = `distill --teacher DIR --data FILE --out DIR (--student DIR | --drop-layers 1,2 [--heads N]
          [--neurons N]) [--teacher-adapter DIR] [--teacher-dtype f32|bf16] [--steps 50] [--lr 1e-3]
          [--temperature 2] [--alpha 0.5] [--batch 8] [--seq-len 256] [--val-fraction 0.1] [--seed 0]`;

export async function distillCommand(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      teacher: { type: 'string' },
      'teacher-adapter': { type: 'string' },
      'teacher-dtype': { type: 'string' },
      student: { type: 'string' },
      'drop-layers': { type: 'string' },
      heads: { type: 'string' },
      'heads-mode': { type: 'string' },
      neurons: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      steps: { type: 'string' },
      lr: { type: 'string' },
      temperature: { type: 'string' },
      alpha: { type: 'string' },
      batch: { type: 'string' },
      'seq-len': { type: 'string' },
      'val-fraction': { type: 'string' },
      seed: { type: 'string' },
    },
    strict: true,
  });
  if (!v.data) throw new InvalidArgumentError('--data FILE is required: the rows the student learns from.');
  const shrink = v['drop-layers'] !== undefined || v.heads !== undefined || v.neurons !== undefined;
  if (v.student && shrink) throw new InvalidArgumentError('Give --student DIR, or make the student from the teacher with --drop-layers/--heads/--neurons, not both.');
  if (!v.student && !shrink) throw new InvalidArgumentError('Name the student: --student DIR, or --drop-layers/--heads/--neurons to make it from the teacher.');
  const steps = intArg('steps', v.steps, 50, 1);
  const lr = numberArg('lr', v.lr, 1e-3);
  const temperature = numberArg('temperature', v.temperature, 2);
  const alpha = numberArg('alpha', v.alpha, 0.5);
  const batchSize = intArg('batch', v.batch, 8, 1);
  const seqLen = intArg('seq-len', v['seq-len'], 256, 2);
  const seed = intArg('seed', v.seed, 0, 0);
  const valFraction = numberArg('val-fraction', v['val-fraction'], 0.1);
  if (!(valFraction >= 0 && valFraction < 1)) throw new InvalidArgumentError(`--val-fraction must be at least 0 and below 1; got ${valFraction}.`);
  const out = await checkOutDir(v.out, [v.teacher, v.student]);
  const teacherFolder = await openModelArg(v.teacher);

  // The student's folder: given, or made from the teacher (written to --out, replaced at the end).
  let studentFolder;
  if (v.student) studentFolder = await openModelDirectory(v.student);
  else {
    const { files } = await pruneModel(teacherFolder, parsePruneFlags({ 'drop-layers': v['drop-layers'], heads: v.heads, 'heads-mode': v['heads-mode'], neurons: v.neurons }));
    await writeModelFolder(out, files);
    studentFolder = await openModelDirectory(out);
  }

  const rows = await readTokenRows(v.data, studentFolder, { maxLength: seqLen });
  const { held, train } = splitHeldOut(rows, valFraction, seed);

  const { gpu, model: base } = await loadCliModel(teacherFolder, choiceArg('teacher-dtype', v['teacher-dtype'], ['f32', 'bf16'] as const, 'f32'));
  try {
    const adapter = v['teacher-adapter'] ? await loadCliAdapter(base, v['teacher-adapter']) : null;
    const teacher = adapter ? withAdapter(base, adapter) : base;
    const r = await distillToFolder({
      teacher,
      studentFolder,
      train,
      held,
      options: { steps, lr, temperature, alpha, batchSize, seqLen, seed },
      write: (files) => writeModelFolder(out, files),
      onProgress: (s) => process.stderr.write(`\rdistill step ${s.done}/${s.total}  loss ${(s.loss ?? NaN).toFixed(4)}   ${s.done === s.total ? '\n' : ''}`),
    });
    process.stdout.write(`${JSON.stringify({ out, bytes: r.written, steps, firstLoss: r.losses[0], lastLoss: r.losses.at(-1), heldOut: { rows: held.length, before: r.before, after: r.after } })}\n`);
    return 0;
  } catch (e) {
    if (!v.student) await rm(out, { recursive: true, force: true });
    throw e;
  } finally {
    base.release();
    gpu.destroy();
  }
}
