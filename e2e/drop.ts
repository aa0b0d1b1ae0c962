// A real drag and drop in the page: a DataTransfer holding one File, dispatched on the drop zone as
// dragenter, dragover and drop, the way a file dragged from the desktop arrives; and the start most
// training flows share: the demo model loaded and the sample dataset dropped on the Data screen.
import { readFileSync } from 'node:fs';
import { type Page, expect } from '@playwright/test';

/** The studio's sample dataset as text. */
export const SAMPLE = readFileSync('public/datasets/alpaca-facts.jsonl', 'utf8');

export async function dropFile(page: Page, testId: string, name: string, text: string): Promise<void> {
  const dt = await page.evaluateHandle(({ name, text }) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], name, { type: 'application/jsonl' }));
    return dt;
  }, { name, text });
  const zone = page.getByTestId(testId);
  await zone.dispatchEvent('dragenter', { dataTransfer: dt });
  await zone.dispatchEvent('dragover', { dataTransfer: dt });
  await zone.dispatchEvent('drop', { dataTransfer: dt });
}

/** Opens the studio, loads the demo model, drops the sample dataset, and opens the Train screen. */
export async function loadDemoWithSample(page: Page): Promise<void> {
  await page.goto('/');
  await page.getByRole('button', { name: 'Load the demo model' }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText('Demo model (built in)');
  await page.getByRole('tab', { name: 'Data' }).click();
  await dropFile(page, 'dataset-drop', 'alpaca-facts.jsonl', SAMPLE);
  await expect(page.getByTestId('stat-rows')).toHaveText('50 rows');
  await page.getByRole('tab', { name: 'Train' }).click();
}
