import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { exportPeftLora } from '../src/engine/io/export-peft.ts';
import { parseModelConfig } from '../src/engine/model/config.ts';
import { createLoraConfig, expectedLoraModules } from '../src/engine/peft/lora/config.ts';
import { Rng } from '../src/engine/random.ts';
import { focusIsVisible, watchProblems } from './watch.ts';

// The Playground: without a model it points to the Model screen; with the demo model and a small
// random PEFT adapter dropped onto the page, base and tuned answers stream side by side, and the
// strength slider moves with the keyboard.

/** adapter_config.json and adapter_model.safetensors of a random LoRA adapter for the demo model. */
function demoAdapter(): { name: string; data: string }[] {
  const modelConfig = parseModelConfig(JSON.parse(readFileSync('public/models/demo/config.json', 'utf8')));
  const config = createLoraConfig({ r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false });
  const rng = new Rng(7);
  const tensors = new Map(
    expectedLoraModules(config, modelConfig).map((s) => [
      s.path,
      { A: rng.fill(s.r * s.inFeatures, (q) => q.uniform(-0.5, 0.5)), B: rng.fill(s.outFeatures * s.r, (q) => q.uniform(-0.5, 0.5)) },
    ]),
  );
  return [...exportPeftLora({ config, tensors, modelConfig })].map(([name, bytes]) => ({ name, data: Buffer.from(bytes).toString('base64') }));
}

test('base and tuned answers stream side by side with a dropped adapter at a chosen strength', async ({ page }, info) => {
  const problems = watchProblems(page);
  await page.goto('/#playground');
  await expect(page.getByRole('tab', { name: 'Playground' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByTestId('pg-no-model')).toContainText('No model is loaded.');
  await page.getByRole('button', { name: 'Go to the Model screen' }).click();
  await expect(page.getByRole('tab', { name: 'Model' })).toHaveAttribute('aria-selected', 'true');
  await page.getByRole('button', { name: 'Load the demo model' }).click();
  await expect(page.getByTestId('loaded-name')).toHaveText('Demo model (built in)');

  await page.getByRole('tab', { name: 'Playground' }).click();
  await expect(page.getByTestId('pg-no-adapters')).toBeVisible();

  // A config without its weights is refused with a typed error that says what is missing.
  const adapterFiles = demoAdapter();
  const config = adapterFiles.find((f) => f.name === 'adapter_config.json') as { name: string; data: string };
  await page.getByLabel('Adapter files').setInputFiles({ name: config.name, mimeType: 'application/json', buffer: Buffer.from(config.data, 'base64') });
  await expect(page.getByTestId('pg-adapter-error')).toContainText('MissingFileError');
  await expect(page.getByTestId('pg-adapter-error')).toContainText('adapter_model.safetensors is missing');

  // Drop the adapter's two files onto the page.
  const dt = await page.evaluateHandle((files) => {
    const dt = new DataTransfer();
    for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0))], f.name));
    return dt;
  }, adapterFiles);
  const zone = page.getByTestId('pg-adapter-drop');
  for (const type of ['dragenter', 'dragover', 'drop']) await zone.dispatchEvent(type, { dataTransfer: dt });
  await expect(page.getByLabel('Tuned with')).toHaveValue('files:dropped adapter');
  await expect(page.getByTestId('pg-adapter-info')).toContainText('LoRA rank 4, alpha 8, on');
  await expect(page.getByTestId('pg-adapter-error')).toHaveCount(0);

  // The slider moves with the keyboard, in steps of 0.05.
  const slider = page.getByLabel('Adapter strength');
  await page.getByLabel('Tuned with').focus();
  await page.keyboard.press('Tab');
  await expect(slider).toBeFocused();
  expect(await focusIsVisible(page)).toBe(true);
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowRight');
  await expect(page.getByTestId('pg-strength-value')).toHaveText('1.10×');
  await page.keyboard.press('ArrowLeft');
  await expect(page.getByTestId('pg-strength-value')).toHaveText('1.05×');

  await page.getByLabel('Max new tokens').fill('4');
  await page.getByRole('textbox', { name: 'Prompt' }).fill('Once upon a time');
  // Count how often each column's text changes while it streams.
  await page.evaluate(() => {
    const w = window as unknown as { pgUpdates: Record<string, string[]> };
    w.pgUpdates = { base: [], tuned: [] };
    new MutationObserver(() => {
      for (const c of ['base', 'tuned']) {
        const t = document.querySelector(`[data-testid="pg-${c}-text"]`)?.textContent ?? '';
        const seen = w.pgUpdates[c];
        if (t !== '' && t !== '…' && seen[seen.length - 1] !== t) seen.push(t);
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await page.getByRole('textbox', { name: 'Prompt' }).press('Control+Enter');
  await expect(page.getByRole('button', { name: 'Stop' })).toBeEnabled();
  await expect(page.getByTestId('pg-tuned')).toContainText('Tuned (dropped adapter) at strength 1.05×');
  await expect(page.getByTestId('pg-base-figures')).toContainText(/tokens · [\d.]+ tokens\/s · [\d.]+ s; (reached max new tokens|ended with an end token)/);
  await expect(page.getByTestId('pg-tuned-figures')).toContainText(/tokens · [\d.]+ tokens\/s · [\d.]+ s; (reached max new tokens|ended with an end token)/);
  await expect(page.getByRole('button', { name: 'Generate' })).toBeEnabled();
  await expect(page.getByTestId('pg-summary')).toContainText(/Prompt: \d+ tokens/);
  const updates = await page.evaluate(() => (window as unknown as { pgUpdates: Record<string, string[]> }).pgUpdates);
  console.log(`streamed updates: base ${JSON.stringify(updates.base)}, tuned ${JSON.stringify(updates.tuned)}`);
  // Both columns grew piece by piece, each update extending the last.
  for (const c of ['base', 'tuned']) {
    expect(updates[c].length).toBeGreaterThan(1);
    for (let i = 1; i < updates[c].length; i++) expect(updates[c][i].startsWith(updates[c][i - 1])).toBe(true);
  }
  await expect(page.getByTestId('pg-base-text')).toHaveText(updates.base.at(-1) as string);
  await page.screenshot({ path: info.outputPath('playground.png'), fullPage: true });
  expect(problems).toEqual([]);
});
