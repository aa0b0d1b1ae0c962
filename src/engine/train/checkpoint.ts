// Training checkpoints: what a run saves to resume exactly where it was (the trainable tensors, the
// optimizer's moments and step, the position in the seeded data order, the divergence detector and
// the metrics so far), the two files it is stored as (trainer_state.json and
// checkpoint.safetensors), the CheckpointStore interface the trainer writes through, and two
// stores: in memory (tests, short sessions) and over a BlobStore (IndexedDB in the browser, the
// file-system cache in Node). A checkpoint appears in list() only once all its bytes are written.
// The plain-folder store for the CLI is checkpoint-node.ts. Nothing here touches the GPU.

import { InvalidArgumentError, StoreError } from '../errors.ts';
import { type TensorToWrite, readSafetensorsIndex, readTensorF32, writeSafetensors } from '../io/safetensors.ts';
import { type ByteSource, memorySource } from '../io/source.ts';
import type { OptimizerState } from '../optim/optimizer.ts';
import type { BlobStore } from '../store/store.ts';
import type { BatchSizing } from './batches.ts';
import type { DivergenceState } from './divergence.ts';
import type { StepMetrics } from './metrics.ts';

/** Version of the checkpoint layout; a reader refuses others. */
export const CHECKPOINT_FORMAT = 1;
export const STATE_FILE = 'trainer_state.json';
export const TENSORS_FILE = 'checkpoint.safetensors';
/** Largest trainer_state.json read back (metrics of long runs included). */
const MAX_STATE_BYTES = 256 * 1024 * 1024;

/** What fixes the order of the data: a resumed run must match it to continue the same sequence. */
export interface DataPlan {
  seed: number;
  sizing: BatchSizing;
  gradAccum: number;
  seqLen: number;
  /** Row count and hash of the training rows (batches.ts fingerprintRows). */
  data: string;
}

export interface TrainCheckpoint {
  /** Optimizer steps done. */
  step: number;
  /** The epoch of the next micro-batch (0-based) and how many of its micro-batches are done. */
  epoch: number;
  batchInEpoch: number;
  /** Micro-batches done in all (each forward pass's dropout step). */
  microSteps: number;
  plan: DataPlan;
  /** Trainable tensors by name, in the adapter's order. */
  params: { name: string; value: Float32Array }[];
  optimizer: OptimizerState;
  divergence: DivergenceState;
  /** Every step's metrics up to this one. */
  metrics: StepMetrics[];
  /** Training time up to this checkpoint, across resumes. */
  elapsedMs: number;
}

/** Where checkpoints go. save() is atomic: a checkpoint interrupted while saving never lists. */
export interface CheckpointStore {
  /** Shown in messages: a folder, "memory", a store prefix. */
  readonly name: string;
  /** Steps of the complete checkpoints, ascending. */
  list(): Promise<number[]>;
  /** Writes the checkpoint of `checkpoint.step`, replacing one of the same step. */
  save(checkpoint: TrainCheckpoint): Promise<void>;
  /** Reads the checkpoint of `step`; a StoreError when there is none. */
  load(step: number): Promise<TrainCheckpoint>;
  remove(step: number): Promise<void>;
}

/** The latest complete checkpoint of `store`, or null when it has none. */
export async function latestCheckpoint(store: CheckpointStore): Promise<TrainCheckpoint | null> {
  const steps = await store.list();
  return steps.length === 0 ? null : store.load(steps[steps.length - 1]);
}

/** Removes all but the `keep` most recent checkpoints (keep ≥ 1). */
export async function pruneCheckpoints(store: CheckpointStore, keep: number): Promise<void> {
  const steps = await store.list();
  for (const step of steps.slice(0, Math.max(0, steps.length - Math.max(1, keep)))) await store.remove(step);
}

/** The folder name of a checkpoint, as the Hugging Face Trainer names them. */
export function checkpointDirName(step: number): string {
  return `checkpoint-${step}`;
}

/** The step of a checkpoint folder name, or null for another name. */
export function parseCheckpointDirName(name: string): number | null {
  const m = /^checkpoint-(\d{1,15})$/.exec(name);
  return m ? Number(m[1]) : null;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** The two files of a checkpoint, by name. */
export type CheckpointFiles = Map<string, Uint8Array>;

interface StateJson {
  format: number;
  step: number;
  epoch: number;
  batchInEpoch: number;
  microSteps: number;
  plan: DataPlan;
  params: string[];
  optimizerStep: number;
  divergence: DivergenceState;
  metrics: StepMetrics[];
  elapsedMs: number;
}

const key = {
  param: (n: string) => `param/${n}`,
  m: (n: string) => `exp_avg/${n}`,
  v: (n: string) => `exp_avg_sq/${n}`,
};

/** The checkpoint as trainer_state.json and checkpoint.safetensors (f32 tensors, 1-D). */
export function encodeCheckpoint(c: TrainCheckpoint): CheckpointFiles {
  if (c.optimizer.tensors.length !== c.params.length || c.optimizer.tensors.some((t, i) => t.name !== c.params[i].name)) {
    throw new InvalidArgumentError('The checkpoint\'s optimizer state does not list the same tensors as its parameters.');
  }
  const tensors: TensorToWrite[] = [];
  c.params.forEach((p, i) => {
    const o = c.optimizer.tensors[i];
    tensors.push({ name: key.param(p.name), dtype: 'F32', shape: [p.value.length], data: p.value });
    tensors.push({ name: key.m(p.name), dtype: 'F32', shape: [o.m.length], data: o.m });
    tensors.push({ name: key.v(p.name), dtype: 'F32', shape: [o.v.length], data: o.v });
  });
  const state: StateJson = {
    format: CHECKPOINT_FORMAT,
    step: c.step,
    epoch: c.epoch,
    batchInEpoch: c.batchInEpoch,
    microSteps: c.microSteps,
    plan: c.plan,
    params: c.params.map((p) => p.name),
    optimizerStep: c.optimizer.step,
    divergence: c.divergence,
    metrics: c.metrics,
    elapsedMs: c.elapsedMs,
  };
  return new Map([
    [TENSORS_FILE, writeSafetensors(tensors, { format: 'whetstone-checkpoint' })],
    [STATE_FILE, new TextEncoder().encode(`${JSON.stringify(state, null, 1)}\n`)],
  ]);
}

/** Reads a checkpoint back from its two files; a StoreError names what is wrong (`where` names the checkpoint). */
export async function decodeCheckpoint(state: ByteSource, tensors: ByteSource, where: string): Promise<TrainCheckpoint> {
  const bad = (why: string, cause?: unknown) => new StoreError(`The checkpoint ${where} is damaged: ${why}.`, { cause, hint: 'Resume from an earlier checkpoint, or delete this one.' });
  if (state.size > MAX_STATE_BYTES) throw bad(`${STATE_FILE} is ${state.size} bytes, more than the ${MAX_STATE_BYTES} accepted`);
  let s: StateJson;
  try {
    s = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await state.read(0, state.size))) as StateJson;
  } catch (e) {
    throw bad(`${STATE_FILE} is not valid JSON`, e);
  }
  const count = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  if (s === null || typeof s !== 'object') throw bad(`${STATE_FILE} is not an object`);
  if (s.format !== CHECKPOINT_FORMAT) throw bad(`format ${JSON.stringify(s.format)} is not ${CHECKPOINT_FORMAT}`);
  for (const k of ['step', 'epoch', 'batchInEpoch', 'microSteps', 'optimizerStep'] as const) if (!count(s[k])) throw bad(`"${k}" is ${JSON.stringify(s[k])}`);
  if (!(typeof s.elapsedMs === 'number' && s.elapsedMs >= 0)) throw bad('"elapsedMs" is not a duration');
  if (!Array.isArray(s.params) || s.params.some((n) => typeof n !== 'string') || new Set(s.params).size !== s.params.length) throw bad('"params" is not a list of distinct names');
  if (!Array.isArray(s.metrics)) throw bad('"metrics" is not a list');
  const p = s.plan;
  if (!p || typeof p !== 'object' || !count(p.seed) || !count(p.gradAccum) || !count(p.seqLen) || typeof p.data !== 'string' || !p.sizing || typeof p.sizing !== 'object') {
    throw bad('"plan" is incomplete');
  }
  const d = s.divergence;
  if (!d || typeof d !== 'object' || !Array.isArray(d.recent) || d.recent.some((x) => typeof x !== 'number') || !count(d.streak) || !(d.reference === null || typeof d.reference === 'number')) {
    throw bad('"divergence" is incomplete');
  }

  let index;
  try {
    index = await readSafetensorsIndex(tensors);
  } catch (e) {
    throw bad(`${TENSORS_FILE} cannot be read`, e);
  }
  const read = async (name: string, n: number | null): Promise<Float32Array> => {
    const entry = index.tensors.get(name);
    if (!entry || entry.dtype !== 'F32' || entry.shape.length !== 1) throw bad(`${TENSORS_FILE} lacks the f32 tensor "${name}"`);
    if (n !== null && entry.shape[0] !== n) throw bad(`"${name}" has ${entry.shape[0]} values; ${n} were expected`);
    return readTensorF32(tensors, entry);
  };
  const params: TrainCheckpoint['params'] = [];
  const moments: OptimizerState['tensors'] = [];
  for (const name of s.params) {
    const value = await read(key.param(name), null);
    params.push({ name, value });
    moments.push({ name, m: await read(key.m(name), value.length), v: await read(key.v(name), value.length) });
  }
  return {
    step: s.step,
    epoch: s.epoch,
    batchInEpoch: s.batchInEpoch,
    microSteps: s.microSteps,
    plan: s.plan,
    params,
    optimizer: { step: s.optimizerStep, tensors: moments },
    divergence: s.divergence,
    metrics: s.metrics,
    elapsedMs: s.elapsedMs,
  };
}

// ---------------------------------------------------------------------------------------------
// Stores

/** Checkpoints held in memory, encoded as they would be on disk (so a loaded one shares nothing with the saved object). */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly name: string;
  private readonly saved = new Map<number, CheckpointFiles>();

  constructor(name = 'memory') {
    this.name = name;
  }

  async list(): Promise<number[]> {
    return [...this.saved.keys()].sort((a, b) => a - b);
  }

  async save(checkpoint: TrainCheckpoint): Promise<void> {
    this.saved.set(checkpoint.step, encodeCheckpoint(checkpoint));
  }

  async load(step: number): Promise<TrainCheckpoint> {
    const files = this.saved.get(step);
    if (!files) throw new StoreError(`There is no checkpoint of step ${step} in ${this.name}.`);
    const where = `${this.name}/${checkpointDirName(step)}`;
    return decodeCheckpoint(memorySource(files.get(STATE_FILE) as Uint8Array, STATE_FILE), memorySource(files.get(TENSORS_FILE) as Uint8Array, TENSORS_FILE), where);
  }

  async remove(step: number): Promise<void> {
    this.saved.delete(step);
  }

  /** The encoded files of a checkpoint (tests inspect or damage them). */
  files(step: number): CheckpointFiles | undefined {
    return this.saved.get(step);
  }
}

/** Bytes appended to a blob at a time. */
const APPEND_BYTES = 8 * 1024 * 1024;

/**
 * Checkpoints in a BlobStore under `prefix` (e.g. "runs/<id>/checkpoints"): one folder per
 * checkpoint holding its two files. The tensors are written first and trainer_state.json last, and
 * a checkpoint lists only when both are complete, so an interrupted save is never resumed from.
 */
export class BlobCheckpointStore implements CheckpointStore {
  readonly name: string;

  constructor(
    private readonly store: BlobStore,
    private readonly prefix: string,
  ) {
    this.name = `${store.name}:${prefix}`;
  }

  private key(step: number, file: string): string {
    return `${this.prefix}/${checkpointDirName(step)}/${file}`;
  }

  async list(): Promise<number[]> {
    const complete = new Map<number, Set<string>>();
    for (const b of await this.store.list(`${this.prefix}/`)) {
      if (!b.complete) continue;
      const [dir, file, ...rest] = b.key.slice(this.prefix.length + 1).split('/');
      const step = parseCheckpointDirName(dir);
      if (step === null || rest.length > 0) continue;
      if (!complete.has(step)) complete.set(step, new Set());
      complete.get(step)?.add(file);
    }
    return [...complete].filter(([, files]) => files.has(STATE_FILE) && files.has(TENSORS_FILE)).map(([s]) => s).sort((a, b) => a - b);
  }

  async save(checkpoint: TrainCheckpoint): Promise<void> {
    const files = encodeCheckpoint(checkpoint);
    await this.store.delete(`${this.prefix}/${checkpointDirName(checkpoint.step)}`);
    for (const file of [TENSORS_FILE, STATE_FILE]) {
      const bytes = files.get(file) as Uint8Array;
      const k = this.key(checkpoint.step, file);
      for (let at = 0; at < bytes.byteLength; at += APPEND_BYTES) await this.store.append(k, bytes.subarray(at, Math.min(bytes.byteLength, at + APPEND_BYTES)));
      await this.store.finalize(k, { size: bytes.byteLength });
    }
  }

  async load(step: number): Promise<TrainCheckpoint> {
    const state = await this.store.read(this.key(step, STATE_FILE));
    const tensors = await this.store.read(this.key(step, TENSORS_FILE));
    try {
      return await decodeCheckpoint(state, tensors, `${this.name}/${checkpointDirName(step)}`);
    } finally {
      await state.close?.();
      await tensors.close?.();
    }
  }

  async remove(step: number): Promise<void> {
    await this.store.delete(`${this.prefix}/${checkpointDirName(step)}`);
  }
}
