// The LoRA method's entry point: what the rest of the engine imports for LoRA (and QLoRA, which is
// LoRA over a quantized base), and its registration record — id, PEFT type, config constructor and
// parser, and how to create, load, merge and unmerge an adapter — in the shape every method folder
// under peft/ exports. Nothing is computed here.

import { type LoraConfig, createLoraConfig, parseLoraConfig, serializeLoraConfig } from './config.ts';
import { createLora, loadLora, mergeLora, unmergeLora } from './model.ts';

export * from './config.ts';
export { type LoraTermOptions, loraTerm } from './layer.ts';
export {
  type CreateLoraOptions,
  type ExportMergedOptions,
  type ExportedFile,
  type LoadLoraOptions,
  type LoraInit,
  type LoraParam,
  type MergedModelSource,
  LoraAdapter,
  createLora,
  exportMergedModel,
  exportedBytes,
  loadLora,
  mergeLora,
  unmergeLora,
  withAdapter,
} from './model.ts';

/** The LoRA method as the studio lists it and drives it. */
export const LORA_METHOD = {
  /** The id used in settings and stores. */
  id: 'lora',
  /** adapter_config.json's peft_type. */
  peftType: 'LORA',
  name: 'LoRA',
  description: 'Low-rank adapters: a trainable update scale · B · A beside each chosen projection; the base weights stay frozen.',
  /** Export formats an adapter of this method can be written in. */
  exports: ['peft', 'gguf', 'merged'] as const,
  createConfig: (options: Partial<LoraConfig> = {}): LoraConfig => createLoraConfig(options),
  parseConfig: parseLoraConfig,
  serializeConfig: serializeLoraConfig,
  create: createLora,
  load: loadLora,
  merge: mergeLora,
  unmerge: unmergeLora,
} as const;
