// Run records: the memory store (copies in and out, metrics by step, truncation for a resume),
// blob keys and download names, and the training service's refusals that need no GPU (no model,
// invalid settings, one run at a time across tabs).
import { describe, expect, it } from 'vitest';
import type { StepMetrics } from '../engine/train/metrics.ts';
import { EngineApi } from './engine-api.ts';
import { MemoryRunStore, type RunRecord, exportFileName, isResumable, newRunId, runKeys, safeFileName, sortRuns } from './runs.ts';
import { defaultDraft, parseSettings } from './train-settings.ts';
import { baseModelName, trainOptions, trainingLock } from './training.ts';

const settings = parseSettings(defaultDraft('lora', { parameters: 1e6, maxPositionEmbeddings: 2048 }), { parameters: 1e6, maxPositionEmbeddings: 2048 }).settings!;

function record(id: string, over: Partial<RunRecord> = {}): RunRecord {
  return {
    id,
    createdAt: 1000,
    updatedAt: 1000,
    status: 'running',
    model: { id: 'demo', name: 'Demo model (built in)', source: 'demo', parameters: 1e6, config: null },
    dataset: { name: 'a.jsonl', bytes: 10, key: runKeys.dataset(id, 'a.jsonl'), import: { trainOnPrompt: false, skipBadRows: false }, trainExamples: null, validationExamples: null, tokens: null },
    settings,
    step: 0,
    totalSteps: 0,
    checkpointStep: null,
    elapsedMs: 0,
    trainableParameters: null,
    result: null,
    error: null,
    ...over,
  };
}

const metric = (step: number): StepMetrics => ({ step, epoch: step / 10, loss: 5 - step / 10, lr: 1e-3, gradNorm: 1, tokens: 10, targets: 5, tokensPerSecond: 100, elapsedMs: step * 100, peakBytes: 1 });

describe('MemoryRunStore', () => {
  it('keeps copies, lists newest first, and keeps metrics by step', async () => {
    const s = new MemoryRunStore();
    const a = record('a', { createdAt: 1 });
    await s.put(a);
    await s.put(record('b', { createdAt: 2 }));
    a.step = 99;
    expect((await s.get('a'))?.step).toBe(0);
    expect((await s.list()).map((r) => r.id)).toEqual(['b', 'a']);
    await s.addMetrics('a', [metric(2), metric(1)]);
    await s.addMetrics('a', [metric(3), metric(4)]);
    expect((await s.metrics('a')).map((m) => m.step)).toEqual([1, 2, 3, 4]);
    await s.truncateMetrics('a', 2);
    expect((await s.metrics('a')).map((m) => m.step)).toEqual([1, 2]);
    await s.addMetrics('a', [{ ...metric(2), loss: 9 }]);
    expect((await s.metrics('a'))[1].loss).toBe(9);
    await s.delete('a');
    expect(await s.get('a')).toBeNull();
    expect(await s.metrics('a')).toEqual([]);
  });
});

describe('run keys and names', () => {
  it('keeps the adapter under runs/<id>/adapter/', () => {
    expect(runKeys.adapterFile('r1', 'adapter_config.json')).toBe('runs/r1/adapter/adapter_config.json');
    expect(runKeys.adapterFile('r1', 'adapter_model.safetensors')).toBe('runs/r1/adapter/adapter_model.safetensors');
    expect(runKeys.checkpoints('r1')).toBe('runs/r1/checkpoints');
    expect(runKeys.dataset('r1', 'my data/x.jsonl')).toBe('runs/r1/dataset/my data_x.jsonl');
  });

  it('cleans file names into one key segment', () => {
    expect(safeFileName('a/b\\c\u0001.jsonl')).toBe('a_b_c_.jsonl');
    expect(safeFileName('..hidden')).toBe('_hidden');
    expect(safeFileName('')).toBe('dataset');
  });

  it('makes time-ordered run ids and download names', () => {
    const id = newRunId(new Date(Date.UTC(2026, 10, 30, 12, 15, 30)), () => 0.5);
    expect(id).toBe('20261130-121530-7fffff');
    expect(exportFileName(record(id), 'peft')).toBe('whetstone-demo-lora-20261130-1215-peft.zip');
    const hub = record(id, { model: { id: 'hub:HuggingFaceTB/SmolLM2-135M-Instruct@main', name: 'HuggingFaceTB/SmolLM2-135M-Instruct', source: 'hub', parameters: 1, config: null } });
    expect(exportFileName(hub, 'gguf')).toBe('whetstone-smollm2-135m-instruct-lora-20261130-1215-gguf.zip');
    expect(baseModelName(hub)).toBe('HuggingFaceTB/SmolLM2-135M-Instruct');
    expect(baseModelName(record(id))).toBe('demo');
  });

  it('calls paused and interrupted runs resumable, and sorts newest first', () => {
    expect(['running', 'paused', 'completed', 'failed', 'cancelled'].map((status) => isResumable(record('x', { status: status as RunRecord['status'] })))).toEqual([true, true, false, false, false]);
    expect(sortRuns([record('a', { createdAt: 1 }), record('c', { createdAt: 3 }), record('b', { createdAt: 2 })]).map((r) => r.id)).toEqual(['c', 'b', 'a']);
  });

  it('turns settings into trainer options: steps or epochs, and the model context as the ceiling', () => {
    expect(trainOptions({ ...settings, steps: 0, epochs: 2, seqLen: 4096 }, 2048)).toMatchObject({ epochs: 2, maxSteps: undefined, seqLen: 2048, saveEvery: 5, keepCheckpoints: 2 });
    expect(trainOptions({ ...settings, steps: 7 }, 2048)).toMatchObject({ epochs: undefined, maxSteps: 7 });
  });
});

describe('the training service without a GPU', () => {
  const request = { file: new Blob(['{"text": "hi"}\n']), fileName: 'a.jsonl', datasetImport: { trainOnPrompt: false, skipBadRows: false }, settings };

  it('refuses to start without a loaded model, with a hint', async () => {
    const api = new EngineApi(() => Promise.reject(new Error('no GPU here')));
    const r = await api.startTraining(request);
    expect(r).toMatchObject({ ok: false, error: { name: 'InvalidArgumentError', message: 'No model is loaded.' } });
    expect(r.ok ? '' : r.error.hint).toContain('Model screen');
    expect(await api.listRuns()).toEqual({ ok: true, value: { runs: [], activeRunId: null, trainingElsewhere: false } });
  });

  it('cannot resume or export a run that does not exist', async () => {
    const api = new EngineApi(() => Promise.reject(new Error('no GPU here')));
    expect(await api.resumeTraining('nope')).toMatchObject({ ok: false, error: { name: 'MissingFileError' } });
    expect(await api.exportRun('nope', 'peft')).toMatchObject({ ok: false, error: { name: 'MissingFileError' } });
  });

  it('holds the training lock for one run at a time in this process', async () => {
    const lock = trainingLock();
    let release = () => undefined as void;
    const first = lock.run(() => new Promise<void>((r) => (release = r)));
    await expect(lock.run(async () => 1)).rejects.toMatchObject({ name: 'EngineBusyError' });
    release();
    await first;
    expect(await lock.run(async () => 2)).toBe(2);
  });
});
