// LoRA as the method registry hands it out: a LoraAdapter behind the PeftAdapter interface (method
// id, forward options, PEFT export), delegating everything to it. The adapter itself is model.ts.

import type { Tape, Var } from '../../autograd/tape.ts';
import type { Batch } from '../../gpu/batch.ts';
import { type AdapterDType, exportPeftLora, savedLoraConfig } from '../../io/export-peft.ts';
import type { ForwardOptions, LlamaModel } from '../../model/llama.ts';
import type { PeftAdapter, SavedFiles } from '../adapter.ts';
import { type LoraAdapter, mergeLora, unmergeLora } from './model.ts';

export class LoraMethodAdapter implements PeftAdapter {
  readonly method: string;
  readonly lora: LoraAdapter;
  enabled = true;

  /** `method` is "lora" or "dora" (LoRA with use_dora). */
  constructor(lora: LoraAdapter, method = 'lora') {
    this.lora = lora;
    this.method = method;
  }

  get params() {
    return this.lora.params;
  }

  get training(): boolean {
    return this.lora.training;
  }

  set training(on: boolean) {
    this.lora.training = on;
  }

  get parameterCount(): number {
    return this.lora.parameterCount;
  }

  get parameterBytes(): number {
    return this.lora.parameterBytes;
  }

  get savedConfig(): Record<string, unknown> {
    return savedLoraConfig(this.lora.config, this.lora.modelConfig) as unknown as Record<string, unknown>;
  }

  describe(): string {
    return `r ${this.lora.config.r}, alpha ${this.lora.config.lora_alpha}`;
  }

  leaves(tape: Tape): Map<string, Var> {
    return this.lora.leaves(tape);
  }

  forwardOptions(tape: Tape, leaves: Map<string, Var>, step?: number): ForwardOptions {
    return this.enabled ? { projection: this.lora.hook(tape, leaves, step) } : {};
  }

  inferenceOptions(): ForwardOptions {
    return this.enabled ? { projection: this.lora.inference() } : {};
  }

  async merge(model: LlamaModel): Promise<void> {
    mergeLora(model, this.lora);
    await model.gpu.sync();
  }

  async unmerge(model: LlamaModel): Promise<void> {
    unmergeLora(model, this.lora);
    await model.gpu.sync();
  }

  async exportFiles(options: { dtype?: AdapterDType } = {}): Promise<SavedFiles> {
    return exportPeftLora({ config: this.lora.config, tensors: await this.lora.toTensors(), modelConfig: this.lora.modelConfig, dtype: options.dtype });
  }

  zeroGrads(b: Batch): void {
    this.lora.zeroGrads(b);
  }

  release(): void {
    this.lora.release();
  }
}
