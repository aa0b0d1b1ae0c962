// `whetstone train` end to end, in-process through main() on the studio's demo model
// (public/models/demo) with a tiny JSONL dataset: a few LoRA steps write the PEFT adapter, the model
// card, metrics.jsonl and checkpoints; `whetstone eval --adapter` then measures a lower loss on the
// data than the base model; --resume on the finished run continues from its last checkpoint and
// trains nothing more; a non-empty checkpoint folder without --resume is refused. An IA3 run goes
// through the same commands, its method found from the saved files.

import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCaptured } from './run-captured.ts';

const DEMO = 'public/models/demo';
let root = '';
let data = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-train-cli-'));
  data = join(root, 'data.jsonl');
  const texts = ['The apple is red.', 'The sky is blue.', 'The leaf is green.', 'The sun is yellow.'];
  await writeFile(data, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const run = runCaptured;

const lastJson = (s: string) => JSON.parse(s.trim().split('\n').pop() as string);

describe('whetstone train', () => {
  it('trains a LoRA adapter that eval --adapter scores lower than the base model, and resumes a finished run', async () => {
    const out = join(root, 'adapter');
    const args = ['train', '--model', DEMO, '--data', data, '--method', 'lora', '--out', out, '--targets', 'q_proj,v_proj', '--rank', '4', '--alpha', '8'];
    const opts = ['--steps', '3', '--batch', '4', '--seq-len', '32', '--lr', '3e-2', '--schedule', 'constant', '--save-every', '2', '--seed', '1'];
    const t = performance.now();
    const trained = await run([...args, ...opts]);
    const trainMs = performance.now() - t;
    expect(trained.code, trained.stderr).toBe(0);
    const summary = lastJson(trained.stdout);
    expect(summary).toMatchObject({ steps: 3, totalSteps: 3, resumedFrom: null });
    expect(trained.stderr).toMatch(/dataset: text, 4 training and 0 validation examples/);
    expect(trained.stderr).toMatch(/step 3\/3 {2}epoch 3\.00 {2}loss [0-9.]+ {2}lr 3\.00e-2 {2}\d+ tok\/s {2}ETA 0s/);
    expect((await readdir(out)).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'checkpoints', 'metrics.jsonl']);
    expect((await readdir(join(out, 'checkpoints'))).sort()).toEqual(['checkpoint-2', 'checkpoint-3']);
    const metrics = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(metrics[2].loss).toBeLessThan(metrics[0].loss);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: DEMO });
    const card = await readFile(join(out, 'README.md'), 'utf8');
    expect(card).toMatch(/^---\nbase_model: demo\n/);
    expect(card).toMatch(/AdamW/);

    const base = await run(['eval', '--model', DEMO, '--data', data, '--json']);
    const adapted = await run(['eval', '--model', DEMO, '--data', data, '--json', '--adapter', out]);
    expect(base.code, base.stderr).toBe(0);
    expect(adapted.code, adapted.stderr).toBe(0);
    const before = lastJson(base.stdout).loss;
    const after = lastJson(adapted.stdout).loss;
    console.log(`demo model, 3 LoRA steps in ${(trainMs / 1000).toFixed(1)} s: train loss ${metrics.map((m) => m.loss.toFixed(3)).join(' → ')}; eval loss ${before.toFixed(4)} → ${after.toFixed(4)} with --adapter`);
    expect(after).toBeLessThan(before - 0.1);

    const again = await run([...args, ...opts, '--resume']);
    expect(again.code, again.stderr).toBe(0);
    expect(lastJson(again.stdout)).toMatchObject({ steps: 3, resumedFrom: 3 });
    expect(again.stderr).toMatch(/resuming from the checkpoint of step 3/);
    expect((await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(3);

    const refused = await run([...args, ...opts]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already holds checkpoints \(steps 2, 3\)/);

    // Training further from the saved adapter keeps its shape and starts from its loss, not the base's.
    const more = join(root, 'more');
    const continued = await run(['train', '--model', DEMO, '--data', data, '--out', more, '--adapter', out, '--rank', '16', '--steps', '1', ...opts.slice(2)]);
    expect(continued.code, continued.stderr).toBe(0);
    expect(continued.stderr).toMatch(/continuing from the adapter in .* \(r 4, alpha 8\)/);
    expect(JSON.parse(await readFile(join(more, 'adapter_config.json'), 'utf8'))).toMatchObject({ r: 4, lora_alpha: 8 });
    const first = JSON.parse((await readFile(join(more, 'metrics.jsonl'), 'utf8')).trim().split('\n')[0]);
    expect(first.loss).toBeLessThan(metrics[0].loss - 0.1);
  });

  it('reports bad flags as typed errors', async () => {
    const r = await run(['train', '--model', DEMO, '--data', data, '--out', join(root, 'x'), '--schedule', 'step']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/InvalidArgumentError: --schedule must be constant, linear or cosine/);
    const m = await run(['train', '--model', DEMO, '--data', data, '--out', join(root, 'x'), '--method', 'bitfit']);
    expect(m.stderr).toMatch(/--method "bitfit" is not available; use one of lora, dora, ia3, prompt, prefix, adapter, full\b/);
  });

  it('trains an IA3 adapter that eval and export find by its files', async () => {
    const out = join(root, 'ia3');
    const opts = ['--steps', '2', '--batch', '4', '--seq-len', '32', '--lr', '1e-1', '--schedule', 'constant', '--seed', '1'];
    const trained = await run(['train', '--model', DEMO, '--data', data, '--method', 'ia3', '--out', out, ...opts]);
    expect(trained.code, trained.stderr).toBe(0);
    expect(trained.stderr).toMatch(/training [\d,]+ IA3 parameters \(\d+ modules, \d+ of them feed-forward\) of demo/);
    expect((await readdir(out)).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'checkpoints', 'metrics.jsonl']);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'IA3', target_modules: ['down_proj', 'k_proj', 'v_proj'], feedforward_modules: ['down_proj'], base_model_name_or_path: DEMO });
    // The first step's loss is the base model's (IA3 starts as the identity) on the same rows.
    const base = JSON.parse((await readFile(join(out, 'metrics.jsonl'), 'utf8')).split('\n')[0]).loss;
    const adapted = await run(['eval', '--model', DEMO, '--data', data, '--json', '--adapter', out]);
    expect(adapted.code, adapted.stderr).toBe(0);
    expect(lastJson(adapted.stdout).loss).toBeLessThan(base);
    const exported = await run(['export', '--model', DEMO, '--adapter', out, '--format', 'peft', '--dtype', 'bf16', '--out', join(root, 'ia3-bf16')]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(root, 'ia3-bf16', 'adapter_config.json'), 'utf8'))).toEqual(config);
    const gguf = await run(['export', '--model', DEMO, '--adapter', out, '--format', 'gguf', '--out', join(root, 'ia3.gguf')]);
    expect(gguf.code).toBe(1);
    expect(gguf.stderr).toMatch(/--format gguf is not available for IA3 adapters; they export as peft/);
  });
});
