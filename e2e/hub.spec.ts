import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { type StandIn, startHubStandIn } from './hub-stand-in.ts';
import { watchProblems } from './watch.ts';

// A Hub download from a local stand-in for the Hub (the demo model's files under a made-up repo),
// reached through `?hubEndpoint=`: progress with bytes, rate and time left, Cancel, a resumed
// download that lands in the cached models list, Load from the cache; the cached model as the
// student of a one-step distillation from the demo model on the Compress screen; Delete.
const REPO = 'whetstone-test/demo-tiny';
const DEMO = 'public/models/demo';
const totalBytes = readdirSync(DEMO).reduce((n, f) => n + readFileSync(join(DEMO, f)).byteLength, 0);

let hub: StandIn;
test.beforeAll(async () => {
  hub = await startHubStandIn({ repo: REPO, dir: DEMO, pieceBytes: 16 * 1024, pauseMs: 200 });
});
test.afterAll(async () => {
  await hub.close();
});

test('a Hub download shows progress, can be cancelled and resumed, and lands in the cached models', async ({ page }, info) => {
  // The distillation's first step compiles the training kernels, slow on a CPU adapter.
  test.setTimeout(400_000);
  const problems = watchProblems(page);
  await page.goto(`/?hubEndpoint=${encodeURIComponent(hub.url)}`);
  await expect(page.locator('details.settings summary')).toHaveText(`Hub endpoint: ${hub.url}`);
  await page.getByLabel('Hub model id').fill(REPO);
  await page.getByRole('button', { name: 'Download', exact: true }).click();

  const progress = page.getByTestId('download-progress');
  await expect(progress).toContainText(/[\d.]+ (KiB|MiB) of 1\.\d\d MiB · [\d.]+ (B|KiB|MiB)\/s · \d+ s left · model\.safetensors/);
  await expect(page.getByRole('progressbar', { name: `Downloading ${REPO}` })).toBeVisible();
  await page.screenshot({ path: info.outputPath('hub-download.png'), fullPage: true });
  await page.getByRole('button', { name: 'Cancel download' }).click();
  await expect(page.getByTestId('download-outcome')).toContainText(`Download of ${REPO} cancelled`);
  const row = page.getByTestId(`cached-${REPO}`);
  await expect(row).toContainText('partial');
  await expect(page.getByRole('button', { name: `Load ${REPO}` })).toBeDisabled();

  // Downloading again resumes the saved part with a Range request.
  hub.setPause(0);
  const before = hub.requests.length;
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(page.getByTestId('download-outcome')).toContainText(`Downloaded ${REPO} into the cache.`);
  expect(hub.requests.slice(before).some((r) => /^GET \/.*\/model\.safetensors bytes=[1-9]\d*-$/.test(r))).toBe(true);
  await expect(row).toContainText('complete, 5 files');
  await expect(row).toContainText(`${(totalBytes / 1024 / 1024).toFixed(2)} MiB`);
  await expect(page.getByTestId('storage')).toContainText(/The store holds 1\.\d\d MiB in 6 files; this site uses [\d.]+ (B|KiB|MiB|GiB) of the [\d.]+ (MiB|GiB|TiB) the browser allows it\./);

  await page.getByRole('button', { name: `Load ${REPO}` }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText(REPO);
  await expect(page.getByTestId('loaded-source')).toHaveText('Hugging Face Hub (cached)');
  await expect(row).toContainText('loaded');
  await page.screenshot({ path: info.outputPath('hub-cached.png'), fullPage: true });

  // The cache survives a reload (IndexedDB).
  await page.reload();
  await expect(row).toContainText('complete, 5 files');

  // With the built-in demo loaded, the cached model can be a distillation student.
  await page.getByRole('button', { name: 'Load the demo model' }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText('Demo model (built in)');
  await page.getByRole('tab', { name: 'Compress' }).click();
  await page.getByRole('radio', { name: 'Distillation' }).check();
  const student = page.getByLabel('Student', { exact: true });
  await expect(student.getByRole('option', { name: `${REPO}@main (0.9 M parameters)` })).toHaveCount(1);
  await student.selectOption(`hub:${REPO}@main`);
  await expect(page.getByLabel('Layers the student drops')).toHaveCount(0);
  await page.getByLabel('Distillation steps').fill('1');
  await page.getByRole('button', { name: 'Run' }).click();
  await expect(page.getByRole('heading', { name: `Before and after: distillation into ${REPO}@main` })).toBeVisible({ timeout: 300_000 });
  const table = page.getByTestId('compress-table');
  await expect(table.getByRole('row', { name: new RegExp(`Student held-out loss .*before: ${REPO}@main, untrained`) })).toContainText(/\d\.\d{4}.*\d\.\d{4}/);
  await page.screenshot({ path: info.outputPath('hub-student.png'), fullPage: true });

  // Delete removes the model.
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.getByRole('button', { name: `Delete ${REPO}` }).click();
  await expect(row).toHaveCount(0);
  await expect(page.getByText('No Hub model is cached in this browser yet.')).toBeVisible();
  expect(problems).toEqual([]);
});

test('a Hub error is explained and the screen stays usable', async ({ page }) => {
  const problems = watchProblems(page);
  await page.goto(`/?hubEndpoint=${encodeURIComponent(hub.url)}`);
  await page.getByLabel('Hub model id').fill('no-such-org/no-such-model');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  const error = page.getByTestId('download-error');
  await expect(error).toContainText('Could not download no-such-org/no-such-model.');
  await expect(error).toContainText('What to do:');
  await page.getByLabel('Hub model id').fill('not a repo id');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  await expect(error).toContainText('HubRefError');
  // The 404 answers of the stand-in show as failed requests in the console; nothing else may.
  expect(problems.filter((p) => !/status of 404/.test(p))).toEqual([]);
});
