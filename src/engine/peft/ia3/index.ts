// The IA3 method's entry point: its config (config.ts) and adapter (model.ts). Nothing is computed here.

export * from './config.ts';
export { type CreateIa3Options, type Ia3Param, Ia3Adapter, createIa3, loadIa3 } from './model.ts';
