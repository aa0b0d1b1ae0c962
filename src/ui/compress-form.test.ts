// The Compress form's logic: typed options → the worker's request (technique, LoRA recovery, rows)
// or one message per wrong field; progress in words with n of N and units; the before/after rows.

import { describe, expect, it } from 'vitest';
import type { CompressResult } from '../worker/engine-api.ts';
import { type CompressDraft, DEFAULT_DRAFT, checkDraft, comparisonRows, dataChoice, downloadNotice, draftFor, progressDetail, progressValue } from './compress-form.ts';

const ctx = { layers: 4, hasDataset: false };
const d = draftFor(4, DEFAULT_DRAFT);
const check = (patch: Partial<CompressDraft>, c = ctx) => checkDraft({ ...d, ...patch }, c);
const errorsOf = (patch: Partial<CompressDraft>, c = ctx) => {
  const r = check(patch, c);
  if (r.ok) throw new Error('expected errors');
  return r.errors;
};

describe('the Compress form', () => {
  it('parses the magnitude techniques or names the wrong field', () => {
    expect(d.layers).toBe('2');
    expect(d.distillLayers).toBe('2');
    expect(check({})).toEqual({ ok: true, value: { technique: { kind: 'drop-layers', layers: [2] }, recovery: null, data: 'sample' } });
    expect(check({ layers: '1, 3' })).toMatchObject({ ok: true, value: { technique: { kind: 'drop-layers', layers: [1, 3] } } });
    expect(errorsOf({ layers: '1, x' }).layers).toMatch(/layer numbers/);
    expect(errorsOf({ layers: '4' }).layers).toMatch(/layer 4 does not exist; this model has layers 0 to 3/);
    expect(errorsOf({ layers: '0,1,2,3' }).layers).toMatch(/keep at least one/);
    expect(check({ kind: 'sparsity', sparsityPercent: '40' })).toMatchObject({ ok: true, value: { technique: { kind: 'sparsity', sparsity: 0.4, scope: 'layer' } } });
    expect(errorsOf({ kind: 'sparsity', sparsityPercent: '100' }).sparsityPercent).toMatch(/percentage/);
    expect(errorsOf({ kind: 'heads', headsRemove: '0' }).headsRemove).toMatch(/Heads removed/);
    expect(errorsOf({ kind: 'share-layers', shareGroup: '1' }).shareGroup).toMatch(/from 2 to 4/);
    expect(check({ kind: 'share-layers', shareInit: 'first' })).toMatchObject({ ok: true, value: { technique: { kind: 'share-layers', group: 2, init: 'first' } } });
    expect(check({ kind: 'cluster', clusterK: '256' })).toMatchObject({ ok: true, value: { technique: { kind: 'cluster', k: 256, targets: 'projections' } } });
    expect(draftFor(4, { ...DEFAULT_DRAFT, layers: '0' }).layers).toBe('0');
    // Defaults fill once per layer count: an emptied field stays empty, a new model's count refills it.
    expect(draftFor(4, { ...d, distillLayers: '' }).distillLayers).toBe('');
    expect(draftFor(6, { ...d, distillLayers: '' })).toMatchObject({ distillLayers: '3', layers: '2', defaultsFor: 6 });
  });

  it('parses Wanda with its calibration rows, and the LoRA recovery after any pruning', () => {
    expect(check({ kind: 'wanda' })).toEqual({
      ok: true,
      value: { technique: { kind: 'wanda', pattern: 'unstructured', sparsity: 0.5, calibrationRows: 32 }, recovery: null, data: 'sample' },
    });
    // 2:4 ignores the sparsity field (always half), even when it is wrong.
    expect(check({ kind: 'wanda', wandaPattern: '2:4', wandaPercent: 'x' })).toMatchObject({ ok: true, value: { technique: { pattern: '2:4', sparsity: 0.5 } } });
    expect(errorsOf({ kind: 'wanda', wandaPercent: '0', calibRows: '0' })).toEqual({
      wandaPercent: expect.stringMatching(/Sparsity must be a number above 0 and below 100/),
      calibRows: expect.stringMatching(/Calibration rows must be a whole number from 1/),
    });
    expect(check({ kind: 'wanda', recover: true, recoverSteps: '2', recoverRank: '4', recoverLr: '2e-3' })).toMatchObject({
      ok: true,
      value: { recovery: { steps: 2, rank: 4, lr: 0.002 } },
    });
    expect(errorsOf({ kind: 'heads', recover: true, recoverSteps: '1.5', recoverRank: '', recoverLr: '-1' })).toEqual({
      recoverSteps: expect.stringMatching(/Recovery steps must be a whole number/),
      recoverRank: expect.stringMatching(/LoRA rank/),
      recoverLr: expect.stringMatching(/Learning rate must be a number above 0/),
    });
    // Recovery does not follow sharing or clustering: its fields are ignored there.
    expect(check({ kind: 'cluster', recover: true, recoverSteps: 'x' })).toMatchObject({ ok: true, value: { recovery: null } });
  });

  it('parses distillation and checks every setting', () => {
    expect(check({ kind: 'distill', distillAdapter: '20261130-121530-4f2a9c' })).toEqual({
      ok: true,
      value: {
        technique: { kind: 'distill', dropLayers: [2], heads: null, neurons: null, studentModel: null, teacherAdapterRun: '20261130-121530-4f2a9c', alpha: 0.5, temperature: 2, steps: 20, lr: 0.001 },
        recovery: null,
        data: 'sample',
      },
    });
    expect(check({ kind: 'distill' })).toMatchObject({ ok: true, value: { technique: { teacherAdapterRun: null } } });
    // The student may keep every layer and lose heads and/or MLP neurons instead.
    expect(check({ kind: 'distill', distillLayers: ' ', distillHeads: '1', distillHeadsMode: 'query-heads', distillNeurons: '64' })).toMatchObject({
      ok: true,
      value: { technique: { kind: 'distill', dropLayers: [], heads: { remove: 1, mode: 'query-heads' }, neurons: 64 } },
    });
    expect(check({ kind: 'distill', distillLayers: '', distillNeurons: '32' })).toMatchObject({ ok: true, value: { technique: { dropLayers: [], heads: null, neurons: 32 } } });
    expect(errorsOf({ kind: 'distill', distillLayers: '' }).distillLayers).toMatch(/student must be smaller than the teacher/);
    // A downloaded student: the fields that shrink the loaded model are hidden and ignored.
    expect(check({ kind: 'distill', distillStudent: 'hub:HuggingFaceTB/SmolLM2-135M@main', distillLayers: 'x', distillHeads: '0' })).toMatchObject({
      ok: true,
      value: { technique: { kind: 'distill', dropLayers: [], heads: null, neurons: null, studentModel: 'hub:HuggingFaceTB/SmolLM2-135M@main' } },
    });
    expect(errorsOf({ kind: 'distill', distillHeads: '0', distillNeurons: 'many' })).toEqual({
      distillHeads: expect.stringMatching(/Heads the student loses must be a whole number from 1/),
      distillNeurons: expect.stringMatching(/MLP neurons the student loses must be a whole number from 1/),
    });
    expect(errorsOf({ kind: 'distill', distillLayers: '5', distillAlpha: '1.5', distillTemperature: '0', distillSteps: '0', distillLr: 'fast' })).toEqual({
      distillLayers: expect.stringMatching(/layer 5 does not exist/),
      distillAlpha: expect.stringMatching(/alpha must be a number from 0 to 1/),
      distillTemperature: expect.stringMatching(/Temperature must be a number above 0/),
      distillSteps: expect.stringMatching(/Distillation steps must be a whole number from 1/),
      distillLr: expect.stringMatching(/Learning rate/),
    });
  });

  it('chooses the rows: the Data screen dataset when imported, else the sample; refuses none where rows are needed', () => {
    expect(dataChoice(d, { layers: 4, hasDataset: true })).toBe('dataset');
    expect(dataChoice(d, ctx)).toBe('sample');
    expect(check({ data: 'none', kind: 'cluster' })).toMatchObject({ ok: true, value: { data: 'none' } });
    expect(errorsOf({ data: 'none', kind: 'wanda' }).data).toMatch(/Wanda pruning needs calibration rows/);
    expect(errorsOf({ data: 'none', kind: 'distill' }).data).toMatch(/Distillation needs rows/);
    expect(errorsOf({ data: 'none', kind: 'neurons', recover: true }).data).toMatch(/recovery fine-tune needs rows/);
    expect(errorsOf({ data: 'dataset' }).data).toMatch(/No dataset is imported on the Data screen/);
    expect(check({ data: 'dataset' }, { layers: 4, hasDataset: true })).toMatchObject({ ok: true, value: { data: 'dataset' } });
  });

  it('describes progress with n of N and units', () => {
    expect(progressDetail(null, String)).toBe('Starting…');
    const calib = { stage: 'calibrating' as const, bytesDone: 0, bytesTotal: 0, step: { done: 3, total: 32, unit: 'rows' as const } };
    expect(progressDetail(calib, String)).toBe('Calibrating (activation norms): row 3 of 32 rows');
    expect(progressValue(calib)).toEqual({ value: 3, max: 32 });
    const rec = { stage: 'recovering' as const, bytesDone: 0, bytesTotal: 0, step: { done: 2, total: 20, unit: 'steps' as const, loss: 7.25 } };
    expect(progressDetail(rec, String)).toBe('LoRA recovery fine-tune: step 2 of 20 steps, loss 7.2500');
    const writing = { stage: 'writing' as const, bytesDone: 10, bytesTotal: 40 };
    expect(progressDetail(writing, (n) => `${n} B`)).toBe('Writing the model folder… 10 B of 40 B');
    expect(progressValue(writing)).toEqual({ value: 10, max: 40 });
    expect(progressValue({ stage: 'preparing', bytesDone: 0, bytesTotal: 0 })).toEqual({ value: null, max: null });
  });

  it('formats the before/after rows with units and changes', () => {
    const r: CompressResult = {
      id: 'c1',
      modelId: 'compressed:c1',
      label: 'drop layer 1',
      before: { weightBytes: 2000, parameters: 1000, loss: 8.5, tokensPerSecond: 10 },
      after: { weightBytes: 1500, parameters: 750, loss: 8.25, tokensPerSecond: 12.5 },
      evalRows: 4,
      evalTokens: 120,
      calibrationRows: null,
      recovery: { steps: 2, firstLoss: 8.4, lastLoss: 8.1 },
      distill: null,
      files: [],
    };
    const rows = comparisonRows(r, (n) => `${n} B`);
    expect(rows.map((x) => [x.label, x.before, x.after, x.change])).toEqual([
      ['Weight file size', '2000 B', '1500 B', '−25.0 %'],
      ['Parameters', '1,000', '750', '−25.0 %'],
      ['Eval loss (4 held-out rows, 120 tokens)', '8.5000', '8.2500', '−0.2500'],
      ['Generation speed (greedy, median)', '10.0 tokens/s', '12.5 tokens/s', '+25.0 %'],
      ['Recovery training loss (step 1 → step 2)', '8.4000', '8.1000', '−0.3000'],
    ]);
    const none = comparisonRows({ ...r, recovery: null, evalRows: 0, before: { ...r.before, loss: null }, after: { ...r.after, loss: null } }, String);
    expect(none[2]).toEqual({ label: 'Eval loss', before: 'no dataset', after: 'no dataset', change: '—' });
    expect(none).toHaveLength(4);
    const distilled = comparisonRows(
      { ...r, recovery: null, distill: { student: 'pruned', rows: 4, studentBefore: 9, studentAfter: 8, teacher: 7.5, klBefore: 1.5, klAfter: 0.5, firstLoss: 5, lastLoss: 4 } },
      String,
    );
    expect(distilled.slice(4).map((x) => [x.label, x.before, x.after, x.change])).toEqual([
      ['Student held-out loss (4 rows; before: as pruned from the teacher, untrained)', '9.0000', '8.0000', '−1.0000'],
      ['Teacher held-out loss', '7.5000', '7.5000', '—'],
      ['KL(teacher ‖ student), held out', '1.5000', '0.5000', '−1.0000'],
      ['Distillation loss (first → last step)', '5.0000', '4.0000', '−1.0000'],
    ]);
    const cached = comparisonRows({ ...r, recovery: null, distill: { student: 'hub:org/small@main', rows: 4, studentBefore: 9, studentAfter: 8, teacher: 7.5, klBefore: 1.5, klAfter: 0.5, firstLoss: 5, lastLoss: 4 } }, String);
    expect(cached[4].label).toBe('Student held-out loss (4 rows; before: org/small@main, untrained)');
  });

  it('says how the downloaded zip compares with the folder it holds', () => {
    const files = [
      { name: 'config.json', bytes: 600 },
      { name: 'model.safetensors', bytes: 9400 },
    ];
    const b = (n: number) => `${n} B`;
    expect(downloadNotice('c.zip', 6500, files, b)).toBe('Downloaded c.zip: 6500 B, 35.0 % smaller than the 10000 B folder (config.json, model.safetensors).');
    expect(downloadNotice('c.zip', 10100, files, b)).toBe('Downloaded c.zip: 10100 B, 1.0 % larger than the 10000 B folder (config.json, model.safetensors).');
    expect(downloadNotice('c.zip', 10000, files, b)).toBe('Downloaded c.zip: 10000 B, the size of the 10000 B folder (config.json, model.safetensors).');
  });
});
