// Tests of the tiny model generator: the bytes are the same on every run and are the bytes the
// PyTorch fixtures (fixtures/models/) were computed from; every folder opens as a model folder
// whose tensors are exactly the ones its config needs; its tokenizer loads and encodes the fixture
// texts to the fixture ids; the committed demo model (public/models/demo/) is the generator's output.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { blobFileSet, openModelFolder } from '../../src/engine/io/model-folder.ts';
import { parseSafetensorsHeader } from '../../src/engine/io/safetensors.ts';
import { expectedWeights, parameterCount, parseModelConfig } from '../../src/engine/model/config.ts';
import { loadTokenizer } from '../../src/engine/model/tokenizer.ts';
import { DEMO_MODEL, TINY_MODELS, type TinyFile, type TinyModelSpec, makeTinyModel, tinyWeights } from './models.ts';

const FIXTURES = new URL('../../fixtures/models/', import.meta.url);
const DEMO_DIR = new URL('../../public/models/demo/', import.meta.url);
const ALL: readonly TinyModelSpec[] = [...TINY_MODELS, DEMO_MODEL];
const FILE_NAMES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

interface ModelFixture {
  model: string;
  architecture: string;
  files: Record<string, string>;
  texts: string[];
  input_ids: number[][];
  logits_row0: number[][];
  greedy_new_tokens: number[];
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const hashes = (files: TinyFile[]) => Object.fromEntries(files.map((f) => [f.name, sha256(f.bytes)]));
const fileOf = (files: TinyFile[], name: string) => files.find((f) => f.name === name)?.bytes as Uint8Array;
const jsonOf = (files: TinyFile[], name: string): unknown => JSON.parse(new TextDecoder().decode(fileOf(files, name)));
const readFixture = (name: string) => JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as ModelFixture;

describe('tiny models', () => {
  it('has one fixture per model and no others', () => {
    const names = readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));
    expect(names.sort()).toEqual(ALL.map((s) => s.name).sort());
    expect(new Set(ALL.map((s) => s.seed)).size).toBe(ALL.length);
  });

  describe.each(ALL.map((s) => [s.name, s] as const))('%s', (name, spec) => {
    const files = makeTinyModel(spec);

    it('is generated bit for bit as the fixture recorded it', () => {
      expect(files.map((f) => f.name)).toEqual(FILE_NAMES);
      const again = hashes(makeTinyModel(spec));
      expect(hashes(files)).toEqual(again);
      const fixture = readFixture(name);
      expect(fixture.model).toBe(name);
      expect(fixture.architecture).toBe(spec.architecture);
      // A generator change that alters the weights, configs or tokenizer invalidates the PyTorch
      // fixtures: regenerate them (scripts/tiny/write-models.ts, then scripts/torch_reference.py).
      expect(hashes(files)).toEqual(fixture.files);
    });

    it('holds exactly the tensors its config needs, in the spec dtype', async () => {
      const config = parseModelConfig(jsonOf(files, 'config.json'));
      expect(config.architecture).toBe(spec.architecture);
      expect(config.vocabSize).toBe(spec.vocabSize);
      expect(config.headDim).toBe(spec.headDim ?? spec.hiddenSize / spec.numAttentionHeads);
      expect(config.numKeyValueHeads).toBeLessThan(config.numAttentionHeads);
      expect(config.tieWordEmbeddings).toBe(spec.tieWordEmbeddings);
      expect(config.ropeScaling === null).toBe(spec.ropeScaling === undefined);
      expect(config.torchDtype).toBe(spec.dtype === 'BF16' ? 'bfloat16' : 'float32');

      const st = fileOf(files, 'model.safetensors');
      const headerLength = Number(new DataView(st.buffer, st.byteOffset, 8).getBigUint64(0, true));
      const index = parseSafetensorsHeader(st.subarray(8, 8 + headerLength), st.byteLength, 'model.safetensors');
      const got = [...index.tensors.values()].map((t) => ({ name: t.name, shape: t.shape })).sort((a, b) => (a.name < b.name ? -1 : 1));
      const want = expectedWeights(config).sort((a, b) => (a.name < b.name ? -1 : 1));
      expect(got).toEqual(want);
      for (const t of index.tensors.values()) expect(t.dtype).toBe(spec.dtype);
      expect(index.metadata).toEqual({ format: 'pt' });

      const blobs = Object.fromEntries(files.map((f) => [f.name, new Blob([f.bytes as Uint8Array<ArrayBuffer>])]));
      const folder = await openModelFolder(blobFileSet(blobs, name));
      expect(folder.unusedTensors).toEqual([]);
      expect(folder.weights.map((w) => w.name).sort()).toEqual(want.map((w) => w.name));
      expect(folder.tokenizerFiles.sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']);
    });

    it('has weights at the scales the generator documents', () => {
      for (const { name: tensor, shape, values } of tinyWeights(spec)) {
        const n = values.length;
        const mean = values.reduce((a, x) => a + x, 0) / n;
        const std = Math.sqrt(values.reduce((a, x) => a + (x - mean) ** 2, 0) / n);
        if (tensor.endsWith('norm.weight')) {
          expect(Math.min(...values)).toBeGreaterThanOrEqual(0.9);
          expect(Math.max(...values)).toBeLessThan(1.1);
          expect(std).toBeGreaterThan(0.03);
        } else if (tensor.endsWith('.bias')) {
          expect(std).toBeGreaterThan(0.15);
          expect(std).toBeLessThan(0.35);
        } else {
          const want = tensor.includes('embed_tokens') || tensor === 'lm_head.weight' ? 2 / Math.sqrt(spec.hiddenSize) : 1 / Math.sqrt(shape[1]);
          expect(Math.abs(std / want - 1)).toBeLessThan(0.1);
          expect(Math.abs(mean)).toBeLessThan(0.1 * want);
        }
      }
    });

    it('has a tokenizer that loads and encodes the fixture texts to the fixture ids', () => {
      const tok = loadTokenizer({
        tokenizerJson: jsonOf(files, 'tokenizer.json'),
        tokenizerConfig: jsonOf(files, 'tokenizer_config.json'),
        generationConfig: jsonOf(files, 'generation_config.json'),
      });
      expect(tok.vocabSize).toBe(spec.vocabSize);
      expect(tok.eosTokenIds).toContain(spec.vocabSize - 1);
      expect(tok.chatTemplate).not.toBeNull();
      const fixture = readFixture(name);
      expect(fixture.texts).toHaveLength(2);
      expect(fixture.texts.map((t) => tok.encode(t))).toEqual(fixture.input_ids);
      expect(fixture.input_ids[0].length).not.toBe(fixture.input_ids[1].length);
      expect(fixture.logits_row0).toHaveLength(fixture.input_ids[0].length);
      for (const row of fixture.logits_row0) expect(row).toHaveLength(spec.vocabSize);
      expect(fixture.greedy_new_tokens).toHaveLength(20);
    });
  });

  it('keeps the test models small and the demo model under 2 MB of weights', () => {
    for (const spec of TINY_MODELS) {
      const n = parameterCount(parseModelConfig(jsonOf(makeTinyModel(spec), 'config.json')));
      expect(n).toBeLessThan(300_000);
    }
    const demo = makeTinyModel(DEMO_MODEL);
    expect(parameterCount(parseModelConfig(jsonOf(demo, 'config.json'))) * 2).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(fileOf(demo, 'model.safetensors').byteLength).toBeLessThanOrEqual(2 * 1024 * 1024);
  });

  it('ships the generated demo model in public/models/demo/', () => {
    expect(readdirSync(DEMO_DIR).sort()).toEqual(FILE_NAMES);
    for (const f of makeTinyModel(DEMO_MODEL)) {
      const path = new URL(f.name, DEMO_DIR);
      expect(existsSync(path)).toBe(true);
      expect(sha256(readFileSync(path))).toBe(sha256(f.bytes));
    }
  });
});
