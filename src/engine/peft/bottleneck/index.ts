// The bottleneck-adapter method's entry point: its config and layout (config.ts) and adapter (model.ts). Nothing is computed here.

export * from './config.ts';
export { BottleneckAdapter, createBottleneck, loadBottleneck } from './model.ts';
