// Browser entry for e2e/store-idb.spec.ts: puts the IndexedDB store and the shared BlobStore checks
// on `window`, so that the test can run them in the page. Bundled by the test with Vite.
import { runStoreChecks } from '../src/engine/store/store-checks.ts';
import { IDB_SCHEMA_VERSION, IdbBlobStore, IdbRunTables, deleteIdbStore } from '../src/engine/store/store-idb.ts';

let n = 0;

async function checks(): Promise<string[]> {
  const stores: IdbBlobStore[] = [];
  try {
    // A 1 KiB chunk size makes the checks' larger blobs span many chunk records.
    return await runStoreChecks(() => {
      const s = new IdbBlobStore({ dbName: `store-checks-${n++}`, chunkBytes: 1024 });
      stores.push(s);
      return s;
    });
  } finally {
    for (const s of stores) {
      await s.close();
      await deleteIdbStore(s.dbName);
    }
  }
}

/** Writes with one connection, reads with another: what a reload of the studio sees. */
async function reopen(): Promise<{ size: number; complete: boolean; bytes: number[]; partial: unknown }> {
  const a = new IdbBlobStore({ dbName: 'store-reopen', chunkBytes: 4 });
  await a.append('models/o/n@main/config.json', new Uint8Array([1, 2, 3, 4, 5, 6]));
  await a.finalize('models/o/n@main/config.json', { size: 6, etag: 'oid:1' });
  await a.append('models/o/n@main/model.safetensors', new Uint8Array([9, 9, 9]), { etag: 'oid:2', expectedSize: 10 });
  await a.close();
  const b = new IdbBlobStore({ dbName: 'store-reopen' });
  const src = await b.read('models/o/n@main/config.json');
  const out = { size: src.size, complete: await b.isComplete('models/o/n@main/config.json'), bytes: Array.from(await src.read(1, 4)), partial: await b.stat('models/o/n@main/model.safetensors') };
  await b.close();
  await deleteIdbStore('store-reopen');
  return out;
}

/**
 * A write the browser refuses for lack of quota. Chromium ignores the DevTools quota override, so the
 * refusal is made where the browser makes it: IDBObjectStore.put throws a QuotaExceededError
 * DOMException. Returns the error and what the store holds afterwards (the refused append leaves
 * no trace: its transaction is rolled back).
 */
async function overQuota(): Promise<{ name: string; message: string; hint: string | undefined; bigBytes: number; otherBytes: number }> {
  const s = new IdbBlobStore({ dbName: 'store-quota' });
  const mib = new Uint8Array(1024 * 1024).fill(7);
  await s.append('models/big/model@main/model.safetensors', mib);
  await s.append('models/big/model@main/model.safetensors', mib);
  await s.finalize('models/big/model@main/model.safetensors', { size: 2 * mib.byteLength });
  await s.append('models/other/model@main/model.safetensors', mib.subarray(0, 1000));
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
    if (this.name === 'chunks') throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    return put.apply(this, args);
  };
  let error: { name: string; message: string; hint?: string } = { name: 'none', message: 'the append succeeded' };
  try {
    await s.append('models/other/model@main/model.safetensors', mib);
  } catch (e) {
    error = e as typeof error;
  } finally {
    IDBObjectStore.prototype.put = put;
  }
  const out = {
    name: error.name,
    message: error.message,
    hint: error.hint,
    bigBytes: await s.size('models/big/model@main/model.safetensors'),
    otherBytes: await s.size('models/other/model@main/model.safetensors'),
  };
  await s.close();
  await deleteIdbStore('store-quota');
  return out;
}

/**
 * A database written by version 1 of the schema (files and chunks only, as the studio stored
 * downloads before runs existed), opened by the current code: its blobs read as before, and the run
 * stores added by the upgrade take records.
 */
async function upgradeFromV1(): Promise<{ version: number; stores: string[]; bytes: number[]; complete: boolean; run: unknown; steps: number[]; after: number[]; quota: unknown }> {
  const dbName = 'store-upgrade';
  await deleteIdbStore(dbName);
  await new Promise<void>((resolve, reject) => {
    const req = indexedDB.open(dbName, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore('files', { keyPath: 'key' });
      db.createObjectStore('chunks', { keyPath: ['key', 'index'] }).createIndex('by-key', 'key');
      const tx = req.transaction as IDBTransaction;
      tx.objectStore('files').put({ key: 'models/o/n@main/config.json', size: 5, complete: true, chunkBytes: 4, gen: 'v1', updated: 0 });
      tx.objectStore('chunks').put({ key: 'models/o/n@main/config.json', index: 0, data: new Uint8Array([1, 2, 3, 4]).buffer });
      tx.objectStore('chunks').put({ key: 'models/o/n@main/config.json', index: 1, data: new Uint8Array([5]).buffer });
    };
    req.onsuccess = () => {
      req.result.close();
      resolve();
    };
    req.onerror = () => reject(req.error);
  });
  const blobs = new IdbBlobStore({ dbName });
  const src = await blobs.read('models/o/n@main/config.json');
  const bytes = Array.from(await src.read(0, 5));
  const complete = await blobs.isComplete('models/o/n@main/config.json');
  const runs = new IdbRunTables(dbName);
  await runs.putRun({ id: 'r1', status: 'completed', step: 3 });
  await runs.putMetrics([1, 2, 3].map((step) => ({ runId: 'r1', step, metrics: { step, loss: 4 - step } })));
  await runs.putMetrics([{ runId: 'r2', step: 1, metrics: { step: 1 } }]);
  const run = await runs.getRun('r1');
  const steps = (await runs.metrics('r1')).map((m) => m.step);
  await runs.deleteMetricsAfter('r1', 1);
  const after = (await runs.metrics('r1')).map((m) => m.step);
  // A run record the browser refuses for lack of quota: a StoreQuotaError that says what to delete.
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
    if (this.name === 'runs') throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    return put.apply(this, args);
  };
  let quota: { name: string; message: string; hint?: string } = { name: 'none', message: 'the write succeeded' };
  try {
    await runs.putRun({ id: 'r3', status: 'running' });
  } catch (e) {
    quota = e as typeof quota;
  } finally {
    IDBObjectStore.prototype.put = put;
  }
  await runs.close();
  await blobs.close();
  const { version, stores } = await new Promise<{ version: number; stores: string[] }>((resolve, reject) => {
    const req = indexedDB.open(dbName);
    req.onsuccess = () => {
      const out = { version: req.result.version, stores: Array.from(req.result.objectStoreNames).sort() };
      req.result.close();
      resolve(out);
    };
    req.onerror = () => reject(req.error);
  });
  await deleteIdbStore(dbName);
  return { version: version === IDB_SCHEMA_VERSION ? version : -version, stores, bytes, complete, run, steps, after, quota: { name: quota.name, message: quota.message, hint: quota.hint } };
}

Object.assign(globalThis, { storeChecks: { checks, reopen, overQuota, upgradeFromV1 } });
