// The HTTP side of Hub downloads: requests with bounded retries, HEAD/Range probes for a file's
// size, and the resumable transfer of one file into a BlobStore (streamed in bounded chunks, resumed
// with `Range: bytes=<have>-`, restarted from zero when the server answers 200 or the file changed,
// checked against the expected size), plus the throttled progress tracker. Which files to fetch and
// where they come from is decided in hub.ts; this file knows nothing of model folders.

import { CancelledError, DownloadError, HubAuthError, HubNotFoundError } from '../errors.ts';
import type { BlobStore } from '../store/store.ts';
import { parseContentRangeTotal } from './source.ts';

/** Bytes collected from the network before one `store.append`: bounds memory per download. */
export const FLUSH_BYTES = 4 * 1024 * 1024;
/** The most progress events per second (the last event is always sent). */
export const PROGRESS_INTERVAL_MS = 100;
/** Restarts of one file from zero (the server ignored Range, the file changed) before giving up. */
const MAX_RESTARTS = 2;

/** Progress of a model download. */
export interface DownloadProgress {
  /** The file being transferred (or last checked). */
  file: string;
  /** Bytes of that file present in the store. */
  fileBytes: number;
  /** Its size, or null while unknown. */
  fileTotal: number | null;
  /** Bytes of all the model's files present in the store, including those cached before this download. */
  bytes: number;
  /** Size of all the model's files (a size learnt only from a response adds to it then). */
  total: number;
  /** Recent network throughput, over the last few seconds. */
  bytesPerSecond: number;
}

/** One file to fetch. `etag` is a version tag: `oid:<hash>` from a listing or `http:<etag>` from a response. */
export interface PlannedFile {
  name: string;
  /** Store key. */
  key: string;
  url: string;
  size?: number;
  etag?: string;
}

export interface TransferContext {
  store: BlobStore;
  fetch: typeof fetch;
  /** Sent with every request (Authorization when a token is given). */
  headers: Record<string, string>;
  tokenGiven: boolean;
  signal?: AbortSignal;
  /** Extra attempts after a network failure, a broken-off body, HTTP 429 or 5xx. */
  retries: number;
  retryDelayMs: number;
  /** The repository and revision, for messages. */
  repo: string;
  revision: string;
  /** `org/name@revision`, for messages. */
  where: string;
  progress: ProgressTracker;
}

/** A request that never got a response (connection refused, reset, DNS). */
class NetworkFailure extends Error {}

export function checkCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CancelledError(`${what} was cancelled.`);
}

/** Waits `ms`, or throws a CancelledError as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  checkCancelled(signal, what);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CancelledError(`${what} was cancelled.`));
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function send(ctx: TransferContext, method: string, url: string, headers: Record<string, string>, what: string): Promise<Response> {
  checkCancelled(ctx.signal, what);
  try {
    return await ctx.fetch(url, { method, headers: { ...ctx.headers, ...headers }, signal: ctx.signal, redirect: 'follow' });
  } catch (e) {
    if (ctx.signal?.aborted) throw new CancelledError(`${what} was cancelled.`, { cause: e });
    throw new NetworkFailure((e as Error).message, { cause: e });
  }
}

function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

/** Discards a response body that is not read. */
export async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

/**
 * One request, repeated after network failures and HTTP 429/5xx up to `ctx.retries` times; returns
 * the last response (whatever its status) or throws a DownloadError when no response came.
 */
export async function requestWithRetry(
  ctx: TransferContext,
  method: string,
  url: string,
  headers: Record<string, string>,
  what: string,
): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await send(ctx, method, url, headers, what);
    } catch (e) {
      if (!(e instanceof NetworkFailure)) throw e;
      if (attempt >= ctx.retries) {
        throw new DownloadError(`${what} failed: ${e.message}.`, {
          file: url,
          cause: e,
          hint: 'Check the network connection (and HF_ENDPOINT, when set), then run again.',
        });
      }
      await sleep(ctx.retryDelayMs * (attempt + 1), ctx.signal, what);
      continue;
    }
    if (!retryable(res.status) || attempt >= ctx.retries) return res;
    await discard(res);
    await sleep(ctx.retryDelayMs * (attempt + 1), ctx.signal, what);
  }
}

/** The typed error for a response that is not a success; the body is discarded. */
export async function statusError(ctx: TransferContext, res: Response, url: string, what: string): Promise<Error> {
  await discard(res);
  const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
  if (res.status === 401 || res.status === 403) {
    return new HubAuthError(`The Hub refused ${what} (${status}).`, {
      file: url,
      hint: ctx.tokenGiven
        ? 'The access token was refused or has no access to this model: check that it is valid and has read access ' +
          '(https://huggingface.co/settings/tokens), and accept the license on the model page (gated models such as Llama 3.2 need this).'
        : 'This model is gated or private: pass an access token (HF_TOKEN) and accept the license on the model page (gated ' +
          'models such as Llama 3.2 need both). The Hub also answers this way for a repository that does not exist, so check its id.',
    });
  }
  if (res.status === 404) {
    return new HubNotFoundError(
      `The server answered ${what} with ${status}: repository ${ctx.repo} at revision ${ctx.revision} has no such file, or the repository or revision does not exist.`,
      { file: url },
    );
  }
  return new DownloadError(`The server answered ${what} with ${status}.`, { file: url });
}

/** A version tag from a response: `http:` + its X-Linked-Etag or ETag, without quotes or a weak marker. */
export function responseTag(res: Response): string | undefined {
  const raw = res.headers.get('x-linked-etag') ?? res.headers.get('etag');
  if (!raw) return undefined;
  const v = raw.trim().replace(/^W\//i, '').replace(/^"(.*)"$/, '$1');
  return v ? `http:${v}` : undefined;
}

/** Whether two version tags are known to name different contents (tags of different kinds are not compared). */
export function tagsConflict(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const ka = a.slice(0, a.indexOf(':'));
  const kb = b.slice(0, b.indexOf(':'));
  return ka === kb && a !== b;
}

/** The body length a response announces, when it is not content-encoded (then the length is of encoded bytes). */
function contentLength(res: Response): number | undefined {
  const enc = res.headers.get('content-encoding');
  if (enc && enc.toLowerCase() !== 'identity') return undefined;
  const h = res.headers.get('content-length');
  if (h === null || !/^\s*\d+\s*$/.test(h)) return undefined;
  const n = Number(h);
  return Number.isSafeInteger(n) ? n : undefined;
}

function contentRange(res: Response): { start: number; total: number | null } | null {
  const h = res.headers.get('content-range');
  const m = h ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(h) : null;
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === '*' ? null : Number(m[3]) };
}

/**
 * What the server says about a file without downloading it: a HEAD request, or, where HEAD is not
 * allowed (405/501), a `Range: bytes=0-0` request. Null when the file does not exist (404).
 */
export async function probeFile(ctx: TransferContext, url: string, name: string): Promise<{ size?: number; etag?: string } | null> {
  const what = `the request for ${name}`;
  let res = await requestWithRetry(ctx, 'HEAD', url, {}, what);
  if (res.status === 405 || res.status === 501) {
    await discard(res);
    res = await requestWithRetry(ctx, 'GET', url, { Range: 'bytes=0-0' }, what);
    if (res.status === 206 || res.status === 416) {
      await discard(res);
      const total = parseContentRangeTotal(res.headers.get('content-range'));
      return { size: total ?? undefined, etag: responseTag(res) };
    }
  }
  if (res.status === 404) {
    await discard(res);
    return null;
  }
  if (res.status !== 200) throw await statusError(ctx, res, url, what);
  await discard(res);
  return { size: contentLength(res), etag: responseTag(res) };
}

/**
 * Brings the stored state of `f` in line with what is expected of it, before any request: a complete
 * blob of another size or version is deleted, a partial one that cannot continue the expected file
 * is discarded. Returns the bytes present afterwards and whether the file is complete.
 */
export async function prepareFile(store: BlobStore, f: PlannedFile): Promise<{ bytes: number; complete: boolean }> {
  const info = await store.stat(f.key);
  if (!info) return { bytes: 0, complete: false };
  if (info.complete) {
    if ((f.size === undefined || info.size === f.size) && !tagsConflict(info.etag, f.etag)) return { bytes: info.size, complete: true };
    await store.delete(f.key);
    return { bytes: 0, complete: false };
  }
  const wrongSize = f.size !== undefined && (info.size > f.size || (info.expectedSize !== undefined && info.expectedSize !== f.size));
  if (wrongSize || tagsConflict(info.etag, f.etag)) {
    await store.truncate(f.key, 0);
    return { bytes: 0, complete: false };
  }
  return { bytes: info.size, complete: false };
}

/**
 * Downloads `f` into the store, resuming a partial blob, and finalizes it. Call prepareFile first.
 * On a network failure it retries (resuming) up to `ctx.retries` times; cancellation and failures
 * leave the bytes written so far as a resumable partial blob, except after a size mismatch that
 * shows they are not a prefix of the expected file (then they are discarded).
 */
export async function transferFile(ctx: TransferContext, f: PlannedFile): Promise<void> {
  const { store } = ctx;
  const what = `Downloading ${f.name}`;
  let failures = 0;
  let restarts = 0;
  const fail = async (message: string, cause?: unknown): Promise<void> => {
    if (ctx.signal?.aborted) throw new CancelledError(`${what} was cancelled.`, { cause });
    if (failures++ >= ctx.retries) {
      const have = await store.size(f.key);
      throw new DownloadError(`${message} ${have} bytes are saved; running the download again resumes from there.`, { file: f.url, cause });
    }
    await sleep(ctx.retryDelayMs * failures, ctx.signal, what);
  };
  const restart = async (res: Response | null, why: string): Promise<void> => {
    if (res) await discard(res);
    await store.truncate(f.key, 0);
    ctx.progress.setFile(f.name, 0, f.size ?? null);
    if (restarts++ >= MAX_RESTARTS) throw new DownloadError(`${what} restarted ${MAX_RESTARTS} times: ${why}.`, { file: f.url });
  };

  for (;;) {
    checkCancelled(ctx.signal, what);
    const info = await store.stat(f.key);
    if (info?.complete) return;
    let have = info?.size ?? 0;
    ctx.progress.setFile(f.name, have, f.size ?? info?.expectedSize ?? null);
    if (have > 0 && f.size !== undefined && have === f.size) {
      await store.finalize(f.key, { size: have, etag: f.etag ?? info?.etag });
      return;
    }

    let res: Response;
    try {
      res = await send(ctx, 'GET', f.url, have > 0 ? { Range: `bytes=${have}-` } : {}, what);
    } catch (e) {
      if (!(e instanceof NetworkFailure)) throw e;
      await fail(`The request for ${f.name} failed: ${e.message}.`, e);
      continue;
    }
    if (retryable(res.status)) {
      await discard(res);
      await fail(`The server answered HTTP ${res.status} for ${f.name}.`);
      continue;
    }

    let total: number | undefined;
    if (res.status === 416 && have > 0) {
      // Nothing left after `have`: the partial blob is the whole file when the sizes agree.
      const t = parseContentRangeTotal(res.headers.get('content-range'));
      if (t === have && (f.size === undefined || f.size === have)) {
        await discard(res);
        await store.finalize(f.key, { size: have, etag: f.etag ?? info?.etag });
        return;
      }
      await restart(res, 'the server refused to continue the saved part (HTTP 416)');
      continue;
    } else if (res.status === 206) {
      const cr = contentRange(res);
      if (!cr || cr.start !== have) {
        await restart(res, `the server answered a request for bytes from ${have} with Content-Range ${res.headers.get('content-range')}`);
        continue;
      }
      total = cr.total ?? undefined;
    } else if (res.status === 200) {
      if (have > 0) {
        // The server ignored Range and sends the whole file: start over with this response.
        await store.truncate(f.key, 0);
        have = 0;
        ctx.progress.setFile(f.name, 0, f.size ?? null);
      }
      total = contentLength(res);
    } else {
      throw await statusError(ctx, res, f.url, `the request for ${f.name}`);
    }

    const tag = responseTag(res);
    if (have > 0 && tagsConflict(info?.etag, tag)) {
      await restart(res, 'the file changed on the server');
      continue;
    }
    if (f.size !== undefined && total !== undefined && total !== f.size) {
      await discard(res);
      await store.truncate(f.key, 0);
      throw new DownloadError(`The server sends ${f.name} as ${total} bytes, but the repository listing says ${f.size} bytes.`, {
        file: f.url,
        hint: 'The file may have changed on the Hub during the download: run it again. If this repeats, the endpoint serves other files than it lists.',
      });
    }
    const expected = f.size ?? total;
    if (have === 0) await store.append(f.key, new Uint8Array(0), { etag: f.etag ?? tag, expectedSize: expected });
    ctx.progress.setFile(f.name, have, expected ?? null);

    const outcome = await streamBody(ctx, f, res, have, expected);
    if (outcome.kind === 'overflow') {
      await store.truncate(f.key, 0);
      throw new DownloadError(`The server sent more than the expected ${expected} bytes of ${f.name}; the bytes received were discarded.`, {
        file: f.url,
        hint: 'The file may have changed on the Hub during the download: run it again.',
      });
    }
    if (outcome.kind === 'broken') {
      await fail(`The download of ${f.name} broke off: ${(outcome.error as Error).message}.`, outcome.error);
      continue;
    }
    const size = outcome.size;
    if (expected !== undefined && size < expected) {
      await fail(`The server ended ${f.name} after ${size} of ${expected} bytes.`);
      continue;
    }
    await store.finalize(f.key, { size, etag: f.etag ?? tag ?? info?.etag });
    return;
  }
}

type BodyOutcome = { kind: 'done'; size: number } | { kind: 'broken'; error: unknown } | { kind: 'overflow' };

/**
 * Streams a response body into the store after `have` bytes, in appends of about FLUSH_BYTES. Bytes
 * received before a break or a cancellation are written before it returns or throws.
 */
async function streamBody(ctx: TransferContext, f: PlannedFile, res: Response, have: number, expected: number | undefined): Promise<BodyOutcome> {
  let written = have;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const chunk = pending.length === 1 ? pending[0] : concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await ctx.store.append(f.key, chunk);
    written += chunk.byteLength;
  };
  if (!res.body) {
    let buf: Uint8Array;
    try {
      buf = new Uint8Array(await res.arrayBuffer());
    } catch (error) {
      if (ctx.signal?.aborted) throw new CancelledError(`Downloading ${f.name} was cancelled.`, { cause: error });
      return { kind: 'broken', error };
    }
    if (expected !== undefined && have + buf.byteLength > expected) return { kind: 'overflow' };
    pending.push(buf);
    pendingBytes = buf.byteLength;
    ctx.progress.add(buf.byteLength);
    await flush();
    return { kind: 'done', size: written };
  }
  const reader = res.body.getReader();
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (error) {
      await flush();
      if (ctx.signal?.aborted) throw new CancelledError(`Downloading ${f.name} was cancelled; ${written} bytes are saved.`, { cause: error });
      return { kind: 'broken', error };
    }
    if (chunk.done) break;
    const value = chunk.value;
    if (expected !== undefined && written + pendingBytes + value.byteLength > expected) {
      await reader.cancel().catch(() => undefined);
      return { kind: 'overflow' };
    }
    pending.push(value);
    pendingBytes += value.byteLength;
    ctx.progress.add(value.byteLength);
    if (pendingBytes >= FLUSH_BYTES) {
      try {
        await flush();
      } catch (e) {
        await reader.cancel().catch(() => undefined);
        throw e;
      }
    }
  }
  await flush();
  return { kind: 'done', size: written };
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Turns byte counts into DownloadProgress events, at most one per PROGRESS_INTERVAL_MS except forced ones. */
export class ProgressTracker {
  /** Bytes present per file, and each file's size (null while unknown). */
  private readonly present = new Map<string, number>();
  private readonly sizes = new Map<string, number | null>();
  private file = '';
  private received = 0;
  private enabled = false;
  private lastEmit = -Infinity;
  private readonly samples: { t: number; received: number }[] = [];
  private readonly onProgress?: (p: DownloadProgress) => void;
  private readonly now: () => number;

  constructor(onProgress?: (p: DownloadProgress) => void, now: () => number = () => performance.now()) {
    this.onProgress = onProgress;
    this.now = now;
  }

  /** Sets the files that make up the total and starts sending events (none are sent before). */
  start(files: readonly { name: string; bytes: number; size: number | null }[]): void {
    this.present.clear();
    this.sizes.clear();
    for (const f of files) {
      this.present.set(f.name, f.bytes);
      this.sizes.set(f.name, f.size);
    }
    this.enabled = true;
    this.samples.length = 0;
    this.samples.push({ t: this.now(), received: this.received });
  }

  /** Switches to `file`, which has `bytes` present (fewer than counted before means it restarted). */
  setFile(file: string, bytes: number, size: number | null): void {
    this.file = file;
    this.present.set(file, bytes);
    if (size !== null || !this.sizes.has(file)) this.sizes.set(file, size);
    this.emit(false);
  }

  /** Counts `n` bytes received for the current file. */
  add(n: number): void {
    this.present.set(this.file, (this.present.get(this.file) ?? 0) + n);
    this.received += n;
    this.emit(false);
  }

  /** Sends an event now when `force`, else when the last one is at least PROGRESS_INTERVAL_MS old. */
  emit(force: boolean): void {
    if (!this.enabled || !this.onProgress) return;
    const t = this.now();
    if (!force && t - this.lastEmit < PROGRESS_INTERVAL_MS) return;
    this.lastEmit = t;
    this.samples.push({ t, received: this.received });
    while (this.samples.length > 2 && t - this.samples[0].t > 5000) this.samples.shift();
    let bytes = 0;
    let total = 0;
    for (const [name, have] of this.present) {
      const size = this.sizes.get(name) ?? null;
      bytes += have;
      total += size === null ? have : Math.max(size, have);
    }
    const first = this.samples[0];
    const dt = (t - first.t) / 1000;
    this.onProgress({
      file: this.file,
      fileBytes: this.present.get(this.file) ?? 0,
      fileTotal: this.sizes.get(this.file) ?? null,
      bytes,
      total,
      bytesPerSecond: dt > 0 ? (this.received - first.received) / dt : 0,
    });
  }
}
