// An in-memory BlobStore: the reference semantics of the store interface, used by tests and for
// throwaway sessions. It follows the file-system store's rules, including that a key cannot be both
// a blob and a folder of other blobs. Everything is lost when the process ends; it persists nothing.

import { MissingFileError, StoreError } from '../errors.ts';
import { type ByteSource, memorySource } from '../io/source.ts';
import {
  type BlobInfo,
  type BlobStore,
  type PartialInfo,
  type StoreUsage,
  checkByteCount,
  checkKey,
  checkPrefix,
  cleanInfo,
  keyMatches,
  tallyUsage,
} from './store.ts';

interface Entry {
  /** Capacity grows by doubling; bytes [0, length) are the content. */
  data: Uint8Array;
  length: number;
  complete: boolean;
  etag?: string;
  expectedSize?: number;
}

export class MemoryBlobStore implements BlobStore {
  readonly name: string;
  private readonly entries = new Map<string, Entry>();

  constructor(name = 'memory') {
    this.name = name;
  }

  async size(key: string): Promise<number> {
    checkKey(key);
    return this.entries.get(key)?.length ?? 0;
  }

  async stat(key: string): Promise<BlobInfo | null> {
    checkKey(key);
    const e = this.entries.get(key);
    return e ? info(key, e) : null;
  }

  async append(key: string, bytes: Uint8Array, partial?: PartialInfo): Promise<void> {
    checkKey(key);
    let e = this.entries.get(key);
    if (e?.complete) throw new StoreError(`${key} is complete; delete it before writing it again.`);
    if (!e) {
      this.checkNoConflict(key);
      e = { data: new Uint8Array(0), length: 0, complete: false };
      this.entries.set(key, e);
    }
    if (partial) {
      const c = cleanInfo(partial);
      e.etag = c.etag;
      e.expectedSize = c.expectedSize;
    }
    const need = e.length + bytes.byteLength;
    if (need > e.data.byteLength) {
      const grown = new Uint8Array(Math.max(need, e.data.byteLength * 2, 1024));
      grown.set(e.data.subarray(0, e.length));
      e.data = grown;
    }
    e.data.set(bytes, e.length);
    e.length = need;
  }

  async truncate(key: string, length: number): Promise<void> {
    checkKey(key);
    checkByteCount(length, 'length', key);
    const e = this.entries.get(key);
    if (e?.complete) throw new StoreError(`${key} is complete; it cannot be truncated.`);
    if (!e) {
      if (length === 0) return;
      throw new StoreError(`${key} has no partial data to truncate to ${length} bytes.`);
    }
    if (length > e.length) throw new StoreError(`${key} has ${e.length} bytes; it cannot be truncated to ${length}.`);
    if (length === 0) this.entries.delete(key);
    else e.length = length;
  }

  async finalize(key: string, meta: { size: number; etag?: string }): Promise<void> {
    checkKey(key);
    checkByteCount(meta.size, 'size', key);
    let e = this.entries.get(key);
    if (!e && meta.size === 0) {
      this.checkNoConflict(key);
      e = { data: new Uint8Array(0), length: 0, complete: false };
      this.entries.set(key, e);
    }
    if (!e) throw new StoreError(`${key} has no data to finalize.`);
    if (e.length !== meta.size) {
      throw new StoreError(`${key} has ${e.length} bytes; it cannot be finalized as ${meta.size} bytes.`);
    }
    e.data = e.data.slice(0, e.length);
    e.complete = true;
    e.etag = meta.etag;
    e.expectedSize = undefined;
  }

  async isComplete(key: string): Promise<boolean> {
    checkKey(key);
    return this.entries.get(key)?.complete ?? false;
  }

  async read(key: string): Promise<ByteSource> {
    checkKey(key);
    const e = this.entries.get(key);
    if (!e?.complete) {
      throw new MissingFileError(`${key} is ${e ? 'only partly downloaded' : 'not'} in the store.`, { file: `${this.name}:${key}` });
    }
    return memorySource(e.data, key);
  }

  async list(prefix: string): Promise<BlobInfo[]> {
    checkPrefix(prefix);
    return [...this.entries]
      .filter(([k]) => keyMatches(k, prefix))
      .map(([k, e]) => info(k, e))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(prefix: string): Promise<number> {
    checkPrefix(prefix);
    let n = 0;
    for (const k of [...this.entries.keys()]) {
      if (keyMatches(k, prefix)) {
        this.entries.delete(k);
        n++;
      }
    }
    return n;
  }

  async usage(): Promise<StoreUsage> {
    return tallyUsage([...this.entries.values()].map((e) => ({ size: e.length, complete: e.complete })));
  }

  /** A new key may not be a folder of an existing key, nor lie below one (as on a file system). */
  private checkNoConflict(key: string): void {
    for (const k of this.entries.keys()) {
      if (k.startsWith(`${key}/`) || key.startsWith(`${k}/`)) {
        throw new StoreError(`${key} cannot be stored: ${k} is in the way (a key cannot be both a file and a folder).`);
      }
    }
  }
}

function info(key: string, e: Entry): BlobInfo {
  const out: BlobInfo = { key, size: e.length, complete: e.complete };
  if (e.etag !== undefined) out.etag = e.etag;
  if (!e.complete && e.expectedSize !== undefined) out.expectedSize = e.expectedSize;
  return out;
}
