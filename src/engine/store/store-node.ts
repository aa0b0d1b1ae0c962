// The file-system BlobStore for Node (the CLI, tests). Keys map to paths under a root folder
// (WHETSTONE_HOME, or ~/.cache/whetstone): a complete blob is the plain file `<root>/<key>`, so a
// downloaded model is an ordinary model folder; a partial blob is `<root>/<key>.partial` with a small
// JSON sidecar `<root>/<key>.partial.json` (the version and size being downloaded), and `finalize`
// renames the data file into place, so an interrupted write never looks complete. The etag of a
// complete blob is kept in `<root>/.store/meta/<sha256 of key>.json`. Kept apart from store.ts so
// that browser bundles never import node:fs. It does not lock: one writer per key at a time.

import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile, readdir, rename, rm, rmdir, stat, truncate, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { MissingFileError, StoreError } from '../errors.ts';
import { openFileSource } from '../io/source-node.ts';
import type { ByteSource } from '../io/source.ts';
import {
  type BlobInfo,
  type BlobStore,
  MAX_KEY_SEGMENTS,
  PARTIAL_INFO_SUFFIX,
  PARTIAL_SUFFIX,
  type PartialInfo,
  RESERVED_TOP,
  type StoreUsage,
  checkByteCount,
  checkKey,
  checkPrefix,
  cleanInfo,
  keyMatches,
  tallyUsage,
} from './store.ts';

/** Sidecar and meta files are small; anything larger is not one of ours and is ignored. */
const MAX_META_BYTES = 64 * 1024;

/** The default store folder: $WHETSTONE_HOME, else $XDG_CACHE_HOME/whetstone, else ~/.cache/whetstone. */
export function defaultStoreRoot(env: Record<string, string | undefined> = process.env): string {
  if (env.WHETSTONE_HOME) return env.WHETSTONE_HOME;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'whetstone');
}

/** Opens (creating on first write) the store under `root`, by default defaultStoreRoot(). */
export function openNodeStore(root: string = defaultStoreRoot()): NodeBlobStore {
  return new NodeBlobStore(root);
}

export class NodeBlobStore implements BlobStore {
  readonly name: string;
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    this.name = root;
  }

  /** The path of the complete file for `key` (which exists only once the blob is finalized). */
  pathOf(key: string): string {
    checkKey(key);
    return join(this.root, ...key.split('/'));
  }

  async size(key: string): Promise<number> {
    return (await this.stat(key))?.size ?? 0;
  }

  async stat(key: string): Promise<BlobInfo | null> {
    const path = this.pathOf(key);
    const done = await fileSize(path, key);
    if (done !== null) {
      const meta = await readJson(this.metaPath(key));
      const out: BlobInfo = { key, size: done, complete: true };
      if (typeof meta?.etag === 'string') out.etag = meta.etag;
      return out;
    }
    const part = await fileSize(path + PARTIAL_SUFFIX, key);
    if (part === null) return null;
    return { key, size: part, complete: false, ...partialInfo(await readJson(path + PARTIAL_INFO_SUFFIX)) };
  }

  async append(key: string, bytes: Uint8Array, info?: PartialInfo): Promise<void> {
    const path = this.pathOf(key);
    if ((await fileSize(path, key)) !== null) throw new StoreError(`${key} is complete; delete it before writing it again.`, { file: path });
    await guard(key, path, () => mkdir(dirname(path), { recursive: true }));
    const exists = (await fileSize(path + PARTIAL_SUFFIX, key)) !== null;
    if (!exists) await this.checkNoConflict(key, path);
    if (info || !exists) {
      const sidecar = JSON.stringify({ key, ...cleanInfo(info ?? {}) });
      await guard(key, path, () => writeFile(path + PARTIAL_INFO_SUFFIX, sidecar));
    }
    await guard(key, path, () => appendFile(path + PARTIAL_SUFFIX, bytes));
  }

  async truncate(key: string, length: number): Promise<void> {
    const path = this.pathOf(key);
    checkByteCount(length, 'length', key);
    if ((await fileSize(path, key)) !== null) throw new StoreError(`${key} is complete; it cannot be truncated.`, { file: path });
    const have = await fileSize(path + PARTIAL_SUFFIX, key);
    if (have === null) {
      if (length === 0) return;
      throw new StoreError(`${key} has no partial data to truncate to ${length} bytes.`, { file: path });
    }
    if (length > have) throw new StoreError(`${key} has ${have} bytes; it cannot be truncated to ${length}.`, { file: path });
    if (length === 0) {
      await guard(key, path, () => rm(path + PARTIAL_SUFFIX, { force: true }));
      await guard(key, path, () => rm(path + PARTIAL_INFO_SUFFIX, { force: true }));
      await this.prune(dirname(path));
    } else {
      await guard(key, path, () => truncate(path + PARTIAL_SUFFIX, length));
    }
  }

  async finalize(key: string, meta: { size: number; etag?: string }): Promise<void> {
    const path = this.pathOf(key);
    checkByteCount(meta.size, 'size', key);
    const done = await fileSize(path, key);
    if (done !== null) {
      if (done !== meta.size) throw new StoreError(`${key} is complete with ${done} bytes, not ${meta.size}.`, { file: path });
      await this.writeMeta(key, meta);
      return;
    }
    let have = await fileSize(path + PARTIAL_SUFFIX, key);
    if (have === null && meta.size === 0) {
      await this.checkNoConflict(key, path);
      await guard(key, path, () => mkdir(dirname(path), { recursive: true }));
      await guard(key, path, () => writeFile(path + PARTIAL_SUFFIX, new Uint8Array(0)));
      have = 0;
    }
    if (have === null) throw new StoreError(`${key} has no data to finalize.`, { file: path });
    if (have !== meta.size) {
      throw new StoreError(`${key} has ${have} bytes; it cannot be finalized as ${meta.size} bytes.`, { file: path });
    }
    // The meta file first: a crash before the rename leaves a partial blob, which stays resumable.
    await this.writeMeta(key, meta);
    await guard(key, path, () => rename(path + PARTIAL_SUFFIX, path));
    await guard(key, path, () => rm(path + PARTIAL_INFO_SUFFIX, { force: true }));
  }

  async isComplete(key: string): Promise<boolean> {
    return (await fileSize(this.pathOf(key), key)) !== null;
  }

  async read(key: string): Promise<ByteSource> {
    const path = this.pathOf(key);
    if ((await fileSize(path, key)) === null) {
      const partial = (await fileSize(path + PARTIAL_SUFFIX, key)) !== null;
      throw new MissingFileError(`${key} is ${partial ? 'only partly downloaded' : 'not'} in the store.`, { file: path });
    }
    return openFileSource(path);
  }

  async list(prefix: string): Promise<BlobInfo[]> {
    checkPrefix(prefix);
    const found = new Map<string, { size: number; complete: boolean }>();
    const visit = async (dir: string, keyDir: string, depth: number, only?: string): Promise<void> => {
      if (depth > MAX_KEY_SEGMENTS) return;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isCode(e, 'ENOENT') || isCode(e, 'ENOTDIR')) return;
        throw wrap(e, `Listing ${dir} failed`, dir);
      }
      for (const ent of entries) {
        const name = ent.name;
        if (depth === 0 && name === RESERVED_TOP) continue;
        if (ent.isDirectory()) {
          if (only === undefined || name === only) await visit(join(dir, name), keyDir + name + '/', depth + 1);
        } else if (ent.isFile() && !name.endsWith(PARTIAL_INFO_SUFFIX)) {
          const partial = name.endsWith(PARTIAL_SUFFIX);
          const key = keyDir + (partial ? name.slice(0, -PARTIAL_SUFFIX.length) : name);
          if (!keyMatches(key, prefix) || !validKey(key) || found.get(key)?.complete) continue;
          const size = await fileSize(join(dir, name), key);
          if (size !== null) found.set(key, { size, complete: !partial });
        }
      }
    };
    if (prefix === '') await visit(this.root, '', 0);
    else if (prefix.endsWith('/')) await visit(join(this.root, ...prefix.slice(0, -1).split('/')), prefix, prefix.split('/').length - 1);
    else {
      const segs = prefix.split('/');
      const last = segs.pop() as string;
      await visit(join(this.root, ...segs), segs.length ? `${segs.join('/')}/` : '', segs.length, last);
    }
    const out: BlobInfo[] = [];
    for (const key of [...found.keys()].sort()) {
      const f = found.get(key) as { size: number; complete: boolean };
      if (f.complete) {
        const meta = await readJson(this.metaPath(key));
        out.push({ key, size: f.size, complete: true, ...(typeof meta?.etag === 'string' ? { etag: meta.etag } : {}) });
      } else {
        const path = this.pathOf(key);
        out.push({ key, size: f.size, complete: false, ...partialInfo(await readJson(path + PARTIAL_INFO_SUFFIX)) });
      }
    }
    return out;
  }

  async delete(prefix: string): Promise<number> {
    const blobs = await this.list(prefix);
    const dirs = new Set<string>();
    for (const b of blobs) {
      const path = this.pathOf(b.key);
      for (const p of [path, path + PARTIAL_SUFFIX, path + PARTIAL_INFO_SUFFIX, this.metaPath(b.key)]) {
        await guard(b.key, path, () => rm(p, { force: true }));
      }
      dirs.add(dirname(path));
    }
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) await this.prune(d);
    return blobs.length;
  }

  async usage(): Promise<StoreUsage> {
    return tallyUsage(await this.list(''));
  }

  /** A new key may not be a folder of an existing key, partial ones included, nor lie below one. */
  private async checkNoConflict(key: string, path: string): Promise<void> {
    const conflict = (other: string) =>
      new StoreError(`${key} cannot be stored: ${other} is in the way (a key cannot be both a file and a folder).`, { file: path });
    if (await isDirectory(path)) throw conflict(`the folder ${key}/`);
    const segs = key.split('/');
    for (let i = 1; i < segs.length; i++) {
      const above = segs.slice(0, i).join('/');
      const p = join(this.root, ...segs.slice(0, i));
      if ((await fileSize(p, above)) !== null || (await fileSize(p + PARTIAL_SUFFIX, above)) !== null) throw conflict(above);
    }
  }

  private metaPath(key: string): string {
    return join(this.root, RESERVED_TOP, 'meta', `${createHash('sha256').update(key).digest('hex')}.json`);
  }

  private async writeMeta(key: string, meta: { size: number; etag?: string }): Promise<void> {
    const path = this.metaPath(key);
    const body = JSON.stringify({ key, size: meta.size, ...(meta.etag !== undefined ? { etag: meta.etag } : {}) });
    await guard(key, path, () => mkdir(dirname(path), { recursive: true }));
    await guard(key, path, () => writeFile(path, body));
  }

  /** Removes `dir` and its parents up to (not including) the root while they are empty. */
  private async prune(dir: string): Promise<void> {
    let d = dir;
    for (let i = 0; i <= MAX_KEY_SEGMENTS && d.startsWith(this.root) && d !== this.root && d.length > this.root.length; i++) {
      try {
        await rmdir(d);
      } catch {
        return; // not empty, or already gone
      }
      d = dirname(d);
    }
  }
}

function validKey(key: string): boolean {
  try {
    checkKey(key);
    return true;
  } catch {
    return false;
  }
}

function isCode(e: unknown, code: string): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === code;
}

function wrap(e: unknown, what: string, path: string): Error {
  if (e instanceof StoreError) return e;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const hint =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'The disk is full: free some space, or delete cached models from the store, then run again to resume.'
      : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
        ? 'The store folder is not writable: fix its permissions or point WHETSTONE_HOME at another folder.'
        : code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST'
          ? 'A file and a folder of the store have the same name; delete the one that is in the way.'
          : undefined;
  return new StoreError(`${what}: ${(e as Error).message}`, { file: path, cause: e, hint });
}

async function guard<T>(key: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw wrap(e, `Writing ${key} to the store failed`, path);
  }
}

/** The size of the regular file at `path`, or null when there is none. */
async function fileSize(path: string, key: string): Promise<number | null> {
  try {
    const st = await stat(path);
    return st.isFile() ? st.size : null;
  } catch (e) {
    if (isCode(e, 'ENOENT') || isCode(e, 'ENOTDIR')) return null;
    throw wrap(e, `Reading ${key} from the store failed`, path);
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** A small JSON object file, or null when it is absent, too large or not a JSON object. */
async function readJson(path: string): Promise<Record<string, unknown> | null> {
  try {
    const st = await stat(path);
    if (!st.isFile() || st.size > MAX_META_BYTES) return null;
    const v: unknown = JSON.parse(await readFile(path, 'utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function partialInfo(j: Record<string, unknown> | null): PartialInfo {
  const out: PartialInfo = {};
  if (typeof j?.etag === 'string') out.etag = j.etag;
  if (typeof j?.expectedSize === 'number' && Number.isSafeInteger(j.expectedSize) && j.expectedSize >= 0) out.expectedSize = j.expectedSize;
  return out;
}
