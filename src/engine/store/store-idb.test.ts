// The BlobStore behavioural checks (store-checks.ts) on the stores Node can run: the memory store
// (the reference semantics) and the file-system store. The IndexedDB store runs the same checks in
// Chromium (e2e/store-idb.spec.ts). Also here: the IndexedDB schema steps and the quota error's hint.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_CHECKS, runStoreChecks } from './store-checks.ts';
import { IDB_SCHEMA_VERSION, StoreQuotaError, isQuotaError, quotaHint, upgradeSchema } from './store-idb.ts';
import { MemoryBlobStore } from './store-memory.ts';
import { NodeBlobStore } from './store-node.ts';
import type { BlobStore } from './store.ts';
import { StoreError } from '../errors.ts';

let tmp: string;
let n = 0;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'whetstone-checks-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const makers: [string, () => BlobStore][] = [
  ['MemoryBlobStore', () => new MemoryBlobStore()],
  ['NodeBlobStore', () => new NodeBlobStore(join(tmp, `s${n++}`))],
];

describe.each(makers)('%s passes the shared store checks', (_name, make) => {
  it.each(STORE_CHECKS.map((c) => [c.name, c] as const))('%s', async (_n, check) => {
    await check.run(make);
  });
});

describe('runStoreChecks', () => {
  it('returns every check name for a conforming store', async () => {
    expect(await runStoreChecks(() => new MemoryBlobStore())).toEqual(STORE_CHECKS.map((c) => c.name));
  });

  it('fails, naming the check, for a store that reads partial blobs', async () => {
    class Leaky extends MemoryBlobStore {
      override async isComplete(): Promise<boolean> {
        return true;
      }
    }
    await expect(runStoreChecks(() => new Leaky())).rejects.toThrow(/Store check "a partial blob is not complete.*isComplete of a partial blob/);
  });
});

describe('IndexedDB schema', () => {
  function recorder() {
    const steps: string[] = [];
    const db = {
      createObjectStore(name: string, options: IDBObjectStoreParameters) {
        steps.push(`store ${name} ${JSON.stringify(options.keyPath)}`);
        return {
          createIndex(index: string, keyPath: string | string[]) {
            steps.push(`index ${name}.${index} ${JSON.stringify(keyPath)}`);
          },
        };
      },
    };
    return { db, steps };
  }

  const V2 = ['store runs "id"', 'store run-metrics ["runId","step"]', 'index run-metrics.by-run "runId"'];

  it('creates every store from version 0: files and chunks (1), then runs and run-metrics (2)', () => {
    const { db, steps } = recorder();
    upgradeSchema(db, 0);
    expect(steps).toEqual(['store files "key"', 'store chunks ["key","index"]', 'index chunks.by-key "key"', ...V2]);
  });

  it('adds only the run stores to a version-1 database', () => {
    const { db, steps } = recorder();
    upgradeSchema(db, 1);
    expect(steps).toEqual(V2);
    expect(IDB_SCHEMA_VERSION).toBe(2);
  });

  it('has nothing to do at the current version', () => {
    const { db, steps } = recorder();
    upgradeSchema(db, IDB_SCHEMA_VERSION);
    expect(steps).toEqual([]);
  });
});

describe('quota errors', () => {
  it('recognises the browser quota failures', () => {
    expect(isQuotaError({ name: 'QuotaExceededError' })).toBe(true);
    expect(isQuotaError({ name: 'Error', code: 22 })).toBe(true);
    expect(isQuotaError(new Error('x'))).toBe(false);
    expect(isQuotaError(null)).toBe(false);
  });

  it('names the largest folders and the site quota in the hint', () => {
    const hint = quotaHint(
      [
        { folder: 'models/Qwen/Qwen3-0.6B@main/', bytes: 1.5 * 2 ** 30 },
        { folder: 'models/HuggingFaceTB/SmolLM2-135M-Instruct@main/', bytes: 270 * 2 ** 20 },
      ],
      { usage: 2 * 2 ** 30, quota: 2.1 * 2 ** 30, persisted: false },
    );
    expect(hint).toContain('models/Qwen/Qwen3-0.6B@main/ (1.50 GiB)');
    expect(hint).toContain('models/HuggingFaceTB/SmolLM2-135M-Instruct@main/ (270 MiB)');
    expect(hint).toMatch(/uses 2\.00 GiB of the 2\.10 GiB/);
    expect(quotaHint([], null)).toMatch(/store is empty/);
  });

  it('sends runs to the Export screen and models to the Model screen', () => {
    const hint = quotaHint(
      [
        { folder: 'runs/20261130-120000-abcdef/', bytes: 300 * 2 ** 20 },
        { folder: 'models/o/n@main/', bytes: 100 * 2 ** 20 },
      ],
      null,
    );
    expect(hint).toContain('Delete cached files you no longer need on the Model screen; the largest are models/o/n@main/ (100 MiB).');
    expect(hint).toContain('Delete training runs you no longer need on the Export screen (their checkpoints and adapters); the largest are runs/20261130-120000-abcdef/ (300 MiB).');
  });

  it('is a StoreError with a stable name', () => {
    const e = new StoreQuotaError('full', { hint: 'delete x' });
    expect(e).toBeInstanceOf(StoreError);
    expect(e.toJSON()).toMatchObject({ name: 'StoreQuotaError', message: 'full', hint: 'delete x' });
  });
});
