// Whole-model parity of the GPU Llama family with PyTorch: for every tiny model of
// scripts/tiny/models.ts and the studio's demo model (public/models/demo/), the logits of row 0, the
// causal-LM loss of each row and 20 greedy tokens (KV-cache generation) against the fixtures that
// scripts/torch_reference.py wrote from the same checkpoints (fixtures/models/). BF16 checkpoints
// are checked with f32 and with bf16 weight storage (bf16 keeps their values exactly); F32
// checkpoints with f32 storage.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MODEL, TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { testGpu } from '../gpu/testing.ts';
import { type ModelFolder, blobFileSet, openModelFolder } from '../io/model-folder.ts';
import { openModelDirectory } from '../io/model-folder-node.ts';
import { relL2 } from '../reference/compare.ts';
import { generate } from './generate.ts';
import { type LlamaModel, type WeightStorage, evaluateLoss, loadModel } from './llama.ts';

interface ModelFixture {
  model: string;
  input_ids: number[][];
  labels: number[][];
  loss: number[];
  logits_row0: number[][];
  greedy_new_tokens: number[];
}

const TOLERANCE = 1e-4;
const FIXTURES = new URL('../../../fixtures/models/', import.meta.url);
const DEMO_DIR = fileURLToPath(new URL('../../../public/models/demo/', import.meta.url));

const readFixture = (name: string) => JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as ModelFixture;
const relDiff = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);

/** The demo model is read from its committed folder; the test models are generated in memory. */
async function openFolder(name: string): Promise<ModelFolder> {
  if (name === DEMO_MODEL.name) return openModelDirectory(DEMO_DIR);
  const spec = TINY_MODELS.find((s) => s.name === name);
  if (!spec) throw new Error(`no tiny model named ${name}`);
  const blobs = Object.fromEntries(makeTinyModel(spec).map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])]));
  return openModelFolder(blobFileSet(blobs, name));
}

const CASES = [...TINY_MODELS, DEMO_MODEL].flatMap((spec) =>
  (spec.dtype === 'BF16' ? (['f32', 'bf16'] as const) : (['f32'] as const)).map((storage) => [spec.name, storage] as const),
);

describe.each(CASES)('%s with %s weights', (name: string, storage: WeightStorage) => {
  const fixture = readFixture(name);
  const [row0, row1] = fixture.input_ids;
  let model: LlamaModel;

  beforeAll(async () => {
    const gpu = await testGpu();
    model = await loadModel(gpu, await openFolder(name), { dtype: storage });
  });
  afterAll(() => model?.release());

  it('computes the logits of every position of row 0 as PyTorch does', async () => {
    const want = fixture.logits_row0.flat(); // (T, V)
    const [alone] = await model.logits([row0]);
    expect(relL2(alone, want)).toBeLessThan(TOLERANCE);
    // Batched with the shorter row 1, which is right-padded: neither row changes.
    const [batched, shorter] = await model.logits([row0, row1]);
    expect(relL2(batched, want)).toBeLessThan(TOLERANCE);
    const [row1Alone] = await model.logits([row1]);
    expect(shorter).toHaveLength(row1.length * model.config.vocabSize);
    expect(relL2(shorter, row1Alone)).toBeLessThan(TOLERANCE);
  });

  it('computes the causal-LM loss of each row and of both together as PyTorch does', async () => {
    const rows = fixture.input_ids.map((inputIds, i) => ({ inputIds, labels: fixture.labels[i] }));
    const counts: number[] = [];
    for (let i = 0; i < rows.length; i++) {
      const { loss, tokens } = await evaluateLoss(model, [rows[i]]);
      expect(relDiff(loss, fixture.loss[i])).toBeLessThan(TOLERANCE);
      expect(tokens).toBe(rows[i].labels.slice(1).filter((y) => y !== -100).length);
      counts.push(tokens);
    }
    const both = await evaluateLoss(model, rows);
    const mean = (fixture.loss[0] * counts[0] + fixture.loss[1] * counts[1]) / (counts[0] + counts[1]);
    expect(both.tokens).toBe(counts[0] + counts[1]);
    expect(relDiff(both.loss, mean)).toBeLessThan(TOLERANCE);
  });

  it('generates the same 20 greedy tokens after row 0', async () => {
    const out = await generate(model, row0, { maxNewTokens: 20 });
    expect(out.finishReason).toBe('length');
    expect(out.tokens).toEqual(fixture.greedy_new_tokens);
  });
});
