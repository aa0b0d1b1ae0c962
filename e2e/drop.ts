// A real drag and drop in the page: a DataTransfer holding one File, dispatched on the drop zone as
// dragenter, dragover and drop, the way a file dragged from the desktop arrives.
import type { Page } from '@playwright/test';

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
