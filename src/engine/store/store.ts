// The BlobStore interface: cached files (downloaded models, later checkpoints and exports) keyed by
// '/'-separated strings such as `models/<org>/<name>@<revision>/<file>`. A blob is either partial
// (still being written with `append`, resumable after an interruption) or complete (sealed by
// `finalize`); a partial blob never reads or lists as complete. This file holds the interface, the
// key rules every implementation enforces, and the prefix matching they share. The implementations
// are store-memory.ts (the reference semantics) and store-node.ts (the file system); it does no I/O.

import { StoreError } from '../errors.ts';
import type { ByteSource } from '../io/source.ts';

/** What is known about one blob. */
export interface BlobInfo {
  key: string;
  /** Bytes present: the whole file when complete, what was written so far when partial. */
  size: number;
  complete: boolean;
  /**
   * A version tag of the content (an HTTP ETag or a content hash): given to `finalize` for a complete
   * blob, or recorded with `append` for a partial one (the version being downloaded).
   */
  etag?: string;
  /** For a partial blob: the size it will have when complete, when it was recorded with `append`. */
  expectedSize?: number;
}

/** Recorded alongside a partial blob so that a later resume can check it continues the same file. */
export interface PartialInfo {
  etag?: string;
  expectedSize?: number;
}

export interface StoreUsage {
  /** Blobs, complete or partial. */
  files: number;
  /** Bytes of all blobs, complete or partial. */
  bytes: number;
  /** Of those, the partial blobs. */
  partialFiles: number;
  partialBytes: number;
}

/** Adds up blob sizes into a StoreUsage (every store's usage()). */
export function tallyUsage(blobs: Iterable<{ size: number; complete: boolean }>): StoreUsage {
  const u: StoreUsage = { files: 0, bytes: 0, partialFiles: 0, partialBytes: 0 };
  for (const b of blobs) {
    u.files++;
    u.bytes += b.size;
    if (!b.complete) {
      u.partialFiles++;
      u.partialBytes += b.size;
    }
  }
  return u;
}

/**
 * A store of cached files. Prefixes (in `list` and `delete`) match whole key segments: '' selects
 * every key, a prefix ending in '/' selects every key below that folder, and any other prefix selects
 * the key equal to it and every key below `prefix + '/'` (so `delete('a/model.safetensors')` never
 * touches `a/model.safetensors.index.json`).
 */
export interface BlobStore {
  /** Shown in messages: a folder path, "memory", a database name. */
  readonly name: string;
  /** Bytes present for `key` (a partial blob included); 0 when there is no such blob. */
  size(key: string): Promise<number>;
  /** The blob's info, or null when there is none. */
  stat(key: string): Promise<BlobInfo | null>;
  /**
   * Appends `bytes` to the partial blob `key`, creating it when absent. `info`, when given, replaces
   * what is recorded with the partial blob. A complete blob cannot be appended to (delete it first).
   */
  append(key: string, bytes: Uint8Array, info?: PartialInfo): Promise<void>;
  /** Cuts the partial blob `key` to `length` bytes; 0 removes it. A complete blob cannot be truncated. */
  truncate(key: string, length: number): Promise<void>;
  /**
   * Marks the partial blob complete once it holds exactly `size` bytes (a missing blob is accepted
   * for size 0). Finalizing a complete blob of that size again only updates its etag.
   */
  finalize(key: string, meta: { size: number; etag?: string }): Promise<void>;
  isComplete(key: string): Promise<boolean>;
  /** Opens a complete blob for reading; a MissingFileError when it is absent or partial. */
  read(key: string): Promise<ByteSource>;
  /** Blobs under `prefix` (see above), complete and partial, sorted by key. */
  list(prefix: string): Promise<BlobInfo[]>;
  /** Removes the blobs under `prefix` (see above), complete and partial; returns how many. */
  delete(prefix: string): Promise<number>;
  usage(): Promise<StoreUsage>;
}

/** Longest key, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024;
/** Most '/'-separated segments in a key. */
export const MAX_KEY_SEGMENTS = 32;
/** Longest segment, in UTF-8 bytes (the common file-name limit). */
export const MAX_SEGMENT_BYTES = 200;

/** Suffixes store-node.ts gives a partial blob's data and sidecar files; no key segment may end with them. */
export const PARTIAL_SUFFIX = '.partial';
export const PARTIAL_INFO_SUFFIX = '.partial.json';
/** A top-level folder reserved for the stores' own bookkeeping. */
export const RESERVED_TOP = '.store';

// Characters that no file system of the supported platforms accepts in a name, and controls.
// eslint-disable-next-line no-control-regex
const BAD_CHARS = /[\u0000-\u001f\u007f<>:"|?*\\]/;

/**
 * Throws a StoreError unless `key` is a valid blob key: 1–32 non-empty segments separated by '/',
 * none '.' or '..', none ending in '.' or a space, no control characters or `<>:"|?*\`, no segment
 * ending in '.partial' or '.partial.json', and not under the reserved top-level '.store' folder.
 */
export function checkKey(key: string): void {
  const bad = (why: string) =>
    new StoreError(`Invalid store key ${JSON.stringify(key)}: ${why}.`, {
      hint: 'This is a bug in Whetstone (keys are built from validated names); please report it.',
    });
  if (typeof key !== 'string' || key.length === 0) throw bad('it is empty');
  if (key.length > MAX_KEY_LENGTH) throw bad(`it is longer than ${MAX_KEY_LENGTH} characters`);
  const segments = key.split('/');
  if (segments.length > MAX_KEY_SEGMENTS) throw bad(`it has more than ${MAX_KEY_SEGMENTS} segments`);
  if (segments[0] === RESERVED_TOP) throw bad(`the top-level folder ${RESERVED_TOP} is reserved`);
  for (const s of segments) {
    if (s === '') throw bad('it has an empty segment');
    if (s === '.' || s === '..') throw bad(`segment "${s}" is not allowed`);
    if (BAD_CHARS.test(s)) throw bad('it contains a control character or one of <>:"|?*\\');
    if (s.endsWith('.') || s.endsWith(' ')) throw bad('a segment ends with a dot or a space');
    if (s.endsWith(PARTIAL_SUFFIX) || s.endsWith(PARTIAL_INFO_SUFFIX)) throw bad(`a segment ends with the reserved ${PARTIAL_SUFFIX} suffix`);
    if (new TextEncoder().encode(s).byteLength > MAX_SEGMENT_BYTES) throw bad(`a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
}

/** Throws a StoreError unless `prefix` is '' or a key, optionally followed by '/'. */
export function checkPrefix(prefix: string): void {
  if (prefix === '') return;
  checkKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

/** Whether `key` lies under `prefix` by the segment rule of BlobStore. */
export function keyMatches(key: string, prefix: string): boolean {
  if (prefix === '') return true;
  if (prefix.endsWith('/')) return key.startsWith(prefix);
  return key === prefix || key.startsWith(`${prefix}/`);
}

/** Throws a StoreError unless `n` is a non-negative safe integer. */
export function checkByteCount(n: number, what: string, key: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new StoreError(`Invalid ${what} ${n} for ${key}: expected a non-negative integer.`);
}

/** The PartialInfo fields that are set, for recording. */
export function cleanInfo(info: PartialInfo): PartialInfo {
  const out: PartialInfo = {};
  if (info.etag !== undefined) out.etag = info.etag;
  if (info.expectedSize !== undefined) out.expectedSize = info.expectedSize;
  return out;
}
