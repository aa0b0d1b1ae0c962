// Training through EngineApi (as the studio's worker runs it) on the demo model and the sample
// dataset: a run records its metrics step by step, ends completed with its PEFT files in the store
// under runs/<id>/adapter/, and exports them as zips (PEFT with the model card, GGUF with a
// Modelfile); a run paused after its first checkpoint and resumed gives the uninterrupted run's losses and
// adapter bit for bit; a second run is refused while one trains. IA3 and DoRA runs download a merged
// model folder whose logits are the base model's with the adapter, within 1e-5 (the demo checkpoint
// is handed to the studio in f32, the values it loads anyway, so the merged folder is written in f32
// and only the merge itself is compared). A quantization-aware full fine-tune (NF4) plans its working
// copies and stores its NF4 folder beside the f32 one, whose logits are the f32 weights' quantized.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../engine/gpu/testing.ts';
import { type SafetensorsDType, bf16ToF32, writeSafetensors } from '../engine/io/safetensors.ts';
import { blobFileSet, openModelFolder } from '../engine/io/model-folder.ts';
import { loadModel } from '../engine/model/llama.ts';
import { withForwardOptions } from '../engine/peft/adapter.ts';
import { loadAdapter } from '../engine/peft/methods.ts';
import { relL2 } from '../engine/reference/compare.ts';
import type { StepMetrics } from '../engine/train/metrics.ts';
import { MemoryBlobStore } from '../engine/store/store-memory.ts';
import { EngineApi, type RunRecord, type RunUpdate, type StartTrainingRequest } from './engine-api.ts';
import type { ModelService } from './models.ts';
import { MemoryRunStore } from './runs.ts';
import { defaultDraft, parseSettings } from './train-settings.ts';
import { planRun } from './train-plan.ts';
import { parseModelConfig } from '../engine/model/config.ts';

const DEMO = 'public/models/demo';
const SAMPLE = readFileSync('public/datasets/alpaca-facts.jsonl');
const store = new MemoryBlobStore();
const runs = new MemoryRunStore();
const api = new EngineApi(() => testGpu(), { store: () => store, runs: () => runs });

function request(): StartTrainingRequest {
  const draft = defaultDraft('lora', { parameters: 500_000, maxPositionEmbeddings: 2048 });
  Object.assign(draft, { 'lora.rank': '4', 'lora.alpha': '8', 'lora.targets': 'q_proj,v_proj', steps: '3', batchSize: '1', seqLen: '40', saveEvery: '1', valFraction: '0.1', evalEvery: '0', lr: '2e-3' });
  const { settings, errors } = parseSettings(draft, { parameters: 500_000, maxPositionEmbeddings: 2048 });
  expect(errors).toEqual({});
  return { file: new File([SAMPLE], 'alpaca-facts.jsonl'), fileName: 'alpaca-facts.jsonl', datasetImport: { trainOnPrompt: false, skipBadRows: false }, settings: settings! };
}

/** The demo folder's files with model.safetensors converted from bf16 to f32 (the same values). */
function demoFiles(): File[] {
  return readdirSync(DEMO).map((name) => {
    const bytes = readFileSync(join(DEMO, name));
    if (name !== 'model.safetensors') return new File([bytes], name);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: SafetensorsDType; shape: number[]; data_offsets: [number, number] }>;
    const tensors = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([tensor, e]) => {
        const raw = bytes.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
        expect(e.dtype).toBe('BF16');
        return { name: tensor, dtype: 'F32' as const, shape: e.shape, data: bf16ToF32(new Uint16Array(new Uint8Array(raw).buffer)) };
      });
    return new File([writeSafetensors(tensors)], name);
  });
}

const PROBE = [[5, 17, 60, 3, 88, 41], [12, 13, 14]];
const flat = (xs: Float32Array[]) => Float32Array.from(xs.flatMap((x) => Array.from(x)));

/**
 * The merged download of a run: the folder's files, and its logits on PROBE against the base model
 * with the run's adapter (loaded from its PEFT download), the reference the merge must match.
 */
async function checkMerged(runId: string, method: string): Promise<Record<string, Uint8Array>> {
  const merged = await api.exportRun(runId, 'merged');
  if (!merged.ok) throw new Error(merged.error.message);
  expect(merged.value.fileName).toMatch(new RegExp(`-${method}-\\d{8}-\\d{4}-merged\\.zip$`));
  const files = unzipSync(new Uint8Array(await merged.value.blob.arrayBuffer()));
  expect(Object.keys(files).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  expect(JSON.parse(new TextDecoder().decode(files['config.json']))).toMatchObject({ architectures: ['LlamaForCausalLM'] });
  expect(Object.values(safetensorsShapes(files['model.safetensors']))).toHaveLength(Object.values(safetensorsShapes(readFileSync(join(DEMO, 'model.safetensors')))).length);

  const peft = await api.exportRun(runId, 'peft');
  if (!peft.ok) throw new Error(peft.error.message);
  const gpu = await testGpu();
  const base = await loadModel(gpu, await openModelFolder(blobFileSet(demoFiles())));
  let want: Float32Array;
  try {
    const adapter = await loadAdapter(base, new Map(Object.entries(unzipSync(new Uint8Array(await peft.value.blob.arrayBuffer())))));
    try {
      want = flat(await withForwardOptions(base, adapter.inferenceOptions()).logits(PROBE));
    } finally {
      adapter.release();
    }
    // The trained adapter changes the outputs, so matching them says something.
    expect(relL2(flat(await base.logits(PROBE)), want)).toBeGreaterThan(1e-4);
  } finally {
    base.release();
  }
  const model = await loadModel(gpu, await openModelFolder(blobFileSet(Object.fromEntries(Object.entries(files).map(([name, bytes]) => [name, new Blob([bytes as Uint8Array<ArrayBuffer>])])), 'merged')));
  try {
    const err = relL2(flat(await model.logits(PROBE)), want);
    console.log(`${method}: the studio's merged download, logits relL2 vs base + adapter ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-5);
  } finally {
    model.release();
  }
  return files;
}

/** The header of a safetensors file: tensor name → shape. */
function safetensorsShapes(bytes: Uint8Array): Record<string, number[]> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { shape: number[] }>;
  return Object.fromEntries(Object.entries(header).filter(([k]) => k !== '__metadata__').map(([k, v]) => [k, v.shape]));
}

let uninterrupted: { run: RunRecord; losses: number[]; weights: Uint8Array };

beforeAll(async () => {
  const r = await api.loadModelFiles(demoFiles());
  expect(r.ok).toBe(true);
});

describe('training through EngineApi', () => {
  it('records each step, stores the PEFT files under runs/<id>/adapter/ and exports PEFT and GGUF zips', async () => {
    const metrics: StepMetrics[] = [];
    const stages = new Set<string>();
    const r = await api.startTraining(request(), (u) => stages.add(u.stage), (m) => metrics.push(m));
    if (!r.ok) throw new Error(r.error.message);
    const run = r.value;
    expect(run.status).toBe('completed');
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(metrics.every((m) => Number.isFinite(m.loss) && m.lr > 0 && m.gradNorm > 0 && m.tokensPerSecond > 0)).toBe(true);
    expect([...stages]).toEqual(['preparing', 'training', 'saving', 'stopped']);
    expect(run.result?.valLoss).toBeGreaterThan(0);
    expect(run.dataset.validationExamples).toBeGreaterThan(0);
    expect(run.dataset.trainExamples).toBeGreaterThan(30);
    const stored = await api.runMetrics(run.id);
    expect(stored.ok && stored.value.map((m) => m.loss)).toEqual(metrics.map((m) => m.loss));
    const keys = (await store.list(`runs/${run.id}/`)).map((b) => b.key);
    expect(keys).toContain(`runs/${run.id}/adapter/adapter_config.json`);
    expect(keys).toContain(`runs/${run.id}/adapter/adapter_model.safetensors`);
    expect(keys).toContain(`runs/${run.id}/adapter/README.md`);
    expect(keys.some((k) => k.includes('/checkpoints/'))).toBe(false);

    const peft = await api.exportRun(run.id, 'peft');
    if (!peft.ok) throw new Error(peft.error.message);
    // The demo folder is loaded as dropped files here (Node has no fetch of file: URLs), so it is named by its file count.
    expect(peft.value.fileName).toMatch(/^whetstone-model-from-5-files-lora-\d{8}-\d{4}-peft\.zip$/);
    const zip = unzipSync(new Uint8Array(await peft.value.blob.arrayBuffer()));
    expect(Object.keys(zip).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(new TextDecoder().decode(zip['adapter_config.json'])) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, base_model_name_or_path: 'Model from 5 files' });
    expect([...(config.target_modules as string[])].sort()).toEqual(['q_proj', 'v_proj']);
    const shapes = safetensorsShapes(zip['adapter_model.safetensors']);
    expect(shapes['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']).toEqual([4, 128]);
    expect(shapes['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight']).toEqual([128, 4]);
    expect(shapes['base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight']).toEqual([64, 4]);
    expect(Object.keys(shapes)).toHaveLength(4 * 2 * 2);
    expect(new TextDecoder().decode(zip['README.md'])).toContain('Model from 5 files');

    const gguf = await api.exportRun(run.id, 'gguf');
    if (!gguf.ok) throw new Error(gguf.error.message);
    const g = unzipSync(new Uint8Array(await gguf.value.blob.arrayBuffer()));
    expect(new TextDecoder().decode(g['adapter.gguf'].subarray(0, 4))).toBe('GGUF');
    expect(new TextDecoder().decode(g.Modelfile)).toContain('ADAPTER ./adapter.gguf');
    uninterrupted = { run, losses: metrics.map((m) => m.loss), weights: zip['adapter_model.safetensors'] };
  });

  it('pauses after a checkpoint, refuses a second run meanwhile, and resumes to the uninterrupted losses and weights', async () => {
    expect(uninterrupted).toBeDefined();
    let second: Promise<unknown> | null = null;
    const first: StepMetrics[] = [];
    const paused = await api.startTraining(request(), undefined, (m) => {
      first.push(m);
      if (m.step === 1) {
        second = api.startTraining(request());
        void api.pauseTraining();
      }
    });
    if (!paused.ok) throw new Error(paused.error.message);
    expect(paused.value.status).toBe('paused');
    expect(paused.value.checkpointStep).toBe(1);
    expect(first.map((m) => m.step)).toEqual([1]);
    expect(await second).toMatchObject({ ok: false, error: { name: 'EngineBusyError' } });

    const rest: StepMetrics[] = [];
    const resumed = await api.resumeTraining(paused.value.id, undefined, (m) => rest.push(m));
    if (!resumed.ok) throw new Error(resumed.error.message);
    expect(resumed.value.status).toBe('completed');
    expect(rest.map((m) => m.step)).toEqual([2, 3]);
    expect(rest.map((m) => m.loss)).toEqual(uninterrupted.losses.slice(1));
    const stored = await api.runMetrics(paused.value.id);
    expect(stored.ok && stored.value.map((m) => m.step)).toEqual([1, 2, 3]);
    const peft = await api.exportRun(paused.value.id, 'peft');
    if (!peft.ok) throw new Error(peft.error.message);
    expect(unzipSync(new Uint8Array(await peft.value.blob.arrayBuffer()))['adapter_model.safetensors']).toEqual(uninterrupted.weights);

    const list = await api.listRuns();
    expect(list.ok && list.value.runs.map((r) => r.status)).toEqual(['completed', 'completed']);
    const deleted = await api.deleteRun(uninterrupted.run.id);
    expect(deleted.ok && deleted.value.runs.map((r) => r.id)).toEqual([paused.value.id]);
    expect(await store.list(`runs/${uninterrupted.run.id}/`)).toEqual([]);
  });
});

describe('every method through EngineApi', () => {
  const facts = { parameters: 500_000, maxPositionEmbeddings: 2048 };
  function methodRequest(method: string, extra: Record<string, string> = {}): StartTrainingRequest {
    const draft = { ...defaultDraft(method, facts), steps: '2', batchSize: '1', seqLen: '32', saveEvery: '0', valFraction: '0', evalEvery: '0', ...extra };
    const { settings, errors } = parseSettings(draft, facts);
    expect(errors).toEqual({});
    return { file: new File([SAMPLE], 'alpaca-facts.jsonl'), fileName: 'alpaca-facts.jsonl', datasetImport: { trainOnPrompt: false, skipBadRows: false }, settings: settings! };
  }

  it('trains IA3 for 2 steps, shows its memory plan, downloads its PEFT files and the merged model; GGUF is refused with the reason', async () => {
    const plans: (RunUpdate['plan'] | undefined)[] = [];
    const r = await api.startTraining(methodRequest('ia3', { lr: '1e-2' }), (u) => plans.push(u.plan));
    if (!r.ok) throw new Error(r.error.message);
    const run = r.value;
    expect(run.status).toBe('completed');
    expect(run.step).toBe(2);
    // IA3 on k_proj, v_proj (64 outputs each) and down_proj (384 inputs) of 4 layers.
    expect(run.trainableParameters).toBe(4 * (64 + 64 + 384));
    const plan = plans.at(-1)!;
    expect(plan).toMatchObject({ method: 'ia3', trainableParameters: 2048, adapter: 2048 * 4, gradients: 2048 * 4, optimizer: 2048 * 8 });
    expect(plan!.total).toBe(plan!.weights + plan!.adapter * 4 + plan!.activations + plan!.workspace + 3 * 256);
    expect(run.plan).toEqual(plan);

    const keys = (await store.list(`runs/${run.id}/adapter/`)).map((b) => b.key).sort();
    expect(keys).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors'].map((n) => `runs/${run.id}/adapter/${n}`));
    const peft = await api.exportRun(run.id, 'peft');
    if (!peft.ok) throw new Error(peft.error.message);
    expect(peft.value.fileName).toMatch(/-ia3-\d{8}-\d{4}-peft\.zip$/);
    const zip = unzipSync(new Uint8Array(await peft.value.blob.arrayBuffer()));
    expect(Object.keys(zip).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(new TextDecoder().decode(zip['adapter_config.json'])) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'IA3', target_modules: ['down_proj', 'k_proj', 'v_proj'], feedforward_modules: ['down_proj'] });
    const shapes = safetensorsShapes(zip['adapter_model.safetensors']);
    expect(shapes['base_model.model.model.layers.0.self_attn.k_proj.ia3_l']).toEqual([64, 1]);
    expect(shapes['base_model.model.model.layers.3.mlp.down_proj.ia3_l']).toEqual([1, 384]);
    expect(Object.keys(shapes)).toHaveLength(12);
    const card = new TextDecoder().decode(zip['README.md']);
    expect(card).toContain('| Method | IA3 |');
    expect(card).toContain('PeftModel.from_pretrained');
    expect(card).not.toContain('llama-cli');

    expect(await api.exportRun(run.id, 'gguf')).toMatchObject({ ok: false, error: { name: 'InvalidArgumentError', message: 'llama.cpp and Ollama load LoRA adapters only; IA3 has no GGUF adapter.' } });
    const merged = await checkMerged(run.id, 'ia3');
    // The loaded model was unmerged after the export: a second merged download holds the same weights.
    const again = await api.exportRun(run.id, 'merged');
    if (!again.ok) throw new Error(again.error.message);
    const second = unzipSync(new Uint8Array(await again.value.blob.arrayBuffer()))['model.safetensors'];
    const weights = (b: Uint8Array) => new Float32Array(b.slice(8 + Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true))).buffer);
    expect(relL2(weights(second), weights(merged['model.safetensors']))).toBeLessThan(1e-6);
  });

  it('trains DoRA for a step and downloads the merged model with the adapter’s logits', async () => {
    const r = await api.startTraining(methodRequest('dora', { 'lora.rank': '2', 'lora.targets': 'q_proj,v_proj', steps: '1', lr: '1e-2' }));
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.status).toBe('completed');
    await checkMerged(r.value.id, 'dora');
  });

  it('trains QLoRA over an NF4 copy of the base, with the full-precision base freed meanwhile, and exports its GGUF adapter', async () => {
    const models = (api as unknown as { models: ModelService }).models;
    const before = models.active();
    if (!before) throw new Error('the demo model is not loaded');
    const gpu = before.model.gpu;
    const want = flat(await before.model.logits(PROBE));
    const live: Record<string, number> = {};
    const stages = new Set<string>();
    const r = await api.startTraining(methodRequest('qlora', { 'lora.rank': '2', 'lora.targets': 'q_proj,v_proj', steps: '1' }), (u) => {
      stages.add(u.stage);
      live[u.stage] ??= gpu.allocator.stats().liveBytes;
    });
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.status).toBe('completed');
    expect([...stages]).toEqual(['preparing', 'quantizing', 'training', 'saving', 'reloading-base', 'stopped']);
    // The f32 weights left the GPU before the quantized copy was made...
    expect(live.preparing - live.quantizing).toBe(before.model.parameterBytes);
    // ...and came back afterwards from the same files, giving the same logits (up to the f32 rounding
    // that the merged exports above left in the weights they merged and unmerged in place).
    const after = models.active();
    expect(after?.model).not.toBe(before.model);
    expect(after?.model.weightDtype).toBe(before.model.weightDtype);
    expect(relL2(flat(await after!.model.logits(PROBE)), want)).toBeLessThan(1e-6);
    expect(r.value.plan).toMatchObject({ method: 'qlora', quantization: 'nf4, block 64, double-quantized', trainableParameters: 4 * 2 * (2 * 128 + 128 + 64) });
    const peft = await api.exportRun(r.value.id, 'peft');
    if (!peft.ok) throw new Error(peft.error.message);
    const zip = unzipSync(new Uint8Array(await peft.value.blob.arrayBuffer()));
    expect(new TextDecoder().decode(zip['README.md'])).toContain('| Base weights | nf4, block 64, double-quantized (QLoRA) |');
    const gguf = await api.exportRun(r.value.id, 'gguf');
    expect(gguf.ok).toBe(true);
  });

  it('trains a quantization-aware full fine-tune (NF4) and keeps the NF4 model beside the f32 one', async () => {
    const plans: (RunUpdate['plan'] | undefined)[] = [];
    const request = methodRequest('full', { 'qat.format': 'nf4', 'qat.block': '64', lr: '1e-3' });
    expect(request.settings.qat).toEqual({ format: 'nf4', block: 64 });
    const r = await api.startTraining(request, (u) => plans.push(u.plan));
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.status).toBe('completed');
    // The plan counts an f32 working copy of every projection: 4 layers × 196,608 values.
    const plain = planRun(parseModelConfig(JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'))), { ...request.settings, qat: undefined });
    expect(plans.at(-1)!.weights - plain.weights).toBe(4 * 196_608 * 4);
    const names = (await store.list(`runs/${r.value.id}/adapter/`)).map((b) => b.key.slice(`runs/${r.value.id}/adapter/`.length)).sort();
    expect(names).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'nf4/config.json', 'nf4/model.safetensors', 'nf4/tokenizer.json']));
    const download = await api.exportRun(r.value.id, 'peft');
    if (!download.ok) throw new Error(download.error.message);
    const zip = unzipSync(new Uint8Array(await download.value.blob.arrayBuffer()));
    expect(new TextDecoder().decode(zip['README.md'])).toContain('| Base weights | f32, quantization-aware for nf4 (block 64) |');
    const nf4 = Object.fromEntries(Object.entries(zip).filter(([n]) => n.startsWith('nf4/')).map(([n, b]) => [n.slice(4), new Blob([b as Uint8Array<ArrayBuffer>])]));
    expect(JSON.parse(await nf4['config.json'].text())).toMatchObject({ quantization_config: { quant_method: 'bitsandbytes', bnb_4bit_quant_type: 'nf4' } });
    const gpu = await testGpu();
    const quantized = await loadModel(gpu, await openModelFolder(blobFileSet(nf4, 'nf4')));
    // The f32 masters quantized as they load (NF4, block 64): the weights the training forward used.
    const f32Folder = await openModelFolder(blobFileSet(Object.fromEntries(Object.entries(zip).filter(([n]) => !n.includes('/')).map(([n, b]) => [n, new Blob([b as Uint8Array<ArrayBuffer>])])), 'f32'));
    const trained = await loadModel(gpu, f32Folder, { quant: { format: 'nf4', block: 64, doubleQuant: false } });
    try {
      expect(quantized.quantization).toBe('nf4');
      const err = relL2(flat(await quantized.logits(PROBE)), flat(await trained.logits(PROBE)));
      console.log(`QAT nf4 run: the saved NF4 folder's logits vs the saved f32 weights quantized on load, relL2 ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-6);
    } finally {
      quantized.release();
      trained.release();
    }
  });

  it('refuses a run whose plan is over the memory budget, saying what to change', async () => {
    const small = new EngineApi(() => testGpu(), { store: () => store, runs: () => runs, trainingMemoryBudgetBytes: () => 1024 * 1024 });
    const files = readdirSync(DEMO).map((name) => new File([readFileSync(join(DEMO, name))], name));
    expect((await small.loadModelFiles(files)).ok).toBe(true);
    const r = await small.startTraining(methodRequest('full'));
    expect(r).toMatchObject({ ok: false, error: { name: 'GpuOutOfMemoryError' } });
    if (r.ok) return;
    expect(r.error.message).toMatch(/^Full fine-tuning with these settings needs about [\d.]+ MiB of GPU memory \(weights .* but about 1.00 MiB is available\.$/);
    expect(r.error.hint).toContain('choose LoRA, QLoRA or IA3');
  });
});
