// The train command's flags (defaults as the Hugging Face Trainer and PEFT have them, each bad value
// a typed error naming the flag) and its progress line.

import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../engine/errors.ts';
import { parseTrainArgs, progressLine } from './train.ts';

const REQUIRED = ['--model', 'm', '--data', 'd.jsonl', '--out', 'o'];

describe('parseTrainArgs', () => {
  it('fills the defaults', () => {
    const o = parseTrainArgs(REQUIRED);
    expect(o.lora).toEqual({ r: 8, lora_alpha: 8, lora_dropout: 0, target_modules: 'all-linear', use_rslora: false });
    expect(o.train).toMatchObject({ lr: 2e-4, schedule: 'linear', warmup: 0, epochs: 3, maxSteps: undefined, batchSize: 8, gradAccum: 1, seqLen: 1024, seed: 42 });
    expect(o.train).toMatchObject({ maxGradNorm: 1, weightDecay: 0, evalEvery: 0, saveEvery: 500, checkpointBlocks: false });
    expect(o).toMatchObject({ val: null, valFraction: 0, resume: false, trainOnPrompt: false, packing: false, format: undefined, skipBadRows: false });
  });

  it('reads every flag', () => {
    const o = parseTrainArgs([
      ...REQUIRED,
      ...['--val', 'v.jsonl', '--method', 'lora', '--rank', '16', '--alpha', '32', '--dropout', '0.05', '--targets', 'q_proj, v_proj', '--rslora'],
      ...['--lr', '1e-4', '--schedule', 'cosine', '--warmup', '0.1', '--steps', '100', '--batch', '2', '--grad-accum', '4', '--seq-len', '512'],
      ...['--seed', '7', '--eval-every', '10', '--save-every', '20', '--resume', '--train-on-prompt', '--packing', '--format', 'alpaca', '--skip-bad-rows'],
      ...['--weight-decay', '0.01', '--max-grad-norm', '0', '--dtype', 'bf16', '--checkpoint-blocks'],
    ]);
    expect(o.lora).toEqual({ r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj'], use_rslora: true });
    expect(o.train).toMatchObject({ lr: 1e-4, schedule: 'cosine', warmup: 0.1, epochs: undefined, maxSteps: 100, batchSize: 2, gradAccum: 4, seqLen: 512, seed: 7 });
    expect(o.train).toMatchObject({ evalEvery: 10, saveEvery: 20, weightDecay: 0.01, maxGradNorm: 0, checkpointBlocks: true });
    expect(o).toMatchObject({ val: 'v.jsonl', resume: true, trainOnPrompt: true, packing: true, format: 'alpaca', skipBadRows: true, dtype: 'bf16' });
  });

  it('reads the options of another method through the method registry', () => {
    const o = parseTrainArgs([...REQUIRED, '--method', 'ia3', '--targets', 'k_proj,v_proj,down_proj', '--feedforward', 'down_proj']);
    expect(o.method).toBe('ia3');
    expect(o.methodOptions).toEqual({ target_modules: ['k_proj', 'v_proj', 'down_proj'], feedforward_modules: ['down_proj'] });
    expect(o.lora).toBeUndefined();
    expect(parseTrainArgs([...REQUIRED, '--method', 'ia3']).methodOptions).toEqual({ target_modules: null, feedforward_modules: null });
  });

  it('refuses missing and bad flags with the flag named', () => {
    expect(() => parseTrainArgs(['--data', 'd', '--out', 'o'])).toThrow(/--model is required/);
    expect(() => parseTrainArgs([...REQUIRED, '--method', 'bitfit'])).toThrow(/--method "bitfit" is not available; use one of lora, dora, ia3, prompt, prefix, adapter, full\b/);
    expect(() => parseTrainArgs([...REQUIRED, '--method', 'ia3', '--rank', '4'])).toThrow(/--rank is an option of LoRA and DoRA; --method ia3 does not take it/);
    expect(() => parseTrainArgs([...REQUIRED, '--feedforward', 'down_proj'])).toThrow(/--feedforward is an option of IA3/);
    expect(() => parseTrainArgs([...REQUIRED, '--epochs', '2', '--steps', '5'])).toThrow(/--epochs or --steps/);
    expect(() => parseTrainArgs([...REQUIRED, '--val', 'v', '--val-fraction', '0.1'])).toThrow(/--val FILE or --val-fraction/);
    expect(() => parseTrainArgs([...REQUIRED, '--warmup', '2.5'])).toThrow(/--warmup/);
    expect(() => parseTrainArgs([...REQUIRED, '--targets', 'q_proj;drop'])).toThrow(/--targets/);
    expect(() => parseTrainArgs([...REQUIRED, '--format', 'csv'])).toThrow(/--format must be one of/);
    expect(() => parseTrainArgs([...REQUIRED, '--batch', '0'])).toThrow(/--batch must be an integer/);
    expect(() => parseTrainArgs([...REQUIRED, '--dropout', '1'])).toThrow(/--dropout/);
    expect(() => parseTrainArgs([...REQUIRED, '--lr', 'fast'])).toThrow(InvalidArgumentError);
    expect(() => parseTrainArgs([...REQUIRED, '--frobnicate'])).toThrow();
  });
});

describe('parseTrainArgs --qat', () => {
  it('reads the format and block of quantization-aware full fine-tuning, and refuses it with another method or a quantized base', () => {
    expect(parseTrainArgs([...REQUIRED, '--method', 'full', '--qat', 'nf4']).qat).toEqual({ format: 'nf4', block: 64, doubleQuant: false, symmetric: true });
    expect(parseTrainArgs([...REQUIRED, '--method', 'full', '--qat', 'int4', '--block', '32'])).toMatchObject({ qat: { format: 'int4', block: 32 }, quant: undefined });
    expect(() => parseTrainArgs([...REQUIRED, '--method', 'lora', '--qat', 'nf4'])).toThrow(/does not go with --method lora/);
    expect(() => parseTrainArgs([...REQUIRED, '--method', 'qlora', '--qat', 'nf4'])).toThrow(/does not go with --method qlora/);
    expect(() => parseTrainArgs([...REQUIRED, '--method', 'full', '--qat', 'nf4', '--quant', 'nf4'])).toThrow(InvalidArgumentError);
    expect(() => parseTrainArgs([...REQUIRED, '--method', 'full', '--qat', 'nf4', '--double-quant'])).toThrow(/quantized base/);
    expect(() => parseTrainArgs([...REQUIRED, '--method', 'full', '--qat', 'nf5'])).toThrow(/--qat must be one of/);
    expect(() => parseTrainArgs([...REQUIRED, '--method', 'full', '--qat', 'nf4', '--block', '48'])).toThrow(/block size/);
  });
});

describe('progressLine', () => {
  it('shows step, epoch, loss, learning rate, throughput and ETA', () => {
    expect(progressLine({ phase: 'train', step: 12, totalSteps: 300, epoch: 0.123, loss: 2.34567, lr: 1.2e-4, tokensPerSecond: 1234.4, etaMs: 185_000 })).toBe(
      'step 12/300  epoch 0.12  loss 2.346  lr 1.20e-4  1234 tok/s  ETA 3m05s',
    );
    expect(progressLine({ phase: 'eval', step: 10, totalSteps: 300, epoch: 0.1, etaMs: null, rowsDone: 3, rowsTotal: 8 })).toBe('step 10/300  epoch 0.10  evaluating 3/8 rows  ETA ?');
    expect(progressLine({ phase: 'checkpoint', step: 20, totalSteps: 20, epoch: 1, etaMs: 0 })).toBe('step 20/20  epoch 1.00  saving checkpoint  ETA 0s');
  });
});
