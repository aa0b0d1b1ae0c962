// The files a finished LoRA run leaves, as the CLI and the studio write them: the PEFT pair with a
// model card that states the run's settings, data and losses; GGUF with a Modelfile that loads it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../model/config.ts';
import { createLoraConfig, expectedLoraModules } from '../peft/lora/config.ts';
import { Rng } from '../random.ts';
import { ggufAdapterFiles, trainedAdapterFiles } from './adapter-files.ts';

const modelConfig = parseModelConfig(JSON.parse(readFileSync('public/models/demo/config.json', 'utf8')));
const config = createLoraConfig({ r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: 'demo' });
const rng = new Rng(3);
const tensors = new Map(expectedLoraModules(config, modelConfig).map((s) => [s.path, { A: rng.fill(s.r * s.inFeatures, (q) => q.uniform(-1, 1)), B: rng.fill(s.outFeatures * s.r, (q) => q.uniform(-1, 1)) }]));
const run = {
  baseModel: 'demo',
  options: { lr: 1e-3, schedule: 'cosine' as const, batchSize: 2, gradAccum: 3, seqLen: 64, seed: 7 },
  result: { warmupSteps: 1, steps: 12, epochs: 1.234, trainLoss: 2.5, valLoss: 2.75 },
  precision: 'f32',
  dataset: { name: 'facts.jsonl', format: 'alpaca', trainExamples: 45, validationExamples: 5, tokens: 2950, countedTokens: 900 },
};

describe('trained adapter files', () => {
  it('are the PEFT pair and a model card with the run in it', () => {
    const files = trainedAdapterFiles(config, tensors, modelConfig, run);
    expect([...files.keys()].sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    expect(JSON.parse(new TextDecoder().decode(files.get('adapter_config.json')))).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, base_model_name_or_path: 'demo' });
    const card = new TextDecoder().decode(files.get('README.md'));
    for (const text of ['base_model: demo', 'facts.jsonl', '2.5', '2.75', '1.23', 'cosine']) expect(card).toContain(text);
  });

  it('as GGUF come with a Modelfile that names the base model and the adapter file', () => {
    const g = ggufAdapterFiles({ config, tensors, modelConfig, name: 'demo LoRA', baseModel: 'demo', adapterFile: 'x.gguf' });
    expect(new TextDecoder().decode(g.gguf.subarray(0, 4))).toBe('GGUF');
    expect(g.adapterFile).toBe('x.gguf');
    expect(g.modelfile).toContain('FROM demo');
    expect(g.modelfile).toContain('ADAPTER ./x.gguf');
  });
});
