import { expect, test } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config.ts';

// A browser without WebGPU: the studio explains what to do instead of showing a blank page.
test.use({ launchOptions: { executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--disable-features=WebGPU,Vulkan', '--disable-gpu'] } });

test('without WebGPU the studio says what to do', async ({ page }, info) => {
  await page.goto('/');
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('WebGPU is not available');
  await expect(alert).toContainText(/Chrome|enable-unsafe-webgpu/);
  await expect(page.getByRole('button', { name: 'Try again' })).toBeVisible();
  await page.screenshot({ path: info.outputPath('no-webgpu.png'), fullPage: true });
});
