import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MissingFileError, StoreError } from '../errors.ts';
import type { BlobStore } from './store.ts';
import { checkKey, keyMatches } from './store.ts';
import { MemoryBlobStore } from './store-memory.ts';
import { NodeBlobStore, defaultStoreRoot, openNodeStore } from './store-node.ts';

let tmp: string;
let n = 0;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'whetstone-store-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const bytes = (...v: number[]) => new Uint8Array(v);

async function readAll(store: BlobStore, key: string): Promise<Uint8Array> {
  const src = await store.read(key);
  try {
    return await src.read(0, src.size);
  } finally {
    await src.close?.();
  }
}

const makers: [string, () => BlobStore][] = [
  ['MemoryBlobStore', () => new MemoryBlobStore()],
  ['NodeBlobStore', () => new NodeBlobStore(join(tmp, `s${n++}`))],
];

describe.each(makers)('%s', (_name, make) => {
  it('appends a partial blob, which is not complete and cannot be read', async () => {
    const s = make();
    const k = 'models/a/b@main/model.safetensors';
    expect(await s.size(k)).toBe(0);
    expect(await s.stat(k)).toBeNull();
    await s.append(k, bytes(1, 2, 3), { etag: 'oid:abc', expectedSize: 5 });
    await s.append(k, bytes(4));
    expect(await s.size(k)).toBe(4);
    expect(await s.isComplete(k)).toBe(false);
    expect(await s.stat(k)).toEqual({ key: k, size: 4, complete: false, etag: 'oid:abc', expectedSize: 5 });
    await expect(s.read(k)).rejects.toThrow(MissingFileError);
    await expect(s.read(k)).rejects.toThrow(/partly downloaded/);
    await expect(s.finalize(k, { size: 5 })).rejects.toThrow(StoreError);
    expect(await s.isComplete(k)).toBe(false);
    await s.append(k, bytes(5));
    await s.finalize(k, { size: 5, etag: 'oid:abc' });
    expect(await s.isComplete(k)).toBe(true);
    expect(await s.stat(k)).toEqual({ key: k, size: 5, complete: true, etag: 'oid:abc' });
    expect(await readAll(s, k)).toEqual(bytes(1, 2, 3, 4, 5));
    await expect(s.append(k, bytes(6))).rejects.toThrow(/complete/);
    await expect(s.truncate(k, 0)).rejects.toThrow(StoreError);
    // Finalizing again with the same size only updates the etag.
    await s.finalize(k, { size: 5, etag: 'oid:def' });
    expect((await s.stat(k))?.etag).toBe('oid:def');
    await expect(s.finalize(k, { size: 6 })).rejects.toThrow(StoreError);
  });

  it('truncates partial blobs, and 0 removes them', async () => {
    const s = make();
    const k = 'x/file.bin';
    await s.append(k, bytes(1, 2, 3, 4));
    await s.truncate(k, 2);
    expect(await s.size(k)).toBe(2);
    await expect(s.truncate(k, 3)).rejects.toThrow(StoreError);
    await s.append(k, bytes(9));
    expect(await s.size(k)).toBe(3);
    await s.truncate(k, 0);
    expect(await s.stat(k)).toBeNull();
    await s.truncate('x/never', 0);
    await expect(s.truncate('x/never', 1)).rejects.toThrow(StoreError);
  });

  it('finalizes an empty blob that was never appended to', async () => {
    const s = make();
    await s.finalize('e/empty.json', { size: 0 });
    expect(await s.isComplete('e/empty.json')).toBe(true);
    expect((await readAll(s, 'e/empty.json')).byteLength).toBe(0);
    await expect(s.finalize('e/none.json', { size: 3 })).rejects.toThrow(StoreError);
  });

  it('lists and deletes by whole key segments', async () => {
    const s = make();
    const keys = ['m/a@main/model.safetensors', 'm/a@main/model.safetensors.index.json', 'm/a@main/config.json', 'm/ab@main/config.json'];
    for (const k of keys) {
      await s.append(k, bytes(7, 7));
      if (!k.endsWith('index.json')) await s.finalize(k, { size: 2 });
    }
    expect((await s.list('')).map((b) => b.key)).toEqual([...keys].sort());
    expect((await s.list('m/a@main/')).map((b) => b.key)).toEqual(keys.slice(0, 3).sort());
    expect((await s.list('m/a@main/model.safetensors')).map((b) => [b.key, b.complete])).toEqual([['m/a@main/model.safetensors', true]]);
    expect((await s.list('m/a')).length).toBe(0);
    expect(await s.usage()).toEqual({ files: 4, bytes: 8, partialFiles: 1, partialBytes: 2 });
    expect(await s.delete('m/a@main/model.safetensors')).toBe(1);
    expect(await s.stat('m/a@main/model.safetensors.index.json')).not.toBeNull();
    expect(await s.delete('m/a@main/')).toBe(2);
    expect((await s.list('')).map((b) => b.key)).toEqual(['m/ab@main/config.json']);
    expect(await s.delete('')).toBe(1);
    expect(await s.usage()).toEqual({ files: 0, bytes: 0, partialFiles: 0, partialBytes: 0 });
  });

  it('refuses a key that is both a file and a folder', async () => {
    const s = make();
    await s.append('c/file', bytes(1));
    await expect(s.append('c/file/inner', bytes(1))).rejects.toThrow(StoreError);
    await s.append('d/dir/inner', bytes(1));
    await expect(s.append('d/dir', bytes(1))).rejects.toThrow(StoreError);
  });

  it('rejects invalid keys', async () => {
    const s = make();
    for (const k of ['', '/a', 'a/', 'a//b', '../a', 'a/./b', 'a\\b', 'a/b.partial', 'a/b.partial.json', '.store/x', 'a:b', 'a/b.', 'a\u0000b']) {
      await expect(s.append(k, bytes(1)), k).rejects.toThrow(StoreError);
    }
    await expect(s.list('../')).rejects.toThrow(StoreError);
  });
});

describe('key rules', () => {
  it('match prefixes by whole segments', () => {
    expect(keyMatches('a/b', '')).toBe(true);
    expect(keyMatches('a/b', 'a/')).toBe(true);
    expect(keyMatches('a/b', 'a')).toBe(true);
    expect(keyMatches('ab/c', 'a')).toBe(false);
    expect(keyMatches('a/b.json', 'a/b')).toBe(false);
    expect(() => checkKey('models/org/name@main/config.json')).not.toThrow();
    expect(() => checkKey('x'.repeat(201))).toThrow(/longer/);
  });
});

describe('NodeBlobStore on disk', () => {
  it('keeps a partial blob as <file>.partial with a JSON sidecar and renames it on finalize', async () => {
    const root = join(tmp, 'disk');
    const s = openNodeStore(root);
    const k = 'models/o/n@main/model.safetensors';
    const path = join(root, 'models', 'o', 'n@main', 'model.safetensors');
    await s.append(k, bytes(1, 2), { etag: 'http:e1', expectedSize: 3 });
    expect(existsSync(path)).toBe(false);
    expect(await readFile(`${path}.partial`)).toEqual(Buffer.from([1, 2]));
    expect(JSON.parse(await readFile(`${path}.partial.json`, 'utf8'))).toMatchObject({ key: k, etag: 'http:e1', expectedSize: 3 });
    // Another instance over the same folder sees the same partial blob (resumable across processes).
    const again = new NodeBlobStore(root);
    expect(await again.stat(k)).toEqual({ key: k, size: 2, complete: false, etag: 'http:e1', expectedSize: 3 });
    await again.append(k, bytes(3));
    await again.finalize(k, { size: 3, etag: 'http:e1' });
    expect(await readFile(path)).toEqual(Buffer.from([1, 2, 3]));
    expect(existsSync(`${path}.partial`)).toBe(false);
    expect(existsSync(`${path}.partial.json`)).toBe(false);
    expect(await s.stat(k)).toEqual({ key: k, size: 3, complete: true, etag: 'http:e1' });
    expect(s.pathOf(k)).toBe(path);
    // The model folder holds only the model's files; bookkeeping lives under .store/.
    expect(await readdir(join(root, 'models', 'o', 'n@main'))).toEqual(['model.safetensors']);
    expect(await s.delete('models/')).toBe(1);
    expect(await readdir(root)).toEqual(['.store']);
  });

  it('defaults to WHETSTONE_HOME, then the XDG cache folder, then ~/.cache/whetstone', () => {
    expect(defaultStoreRoot({ WHETSTONE_HOME: '/data/w' })).toBe('/data/w');
    expect(defaultStoreRoot({ XDG_CACHE_HOME: '/c' })).toBe(join('/c', 'whetstone'));
    expect(defaultStoreRoot({})).toMatch(/[\\/]\.cache[\\/]whetstone$/);
  });
});
