// The prefix-tuning method's entry point: its config (config.ts) and adapter (model.ts). Nothing is computed here.

export * from './config.ts';
export { PrefixTuningAdapter, createPrefixTuning, loadPrefixTuning } from './model.ts';
