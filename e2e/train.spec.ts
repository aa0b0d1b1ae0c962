import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { expect, test } from '@playwright/test';
import { focusIsVisible, watchProblems } from './watch.ts';
import { loadDemoWithSample } from './drop.ts';

// The Train screen's settings form from the keyboard, with a message per wrong field and the
// studio's error box when nothing is loaded; and two tabs: while one trains, the other sees the run
// (read from IndexedDB) and cannot start a second one; Pause and Cancel in the first show in the second;
// and a non-LoRA method (IA3) picked in the form, trained for 2 steps and downloaded with its files;
// a quantization-aware full fine-tune (NF4) whose model download holds the f32 and the NF4 folders.

test('the settings form works from the keyboard, marks wrong fields and explains a missing model', async ({ page }, info) => {
  const problems = watchProblems(page);
  await page.goto('/#train');
  await expect(page.getByRole('tab', { name: 'Train' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByTestId('train-model')).toContainText('None loaded.');
  await expect(page.getByTestId('train-dataset')).toContainText('None imported.');
  // Defaults for the demo model's size.
  await expect(page.getByLabel('Rank (r)')).toHaveValue('8');
  await expect(page.getByLabel('Learning rate')).toHaveValue('1e-3');
  await expect(page.getByLabel('Sequence length')).toHaveValue('128');
  await expect(page.getByRole('radio', { name: /^LoRA/ })).toBeChecked();

  const rank = page.getByLabel('Rank (r)');
  await rank.focus();
  expect(await focusIsVisible(page)).toBe(true);
  await page.keyboard.press('Control+A');
  await page.keyboard.type('0');
  await expect(rank).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByText('Rank must be from 1 to 1024; got 0.')).toBeVisible();
  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Alpha')).toBeFocused();
  expect(await focusIsVisible(page)).toBe(true);
  await page.getByLabel('Target modules').fill('q_proj,lm_head');
  await expect(page.getByText('"lm_head" is not among them')).toBeVisible();
  await expect(page.getByText('2 settings need correcting (marked above).')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Start training' })).toBeDisabled();
  await page.screenshot({ path: info.outputPath('train-invalid.png'), fullPage: true });

  await page.getByRole('button', { name: 'Reset to the defaults' }).click();
  await expect(page.locator('.field-error')).toHaveCount(0);
  await page.getByLabel('Sequence length').focus();
  await page.keyboard.press('Tab');
  await expect(page.getByText('More settings')).toBeFocused();
  await page.keyboard.press('Tab');
  await expect(page.getByRole('button', { name: 'Start training' })).toBeFocused();
  expect(await focusIsVisible(page)).toBe(true);
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('train-error')).toContainText('No model is loaded.');
  await expect(page.getByTestId('train-error')).toContainText('What to do: Load a model on the Model screen');
  expect(problems).toEqual([]);
});

test('a second tab sees the run the first one trains and cannot start another', async ({ context }, info) => {
  test.setTimeout(300_000);
  const a = await context.newPage();
  const problems = watchProblems(a);
  await loadDemoWithSample(a);
  await a.getByLabel('Steps', { exact: true }).fill('40');
  await a.getByLabel('Batch size').fill('1');
  await a.getByLabel('Sequence length').fill('40');
  await a.getByLabel('Target modules').fill('q_proj,v_proj');
  await a.getByRole('button', { name: 'Start training' }).click();
  await expect(a.getByTestId('train-run')).toBeVisible();

  const b = await context.newPage();
  const problemsB = watchProblems(b);
  await b.goto('/#train');
  const elsewhere = b.getByTestId('elsewhere-run');
  await expect(elsewhere).toContainText('Training in another tab');
  await expect(elsewhere.getByTestId('train-step')).toHaveText(/^Step \d+ of /);
  await expect(b.getByRole('button', { name: 'Start training' })).toBeDisabled();
  await expect(b.getByText('Another tab is training; one run trains at a time.')).toBeVisible();
  await b.screenshot({ path: info.outputPath('train-elsewhere.png'), fullPage: true });
  await b.getByRole('tab', { name: 'Export' }).click();
  await expect(b.getByTestId('run-list')).toContainText('Training in another tab');
  await expect(b.getByRole('button', { name: 'Delete run…' })).toBeEnabled();

  // Pause stops the run and lets the lock go; the second tab reads the paused run from IndexedDB.
  await a.getByRole('button', { name: 'Pause' }).click();
  await expect(a.getByTestId('run-status')).toHaveText('Paused', { timeout: 120_000 });
  await expect(a.getByTestId('train-notice')).toContainText(/^Paused at step \d+\. Resume continues from the checkpoint of step \d+\.$/);
  await expect(b.getByTestId('run-list')).toContainText('Paused', { timeout: 30_000 });
  await a.getByRole('button', { name: 'Cancel run' }).click();
  await expect(a.getByTestId('train-notice')).toHaveText('The run was cancelled; its checkpoints were removed.');
  await expect(a.getByTestId('run-status')).toHaveText('Cancelled');
  await expect(a.getByRole('button', { name: 'Resume' })).toHaveCount(0);
  await b.getByRole('tab', { name: 'Train' }).click();
  await b.getByRole('tab', { name: 'Export' }).click();
  await expect(b.getByTestId('run-list')).toContainText('Cancelled');
  await b.getByRole('button', { name: 'Delete run…' }).click();
  await b.getByRole('button', { name: /^Yes, delete run / }).click();
  await expect(b.getByTestId('no-runs')).toBeVisible();
  expect(problems).toEqual([]);
  expect(problemsB).toEqual([]);
});

test('IA3 picked in the form trains 2 steps and downloads its PEFT files and its merged model; each method shows its fields and memory plan', async ({ page }, info) => {
  test.setTimeout(120_000);
  const problems = watchProblems(page);
  await loadDemoWithSample(page);
  // Every method of the registry is offered, each with its own fields and a memory plan.
  const shown: Record<string, string> = { QLoRA: 'Base quantization', 'Prompt tuning': 'Initialization', 'Prefix tuning': 'Virtual tokens', 'Bottleneck adapters': 'Reduction factor' };
  for (const [method, field] of Object.entries(shown)) {
    await page.getByRole('radio', { name: new RegExp(`^${method}`) }).check();
    await expect(page.getByLabel(field, { exact: true })).toBeVisible();
    await expect(page.getByTestId('train-plan')).toContainText('Total');
  }
  // Full fine-tuning can train quantization-aware: the plan then counts the working copies.
  await page.getByRole('radio', { name: /^Full fine-tuning/ }).check();
  const weightsRow = page.getByTestId('train-plan').getByRole('row', { name: /^Weights/ });
  await expect(weightsRow).toHaveText(/Weights3\.25 MiB/);
  await page.getByLabel('Quantization-aware training', { exact: true }).selectOption('nf4');
  await expect(page.getByTestId('train-qat')).toContainText('as NF4 (blocks of 64)');
  await expect(weightsRow).toHaveText(/Weights, with the f32 working copies of QAT6\.25 MiB/);
  await page.screenshot({ path: info.outputPath('train-qat.png'), fullPage: true });
  await page.getByLabel('Quantization-aware training', { exact: true }).selectOption('off');
  await expect(page.getByTestId('train-quantized')).toHaveCount(0);
  await page.getByRole('radio', { name: /^QLoRA/ }).check();
  await expect(page.getByTestId('train-quantized')).toContainText('quantized to NF4');
  await page.getByRole('radio', { name: /^IA3/ }).check();
  await expect(page.getByLabel('Feed-forward modules', { exact: true })).toBeVisible();
  await expect(page.getByTestId('train-plan')).toContainText('Adapter (f32)');
  await page.getByLabel('Steps', { exact: true }).fill('2');
  await page.getByLabel('Batch size').fill('1');
  await page.getByLabel('Sequence length').fill('32');
  await page.getByText('More settings').click();
  await page.getByLabel('Validation share').fill('0');
  await page.getByLabel('Learning rate').fill('1e-2');
  await page.screenshot({ path: info.outputPath('train-ia3.png'), fullPage: true });
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Completed', { timeout: 90_000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download adapter (PEFT zip)' }).click()]);
  expect(download.suggestedFilename()).toMatch(/^whetstone-demo-ia3-\d{8}-\d{4}-peft\.zip$/);
  const zip = unzipSync(new Uint8Array(readFileSync(await download.path())));
  expect(Object.keys(zip).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  expect(JSON.parse(new TextDecoder().decode(zip['adapter_config.json']))).toMatchObject({ peft_type: 'IA3', feedforward_modules: ['down_proj'] });
  expect(new TextDecoder().decode(zip['README.md'])).toContain('| Method | IA3 |');
  await page.getByRole('tab', { name: 'Export' }).click();
  await expect(page.getByTestId('no-gguf')).toContainText('IA3 has no GGUF adapter');
  await expect(page.getByRole('button', { name: 'Download GGUF LoRA + Modelfile (zip)' })).toHaveCount(0);
  // IA3's scaling vectors fold into the weights: the merged model downloads as a Hugging Face folder.
  const [merged] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download merged model (zip)' }).click()]);
  const folder = unzipSync(new Uint8Array(readFileSync(await merged.path())));
  expect(Object.keys(folder).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  await page.screenshot({ path: info.outputPath('export-ia3.png'), fullPage: true });
  expect(problems).toEqual([]);
});

test('a quantization-aware full fine-tune (NF4) trains 2 steps and downloads the f32 and NF4 folders', async ({ page }, info) => {
  test.setTimeout(120_000);
  const problems = watchProblems(page);
  await loadDemoWithSample(page);
  await page.getByRole('radio', { name: /^Full fine-tuning/ }).check();
  await page.getByLabel('Quantization-aware training', { exact: true }).selectOption('nf4');
  await page.getByLabel('Steps', { exact: true }).fill('2');
  await page.getByLabel('Batch size').fill('1');
  await page.getByLabel('Sequence length').fill('32');
  await page.getByText('More settings').click();
  await expect(page.getByLabel('QAT block size')).toHaveValue('64');
  await page.getByLabel('Validation share').fill('0');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Completed', { timeout: 90_000 });
  await expect(page.getByTestId('train-progress')).toContainText('model saved');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download model (Hugging Face folder zip)' }).click()]);
  expect(download.suggestedFilename()).toMatch(/^whetstone-demo-full-\d{8}-\d{4}-model\.zip$/);
  const zip = unzipSync(new Uint8Array(readFileSync(await download.path())));
  expect(Object.keys(zip).sort()).toEqual(
    ['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].flatMap((n) => (n === 'README.md' ? [n] : [n, `nf4/${n}`])).sort(),
  );
  expect(JSON.parse(new TextDecoder().decode(zip['nf4/config.json']))).toMatchObject({ quantization_config: { bnb_4bit_quant_type: 'nf4' } });
  expect(new TextDecoder().decode(zip['README.md'])).toContain('quantization-aware for nf4 (block 64)');
  await page.screenshot({ path: info.outputPath('train-qat-done.png'), fullPage: true });
  expect(problems).toEqual([]);
});
