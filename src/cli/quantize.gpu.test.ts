// `whetstone quantize` and the quantized-base flags of train/eval, in-process through main() on a
// tiny model folder: quantize writes a bitsandbytes NF4 folder with a per-layer report and the
// evaluation loss before and after (the after loss equal to `eval` on the written folder, and to
// `eval --quant nf4 --double-quant` on the original; `--act-int8` dynamic and static move it a
// little), refuses to overwrite a folder, and
// `train --method qlora --plan` prints the memory plan without training.

import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyTokenizer } from '../../scripts/tiny/tokenizer.ts';
import { type TinyModel, writeTinyModel } from '../engine/model/llama-testing.ts';
import { runCaptured as run } from './run-captured.ts';

let root = '';
let tiny: TinyModel;
let data = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-quant-cli-'));
  tiny = await writeTinyModel(join(root, 'model'), { architecture: 'llama', tied: true, fileDtype: 'BF16', seed: 21 }, makeTinyTokenizer());
  data = join(root, 'eval.jsonl');
  const rows = Array.from({ length: 4 }, (_, i) => JSON.stringify({ input_ids: Array.from({ length: 12 }, (_, t) => 3 + ((i * 5 + t * 7) % 90)) }));
  await writeFile(data, `${rows.join('\n')}\n`);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('whetstone quantize', () => {
  it('writes an NF4 folder that eval loads, with a per-layer report and the loss before and after', async () => {
    const out = join(root, 'nf4');
    const report = join(root, 'report.json');
    const r = await run(['quantize', '--model', tiny.dir, '--to', 'nf4', '--double-quant', '--out', out, '--data', data, '--report', report]);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(summary).toEqual(JSON.parse(await readFile(report, 'utf8')));
    expect(summary.quant).toEqual({ format: 'nf4', block: 64, doubleQuant: true, symmetric: true });
    expect(summary.layers.length).toBe(14);
    // (This model's projections are tiny: the per-weight maps of double quantization outweigh the savings.)
    for (const l of summary.layers) expect(l.relError).toBeGreaterThan(0);
    expect(await readdir(out)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']));
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({ quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true });
    const { before, after } = summary.evalLoss;
    console.log(`quantize nf4+dq: eval loss ${before} → ${after}, mean layer error ${summary.meanRelError}`);
    expect(after).not.toBe(before);
    expect(Math.abs(after - before) / before).toBeLessThan(0.05);

    const ev = await run(['eval', '--model', out, '--data', data, '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout.trim().split('\n').pop()!).loss).toBeCloseTo(after, 5);
    // Quantizing as it loads gives the same weights, so the same loss.
    const onLoad = await run(['eval', '--model', tiny.dir, '--quant', 'nf4', '--double-quant', '--data', data, '--json']);
    expect(onLoad.code, onLoad.stderr).toBe(0);
    expect(JSON.parse(onLoad.stdout.trim().split('\n').pop()!).loss).toBeCloseTo(after, 5);

    // INT8 activations on top: dynamic per token, and static steps calibrated on the same rows.
    for (const flags of [['--act-int8', 'dynamic'], ['--act-int8', 'static', '--calib', data]]) {
      const a8 = await run(['eval', '--model', out, '--data', data, '--json', ...flags]);
      expect(a8.code, a8.stderr).toBe(0);
      const loss = JSON.parse(a8.stdout.trim().split('\n').pop()!).loss;
      expect(loss).not.toBe(after);
      expect(Math.abs(loss - after) / after).toBeLessThan(0.03);
    }
    expect((await run(['eval', '--model', out, '--data', data, '--act-int8', 'static'])).stderr).toMatch(/needs --calib FILE/);

    const again = await run(['quantize', '--model', tiny.dir, '--to', 'int8', '--out', out]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already exists and is not empty/);
  });

  it('rejects bad flags with the flag named', async () => {
    expect((await run(['quantize', '--model', tiny.dir, '--to', 'nf3', '--out', join(root, 'x')])).stderr).toMatch(/--to must be one of nf4, fp4, int8, int4/);
    expect((await run(['quantize', '--model', tiny.dir, '--to', 'nf4', '--block', '48', '--out', join(root, 'x')])).stderr).toMatch(/power of two/);
    expect((await run(['quantize', '--model', tiny.dir, '--to', 'int8', '--double-quant', '--out', join(root, 'x')])).stderr).toMatch(/Double quantization applies to nf4 and fp4/);
  });

  it('train --method qlora --plan prints the memory plan and trains nothing', async () => {
    const train = join(root, 'train.jsonl');
    await writeFile(train, `${Array.from({ length: 4 }, () => JSON.stringify({ text: 'hello there' })).join('\n')}\n`);
    const r = await run(['train', '--model', tiny.dir, '--data', train, '--out', join(root, 'run'), '--method', 'qlora', '--quant', 'fp4', '--batch', '2', '--seq-len', '16', '--plan']);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(plan.method).toBe('qlora');
    expect(plan.total).toBe(plan.weights + plan.adapter + plan.gradients + plan.optimizer + plan.activations + plan.workspace + 768);
    expect(r.stderr).toMatch(/memory plan \(qlora, fp4, batch 2 × 16 tokens\)/);
    const big = await run(['train', '--model', tiny.dir, '--data', train, '--out', join(root, 'run2'), '--method', 'qlora', '--max-memory', '1']);
    expect(big.code).not.toBe(0);
    expect(big.stderr).toMatch(/GpuOutOfMemoryError[\s\S]*lower --batch/);
  });
});
