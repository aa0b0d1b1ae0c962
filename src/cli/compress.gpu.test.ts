// The compression commands, run in-process through main() on a tiny model folder: `prune` (Wanda
// with a calibration file, then structured pruning with a LoRA recovery), `share` (shared blocks and
// a 16-entry codebook) and `distill` (a student with a layer dropped) each write a folder that
// `info` (and `eval`) read back; bad requests fail with a message and leave no folder behind.

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../scripts/tiny/tokenizer.ts';
import { type TinyModel, writeTinyModel } from '../engine/model/llama-testing.ts';
import { Rng } from '../engine/random.ts';
import { runCaptured as run } from './run-captured.ts';

let root = '';
let tiny: TinyModel;
let data = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-cli-compress-'));
  tiny = await writeTinyModel(join(root, 'model'), { architecture: 'llama', tied: true, fileDtype: 'BF16', seed: 41 }, makeTinyTokenizer());
  const rng = new Rng(5);
  const rows = Array.from({ length: 10 }, () => JSON.stringify({ input_ids: Array.from({ length: 12 }, () => rng.int(tiny.config.vocabSize)) }));
  data = join(root, 'rows.jsonl');
  await writeFile(data, `${rows.join('\n')}\n`);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const lastJson = (s: string) => JSON.parse(s.trim().split('\n').at(-1) as string);

/** `info`, and `eval --json` when `evaluate`, on a written folder. */
async function readsBack(dir: string, evaluate = true): Promise<{ info: Record<string, unknown>; loss: number }> {
  const info = await run(['info', '--model', dir]);
  expect(info.code, info.stderr).toBe(0);
  if (!evaluate) return { info: JSON.parse(info.stdout), loss: NaN };
  const ev = await run(['eval', '--model', dir, '--data', data, '--json']);
  expect(ev.code, ev.stderr).toBe(0);
  return { info: JSON.parse(info.stdout), loss: lastJson(ev.stdout).loss };
}

describe('whetstone prune, share, distill', () => {
  it('prune: Wanda 2:4 with calibration, and structured pruning with LoRA recovery', async () => {
    const sparse = join(root, 'sparse');
    const r = await run(['prune', '--model', tiny.dir, '--out', sparse, '--nm', '2:4', '--criterion', 'wanda', '--calib', data]);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout).sparsity).toBe(0.5);
    expect((await readsBack(sparse, false)).info.layers).toBe(2);

    const small = join(root, 'small');
    const s = await run(['prune', '--model', tiny.dir, '--out', small, '--heads', '1', '--neurons', '16', '--recover-steps', '2', '--data', data, '--seq-len', '16']);
    expect(s.code, s.stderr).toBe(0);
    expect(lastJson(s.stdout).recovery.steps).toBe(2);
    const back = await readsBack(small);
    expect(back.info).toMatchObject({ heads: 2, kvHeads: 1, headDim: 8, intermediateSize: 32 });
  });

  it('share: blocks shared in pairs and a 16-entry codebook', async () => {
    const out = join(root, 'shared');
    const r = await run(['share', '--model', tiny.dir, '--out', out, '--share-layers', '2', '--cluster', '16']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout).layerSource).toEqual([0, 0]);
    const back = await readsBack(out);
    expect(back.info.layers).toBe(2);
    expect(Number.isFinite(back.loss)).toBe(true);
  });

  it('distill: a student with a layer dropped, trained a few steps', async () => {
    const out = join(root, 'student');
    const r = await run(['distill', '--teacher', tiny.dir, '--drop-layers', '1', '--data', data, '--out', out, '--steps', '2', '--batch', '4', '--val-fraction', '0.2']);
    expect(r.code, r.stderr).toBe(0);
    const summary = lastJson(r.stdout);
    expect(summary.heldOut.rows).toBe(2);
    expect(summary.heldOut.after.kl).toBeGreaterThanOrEqual(0);
    expect((await readsBack(out, false)).info.layers).toBe(1);
  });

  it('refuses bad requests and never overwrites a folder', async () => {
    const r = await run(['prune', '--model', tiny.dir, '--out', join(root, 'bad'), '--heads', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/KV groups/);
    const again = await run(['share', '--model', tiny.dir, '--out', join(root, 'shared'), '--cluster', '16']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds files/);
    expect(await readdir(root)).not.toContain('bad');
    const none = await run(['prune', '--model', tiny.dir, '--out', join(root, 'x')]);
    expect(none.stderr).toMatch(/Nothing to prune/);
  });
});
