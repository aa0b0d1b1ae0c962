// The browser's BlobStore: IndexedDB through `idb`. Blobs are cut into fixed-size chunks so that a
// multi-gigabyte model never has to sit in one JavaScript value, and every operation is one
// IndexedDB transaction, so a crash or a closed tab leaves either the state before it or after it.
// Semantics are those of store-memory.ts (partial blobs that never read as complete, finalize,
// segment-wise prefixes, no key that is both a file and a folder); store-checks.ts holds the
// behavioural checks both stores pass. Also here: the storage estimate, the persistent-storage
// request, and quota failures turned into a StoreQuotaError whose hint names what to delete.
// It does not download or parse anything.
//
// Schema (database `whetstone`, version IDB_SCHEMA_VERSION):
//   files   keyPath `key`            one FileRecord per blob: size, complete, etag, expectedSize,
//                                    chunkBytes (the chunk size the blob was written with), gen
//                                    (a random id per blob, so a reader notices a replaced blob),
//                                    updated (ms since the epoch).
//   chunks  keyPath [`key`, `index`] ChunkRecord: bytes [index·chunkBytes, (index+1)·chunkBytes) of
//                                    the blob; every chunk but the last holds exactly chunkBytes.
//           index `by-key` on `key`  every chunk of one blob.
//   runs    keyPath `id`             (version 2) one record per training run of the studio: its
//                                    settings, status, progress and results (the record type is
//                                    RunRecord in src/worker/runs.ts; this layer stores it as is).
//   run-metrics keyPath [`runId`, `step`]  (version 2) one record per optimizer step of a run:
//                                    { runId, step, metrics } (metrics: StepMetrics).
//           index `by-run` on `runId` every step of one run.
// A run's files are blobs of the files/chunks stores under `runs/<runId>/`: its dataset file
// (`dataset/<name>`), its checkpoints (`checkpoints/checkpoint-<step>/`, BlobCheckpointStore) and,
// once finished, its adapter (`adapter/adapter_config.json`, `adapter/adapter_model.safetensors`,
// `adapter/README.md`).
// `upgradeSchema` is the migration path: it runs the steps from the stored version up to the
// current one, each step written once and never changed afterwards. IdbRunTables reads and writes
// the two run stores.

import { type DBSchema, type IDBPDatabase, type IDBPTransaction, deleteDB, openDB } from 'idb';
import { FileReadError, MissingFileError, StoreError, type ErrorDetails } from '../errors.ts';
import { formatBytes } from '../gpu/allocator.ts';
import { type ByteSource, checkRead, checkReadLength } from '../io/source.ts';
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

/** The schema version; raise it by one with each new step of `upgradeSchema`. */
export const IDB_SCHEMA_VERSION = 2;
export const DEFAULT_IDB_NAME = 'whetstone';
/** Bytes per chunk record of new blobs: small enough that reading a small tensor reads little more. */
export const DEFAULT_IDB_CHUNK_BYTES = 1024 * 1024;

export interface FileRecord {
  key: string;
  size: number;
  complete: boolean;
  etag?: string;
  expectedSize?: number;
  chunkBytes: number;
  gen: string;
  updated: number;
}

export interface ChunkRecord {
  key: string;
  index: number;
  data: ArrayBuffer;
}

/** A run record as stored: an object with a string id (its fields are the worker's RunRecord). */
export type StoredRun = { id: string } & Record<string, unknown>;

/** One optimizer step of a run. */
export interface StoredMetric {
  runId: string;
  step: number;
  metrics: unknown;
}

interface StoreSchema extends DBSchema {
  files: { key: string; value: FileRecord };
  chunks: { key: [string, number]; value: ChunkRecord; indexes: { 'by-key': string } };
  runs: { key: string; value: StoredRun };
  'run-metrics': { key: [string, number]; value: StoredMetric; indexes: { 'by-run': string } };
}

/** The part of an IDBPDatabase that `upgradeSchema` uses (so that tests can record the steps). */
export interface SchemaTarget {
  createObjectStore(name: string, options: IDBObjectStoreParameters): { createIndex(name: string, keyPath: string | string[]): unknown };
}

/** Brings a database from `oldVersion` (0 when new) to IDB_SCHEMA_VERSION, one step per version. */
export function upgradeSchema(db: SchemaTarget, oldVersion: number): void {
  if (oldVersion < 1) {
    db.createObjectStore('files', { keyPath: 'key' });
    const chunks = db.createObjectStore('chunks', { keyPath: ['key', 'index'] });
    chunks.createIndex('by-key', 'key');
  }
  if (oldVersion < 2) {
    db.createObjectStore('runs', { keyPath: 'id' });
    const metrics = db.createObjectStore('run-metrics', { keyPath: ['runId', 'step'] });
    metrics.createIndex('by-run', 'runId');
  }
}

/** Storage the browser gives this site, and whether it is kept under storage pressure. */
export interface StorageReport {
  /** Bytes this site uses (all of its storage, not only the store). */
  usage: number;
  /** Bytes this site may use. */
  quota: number;
  /** True when the browser keeps the site's data under storage pressure; null when unknown. */
  persisted: boolean | null;
}

/** `navigator.storage.estimate()` with `persisted()`, or null where the Storage API is missing. */
export async function estimateStorage(): Promise<StorageReport | null> {
  const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
  if (!storage || typeof storage.estimate !== 'function') return null;
  try {
    const e = await storage.estimate();
    const persisted = typeof storage.persisted === 'function' ? await storage.persisted() : null;
    return { usage: e.usage ?? 0, quota: e.quota ?? 0, persisted };
  } catch {
    return null;
  }
}

/** Asks the browser to keep this site's storage (persist.ts, which the page imports without the store). */
export { requestPersistentStorage } from './persist.ts';

/** A write needs more room than the browser allows this site; the hint names the largest folders of the store to delete. */
export class StoreQuotaError extends StoreError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details);
    this.name = 'StoreQuotaError';
  }
}

/** Whether `e` is the browser refusing a write for lack of quota. */
export function isQuotaError(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  return name === 'QuotaExceededError' || (e as { code?: unknown } | null)?.code === 22;
}

/** The hint of a StoreQuotaError: which folders to delete, largest first, and the site's storage. */
export function quotaHint(folders: readonly { folder: string; bytes: number }[], storage: StorageReport | null): string {
  const parts: string[] = [];
  const named = (list: readonly { folder: string; bytes: number }[]) => list.map((f) => `${f.folder} (${formatBytes(f.bytes)})`).join(', ');
  const runs = folders.filter((f) => f.folder.startsWith('runs/'));
  const files = folders.filter((f) => !f.folder.startsWith('runs/'));
  if (files.length > 0) parts.push(`Delete cached files you no longer need on the Model screen; the largest are ${named(files)}.`);
  if (runs.length > 0) parts.push(`Delete training runs you no longer need on the Export screen (their checkpoints and adapters); the largest are ${named(runs)}.`);
  if (folders.length === 0) {
    parts.push('The store is empty, so other data of this site or of the browser fills the quota.');
  }
  if (storage && storage.quota > 0) parts.push(`This site uses ${formatBytes(storage.usage)} of the ${formatBytes(storage.quota)} the browser allows it.`);
  parts.push('Freeing disk space raises what the browser allows.');
  return parts.join(' ');
}

export interface IdbStoreOptions {
  /** Database name; `whetstone` by default. Tests use their own. */
  dbName?: string;
  /** Chunk size of new blobs in bytes; 1 MiB by default. */
  chunkBytes?: number;
}

type Db = IDBPDatabase<StoreSchema>;
type WriteTx = IDBPTransaction<StoreSchema, ('files' | 'chunks')[], 'readwrite'>;

/** Opens (lazily, at the first operation) the IndexedDB store. */
export function openIdbStore(options: IdbStoreOptions = {}): IdbBlobStore {
  return new IdbBlobStore(options);
}

/** Removes a whole store database (tests; a "clear everything" action). */
export async function deleteIdbStore(dbName: string = DEFAULT_IDB_NAME): Promise<void> {
  await deleteDB(dbName);
}

export class IdbBlobStore implements BlobStore {
  readonly name: string;
  readonly dbName: string;
  private readonly chunkBytes: number;
  private db: Promise<Db> | null = null;

  constructor(options: IdbStoreOptions = {}) {
    this.dbName = options.dbName ?? DEFAULT_IDB_NAME;
    this.name = `IndexedDB ${this.dbName}`;
    this.chunkBytes = options.chunkBytes ?? DEFAULT_IDB_CHUNK_BYTES;
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes < 1) throw new StoreError(`Invalid chunk size ${this.chunkBytes}: expected a positive integer.`);
  }

  /** Closes the connection; the next operation opens it again. */
  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    if (db) (await db.catch(() => null))?.close();
  }

  async size(key: string): Promise<number> {
    checkKey(key);
    return (await this.record(key))?.size ?? 0;
  }

  async stat(key: string): Promise<BlobInfo | null> {
    checkKey(key);
    const r = await this.record(key);
    return r ? info(r) : null;
  }

  async isComplete(key: string): Promise<boolean> {
    checkKey(key);
    return (await this.record(key))?.complete ?? false;
  }

  async append(key: string, bytes: Uint8Array, partial?: PartialInfo): Promise<void> {
    checkKey(key);
    await this.write(key, async (tx) => {
      const files = tx.objectStore('files');
      const chunks = tx.objectStore('chunks');
      let r = await files.get(key);
      if (r?.complete) throw new StoreError(`${key} is complete; delete it before writing it again.`);
      if (!r) {
        await checkNoConflict(tx, key);
        r = { key, size: 0, complete: false, chunkBytes: this.chunkBytes, gen: newGen(), updated: Date.now() };
      }
      if (partial) {
        const c = cleanInfo(partial);
        r.etag = c.etag;
        r.expectedSize = c.expectedSize;
        if (r.etag === undefined) delete r.etag;
        if (r.expectedSize === undefined) delete r.expectedSize;
      }
      const cb = r.chunkBytes;
      let offset = r.size;
      let at = 0;
      while (at < bytes.byteLength) {
        const index = Math.floor(offset / cb);
        const within = offset - index * cb;
        const n = Math.min(cb - within, bytes.byteLength - at);
        const data = new Uint8Array(within + n);
        if (within > 0) {
          const tail = await chunks.get([key, index]);
          if (!tail || tail.data.byteLength < within) throw new StoreError(`${key} is damaged in ${this.name}: chunk ${index} is missing or short.`, { hint: DAMAGED_HINT });
          data.set(new Uint8Array(tail.data, 0, within));
        }
        data.set(bytes.subarray(at, at + n), within);
        await chunks.put({ key, index, data: data.buffer });
        offset += n;
        at += n;
      }
      r.size = offset;
      r.updated = Date.now();
      await files.put(r);
    });
  }

  async truncate(key: string, length: number): Promise<void> {
    checkKey(key);
    checkByteCount(length, 'length', key);
    await this.write(key, async (tx) => {
      const files = tx.objectStore('files');
      const chunks = tx.objectStore('chunks');
      const r = await files.get(key);
      if (r?.complete) throw new StoreError(`${key} is complete; it cannot be truncated.`);
      if (!r) {
        if (length === 0) return;
        throw new StoreError(`${key} has no partial data to truncate to ${length} bytes.`);
      }
      if (length > r.size) throw new StoreError(`${key} has ${r.size} bytes; it cannot be truncated to ${length}.`);
      if (length === 0) {
        await files.delete(key);
        await chunks.delete(chunkRange(key));
        return;
      }
      const cb = r.chunkBytes;
      const last = Math.ceil(length / cb) - 1;
      await chunks.delete(IDBKeyRange.bound([key, last + 1], [key, Infinity]));
      const keep = length - last * cb;
      const tail = await chunks.get([key, last]);
      if (!tail || tail.data.byteLength < keep) throw new StoreError(`${key} is damaged in ${this.name}: chunk ${last} is missing or short.`, { hint: DAMAGED_HINT });
      if (tail.data.byteLength > keep) await chunks.put({ key, index: last, data: tail.data.slice(0, keep) });
      r.size = length;
      r.updated = Date.now();
      await files.put(r);
    });
  }

  async finalize(key: string, meta: { size: number; etag?: string }): Promise<void> {
    checkKey(key);
    checkByteCount(meta.size, 'size', key);
    await this.write(key, async (tx) => {
      const files = tx.objectStore('files');
      let r = await files.get(key);
      if (!r && meta.size === 0) {
        await checkNoConflict(tx, key);
        r = { key, size: 0, complete: false, chunkBytes: this.chunkBytes, gen: newGen(), updated: Date.now() };
      }
      if (!r) throw new StoreError(`${key} has no data to finalize.`);
      if (r.size !== meta.size) throw new StoreError(`${key} has ${r.size} bytes; it cannot be finalized as ${meta.size} bytes.`);
      r.complete = true;
      if (meta.etag === undefined) delete r.etag;
      else r.etag = meta.etag;
      delete r.expectedSize;
      r.updated = Date.now();
      await files.put(r);
    });
  }

  async read(key: string): Promise<ByteSource> {
    checkKey(key);
    const r = await this.record(key);
    if (!r?.complete) {
      throw new MissingFileError(`${key} is ${r ? 'only partly downloaded' : 'not'} in the store.`, { file: `${this.name}:${key}` });
    }
    const { gen, chunkBytes: cb, size } = r;
    const source: ByteSource = {
      name: key,
      size,
      read: async (offset, length) => {
        checkRead(source, offset, length);
        if (length === 0) return new Uint8Array(0);
        const db = await this.open();
        const tx = db.transaction(['files', 'chunks'], 'readonly');
        const now = await tx.objectStore('files').get(key);
        if (!now || now.gen !== gen || !now.complete) {
          throw new FileReadError(`${key} was deleted or replaced in ${this.name} while it was being read.`, { file: key, byteOffset: offset });
        }
        const first = Math.floor(offset / cb);
        const last = Math.floor((offset + length - 1) / cb);
        const parts = await tx.objectStore('chunks').getAll(IDBKeyRange.bound([key, first], [key, last]));
        const out = new Uint8Array(length);
        let got = 0;
        for (const c of parts) {
          const start = c.index * cb;
          const from = Math.max(offset, start);
          const to = Math.min(offset + length, start + c.data.byteLength);
          if (to > from) {
            out.set(new Uint8Array(c.data, from - start, to - from), from - offset);
            got += to - from;
          }
        }
        checkReadLength(source, offset, length, got);
        return out;
      },
    };
    return source;
  }

  async list(prefix: string): Promise<BlobInfo[]> {
    checkPrefix(prefix);
    const db = await this.open();
    const records = await matching(db.transaction('files', 'readonly').objectStore('files'), prefix);
    return records.map(info).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(prefix: string): Promise<number> {
    checkPrefix(prefix);
    let n = 0;
    await this.write(prefix || '(everything)', async (tx) => {
      const files = tx.objectStore('files');
      const chunks = tx.objectStore('chunks');
      if (prefix === '') {
        n = await files.count();
        await files.clear();
        await chunks.clear();
        return;
      }
      for (const r of await matching(files, prefix)) {
        await files.delete(r.key);
        await chunks.delete(chunkRange(r.key));
        n++;
      }
    });
    return n;
  }

  async usage(): Promise<StoreUsage> {
    const db = await this.open();
    return tallyUsage(await db.getAll('files'));
  }

  /** The `limit` largest folders (a key without its last segment), by bytes of their blobs. */
  async largestFolders(limit: number): Promise<{ folder: string; bytes: number }[]> {
    const db = await this.open();
    const sums = new Map<string, number>();
    for (const r of await db.getAll('files')) {
      const i = r.key.lastIndexOf('/');
      // A run's files count as one folder, runs/<runId>/: a run is deleted as a whole.
      const run = /^runs\/[^/]+\//.exec(r.key);
      const folder = run ? run[0] : i < 0 ? r.key : r.key.slice(0, i + 1);
      sums.set(folder, (sums.get(folder) ?? 0) + r.size);
    }
    return [...sums]
      .map(([folder, bytes]) => ({ folder, bytes }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, limit);
  }

  private async record(key: string): Promise<FileRecord | undefined> {
    return (await this.open()).get('files', key);
  }

  /** Runs `body` in one read-write transaction over both object stores; quota failures become StoreQuotaError. */
  private async write(what: string, body: (tx: WriteTx) => Promise<void>): Promise<void> {
    const db = await this.open();
    let tx: WriteTx;
    try {
      tx = db.transaction(['files', 'chunks'], 'readwrite');
    } catch (e) {
      throw await this.failure(e, what);
    }
    const done = tx.done;
    try {
      await body(tx);
      await done;
    } catch (e) {
      done.catch(() => undefined);
      try {
        tx.abort();
      } catch {
        // The transaction has already finished or aborted.
      }
      throw await this.failure(e, what);
    }
  }

  /** Our own errors pass through; a quota failure becomes StoreQuotaError; anything else a StoreError. */
  private async failure(e: unknown, what: string): Promise<unknown> {
    if (e instanceof StoreError || e instanceof MissingFileError) return e;
    if (isQuotaError(e)) {
      const folders = await this.largestFolders(3).catch(() => []);
      const storage = await estimateStorage();
      return new StoreQuotaError(`There is no room left in ${this.name} to write ${what}.`, { hint: quotaHint(folders, storage), cause: e });
    }
    const message = (e as Error)?.message ?? String(e);
    return new StoreError(`Writing ${what} to ${this.name} failed: ${message}`, { cause: e });
  }

  private open(): Promise<Db> {
    if (!this.db) {
      this.db = openStoreDb(this.dbName, this.name, {
        close: () => void this.close(),
        forget: () => {
          this.db = null;
        },
      });
    }
    return this.db;
  }
}

/** Opens the database at IDB_SCHEMA_VERSION, upgrading it; `on.close` runs when another tab needs a newer version. */
function openStoreDb(dbName: string, name: string, on: { close(): void; forget(): void }): Promise<Db> {
  const opening = openDB<StoreSchema>(dbName, IDB_SCHEMA_VERSION, {
    upgrade: (db, oldVersion) => upgradeSchema(db as unknown as SchemaTarget, oldVersion),
    // Another tab opens a newer version: close so that its upgrade can run; the next call reopens.
    blocking: () => on.close(),
    terminated: () => on.forget(),
  });
  return opening.catch((e: unknown) => {
    on.forget();
    throw new StoreError(`${name} could not be opened: ${(e as Error)?.message ?? String(e)}`, {
      cause: e,
      hint: 'IndexedDB is unavailable in private windows of some browsers and when site data is blocked; allow site data for this page.',
    });
  });
}

const RUN_QUOTA_HINT =
  'Delete training runs you no longer need on the Export screen, or cached models on the Model screen; freeing disk space raises what the browser allows.';

/**
 * The run records of the studio (`runs` and `run-metrics`) in the same database as the blobs. Every
 * method is one transaction; a quota failure becomes a StoreQuotaError that says what to delete.
 */
export class IdbRunTables {
  readonly name: string;
  private db: Promise<Db> | null = null;

  constructor(readonly dbName: string = DEFAULT_IDB_NAME) {
    this.name = `IndexedDB ${dbName}`;
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    if (db) (await db.catch(() => null))?.close();
  }

  async getRun(id: string): Promise<StoredRun | null> {
    return (await (await this.open()).get('runs', id)) ?? null;
  }

  async listRuns(): Promise<StoredRun[]> {
    return (await this.open()).getAll('runs');
  }

  async putRun(run: StoredRun): Promise<void> {
    await this.write(`the record of run ${run.id}`, ['runs'], async (tx) => {
      await tx.objectStore('runs').put(run);
    });
  }

  /** Removes a run's record and every metrics record of it. */
  async deleteRun(id: string): Promise<void> {
    await this.write(`run ${id}`, ['runs', 'run-metrics'], async (tx) => {
      await tx.objectStore('runs').delete(id);
      await tx.objectStore('run-metrics').delete(IDBKeyRange.bound([id, -Infinity], [id, Infinity]));
    });
  }

  /** Adds (or replaces) metrics records. */
  async putMetrics(rows: readonly StoredMetric[]): Promise<void> {
    if (rows.length === 0) return;
    await this.write(`the metrics of run ${rows[0].runId}`, ['run-metrics'], async (tx) => {
      const store = tx.objectStore('run-metrics');
      for (const r of rows) await store.put(r);
    });
  }

  /** A run's metrics records, by step. */
  async metrics(runId: string): Promise<StoredMetric[]> {
    return (await this.open()).getAll('run-metrics', IDBKeyRange.bound([runId, -Infinity], [runId, Infinity]));
  }

  /** Removes a run's metrics records of steps after `step`. */
  async deleteMetricsAfter(runId: string, step: number): Promise<void> {
    await this.write(`the metrics of run ${runId}`, ['run-metrics'], async (tx) => {
      await tx.objectStore('run-metrics').delete(IDBKeyRange.bound([runId, step], [runId, Infinity], true, false));
    });
  }

  private async write(
    what: string,
    stores: ('runs' | 'run-metrics')[],
    body: (tx: IDBPTransaction<StoreSchema, ('runs' | 'run-metrics')[], 'readwrite'>) => Promise<void>,
  ): Promise<void> {
    const db = await this.open();
    try {
      const tx = db.transaction(stores, 'readwrite');
      const done = tx.done;
      try {
        await body(tx);
        await done;
      } catch (e) {
        done.catch(() => undefined);
        try {
          tx.abort();
        } catch {
          // The transaction has already finished or aborted.
        }
        throw e;
      }
    } catch (e) {
      if (e instanceof StoreError) throw e;
      if (isQuotaError(e)) throw new StoreQuotaError(`There is no room left in ${this.name} to write ${what}.`, { hint: RUN_QUOTA_HINT, cause: e });
      throw new StoreError(`Writing ${what} to ${this.name} failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
  }

  private open(): Promise<Db> {
    if (!this.db) {
      this.db = openStoreDb(this.dbName, this.name, {
        close: () => void this.close(),
        forget: () => {
          this.db = null;
        },
      });
    }
    return this.db;
  }
}

const DAMAGED_HINT = 'Delete the file (or its model) on the Model screen and download it again.';

function info(r: FileRecord): BlobInfo {
  const out: BlobInfo = { key: r.key, size: r.size, complete: r.complete };
  if (r.etag !== undefined) out.etag = r.etag;
  if (!r.complete && r.expectedSize !== undefined) out.expectedSize = r.expectedSize;
  return out;
}

function chunkRange(key: string): IDBKeyRange {
  return IDBKeyRange.bound([key, 0], [key, Infinity]);
}

/** Keys that start with `folder` ('…/'): '0' is the character after '/'. */
function folderRange(folder: string): IDBKeyRange {
  return IDBKeyRange.bound(folder, `${folder.slice(0, -1)}0`, false, true);
}

interface FileIndex {
  get(key: string): Promise<FileRecord | undefined>;
  getAll(range?: IDBKeyRange): Promise<FileRecord[]>;
}

/** The records under `prefix` by the segment rule of BlobStore. */
async function matching(files: FileIndex, prefix: string): Promise<FileRecord[]> {
  if (prefix === '') return files.getAll();
  if (prefix.endsWith('/')) return files.getAll(folderRange(prefix));
  const exact = await files.get(prefix);
  const below = await files.getAll(folderRange(`${prefix}/`));
  return [...(exact ? [exact] : []), ...below].filter((r) => keyMatches(r.key, prefix));
}

/** A new key may not be a folder of an existing key, nor lie below one (as on a file system). */
async function checkNoConflict(tx: WriteTx, key: string): Promise<void> {
  const files = tx.objectStore('files');
  const below = await files.getKey(folderRange(`${key}/`));
  if (below !== undefined) throw conflict(key, below);
  const segments = key.split('/');
  for (let i = 1; i < segments.length; i++) {
    const folder = segments.slice(0, i).join('/');
    if ((await files.getKey(folder)) !== undefined) throw conflict(key, folder);
  }
}

function conflict(key: string, other: string): Error {
  return new StoreError(`${key} cannot be stored: ${other} is in the way (a key cannot be both a file and a folder).`);
}

function newGen(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
