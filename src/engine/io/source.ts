// Random-access byte sources: the one way parsers in io/ read user files. A ByteSource has a name
// (for messages), a size, and `read(offset, length)`; every read is bounds-checked against the size
// and must return exactly `length` bytes, or it throws a FileReadError naming the source and offset.
// Implementations here: an in-memory Uint8Array, a Blob or File (browser and Node), and an HTTP(S)
// URL read with Range requests. The Node file-path source lives in source-node.ts so that browser
// bundles never import node:fs. Nothing here parses formats.

import { CancelledError, FileReadError } from '../errors.ts';

export interface ByteSource {
  /** Shown in messages: a file name, a path or a URL. */
  readonly name: string;
  /** Total length in bytes. */
  readonly size: number;
  /** Exactly `length` bytes starting at `offset`, in a new array the caller owns. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases what the source holds open (a file handle); reads after close are not allowed. */
  close?(): Promise<void>;
}

/** Throws a FileReadError unless [offset, offset + length) lies inside `source`. */
export function checkRead(source: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new FileReadError(`Invalid read of ${length} bytes at offset ${offset}: both must be non-negative integers.`, {
      file: source.name,
    });
  }
  if (offset + length > source.size) {
    throw new FileReadError(
      `A read of ${length} bytes at offset ${offset} runs past the end of the ${source.size}-byte file (expected it to end by byte ${source.size}).`,
      { file: source.name, byteOffset: offset },
    );
  }
}

/** Throws a FileReadError when a read returned another number of bytes than asked for. */
export function checkReadLength(source: { name: string }, offset: number, expected: number, got: number): void {
  if (got !== expected) {
    throw new FileReadError(`Expected ${expected} bytes at offset ${offset}, got ${got}; the file may have changed or be truncated.`, {
      file: source.name,
      byteOffset: offset,
    });
  }
}

/** Reads a whole source of at most `maxBytes` as UTF-8 text (for JSON files). */
export async function readText(source: ByteSource, maxBytes: number): Promise<string> {
  if (source.size > maxBytes) {
    throw new FileReadError(`The file is ${source.size} bytes; at most ${maxBytes} bytes are expected for it.`, { file: source.name });
  }
  const bytes = await source.read(0, source.size);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    throw new FileReadError('The file is not valid UTF-8 text.', { file: source.name, byteOffset: 0, cause: e });
  }
}

/** A source over bytes already in memory. Reads return copies. */
export function memorySource(bytes: Uint8Array, name = 'memory'): ByteSource {
  const source: ByteSource = {
    name,
    size: bytes.byteLength,
    read(offset, length) {
      try {
        checkRead(source, offset, length);
      } catch (e) {
        return Promise.reject(e);
      }
      return Promise.resolve(bytes.slice(offset, offset + length));
    },
  };
  return source;
}

/** A source over a Blob or File (`File.name` is used when no name is given). */
export function blobSource(blob: Blob, name?: string): ByteSource {
  const source: ByteSource = {
    name: name ?? ((blob as Partial<File>).name || 'blob'),
    size: blob.size,
    async read(offset, length) {
      checkRead(source, offset, length);
      let buf: ArrayBuffer;
      try {
        buf = await blob.slice(offset, offset + length).arrayBuffer();
      } catch (e) {
        throw new FileReadError(`Could not read ${length} bytes at offset ${offset}: ${(e as Error).message}`, {
          file: source.name,
          byteOffset: offset,
          cause: e,
        });
      }
      checkReadLength(source, offset, length, buf.byteLength);
      return new Uint8Array(buf);
    },
  };
  return source;
}

export interface UrlSourceOptions {
  /** The fetch to use (tests, proxies, authenticated fetches); the global fetch by default. */
  fetch?: typeof fetch;
  /** Extra request headers (for example an Authorization header for gated Hub models). */
  headers?: Record<string, string>;
  /** The file size when already known (from a Hub listing); otherwise one Range request finds it. */
  size?: number;
  /** Cancels the probe and every later read with a CancelledError. */
  signal?: AbortSignal;
}

/**
 * Opens an HTTP(S) URL as a source. Every read is one `Range: bytes=a-b` request that must answer
 * 206 with exactly the bytes asked for; a server that ignores Range (200) is refused rather than
 * downloading the whole file for each read.
 */
export async function openUrlSource(url: string, options: UrlSourceOptions = {}): Promise<ByteSource> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const name = url;

  async function request(range: string, offset: number): Promise<Response> {
    if (options.signal?.aborted) throw new CancelledError(`Reading ${name} was cancelled.`);
    try {
      return await doFetch(url, { headers: { ...options.headers, Range: range }, signal: options.signal });
    } catch (e) {
      if (options.signal?.aborted) throw new CancelledError(`Reading ${name} was cancelled.`, { cause: e });
      throw new FileReadError(`The request for bytes ${range.slice(6)} failed: ${(e as Error).message}`, {
        file: name,
        byteOffset: offset,
        cause: e,
      });
    }
  }

  let size = options.size;
  if (size === undefined) {
    const res = await request('bytes=0-0', 0);
    const total = parseContentRangeTotal(res.headers.get('content-range'));
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 416 && total === 0) size = 0;
    else if (res.status === 206 && total !== null) size = total;
    else if (res.status === 200) throw rangeRefused(name, 0);
    else if (res.status === 206) {
      throw new FileReadError('The server answered a Range request without a usable Content-Range header, so the file size is unknown.', {
        file: name,
      });
    } else throw httpError(name, res, 0);
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new FileReadError(`Invalid size ${size} for the file.`, { file: name });
  }

  const source: ByteSource = {
    name,
    size,
    async read(offset, length) {
      checkRead(source, offset, length);
      if (length === 0) return new Uint8Array(0);
      const res = await request(`bytes=${offset}-${offset + length - 1}`, offset);
      if (res.status === 200) {
        await res.body?.cancel().catch(() => undefined);
        throw rangeRefused(name, offset);
      }
      if (res.status !== 206) {
        await res.body?.cancel().catch(() => undefined);
        throw httpError(name, res, offset);
      }
      const start = parseContentRangeStart(res.headers.get('content-range'));
      if (start !== null && start !== offset) {
        await res.body?.cancel().catch(() => undefined);
        throw new FileReadError(`Asked for bytes from offset ${offset}, the server sent bytes from offset ${start}.`, {
          file: name,
          byteOffset: offset,
        });
      }
      return readBody(res, name, offset, length, options.signal);
    },
  };
  return source;
}

/** Reads a response body into an array of exactly `length` bytes; stops as soon as it gets more. */
async function readBody(res: Response, name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let got = 0;
  try {
    if (!res.body) {
      const buf = new Uint8Array(await res.arrayBuffer());
      checkReadLength({ name }, offset, length, buf.byteLength);
      return buf;
    }
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (got + value.byteLength > length) {
        await reader.cancel().catch(() => undefined);
        throw new FileReadError(`Expected ${length} bytes at offset ${offset}, the server sent more.`, { file: name, byteOffset: offset });
      }
      out.set(value, got);
      got += value.byteLength;
    }
  } catch (e) {
    if (e instanceof FileReadError) throw e;
    if (signal?.aborted) throw new CancelledError(`Reading ${name} was cancelled.`, { cause: e });
    throw new FileReadError(`The download of ${length} bytes at offset ${offset} broke off: ${(e as Error).message}`, {
      file: name,
      byteOffset: offset,
      cause: e,
    });
  }
  checkReadLength({ name }, offset, length, got);
  return out;
}

function rangeRefused(name: string, offset: number): Error {
  return new FileReadError('The server ignored the Range request (it answered 200 with the whole file).', {
    file: name,
    byteOffset: offset,
    hint: 'Serve the file from a server that supports HTTP Range requests, or download it and open it as a file.',
  });
}

function httpError(name: string, res: Response, offset: number): Error {
  const auth = res.status === 401 || res.status === 403;
  return new FileReadError(`The server answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}.`, {
    file: name,
    byteOffset: offset,
    hint: auth ? 'The file needs an access token (gated or private model): sign in and accept its licence on the Hub.' : undefined,
  });
}

/** The total length from a Content-Range header (`bytes a-b/total`, or `bytes *` then `/total` on a 416); null when absent or unknown. */
export function parseContentRangeTotal(header: string | null): number | null {
  const m = header ? /^\s*bytes\s+(?:\d+-\d+|\*)\/(\d+)\s*$/i.exec(header) : null;
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

function parseContentRangeStart(header: string | null): number | null {
  const m = header ? /^\s*bytes\s+(\d+)-\d+\//i.exec(header) : null;
  return m ? Number(m[1]) : null;
}
