// Prefix tuning with prefix_projection against PyTorch: fixtures/prefix/llama3-untied-f32-prefix-projection/
// holds, from scripts/peft_reference.py, the PrefixEncoder's weights (prefix_encoder.safetensors:
// embedding, Linear, Tanh, Linear with PEFT's module names, 3 virtual tokens, hidden 24, on the tiny
// llama3-untied-f32 with grouped-query attention) and what PEFT saves for them (adapter_config.json
// with prefix_projection true, adapter_model.safetensors with the encoder's output). An adapter
// created with those weights must give PyTorch's loss and the gradient of every encoder tensor, with
// and without gradient checkpointing; export the table PEFT saved; and generate through the KV cache
// as the saved folder, loaded back, does.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../../scripts/tiny/models.ts';
import { scratch } from '../../autograd/ops.ts';
import { Tape } from '../../autograd/tape.ts';
import { Batch } from '../../gpu/batch.ts';
import { readTensor } from '../../gpu/readback.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { testGpu } from '../../gpu/testing.ts';
import { fill } from '../../kernels/elementwise.ts';
import { TokenGroups } from '../../kernels/embedding.ts';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME } from '../../io/export-peft.ts';
import { blobFileSet, openModelFolder } from '../../io/model-folder.ts';
import { nodeFileSet } from '../../io/model-folder-node.ts';
import { readSafetensorsIndex, readTensorF32 } from '../../io/safetensors.ts';
import { memorySource } from '../../io/source.ts';
import { Generation } from '../../model/generate.ts';
import { type LlamaModel, type TokenRow, loadModel } from '../../model/llama.ts';
import { Rng } from '../../random.ts';
import { relL2 } from '../../reference/compare.ts';
import { prepareRows, uploadBatch } from '../../train/batches.ts';
import { MemoryCheckpointStore } from '../../train/checkpoint.ts';
import { train } from '../../train/trainer.ts';
import { evaluateRows, tokenRowToRow } from '../../train/evaluate.ts';
import { withForwardOptions } from '../adapter.ts';
import { findMethod, loadAdapter, parseMethodOptions } from '../methods.ts';
import { readMethodFixture } from '../fixtures-testing.ts';
import { parsePrefixTuningConfig } from './config.ts';
import { PREFIX_ENCODER_KEYS, type PrefixEncoderWeights, type PrefixTuningAdapter, createPrefixTuning } from './model.ts';

const NAME = 'llama3-untied-f32-prefix-projection';
const FOLDER = new URL(`../../../../fixtures/prefix/${NAME}/`, import.meta.url);
const fixture = readMethodFixture(`prefix/${NAME}.json`);
const LOSS_TOL = 1e-5;
const GRAD_TOL = 1e-5;

async function readTensors(file: URL): Promise<Map<string, Float32Array>> {
  const source = memorySource(new Uint8Array(readFileSync(file)));
  const index = await readSafetensorsIndex(source);
  const out = new Map<string, Float32Array>();
  for (const [name, entry] of index.tensors) out.set(name, await readTensorF32(source, entry));
  return out;
}

let model: LlamaModel;
let adapter: PrefixTuningAdapter;
const rows = fixture.input_ids.map((inputIds, i) => ({ inputIds, labels: fixture.labels[i] }));

beforeAll(async () => {
  const gpu = await testGpu();
  const spec = TINY_MODELS.find((s) => s.name === fixture.model);
  if (!spec) throw new Error(`no tiny model named ${fixture.model}`);
  const files = makeTinyModel(spec);
  for (const f of files) expect(createHash('sha256').update(f.bytes).digest('hex'), f.name).toBe(fixture.model_files[f.name]);
  model = await loadModel(gpu, await openModelFolder(blobFileSet(Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])])), spec.name)));
  const state = await readTensors(new URL('prefix_encoder.safetensors', FOLDER));
  const encoder = Object.fromEntries(PREFIX_ENCODER_KEYS.map((k) => [k, state.get(k)])) as unknown as PrefixEncoderWeights;
  const config = parsePrefixTuningConfig(JSON.parse(readFileSync(new URL(ADAPTER_CONFIG_NAME, FOLDER), 'utf8')));
  adapter = createPrefixTuning(model, config, { seed: 0, encoder });
});
afterAll(() => {
  adapter?.release();
  model?.release();
});

/** One forward and backward of the fixture's two rows (the loss's gradient seeded with 1); the encoder's gradients by PEFT's names. */
async function gradients(checkpointBlocks: boolean): Promise<PrefixEncoderWeights> {
  const gpu = model.gpu;
  const prepared = adapter.adaptRows(rows.map(tokenRowToRow));
  const groups = new TokenGroups(gpu, 2 * Math.max(...prepared.map((r) => r.ids.length)));
  const inputs = uploadBatch(gpu, prepared, [0, 1], groups);
  try {
    adapter.training = true;
    const tape = new Tape();
    const b = new Batch(gpu, 'prefix.projection.parity');
    adapter.zeroGrads(b);
    const loss = model.loss(tape, b, inputs, { ...adapter.forwardOptions(tape, adapter.leaves(tape)), checkpointBlocks }); // (1)
    const seed = scratch(b, [1], 'seed'); // (1)
    fill(b, seed, 1);
    tape.backward(b, loss, seed);
    b.submit();
    return await adapter.encoderWeights('grad');
  } finally {
    inputs.release();
    groups.release();
  }
}

function expectGrads(grads: PrefixEncoderWeights, label: string): number {
  expect(Object.keys(fixture.grads).sort()).toEqual([...PREFIX_ENCODER_KEYS].sort());
  let worst = 0;
  for (const key of PREFIX_ENCODER_KEYS) {
    const want = fixture.grads[key];
    expect(grads[key].length, key).toBe(want.shape.reduce((a, d) => a * d, 1));
    const err = relL2(grads[key], want.values);
    worst = Math.max(worst, err);
    expect(err, `${label} ${key}`).toBeLessThan(GRAD_TOL);
  }
  return worst;
}

describe('prefix tuning with prefix_projection vs PyTorch', () => {
  it('gives PyTorch’s loss and the gradient of the embedding and of both Linears’ weights and biases', async () => {
    const evaluated = await evaluateRows(model, adapter, rows.map(tokenRowToRow));
    expect(evaluated.tokens).toBe(fixture.tokens);
    const lossErr = Math.abs(evaluated.loss - fixture.loss) / Math.abs(fixture.loss);
    expect(lossErr).toBeLessThan(LOSS_TOL);
    const worst = expectGrads(await gradients(false), 'plain');
    const worstCheckpointed = expectGrads(await gradients(true), 'checkpointed');
    console.log(
      `${NAME}: loss ${evaluated.loss.toFixed(6)} vs PyTorch ${fixture.loss.toFixed(6)} (rel ${lossErr.toExponential(2)}); 5 gradients, worst relL2 ${worst.toExponential(2)} (${worstCheckpointed.toExponential(2)} with gradient checkpointing)`,
    );
  });

  it('exports the table PEFT saved, with prefix_projection and encoder_hidden_size in adapter_config.json', async () => {
    const files = await adapter.exportFiles();
    const config = JSON.parse(new TextDecoder().decode(files.get(ADAPTER_CONFIG_NAME)));
    const peft = JSON.parse(readFileSync(new URL(ADAPTER_CONFIG_NAME, FOLDER), 'utf8'));
    for (const key of ['peft_type', 'prefix_projection', 'encoder_hidden_size', 'token_dim', 'num_attention_heads', 'num_layers', 'num_virtual_tokens', 'num_transformer_submodules', 'inference_mode']) {
      expect(config[key], key).toEqual(peft[key]);
    }
    const source = memorySource(files.get(ADAPTER_WEIGHTS_NAME) as Uint8Array);
    const index = await readSafetensorsIndex(source);
    expect([...index.tensors.keys()]).toEqual(['prompt_embeddings']);
    const ours = await readTensorF32(source, index.tensors.get('prompt_embeddings')!);
    const saved = (await readTensors(new URL(ADAPTER_WEIGHTS_NAME, FOLDER))).get('prompt_embeddings') as Float32Array;
    expect(relL2(ours, saved)).toBeLessThan(1e-6);
  });

  it('loads PEFT’s saved folder as its table, with PyTorch’s loss, and generates through the KV cache as the projected adapter does', async () => {
    const loaded = (await loadAdapter(model, await nodeFileSet(fileURLToPath(FOLDER)))) as PrefixTuningAdapter;
    try {
      expect(loaded.method).toBe('prefix');
      expect(loaded.projected).toBe(false);
      expect(loaded.config.prefix_projection).toBe(true);
      const evaluated = await evaluateRows(model, loaded, rows.map(tokenRowToRow));
      expect(Math.abs(evaluated.loss - fixture.loss) / Math.abs(fixture.loss)).toBeLessThan(LOSS_TOL);

      const first = async (a: PrefixTuningAdapter) => {
        const logits: Float32Array[] = [];
        const g = new Generation(withForwardOptions(model, a.inferenceOptions()), fixture.input_ids[0], { maxNewTokens: 2, temperature: 0, onLogits: (l) => logits.push(l) });
        try {
          while ((await g.step()) !== null && !g.done);
        } finally {
          g.release();
        }
        return logits;
      };
      const want = await first(loaded);
      const got = await first(adapter);
      expect(got).toHaveLength(2);
      got.forEach((l, i) => expect(relL2(l, want[i]), `step ${i}`).toBeLessThan(1e-5));
    } finally {
      loaded.release();
    }
  });

  it('trains from the registry (--prefix-projection --encoder-hidden): two steps change every one of its tensors and no model weight and lower the validation loss; disabled gives the base, saved and loaded gives its logits', async () => {
    const method = findMethod('prefix');
    const made = (await method.create(model, parseMethodOptions(method, { 'virtual-tokens': '4', 'prefix-projection': true, 'encoder-hidden': '16' }), { seed: 5 })) as PrefixTuningAdapter;
    try {
      expect(made.projected).toBe(true);
      // embedding (4 × 32), Linear (16 × 32 + 16), Linear (128 × 16 + 128).
      expect(made.parameterCount).toBe(4 * 32 + 16 * 32 + 16 + 128 * 16 + 128);
      expect(made.savedConfig).toMatchObject({ prefix_projection: true, encoder_hidden_size: 16, token_dim: 32 });
      const weights = async () => Promise.all(Object.values(model.params).map((t) => readTensor(t as Tensor & { dtype: 'f32' })));
      const params = async () => Promise.all(made.params.map((p) => readTensor(p.value as Tensor & { dtype: 'f32' })));
      const before = await weights();
      const initial = await params();
      const val = prepareRows(successorRows(4, 2), model.config.vocabSize, 32).rows;
      const startLoss = (await evaluateRows(model, made, val)).loss;
      const options = { lr: 5e-2, seqLen: 32, seed: 1, batchSize: 8, schedule: 'constant' as const, divergence: false as const };
      const result = await train({ model, adapter: made, train: successorRows(8, 1), validation: successorRows(4, 2), options: { ...options, maxSteps: 2 }, checkpoints: new MemoryCheckpointStore() });
      const after = await params();
      after.forEach((v, i) => expect(relL2(v, initial[i]), made.params[i].name).toBeGreaterThan(0));
      (await weights()).forEach((w, i) => expect(relL2(w, before[i])).toBe(0));
      console.log(`prefix projection: validation loss ${startLoss.toFixed(4)} → ${result.valLoss?.toFixed(4)} after 2 steps (${made.parameterCount} trainable values)`);
      expect(result.valLoss as number).toBeLessThan(startLoss - 0.05);

      const base = await model.logits(PROBE);
      const tuned = await withForwardOptions(model, made.inferenceOptions()).logits(PROBE);
      expect(relL2(flat(tuned), flat(base))).toBeGreaterThan(1e-3);
      const loaded = await method.load(model, await made.exportFiles());
      try {
        expect(relL2(flat(await withForwardOptions(model, loaded.inferenceOptions()).logits(PROBE)), flat(tuned))).toBeLessThan(1e-6);
      } finally {
        loaded.release();
      }
      made.enabled = false;
      expect(relL2(flat(await withForwardOptions(model, made.inferenceOptions()).logits(PROBE)), flat(base))).toBe(0);
    } finally {
      made.release();
    }
    await expect(method.create(model, parseMethodOptions(method, { 'encoder-hidden': '8' }), { seed: 3 })).rejects.toThrow(/--prefix-projection/);
  });
});

const PROBE = [[5, 17, 200, 3, 88, 41, 9], [120, 121, 122]];
const flat = (xs: Float32Array[]) => Float32Array.from(xs.flatMap((x) => Array.from(x)));

/** Rows of a successor task over 40 consecutive ids (the first label not counted). */
function successorRows(n: number, seed: number): TokenRow[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = 8 + rng.int(4);
    const start = rng.int(40);
    const inputIds = Array.from({ length: len }, (_, t) => 100 + ((start + t) % 40));
    return { inputIds, labels: inputIds.map((id, t) => (t < 1 ? -100 : id)) };
  });
}
