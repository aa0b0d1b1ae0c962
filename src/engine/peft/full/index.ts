// The full fine-tuning method's entry point (model.ts). Nothing is computed here.

export { FULL_FINE_TUNE_BUDGET_BYTES, type FullSource, FullFineTune, checkFullFineTune, createFullFineTune, fullFineTuneBytes, loadFullFineTune } from './model.ts';
