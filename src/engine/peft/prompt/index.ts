// The prompt-tuning method's entry point: its config (config.ts) and adapter (model.ts). Nothing is computed here.

export * from './config.ts';
export { type CreatePromptTuningOptions, PromptTuningAdapter, createPromptTuning, loadPromptTuning } from './model.ts';
