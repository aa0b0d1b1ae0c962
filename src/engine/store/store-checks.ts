// Behavioural checks of the BlobStore contract, written once and run against every implementation:
// store-idb.test.ts runs them on the memory store (the reference semantics) and the file-system
// store in Node, and e2e/store-idb.spec.ts runs them on the IndexedDB store in Chromium. They depend
// on no test framework: each check throws an Error naming what differed. Give stores a small chunk
// size where they have one, so that reads and truncation cross chunk boundaries.

import { MissingFileError, StoreError } from '../errors.ts';
import type { BlobStore } from './store.ts';

export interface StoreCheck {
  name: string;
  run(make: () => BlobStore | Promise<BlobStore>): Promise<void>;
}

/** Runs every check on fresh stores from `make`; returns the names of the checks, all passed. Throws at the first failure. */
export async function runStoreChecks(make: () => BlobStore | Promise<BlobStore>): Promise<string[]> {
  const passed: string[] = [];
  for (const check of STORE_CHECKS) {
    try {
      await check.run(make);
    } catch (e) {
      throw new Error(`Store check "${check.name}" failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    passed.push(check.name);
  }
  return passed;
}

const bytes = (...v: number[]) => new Uint8Array(v);

/** Deterministic pseudo-random bytes (xorshift32), so that misplaced chunks show. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function readAll(store: BlobStore, key: string): Promise<Uint8Array> {
  const src = await store.read(key);
  try {
    return await src.read(0, src.size);
  } finally {
    await src.close?.();
  }
}

/** JSON with sorted keys and without undefined members, for comparing plain values. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (val instanceof Uint8Array) return Array.from(val);
    if (val && typeof val === 'object' && !Array.isArray(val)) {
      return Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return val;
  });
}

function equal(actual: unknown, expected: unknown, what: string): void {
  const a = canonical(actual);
  const e = canonical(expected);
  if (a !== e) throw new Error(`${what}: expected ${e.length > 300 ? `${e.slice(0, 300)}…` : e}, got ${a.length > 300 ? `${a.slice(0, 300)}…` : a}`);
}

function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (actual.byteLength !== expected.byteLength) throw new Error(`${what}: expected ${expected.byteLength} bytes, got ${actual.byteLength}`);
  for (let i = 0; i < actual.byteLength; i++) {
    if (actual[i] !== expected[i]) throw new Error(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

type ErrorClass = abstract new (...args: never[]) => Error;

async function rejects(p: Promise<unknown>, cls: ErrorClass, what: string, message?: RegExp): Promise<void> {
  let error: unknown = null;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  if (error === null) throw new Error(`${what}: expected a ${cls.name}, but it succeeded`);
  if (!(error instanceof cls)) throw new Error(`${what}: expected a ${cls.name}, got ${(error as Error)?.name}: ${(error as Error)?.message}`);
  if (message && !message.test((error as Error).message)) throw new Error(`${what}: the message "${(error as Error).message}" does not match ${message}`);
}

export const STORE_CHECKS: readonly StoreCheck[] = [
  {
    name: 'a partial blob is not complete and cannot be read until finalized',
    async run(make) {
      const s = await make();
      const k = 'models/a/b@main/model.safetensors';
      equal(await s.size(k), 0, 'size of a missing blob');
      equal(await s.stat(k), null, 'stat of a missing blob');
      await s.append(k, bytes(1, 2, 3), { etag: 'oid:abc', expectedSize: 5 });
      await s.append(k, bytes(4));
      equal(await s.size(k), 4, 'size after two appends');
      equal(await s.isComplete(k), false, 'isComplete of a partial blob');
      equal(await s.stat(k), { key: k, size: 4, complete: false, etag: 'oid:abc', expectedSize: 5 }, 'stat of a partial blob');
      await rejects(s.read(k), MissingFileError, 'reading a partial blob', /partly downloaded/);
      await rejects(s.finalize(k, { size: 5 }), StoreError, 'finalizing with the wrong size');
      equal(await s.isComplete(k), false, 'isComplete after a refused finalize');
      await s.append(k, bytes(5));
      await s.finalize(k, { size: 5, etag: 'oid:abc' });
      equal(await s.isComplete(k), true, 'isComplete after finalize');
      equal(await s.stat(k), { key: k, size: 5, complete: true, etag: 'oid:abc' }, 'stat of a complete blob');
      sameBytes(await readAll(s, k), bytes(1, 2, 3, 4, 5), 'content');
      await rejects(s.append(k, bytes(6)), StoreError, 'appending to a complete blob', /complete/);
      await rejects(s.truncate(k, 0), StoreError, 'truncating a complete blob');
      await s.finalize(k, { size: 5, etag: 'oid:def' });
      equal((await s.stat(k))?.etag, 'oid:def', 'etag after finalizing again');
      await rejects(s.finalize(k, { size: 6 }), StoreError, 'finalizing a complete blob with another size');
      await rejects(s.read('models/a/b@main/none.json'), MissingFileError, 'reading a missing blob', /not in the store/);
    },
  },
  {
    name: 'append with info replaces what is recorded; finalize without an etag drops it',
    async run(make) {
      const s = await make();
      const k = 'p/file.bin';
      await s.append(k, bytes(1), { etag: 'http:one', expectedSize: 9 });
      await s.append(k, bytes(2), { etag: 'http:two' });
      equal(await s.stat(k), { key: k, size: 2, complete: false, etag: 'http:two' }, 'stat after replacing the info');
      await s.finalize(k, { size: 2 });
      equal(await s.stat(k), { key: k, size: 2, complete: true }, 'stat after finalize without etag');
    },
  },
  {
    name: 'truncate cuts partial blobs, and 0 removes them',
    async run(make) {
      const s = await make();
      const k = 'x/file.bin';
      await s.append(k, bytes(1, 2, 3, 4));
      await s.truncate(k, 2);
      equal(await s.size(k), 2, 'size after truncate');
      await rejects(s.truncate(k, 3), StoreError, 'truncating past the end');
      await s.append(k, bytes(9));
      equal(await s.size(k), 3, 'size after append');
      await s.finalize(k, { size: 3 });
      sameBytes(await readAll(s, k), bytes(1, 2, 9), 'content after truncate and append');
      await s.append('x/other.bin', bytes(1, 2));
      await s.truncate('x/other.bin', 0);
      equal(await s.stat('x/other.bin'), null, 'stat after truncating to 0');
      await s.truncate('x/never', 0);
      await rejects(s.truncate('x/never', 1), StoreError, 'truncating a missing blob to 1 byte');
    },
  },
  {
    name: 'large blobs written in uneven pieces read back exactly at any offset',
    async run(make) {
      const s = await make();
      const k = 'big/blob.bin';
      const all = pattern(10_000, 7);
      const cuts = [0, 1, 2, 700, 701, 4096, 4097, 8000, 9999, 10_000];
      for (let i = 1; i < cuts.length; i++) await s.append(k, all.subarray(cuts[i - 1], cuts[i]));
      equal(await s.size(k), all.byteLength, 'size');
      await s.finalize(k, { size: all.byteLength });
      const src = await s.read(k);
      equal(src.size, all.byteLength, 'source size');
      for (const [o, n] of [
        [0, 10_000],
        [0, 1],
        [9999, 1],
        [1000, 0],
        [1023, 2],
        [3000, 5000],
        [4095, 3],
        [5, 9990],
      ]) {
        sameBytes(await src.read(o, n), all.subarray(o, o + n), `read(${o}, ${n})`);
      }
      let past = false;
      try {
        await src.read(9990, 11);
      } catch {
        past = true;
      }
      if (!past) throw new Error('a read past the end succeeded');
      await src.close?.();
    },
  },
  {
    name: 'truncate across chunk boundaries, then append, keeps the right bytes',
    async run(make) {
      const s = await make();
      const k = 'big/cut.bin';
      const all = pattern(5000, 11);
      await s.append(k, all);
      await s.truncate(k, 2049);
      await s.append(k, all.subarray(2049, 3333));
      await s.truncate(k, 1024);
      await s.append(k, all.subarray(1024));
      await s.finalize(k, { size: 5000 });
      sameBytes(await readAll(s, k), all, 'content');
    },
  },
  {
    name: 'finalize accepts an empty blob that was never appended to',
    async run(make) {
      const s = await make();
      await s.finalize('e/empty.json', { size: 0 });
      equal(await s.isComplete('e/empty.json'), true, 'isComplete of an empty blob');
      equal((await readAll(s, 'e/empty.json')).byteLength, 0, 'bytes of an empty blob');
      await rejects(s.finalize('e/none.json', { size: 3 }), StoreError, 'finalizing a missing blob with 3 bytes');
    },
  },
  {
    name: 'list and delete match whole key segments',
    async run(make) {
      const s = await make();
      const keys = ['m/a@main/model.safetensors', 'm/a@main/model.safetensors.index.json', 'm/a@main/config.json', 'm/ab@main/config.json'];
      for (const k of keys) {
        await s.append(k, bytes(7, 7));
        if (!k.endsWith('index.json')) await s.finalize(k, { size: 2 });
      }
      const sorted = [...keys].sort();
      equal((await s.list('')).map((b) => b.key), sorted, "list('')");
      equal((await s.list('m/a@main/')).map((b) => b.key), keys.slice(0, 3).sort(), "list('m/a@main/')");
      equal(
        (await s.list('m/a@main/model.safetensors')).map((b) => [b.key, b.complete]),
        [['m/a@main/model.safetensors', true]],
        "list('m/a@main/model.safetensors')",
      );
      equal((await s.list('m/a')).length, 0, "list('m/a')");
      equal(await s.usage(), { files: 4, bytes: 8, partialFiles: 1, partialBytes: 2 }, 'usage');
      equal(await s.delete('m/a@main/model.safetensors'), 1, 'deleting one file');
      if ((await s.stat('m/a@main/model.safetensors.index.json')) === null) throw new Error('deleting model.safetensors removed model.safetensors.index.json');
      equal(await s.delete('m/a@main/'), 2, 'deleting a folder');
      equal((await s.list('')).map((b) => b.key), ['m/ab@main/config.json'], 'keys left');
      equal(await s.delete(''), 1, 'deleting everything');
      equal(await s.usage(), { files: 0, bytes: 0, partialFiles: 0, partialBytes: 0 }, 'usage when empty');
      await s.append('m/a@main/config.json', bytes(1));
      equal(await s.size('m/a@main/config.json'), 1, 'a deleted key starts again from nothing');
    },
  },
  {
    name: 'a key cannot be both a file and a folder',
    async run(make) {
      const s = await make();
      await s.append('c/file', bytes(1));
      await rejects(s.append('c/file/inner', bytes(1)), StoreError, 'a key below a file');
      await s.append('d/dir/inner', bytes(1));
      await rejects(s.append('d/dir', bytes(1)), StoreError, 'a file where a folder is');
      await rejects(s.finalize('d/dir', { size: 0 }), StoreError, 'an empty file where a folder is');
    },
  },
  {
    name: 'invalid keys and prefixes are refused',
    async run(make) {
      const s = await make();
      for (const k of ['', '/a', 'a/', 'a//b', '../a', 'a/./b', 'a\\b', 'a/b.partial', 'a/b.partial.json', '.store/x', 'a:b', 'a/b.', 'a\u0000b']) {
        await rejects(s.append(k, bytes(1)), StoreError, `append(${JSON.stringify(k)})`);
      }
      await rejects(s.list('../'), StoreError, "list('../')");
      await rejects(s.delete('a//'), StoreError, "delete('a//')");
    },
  },
];
