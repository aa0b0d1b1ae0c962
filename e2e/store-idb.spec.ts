import { expect, test } from '@playwright/test';
import { build } from 'vite';
import { STORE_CHECKS } from '../src/engine/store/store-checks.ts';
import { watchProblems } from './watch.ts';

// The IndexedDB BlobStore in Chromium: the same behavioural checks the memory and file-system
// stores pass (src/engine/store/store-checks.ts), persistence across connections, and a quota
// failure turned into a StoreQuotaError whose hint names what to delete. The store and the checks
// are bundled with Vite and run in a page of the studio's origin.

interface StoreChecks {
  checks(): Promise<string[]>;
  reopen(): Promise<{ size: number; complete: boolean; bytes: number[]; partial: unknown }>;
  overQuota(): Promise<{ name: string; message: string; hint: string | undefined; bigBytes: number; otherBytes: number }>;
  upgradeFromV1(): Promise<unknown>;
}

let bundle = '';
test.beforeAll(async () => {
  const out = await build({
    configFile: false,
    logLevel: 'silent',
    build: { write: false, minify: false, target: 'es2022', lib: { entry: 'e2e/store-idb-entry.ts', formats: ['es'], fileName: 'store-idb-entry' } },
  });
  const outputs = (Array.isArray(out) ? out : [out]) as { output: { type: string; code?: string }[] }[];
  bundle = outputs.flatMap((o) => o.output).find((c) => c.type === 'chunk')?.code ?? '';
  expect(bundle).toContain('storeChecks');
});

test('the IndexedDB store passes the shared BlobStore checks and keeps data across connections', async ({ page }) => {
  const problems = watchProblems(page);
  await page.goto('/');
  await page.addScriptTag({ content: bundle, type: 'module' });
  await page.waitForFunction(() => 'storeChecks' in globalThis);
  const passed = await page.evaluate(() => (globalThis as unknown as { storeChecks: StoreChecks }).storeChecks.checks());
  expect(passed).toEqual(STORE_CHECKS.map((c) => c.name));
  const again = await page.evaluate(() => (globalThis as unknown as { storeChecks: StoreChecks }).storeChecks.reopen());
  expect(again).toEqual({ size: 6, complete: true, bytes: [2, 3, 4, 5], partial: { key: 'models/o/n@main/model.safetensors', size: 3, complete: false, etag: 'oid:2', expectedSize: 10 } });
  expect(problems).toEqual([]);
});

test('a write refused for lack of quota is a StoreQuotaError whose hint names what to delete', async ({ page }) => {
  await page.goto('/');
  await page.addScriptTag({ content: bundle, type: 'module' });
  await page.waitForFunction(() => 'storeChecks' in globalThis);
  const r = await page.evaluate(() => (globalThis as unknown as { storeChecks: StoreChecks }).storeChecks.overQuota());
  expect(r.name).toBe('StoreQuotaError');
  expect(r.message).toBe('There is no room left in IndexedDB store-quota to write models/other/model@main/model.safetensors.');
  expect(r.hint).toContain('Delete cached files you no longer need on the Model screen; the largest are models/big/model@main/ (2.00 MiB), models/other/model@main/ (1000 B).');
  expect(r.hint).toMatch(/This site uses [\d.]+ (B|KiB|MiB|GiB) of the [\d.]+ (MiB|GiB|TiB) the browser allows it\./);
  // The refused append changed nothing.
  expect(r).toMatchObject({ bigBytes: 2 * 1024 * 1024, otherBytes: 1000 });
});

test('a version-1 database upgrades to the run stores and keeps its blobs; a refused run write is a StoreQuotaError', async ({ page }) => {
  const problems = watchProblems(page);
  await page.goto('/');
  await page.addScriptTag({ content: bundle, type: 'module' });
  await page.waitForFunction(() => 'storeChecks' in globalThis);
  const r = await page.evaluate(() => (globalThis as unknown as { storeChecks: StoreChecks }).storeChecks.upgradeFromV1());
  expect(r).toEqual({
    version: 2,
    stores: ['chunks', 'files', 'run-metrics', 'runs'],
    bytes: [1, 2, 3, 4, 5],
    complete: true,
    run: { id: 'r1', status: 'completed', step: 3 },
    steps: [1, 2, 3],
    after: [1],
    quota: {
      name: 'StoreQuotaError',
      message: 'There is no room left in IndexedDB store-upgrade to write the record of run r3.',
      hint: 'Delete training runs you no longer need on the Export screen, or cached models on the Model screen; freeing disk space raises what the browser allows.',
    },
  });
  expect(problems).toEqual([]);
});
