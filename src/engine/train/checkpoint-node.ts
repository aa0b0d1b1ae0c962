// Training checkpoints in a plain folder (Node): DIR/checkpoint-<step>/ holding trainer_state.json
// and checkpoint.safetensors, as the CLI writes them under <out>/checkpoints/. A checkpoint is
// written into a hidden temporary folder and renamed into place, so a crash mid-save leaves the
// earlier checkpoints as they were and no half-written one that lists. Kept apart from
// checkpoint.ts so that browser bundles never import node:fs.

import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from '../errors.ts';
import { openFileSource } from '../io/source-node.ts';
import {
  type CheckpointStore,
  STATE_FILE,
  TENSORS_FILE,
  type TrainCheckpoint,
  checkpointDirName,
  decodeCheckpoint,
  encodeCheckpoint,
  parseCheckpointDirName,
} from './checkpoint.ts';

export class FolderCheckpointStore implements CheckpointStore {
  readonly name: string;

  constructor(readonly dir: string) {
    this.name = dir;
  }

  async list(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new StoreError(`The checkpoint folder ${this.dir} cannot be read: ${(e as Error).message}`, { cause: e });
    }
    const steps: number[] = [];
    for (const name of names) {
      const step = parseCheckpointDirName(name);
      if (step === null) continue;
      const complete = await Promise.all([STATE_FILE, TENSORS_FILE].map((f) => stat(join(this.dir, name, f)).then((s) => s.isFile(), () => false)));
      if (complete.every(Boolean)) steps.push(step);
    }
    return steps.sort((a, b) => a - b);
  }

  async save(checkpoint: TrainCheckpoint): Promise<void> {
    const files = encodeCheckpoint(checkpoint);
    const final = join(this.dir, checkpointDirName(checkpoint.step));
    const temp = join(this.dir, `.${checkpointDirName(checkpoint.step)}.tmp`);
    try {
      await mkdir(this.dir, { recursive: true });
      await rm(temp, { recursive: true, force: true });
      await mkdir(temp);
      for (const [name, bytes] of files) await writeFile(join(temp, name), bytes);
      await rm(final, { recursive: true, force: true });
      await rename(temp, final);
    } catch (e) {
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
      throw new StoreError(`The checkpoint of step ${checkpoint.step} could not be written to ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
  }

  async load(step: number): Promise<TrainCheckpoint> {
    const dir = join(this.dir, checkpointDirName(step));
    let state, tensors;
    try {
      state = await openFileSource(join(dir, STATE_FILE));
      tensors = await openFileSource(join(dir, TENSORS_FILE));
      return await decodeCheckpoint(state, tensors, dir);
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError(`The checkpoint ${dir} cannot be read: ${(e as Error).message}`, { cause: e });
    } finally {
      await state?.close?.();
      await tensors?.close?.();
    }
  }

  async remove(step: number): Promise<void> {
    await rm(join(this.dir, checkpointDirName(step)), { recursive: true, force: true });
  }
}
