// Checkpoints: the two-file encoding round trip (bit-exact tensors, state, metrics), the refusal of
// damaged files, and the three stores — memory, a BlobStore (where a half-written checkpoint never
// lists) and a plain folder (written through a temporary folder and a rename) — with pruning.

import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../errors.ts';
import { memorySource } from '../io/source.ts';
import { Rng } from '../random.ts';
import { MemoryBlobStore } from '../store/store-memory.ts';
import {
  BlobCheckpointStore,
  type CheckpointStore,
  MemoryCheckpointStore,
  STATE_FILE,
  TENSORS_FILE,
  type TrainCheckpoint,
  decodeCheckpoint,
  encodeCheckpoint,
  latestCheckpoint,
  parseCheckpointDirName,
  pruneCheckpoints,
} from './checkpoint.ts';
import { FolderCheckpointStore } from './checkpoint-node.ts';

function sample(step: number): TrainCheckpoint {
  const rng = new Rng(step);
  const names = ['model.layers.0.self_attn.q_proj.lora_A.weight', 'model.layers.0.self_attn.q_proj.lora_B.weight'];
  const sizes = [24, 40];
  return {
    step,
    epoch: 1,
    batchInEpoch: 3,
    microSteps: step * 2,
    plan: { seed: 9, sizing: { batchSize: 4 }, gradAccum: 2, seqLen: 128, data: '12:0badc0de' },
    params: names.map((name, i) => ({ name, value: rng.fill(sizes[i], (r) => r.normal()) })),
    optimizer: { step, tensors: names.map((name, i) => ({ name, m: rng.fill(sizes[i]), v: rng.fill(sizes[i], (r) => r.next()) })) },
    divergence: { recent: [2.5, 2.25], reference: 2.25, streak: 0 },
    metrics: [{ step, epoch: 1.5, loss: 2.25, valLoss: 2.5, lr: 1e-4, gradNorm: 0.75, tokens: 300, targets: 200, tokensPerSecond: 1234.5, elapsedMs: 999, peakBytes: 1 << 20 }],
    elapsedMs: 12345.5,
  };
}

/** Exact comparison of two checkpoints, Float32Arrays by value. */
function expectSame(got: TrainCheckpoint, want: TrainCheckpoint): void {
  const plain = (c: TrainCheckpoint) => JSON.parse(JSON.stringify(c, (_, v) => (v instanceof Float32Array ? Array.from(v) : v)));
  expect(plain(got)).toEqual(plain(want));
  got.params.forEach((p, i) => {
    expect(p.value).toBeInstanceOf(Float32Array);
    expect(p.value).toEqual(want.params[i].value);
  });
}

describe('checkpoint encoding', () => {
  it('round-trips every field and every tensor bit for bit', async () => {
    const c = sample(7);
    const files = encodeCheckpoint(c);
    expect([...files.keys()].sort()).toEqual([TENSORS_FILE, STATE_FILE].sort());
    const back = await decodeCheckpoint(memorySource(files.get(STATE_FILE) as Uint8Array), memorySource(files.get(TENSORS_FILE) as Uint8Array), 'test');
    expectSame(back, c);
    expect(back.optimizer.tensors[1].v).toEqual(c.optimizer.tensors[1].v);
  });

  it('refuses damaged or mismatched files with a StoreError naming the checkpoint', async () => {
    const files = encodeCheckpoint(sample(3));
    const state = files.get(STATE_FILE) as Uint8Array;
    const tensors = files.get(TENSORS_FILE) as Uint8Array;
    const decode = (s: Uint8Array, t: Uint8Array) => decodeCheckpoint(memorySource(s), memorySource(t), 'run/checkpoint-3');
    const edit = (f: (j: Record<string, unknown>) => void) => {
      const j = JSON.parse(new TextDecoder().decode(state));
      f(j);
      return new TextEncoder().encode(JSON.stringify(j));
    };
    await expect(decode(state.subarray(0, 40), tensors)).rejects.toThrow(/run\/checkpoint-3 is damaged: trainer_state.json is not valid JSON/);
    await expect(decode(state, tensors.subarray(0, tensors.length - 8))).rejects.toThrow(StoreError);
    await expect(decode(edit((j) => (j.format = 2)), tensors)).rejects.toThrow(/format 2/);
    await expect(decode(edit((j) => (j.step = -1)), tensors)).rejects.toThrow(/"step"/);
    await expect(decode(edit((j) => (j.params = ['missing'])), tensors)).rejects.toThrow(/lacks the f32 tensor "param\/missing"/);
    await expect(decode(edit((j) => delete j.plan), tensors)).rejects.toThrow(/"plan"/);
    await expect(decode(edit((j) => (j.divergence = { recent: 'x' })), tensors)).rejects.toThrow(/"divergence"/);
    const other = encodeCheckpoint({ ...sample(3), optimizer: { step: 3, tensors: sample(3).optimizer.tensors.map((t) => ({ ...t, m: t.m.subarray(1) })) } });
    await expect(decode(state, other.get(TENSORS_FILE) as Uint8Array)).rejects.toThrow(/has 23 values; 24 were expected/);
    expect(() => encodeCheckpoint({ ...sample(1), optimizer: { step: 1, tensors: [] } })).toThrow(/same tensors/);
  });

  it('parses checkpoint folder names', () => {
    expect(parseCheckpointDirName('checkpoint-120')).toBe(120);
    expect(parseCheckpointDirName('checkpoint-')).toBeNull();
    expect(parseCheckpointDirName('.checkpoint-3.tmp')).toBeNull();
  });
});

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-ckpt-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** What every store must do: save, list in order, load exactly, replace, prune, remove. */
async function storeContract(store: CheckpointStore): Promise<void> {
  expect(await store.list()).toEqual([]);
  expect(await latestCheckpoint(store)).toBeNull();
  for (const step of [10, 2, 5]) await store.save(sample(step));
  expect(await store.list()).toEqual([2, 5, 10]);
  expectSame(await store.load(5), sample(5));
  expectSame((await latestCheckpoint(store)) as TrainCheckpoint, sample(10));
  const replaced = { ...sample(5), elapsedMs: 1 };
  await store.save(replaced);
  expect((await store.load(5)).elapsedMs).toBe(1);
  await pruneCheckpoints(store, 2);
  expect(await store.list()).toEqual([5, 10]);
  await store.remove(10);
  expect(await store.list()).toEqual([5]);
  await expect(store.load(10)).rejects.toThrow();
}

describe('checkpoint stores', () => {
  it('memory', async () => {
    await storeContract(new MemoryCheckpointStore());
  });

  it('a BlobStore: a checkpoint whose files are not all complete does not list', async () => {
    const blobs = new MemoryBlobStore();
    const store = new BlobCheckpointStore(blobs, 'runs/r1/checkpoints');
    await storeContract(store);
    // An interrupted save: the tensors finished, trainer_state.json half written.
    const files = encodeCheckpoint(sample(8));
    await blobs.append('runs/r1/checkpoints/checkpoint-8/checkpoint.safetensors', files.get(TENSORS_FILE) as Uint8Array);
    await blobs.finalize('runs/r1/checkpoints/checkpoint-8/checkpoint.safetensors', { size: (files.get(TENSORS_FILE) as Uint8Array).byteLength });
    await blobs.append('runs/r1/checkpoints/checkpoint-8/trainer_state.json', (files.get(STATE_FILE) as Uint8Array).subarray(0, 10));
    expect(await store.list()).toEqual([5]);
    // Saving that step again replaces the leftovers.
    await store.save(sample(8));
    expect(await store.list()).toEqual([5, 8]);
    expectSame(await store.load(8), sample(8));
  });

  it('a folder: written through a temporary folder, leftovers of an interrupted save ignored', async () => {
    const dir = join(root, 'checkpoints');
    const store = new FolderCheckpointStore(dir);
    await storeContract(store);
    expect((await readdir(dir)).sort()).toEqual(['checkpoint-5']);
    expect((await readdir(join(dir, 'checkpoint-5'))).sort()).toEqual([TENSORS_FILE, STATE_FILE].sort());
    // A crash mid-save leaves a temporary folder, or a checkpoint folder without its state file.
    await mkdir(join(dir, '.checkpoint-9.tmp'));
    await mkdir(join(dir, 'checkpoint-7'));
    await writeFile(join(dir, 'checkpoint-7', TENSORS_FILE), new Uint8Array(8));
    expect(await store.list()).toEqual([5]);
    await store.save(sample(9));
    expect(await store.list()).toEqual([5, 9]);
    expect(await new FolderCheckpointStore(join(root, 'absent')).list()).toEqual([]);
    await writeFile(join(dir, 'checkpoint-9', STATE_FILE), '{"format": 1');
    await expect(store.load(9)).rejects.toThrow(/checkpoint-9 is damaged/);
  });
});
