import { expect, test } from '@playwright/test';
import { watchProblems } from './watch.ts';

// The Compress screen: without a model it points to the Model screen; with the demo model, k-means
// clustering chosen with the keyboard runs and fills the before/after table (no dataset imported:
// the loss says so), and the compressed folder downloads as a zip.

test('clusters the demo model, shows before and after, and downloads the zip', async ({ page }) => {
  const problems = watchProblems(page);
  await page.goto('/#compress');
  await expect(page.getByRole('tab', { name: 'Compress' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByTestId('compress-no-model')).toContainText('No model is loaded.');
  await page.getByRole('button', { name: 'Load one on the Model screen' }).click();
  await expect(page.getByRole('tab', { name: 'Model' })).toHaveAttribute('aria-selected', 'true');
  await page.getByRole('button', { name: 'Load the demo model' }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText('Demo model (built in)');
  await page.getByRole('tab', { name: 'Compress' }).click();

  // Keyboard: from the first technique, arrow down to the last one (k-means clustering).
  await page.getByRole('radio', { name: 'Drop layers' }).focus();
  for (let i = 0; i < 6; i++) await page.keyboard.press('ArrowDown');
  await expect(page.getByRole('radio', { name: 'k-means clustering' })).toBeChecked();
  await expect(page.getByLabel('Codebook size k')).toHaveValue('16');
  await page.getByRole('button', { name: 'Run' }).focus();
  await page.keyboard.press('Enter');

  const table = page.getByTestId('compress-table');
  await expect(table).toBeVisible();
  await expect(page.getByRole('heading', { name: /Before and after: k-means clustering, k = 16/ })).toBeVisible();
  await expect(table.getByRole('row', { name: /Eval loss/ })).toContainText('no dataset');
  await expect(table.getByRole('row', { name: /Weight file size/ })).toContainText('1,710,288 B');
  if (process.env.WHETSTONE_SCREENSHOT) await page.screenshot({ path: process.env.WHETSTONE_SCREENSHOT, fullPage: true });

  const downloading = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download zip' }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toMatch(/^whetstone-compressed-c[0-9a-z]+\.zip$/);
  await expect(page.getByTestId('compress-notice')).toContainText('config.json');
  await expect(page.getByTestId('compress-notice')).toContainText('model.safetensors');
  expect(problems).toEqual([]);
});
