// Results of EngineApi calls as plain, cloneable values: a value, or the typed error (name, message,
// hint, file, line) the UI explains. Errors never cross the worker boundary as exceptions, because
// structured cloning would drop their hint and location.

import { type SerializedError, describeError } from '../engine/errors.ts';

export type Result<T> = { ok: true; value: T } | { ok: false; error: SerializedError };

/** Runs `fn`; its value or its error, described. */
export async function attempt<T>(fn: () => Promise<T>): Promise<Result<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, error: describeError(e) };
  }
}
