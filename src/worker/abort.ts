// Abort tokens for EngineApi calls. An AbortSignal cannot cross a worker boundary, so the caller
// keeps an AbortController-like handle and passes a MessagePort (transferred); the worker turns it
// into an AbortSignal. Callers in the same thread (the CLI, tests) may pass an AbortSignal directly.

/** What EngineApi methods accept to be cancelled. */
export type AbortToken = MessagePort | AbortSignal;

/** The signal of `token` (a signal that never aborts when there is none) and a function that lets the token go. */
export function signalOf(token: AbortToken | undefined): { signal: AbortSignal; release(): void } {
  if (token === undefined) return { signal: new AbortController().signal, release: () => undefined };
  if (typeof AbortSignal !== 'undefined' && token instanceof AbortSignal) return { signal: token, release: () => undefined };
  const port = token as MessagePort;
  const controller = new AbortController();
  port.onmessage = () => controller.abort();
  return {
    signal: controller.signal,
    release: () => {
      port.onmessage = null;
      port.close();
    },
  };
}

/** The caller's side: `token` goes to the worker (transfer it), `abort()` cancels the call. */
export interface AbortHandle {
  readonly token: MessagePort;
  abort(): void;
}

export function createAbortHandle(): AbortHandle {
  const channel = new MessageChannel();
  let done = false;
  return {
    token: channel.port2,
    abort() {
      if (done) return;
      done = true;
      channel.port1.postMessage('abort');
    },
  };
}
