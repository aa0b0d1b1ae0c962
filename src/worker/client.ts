// Starts the engine worker and returns its EngineApi as a comlink proxy; UI code calls this once.
// Also the two things a caller needs to pass to long calls across the worker boundary: a progress
// callback (a comlink proxy) and an abort handle whose token is transferred.
import { type Remote, proxy, transfer, wrap } from 'comlink';
import { type AbortHandle, createAbortHandle } from './abort.ts';
import type { EngineApi } from './engine-api.ts';

export type EngineClient = Remote<EngineApi>;

export function startEngineWorker(): EngineClient {
  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'whetstone-engine' });
  return wrap<EngineApi>(worker);
}

/** A progress callback the worker can call. */
export function progressCallback<P>(fn: (p: P) => void): (p: P) => void {
  return proxy(fn);
}

/** An abort handle whose `token` is marked for transfer: pass it once, as the call's abort argument. */
export function abortHandle(): AbortHandle {
  const h = createAbortHandle();
  return { token: transfer(h.token, [h.token]), abort: () => h.abort() };
}

export type { AbortHandle } from './abort.ts';
