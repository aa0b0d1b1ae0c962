import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { watchProblems } from './watch.ts';
import { dropFile } from './drop.ts';

// The Data screen: a dataset dropped with a real drag and drop (a DataTransfer with a File,
// dispatched as dragenter, dragover and drop) shows its detected format, statistics and the tokens
// that count toward the loss; a broken file shows its bad lines and the studio keeps working.
const SAMPLE = readFileSync('public/datasets/alpaca-facts.jsonl', 'utf8');

test('a dropped dataset shows its format, statistics and counted tokens', async ({ page }, info) => {
  const problems = watchProblems(page);
  await page.goto('/#data');
  await expect(page.getByRole('tab', { name: 'Data' })).toHaveAttribute('aria-selected', 'true');
  await dropFile(page, 'dataset-drop', 'alpaca-facts.jsonl', SAMPLE);

  await expect(page.getByTestId('detected')).toContainText('JSON Lines file, Alpaca (instruction / input / output) format: 50 of the first 50 rows fit it');
  await expect(page.getByLabel('Example format')).toHaveValue('');
  await expect(page.getByTestId('stat-rows')).toHaveText('50 rows');
  await expect(page.getByTestId('stat-examples')).toHaveText('50 examples (50 train, 0 validation)');
  await expect(page.getByTestId('stat-tokens')).toHaveText(/^[\d,]+ tokens$/);
  await expect(page.getByTestId('stat-counted')).toHaveText(/^[\d,]+ tokens \(\d+\.\d % of all tokens\)$/);
  await expect(page.getByTestId('stat-truncated')).toHaveText('0 rows longer than 512 tokens, cut to it');
  await expect(page.getByTestId('stat-tokenizer')).toHaveText('Demo model (built in)');
  const chart = page.getByTestId('length-histogram');
  await expect(chart.locator('.recharts-bar-rectangle').first()).toBeVisible();
  await expect(chart).toContainText('Example length (tokens)');
  await expect(chart).toContainText('Examples');

  const preview = page.getByTestId('preview');
  await expect(preview.getByRole('article')).toHaveCount(4);
  const first = preview.getByRole('article', { name: 'Example 1' });
  const counted = first.locator('[data-counted="true"]');
  const context = first.locator('[data-counted="false"]');
  expect(await counted.count()).toBeGreaterThan(5);
  expect(await context.count()).toBeGreaterThan(5);
  expect((await counted.allTextContents()).join('')).toContain('Water boils at 100 degrees Celsius');
  expect((await context.allTextContents()).join('')).toContain('boiling point');
  // Counted tokens are marked by more than colour: an underline.
  expect(await counted.first().evaluate((el) => getComputedStyle(el).textDecorationLine)).toContain('underline');
  await expect(preview.getByLabel('Legend')).toContainText('counts toward the loss');
  await page.screenshot({ path: info.outputPath('data-screen.png'), fullPage: true });
  await first.screenshot({ path: info.outputPath('preview-example.png') });
  expect(problems).toEqual([]);
});

test('a broken dataset shows its bad lines, and the studio keeps working', async ({ page }, info) => {
  const problems = watchProblems(page);
  await page.goto('/#data');
  const broken = '{"instruction": "Say hi.", "output": "Hi."}\n{"instruction": "Count to two.", "output": "One, two."}\n{"instruction": "oops", "output": \n{"text_only": "no fields"}\n';
  await page.getByLabel('Dataset', { exact: true }).setInputFiles({ name: 'broken.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(broken) });
  const error = page.getByTestId('dataset-error');
  await expect(error).toContainText('The dataset could not be imported.');
  await expect(error).toContainText('DatasetRowsError');
  const rows = page.getByTestId('bad-rows');
  await expect(rows.locator('li')).toHaveCount(2);
  await expect(rows.locator('li').nth(0)).toContainText('Line 3 of broken.jsonl');
  await expect(rows.locator('li').nth(1)).toContainText('Line 4 of broken.jsonl');
  await page.screenshot({ path: info.outputPath('data-broken.png'), fullPage: true });

  // Skipping the bad rows imports the rest and lists what was skipped.
  await page.getByLabel('Skip bad rows').check();
  await page.getByRole('button', { name: 'Apply and import again' }).click();
  await expect(page.getByTestId('stat-examples')).toHaveText('2 examples (2 train, 0 validation)');
  await expect(page.getByTestId('stat-left-out')).toContainText('2 bad rows skipped');
  await expect(page.getByRole('region', { name: 'Skipped rows' })).toContainText('Line 3');

  // The studio still works: another screen, then a good file by drag and drop.
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.getByRole('button', { name: 'Load the demo model' }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText('Demo model (built in)');
  await page.getByRole('tab', { name: 'Data' }).click();
  await dropFile(page, 'dataset-drop', 'alpaca-facts.jsonl', SAMPLE);
  await expect(page.getByTestId('stat-rows')).toHaveText('50 rows');
  await expect(page.getByTestId('dataset-error')).toHaveCount(0);
  expect(problems).toEqual([]);
});

test('columns map to fields and the format can be overridden', async ({ page }, info) => {
  const problems = watchProblems(page);
  await page.goto('/#data');
  const csv = 'question,answer\nWhat is two plus two?,Four.\nName a primary colour.,Red.\nWhat is the capital of France?,Paris.\n';
  await page.getByLabel('Dataset', { exact: true }).setInputFiles({ name: 'qa.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await expect(page.getByTestId('dataset-error')).toContainText('DatasetFormatError');
  await expect(page.getByTestId('detected')).toContainText('CSV file, no example format fits its first rows. Columns: question, answer.');
  await page.getByLabel('Example format').selectOption('alpaca');
  await page.getByLabel('Column for instruction').selectOption('question');
  await page.getByLabel('Column for output').selectOption('answer');
  await page.getByRole('button', { name: 'Apply and import again' }).click();
  await expect(page.getByTestId('stat-examples')).toHaveText('3 examples (3 train, 0 validation)');
  await expect(page.getByTestId('detected')).toContainText('CSV file, Alpaca (instruction / input / output) format: 3 of the first 3 rows fit it');
  await expect(page.getByTestId('dataset-error')).toHaveCount(0);
  await expect(page.getByTestId('preview').getByRole('article', { name: 'Example 1' }).locator('[data-counted="true"]').first()).toBeVisible();
  await page.screenshot({ path: info.outputPath('data-mapping.png'), fullPage: true });
  expect(problems).toEqual([]);
});
