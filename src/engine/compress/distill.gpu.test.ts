// Distillation on tiny models: a student made from the teacher by dropping a layer is trained in
// full on the distillation loss, and on a held-out set its KL divergence from the teacher falls and
// its cross-entropy moves towards the teacher's; the trained student is written as a folder that
// loads back with the same held-out loss. The loss kernel itself is tested in kernels/distill.gpu.test.ts.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../../scripts/tiny/tokenizer.ts';
import { testGpu } from '../gpu/testing.ts';
import { openModelDirectory } from '../io/model-folder-node.ts';
import { evaluateLoss, loadModel } from '../model/llama.ts';
import { writeTinyModel } from '../model/llama-testing.ts';
import { Rng } from '../random.ts';
import type { TrainExample } from '../train/batches.ts';
import { distillStudent, evaluateDistill } from './distill.ts';
import { exportModel } from './export-model.ts';
import { writeFolderFiles } from './folder-node.ts';
import { pruneModel } from './prune.ts';

const tokenizer = makeTinyTokenizer();
let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-distill-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function examples(V: number, n: number, seed: number): TrainExample[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => ({ inputIds: Array.from({ length: 10 + rng.int(6) }, () => rng.int(V)) }));
}

describe('distillStudent', () => {
  it('brings a layer-dropped student towards its teacher on held-out rows', async () => {
    const tiny = await writeTinyModel(join(root, 'teacher'), { architecture: 'llama', tied: true, fileDtype: 'F32', seed: 31 }, tokenizer);
    const teacherFolder = await openModelDirectory(tiny.dir);
    const { files } = await pruneModel(teacherFolder, { dropLayers: [1] });
    await writeFolderFiles(join(root, 'student'), files);
    const studentFolder = await openModelDirectory(join(root, 'student'));
    const gpu = await testGpu();
    const teacher = await loadModel(gpu, teacherFolder, { dtype: 'bf16' });
    const student = await loadModel(gpu, studentFolder);
    try {
      const V = tiny.config.vocabSize;
      const train = examples(V, 24, 1);
      const held = examples(V, 6, 2);
      const before = await evaluateDistill(teacher, student, held, { seqLen: 32 });
      const result = await distillStudent({ teacher, student, train, options: { steps: 8, lr: 1e-2, temperature: 2, alpha: 1, batchSize: 12, seqLen: 32, seed: 3, schedule: 'constant' } });
      const after = await evaluateDistill(teacher, student, held, { seqLen: 32 });
      expect(result.losses.length).toBe(8);
      expect(result.losses[7]).toBeLessThan(result.losses[0]);
      expect(after.kl).toBeLessThan(0.9 * before.kl);
      expect(Math.abs(after.studentLoss - after.teacherLoss)).toBeLessThan(Math.abs(before.studentLoss - before.teacherLoss));
      expect(after.teacherLoss).toBeCloseTo(before.teacherLoss, 5);

      await writeFolderFiles(join(root, 'distilled'), await exportModel(student, studentFolder));
      const reloaded = await loadModel(gpu, await openModelDirectory(join(root, 'distilled')));
      try {
        const rows = held.map((e) => ({ inputIds: Array.from(e.inputIds) }));
        const a = await evaluateLoss(student, rows);
        const b = await evaluateLoss(reloaded, rows);
        expect(b.loss).toBeCloseTo(a.loss, 5);
        expect(a.loss).toBeCloseTo(after.studentLoss, 4);
      } finally {
        reloaded.release();
      }
    } finally {
      teacher.release();
      student.release();
    }
  });
});
