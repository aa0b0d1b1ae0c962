import { type ConsoleMessage, expect, test } from '@playwright/test';

test('the studio opens, shows the adapter and passes the kernel self-test', async ({ page }, info) => {
  const problems: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));

  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Whetstone' })).toBeVisible();
  // The adapter details live on the GPU screen; the status line names the adapter on every screen.
  await expect(page.getByTestId('status-gpu')).toContainText(/swiftshader/i);
  await page.getByRole('tab', { name: 'GPU' }).click();
  await expect(page.getByTestId('adapter-adapter')).toContainText(/swiftshader/i);
  await expect(page.getByTestId('adapter-f16-shaders')).toHaveText(/no/);
  await expect(page.getByTestId('adapter-max-storage-binding')).toHaveText(/\d+(\.\d+)? (MiB|GiB)/);
  await expect(page.getByTestId('selftest-verdict')).toHaveText('Self-test passed');
  const rows = page.getByRole('table', { name: 'Self-test results' }).locator('tbody tr');
  await expect(rows).toHaveCount(4);
  for (const row of await rows.all()) await expect(row.locator('td').last()).toHaveText('pass');

  // The self-test can be run again with the keyboard.
  await page.getByRole('button', { name: 'Run self-test again' }).focus();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('selftest-verdict')).toHaveText('Self-test passed');

  await page.screenshot({ path: info.outputPath('studio.png'), fullPage: true });
  expect(problems).toEqual([]);
});
