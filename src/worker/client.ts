// Starts the engine worker and returns its EngineApi as a comlink proxy. UI code calls this once.
import { type Remote, wrap } from 'comlink';
import type { EngineApi } from './engine-api.ts';

export type EngineClient = Remote<EngineApi>;

export function startEngineWorker(): EngineClient {
  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'whetstone-engine' });
  return wrap<EngineApi>(worker);
}
