import { type Page, expect, test } from '@playwright/test';
import { watchProblems } from './watch.ts';

// The Compress screen: without a model it points to the Model screen; with the demo model, k-means
// clustering chosen with the keyboard (no rows: the loss says so) runs and fills the before/after
// table, the compressed folder downloads as a zip and loads as the model. Wanda 50 % on the sample dataset with a
// 2-step LoRA recovery: a wrong field shows its message and keeps Run disabled; the table shows the
// loss, tokens/s and the recovery's losses as numbers; the zip downloads. Then, in the same page,
// distillation into a student with fewer heads and MLP neurons (every layer kept): an empty student
// says why Run is disabled; the table shows fewer parameters and the student's and KL rows.

async function loadDemo(page: Page): Promise<void> {
  await page.goto('/#compress');
  await expect(page.getByRole('tab', { name: 'Compress' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByTestId('compress-no-model')).toContainText('No model is loaded.');
  await page.getByRole('button', { name: 'Load one on the Model screen' }).click();
  await expect(page.getByRole('tab', { name: 'Model' })).toHaveAttribute('aria-selected', 'true');
  await page.getByRole('button', { name: 'Load the demo model' }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText('Demo model (built in)');
  await page.getByRole('tab', { name: 'Compress' }).click();
}

/** Downloads the zip; the notice gives its size against the folder's and lists the files. */
async function downloadZip(page: Page, change: RegExp = /smaller|larger|the size of/): Promise<void> {
  const downloading = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download zip' }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toMatch(/^whetstone-compressed-c[0-9a-z]+\.zip$/);
  const notice = page.getByTestId('compress-notice');
  await expect(notice).toContainText(/: [\d.]+ (B|KiB|MiB), /);
  await expect(notice).toContainText(change);
  await expect(notice).toContainText('config.json');
  await expect(notice).toContainText('model.safetensors');
}

test('clusters the demo model, shows before and after, and downloads the zip', async ({ page }) => {
  const problems = watchProblems(page);
  await loadDemo(page);

  // Keyboard: from the first technique, arrow down to k-means clustering.
  await page.getByRole('radio', { name: 'Drop layers' }).focus();
  for (let i = 0; i < 7; i++) await page.keyboard.press('ArrowDown');
  await expect(page.getByRole('radio', { name: 'k-means clustering' })).toBeChecked();
  await expect(page.getByLabel('Codebook size k')).toHaveValue('16');
  await page.getByLabel('Data', { exact: true }).selectOption('none');
  await page.getByRole('button', { name: 'Run' }).focus();
  await page.keyboard.press('Enter');

  const table = page.getByTestId('compress-table');
  await expect(table).toBeVisible();
  await expect(page.getByRole('heading', { name: /Before and after: k-means clustering, k = 16/ })).toBeVisible();
  await expect(table.getByRole('row', { name: /Eval loss/ })).toContainText('no dataset');
  await expect(table.getByRole('row', { name: /Weight file size/ })).toContainText('1,710,288 B');
  await expect(table.getByRole('row', { name: /Generation speed/ })).toContainText(/\d+\.\d tokens\/s/);
  await downloadZip(page);

  // The result loads as the model: the status bar and the Model screen name it, and it compresses again.
  await page.getByRole('button', { name: 'Load as the model' }).click();
  const name = 'Demo model (built in), k-means clustering, k = 16 (projections)';
  await expect(page.getByTestId('compress-notice')).toContainText(`Loaded "${name}" as the model`);
  await expect(page.getByRole('heading', { name: `Compress ${name}` })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Load as the model' })).toBeDisabled();
  await page.getByRole('tab', { name: 'Model' }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText(name);
  await expect(page.getByTestId('loaded-source')).toHaveText('the Compress screen (stored in this browser)');
  expect(problems).toEqual([]);
});

test('Wanda 50 % with a 2-step LoRA recovery, then distillation into a student with fewer heads and neurons', async ({ page }) => {
  // The recovery's first step compiles the training kernels, slow on a CPU adapter; the distillation
  // runs in the same page, so its worker reuses them.
  test.setTimeout(600_000);
  const problems = watchProblems(page);
  await loadDemo(page);
  await page.getByRole('radio', { name: 'Wanda pruning' }).check();
  await expect(page.getByLabel('Data', { exact: true })).toHaveValue('sample');

  // A wrong field says what is wrong and keeps Run disabled until it is fixed.
  const rows = page.getByLabel('Calibration rows');
  await rows.fill('0');
  await expect(rows).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByText('Calibration rows must be a whole number from 1 to 100000.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Run' })).toBeDisabled();
  await rows.fill('8');
  await expect(page.getByRole('button', { name: 'Run' })).toBeEnabled();

  await page.getByLabel('Fine-tune after pruning').check();
  await page.getByLabel('Recovery steps').fill('2');
  await expect(page.getByLabel('LoRA rank')).toHaveValue('8');
  await page.getByRole('button', { name: 'Run' }).click();
  await expect(page.getByTestId('compress-progress')).toBeVisible();

  const table = page.getByTestId('compress-table');
  await expect(table).toBeVisible({ timeout: 300_000 });
  await expect(page.getByRole('heading', { name: /Before and after: 50 % Wanda sparsity/ })).toBeVisible();
  await expect(table.getByRole('row', { name: /Eval loss \(\d+ held-out rows/ })).toContainText(/\d\.\d{4}.*\d\.\d{4}/);
  await expect(table.getByRole('row', { name: /Generation speed/ })).toContainText(/\d+\.\d tokens\/s.*\d+\.\d tokens\/s/);
  await expect(table.getByRole('row', { name: /Recovery training loss \(step 1 → step 2\)/ })).toContainText(/\d\.\d{4}.*\d\.\d{4}/);
  await expect(table.getByRole('row', { name: /Weight file size/ })).toContainText('1,710,288 B');
  if (process.env.WHETSTONE_SCREENSHOT) await page.screenshot({ path: process.env.WHETSTONE_SCREENSHOT, fullPage: true });
  // Half of the projection weights are zeros, which deflate: the zip is smaller than the folder.
  await downloadZip(page, /[\d.]+ % smaller than the 1\.\d\d MiB folder/);

  await page.getByRole('radio', { name: 'Distillation' }).check();
  await expect(page.getByLabel("Teacher's adapter")).toHaveValue('');
  // A student with every layer and nothing removed would be the teacher: Run stays disabled.
  const layers = page.getByLabel('Layers the student drops');
  await expect(layers).toHaveValue('2');
  await layers.fill('');
  await expect(page.getByText('The student must be smaller than the teacher')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Run' })).toBeDisabled();
  await page.getByLabel('Heads the student loses').fill('1');
  await page.getByLabel('What a head is').selectOption('query-heads');
  await page.getByLabel('MLP neurons the student loses').fill('64');
  await page.getByLabel('Distillation steps').fill('1');
  await page.getByRole('button', { name: 'Run' }).click();
  await expect(page.getByRole('heading', { name: /Before and after: distillation into a student with 1 query head per group and 64 MLP neurons per layer fewer/ })).toBeVisible({
    timeout: 300_000,
  });
  await expect(table.getByRole('row', { name: /Parameters/ })).toContainText(/853,120.*689,280.*−19\.2 %/);
  await expect(table.getByRole('row', { name: /Student held-out loss/ })).toContainText(/\d\.\d{4}.*\d\.\d{4}/);
  await expect(table.getByRole('row', { name: /KL\(teacher ‖ student\)/ })).toContainText(/\d\.\d{4}.*\d\.\d{4}/);
  if (process.env.WHETSTONE_SCREENSHOT_DISTILL) await page.screenshot({ path: process.env.WHETSTONE_SCREENSHOT_DISTILL, fullPage: true });
  await downloadZip(page);
  expect(problems).toEqual([]);
});
