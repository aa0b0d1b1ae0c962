import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { parameterCount, parseModelConfig } from '../src/engine/model/config.ts';
import { focusIsVisible, watchProblems } from './watch.ts';

// The Model screen: the built-in demo model loads onto the GPU and shows as loaded with its
// parameter count; the curated Hub list carries memory estimates; tabs and controls work from the keyboard.
const demoParams = parameterCount(parseModelConfig(JSON.parse(readFileSync('public/models/demo/config.json', 'utf8'))));

test('the demo model loads and shows as loaded with its parameter count', async ({ page }, info) => {
  const problems = watchProblems(page);
  await page.goto('/');
  await expect(page.getByRole('tab', { name: 'Model' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByTestId('no-model')).toBeVisible();

  // The curated list is sized for this device before anything is downloaded.
  const smol = page.getByTestId('catalog-HuggingFaceTB/SmolLM2-135M-Instruct');
  await expect(smol).toContainText('134.52 M parameters');
  await expect(smol).toContainText(/LoRA training ≈ [\d.]+ (MiB|GiB)/);
  await expect(smol).toContainText(/largest tensor 108 MiB: (fits one|split into)/);
  await expect(page.getByTestId('catalog-meta-llama/Llama-3.2-1B-Instruct')).toContainText('gated: needs a token');

  await page.getByRole('button', { name: 'Load the demo model' }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText('Demo model (built in)');
  await expect(page.getByTestId('loaded-parameters')).toHaveText(`${demoParams.toLocaleString('en-US')} parameters (${(demoParams / 1e3).toFixed(1)} k)`);
  await expect(page.getByTestId('loaded-architecture')).toHaveText('LlamaForCausalLM (llama)');
  await expect(page.getByTestId('loaded-vocabulary')).toHaveText('512 tokens');
  await expect(page.getByTestId('status-model')).toContainText('Demo model (built in)');
  await expect(page.getByRole('button', { name: 'Reload the demo model' })).toBeEnabled();
  await page.screenshot({ path: info.outputPath('model-screen.png'), fullPage: true });
  expect(problems).toEqual([]);
});

test('tabs and controls are reachable from the keyboard with a visible focus', async ({ page }) => {
  const problems = watchProblems(page);
  await page.goto('/');
  const model = page.getByRole('tab', { name: 'Model' });
  await model.focus();
  expect(await focusIsVisible(page)).toBe(true);
  await page.keyboard.press('ArrowRight');
  await expect(page.getByRole('tab', { name: 'Data' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByRole('tab', { name: 'Data' })).toBeFocused();
  await expect(page.getByRole('heading', { name: 'Dataset file' })).toBeVisible();
  await page.keyboard.press('End');
  await expect(page.getByRole('tab', { name: 'GPU' })).toHaveAttribute('aria-selected', 'true');
  await page.keyboard.press('Home');
  await expect(model).toHaveAttribute('aria-selected', 'true');

  // Tab walks from the tabs into the screen; Enter on the demo button loads the model.
  const demo = page.getByRole('button', { name: 'Load the demo model' });
  for (let i = 0; i < 40 && !(await demo.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press('Tab');
    expect(await focusIsVisible(page)).toBe(true);
  }
  await expect(demo).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('loaded-name')).toHaveText('Demo model (built in)');

  // Every tab is a button in the tab order, with aria-selected.
  for (const name of ['Model', 'Data', 'GPU']) {
    const tab = page.getByRole('tab', { name });
    await expect(tab).toHaveAttribute('aria-selected', /true|false/);
    expect(await tab.evaluate((el) => el.tagName === 'BUTTON' && (el as HTMLElement).tabIndex >= 0)).toBe(true);
  }
  expect(problems).toEqual([]);
});

test('a model folder dropped from this computer loads without being copied', async ({ page }, info) => {
  const problems = watchProblems(page);
  await page.goto('/');
  const names = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
  const files = names.map((name) => ({ name, data: readFileSync(`public/models/demo/${name}`).toString('base64') }));
  const dt = await page.evaluateHandle((files) => {
    const dt = new DataTransfer();
    for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0))], f.name));
    return dt;
  }, files);
  const zone = page.getByTestId('model-drop');
  await zone.dispatchEvent('dragenter', { dataTransfer: dt });
  await zone.dispatchEvent('dragover', { dataTransfer: dt });
  await zone.dispatchEvent('drop', { dataTransfer: dt });
  await expect(page.getByTestId('loaded-name')).toHaveText('Model from 5 files');
  await expect(page.getByTestId('loaded-source')).toHaveText('files from this computer');
  await expect(page.getByTestId('loaded-parameters')).toContainText(demoParams.toLocaleString('en-US'));
  await expect(page.getByText('No Hub model is cached in this browser yet.')).toBeVisible();

  // Files without weights are refused with a reason; the loaded model stays usable.
  await page.getByLabel('Model files').setInputFiles({ name: 'config.json', mimeType: 'application/json', buffer: readFileSync('public/models/demo/config.json') });
  await expect(page.getByTestId('load-error')).toContainText('Could not load config.json.');
  await expect(page.getByTestId('load-error')).toContainText('the chosen model folder has neither model.safetensors nor model.safetensors.index.json');
  await expect(page.getByTestId('load-error')).toContainText('What to do:');
  await expect(page.getByTestId('loaded-name')).toHaveText('Model from 5 files');
  await page.screenshot({ path: info.outputPath('model-files.png'), fullPage: true });
  expect(problems).toEqual([]);
});
