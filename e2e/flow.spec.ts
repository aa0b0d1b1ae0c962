import { readFileSync } from 'node:fs';
import { type Page, expect, test } from '@playwright/test';
import { unzipSync } from 'fflate';
import { watchProblems } from './watch.ts';
import { loadDemoWithSample } from './drop.ts';

// The studio end to end on the demo model: load it, drop the sample instruction dataset with a real
// drag and drop, train a few small steps while the loss chart gains points, download the adapter and
// check the PEFT files inside the zip; the run then shows on the Export screen with its results and
// other formats. A reload in the middle of a run finds it in IndexedDB, and Resume continues from the
// last checkpoint to the end. The browser reports no error along the way.

/** Loads the demo model, drops the sample dataset, and fills small settings on the Train screen. */
async function prepare(page: Page, steps: number, saveEvery: number): Promise<void> {
  await loadDemoWithSample(page);
  await expect(page.getByTestId('train-model')).toContainText('Demo model (built in)');
  await expect(page.getByTestId('train-dataset')).toContainText('alpaca-facts.jsonl: 50 examples');
  // Small steps keep SwiftShader quick: one row of at most 40 tokens, two projections adapted.
  await page.getByLabel('Steps', { exact: true }).fill(String(steps));
  await page.getByLabel('Batch size').fill('1');
  await page.getByLabel('Sequence length').fill('40');
  await page.getByLabel('Target modules').fill('q_proj,v_proj');
  await page.getByText('More settings').click();
  await page.getByLabel('Checkpoint every').fill(String(saveEvery));
  await expect(page.locator('.field-error')).toHaveCount(0);
}

/** Dots drawn on the loss chart's training-loss line (drawn in its colour). */
function lossDots(page: Page) {
  return page.getByTestId('loss-chart').locator('.recharts-line-dot[stroke="#2f6fcf"]');
}

/** Training on SwiftShader takes a few seconds a step; a run's end is awaited this long. */
const RUN_MS = 240_000;

test('load the demo, drop the sample, train, watch the loss chart grow, download the adapter', async ({ page }, info) => {
  test.setTimeout(420_000);
  const problems = watchProblems(page);
  await prepare(page, 4, 2);
  await page.screenshot({ path: info.outputPath('train-setup.png'), fullPage: true });
  await page.getByRole('button', { name: 'Start training' }).click();

  await expect(lossDots(page)).toHaveCount(1, { timeout: RUN_MS });
  await expect.poll(async () => lossDots(page).count(), { timeout: RUN_MS }).toBeGreaterThanOrEqual(2);
  await page.screenshot({ path: info.outputPath('train-running.png'), fullPage: true });
  await expect(page.getByTestId('run-status')).toHaveText('Completed', { timeout: RUN_MS });
  await expect(lossDots(page)).toHaveCount(4);
  await expect(page.getByTestId('train-step')).toHaveText('Step 4 of 4 (100 %)');
  await page.screenshot({ path: info.outputPath('train-done.png'), fullPage: true });

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download adapter (PEFT zip)' }).click()]);
  expect(download.suggestedFilename()).toMatch(/^whetstone-demo-lora-\d{8}-\d{4}-peft\.zip$/);
  const zip = unzipSync(new Uint8Array(readFileSync(await download.path())));
  expect(Object.keys(zip).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  const config = JSON.parse(new TextDecoder().decode(zip['adapter_config.json'])) as Record<string, unknown>;
  expect(config).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 16, base_model_name_or_path: 'demo', task_type: 'CAUSAL_LM' });
  expect([...(config.target_modules as string[])].sort()).toEqual(['q_proj', 'v_proj']);
  const st = zip['adapter_model.safetensors'];
  const n = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[] }>;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  expect(names).toHaveLength(4 * 2 * 2);
  // Demo model: hidden 128, 4 query heads and 2 key/value heads of 32: q_proj 128→128, v_proj 128→64.
  expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'].shape).toEqual([8, 128]);
  expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight'].shape).toEqual([128, 8]);
  expect(header['base_model.model.model.layers.3.self_attn.v_proj.lora_A.weight'].shape).toEqual([8, 128]);
  expect(header['base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight'].shape).toEqual([64, 8]);
  expect(new TextDecoder().decode(zip['README.md'])).toContain('library_name: peft');

  // The Export screen lists the run with its results and offers the other formats.
  await page.getByRole('tab', { name: 'Export' }).click();
  const list = page.getByTestId('run-list');
  await expect(list.locator('tbody tr')).toHaveCount(1);
  await expect(list.locator('tbody tr').first()).toContainText('Demo model (built in)');
  await expect(list.locator('tbody tr').first()).toContainText('Completed');
  const details = page.getByTestId('run-details');
  await expect(details).toContainText(/Final training loss\s*\d+\.\d{4} nats\/token/);
  await expect(details).toContainText('Sequence length40 tokens');
  await page.screenshot({ path: info.outputPath('export-screen.png'), fullPage: true });
  const [gguf] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download GGUF LoRA + Modelfile (zip)' }).click()]);
  const g = unzipSync(new Uint8Array(readFileSync(await gguf.path())));
  expect(new TextDecoder().decode(g['adapter.gguf'].subarray(0, 4))).toBe('GGUF');
  expect(new TextDecoder().decode(g.Modelfile)).toContain('ADAPTER ./adapter.gguf');
  const [merged] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download merged model (zip)' }).click()]);
  const m = unzipSync(new Uint8Array(readFileSync(await merged.path())));
  expect(Object.keys(m)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));

  await page.getByRole('button', { name: 'Delete run…' }).click();
  await page.getByRole('button', { name: /^Yes, delete run / }).click();
  await expect(page.getByTestId('no-runs')).toBeVisible();
  expect(problems).toEqual([]);
});

test('a reload in the middle of a run resumes it from the last checkpoint', async ({ page }, info) => {
  test.setTimeout(420_000);
  const problems = watchProblems(page);
  await prepare(page, 4, 1);
  await page.getByRole('button', { name: 'Start training' }).click();
  // A checkpoint is stored once the step after it passed the checks.
  await expect(page.getByTestId('train-progress')).toContainText(/last checkpoint: step [1-9]/, { timeout: RUN_MS });
  const text = (await page.getByTestId('train-progress').textContent()) ?? '';
  const checkpoint = Number(/last checkpoint: step (\d+)/.exec(text)?.[1]);
  expect(checkpoint).toBeGreaterThan(0);

  await page.reload();
  await expect(page.getByRole('tab', { name: 'Train' })).toHaveAttribute('aria-selected', 'true');
  const unfinished = page.getByTestId('unfinished-run');
  await expect(unfinished).toContainText('Interrupted');
  const resume = page.getByRole('button', { name: /^Resume training from step \d+$/ });
  const from = Number(/(\d+)$/.exec((await resume.textContent()) ?? '')?.[1]);
  expect(from).toBeGreaterThanOrEqual(checkpoint);
  await page.screenshot({ path: info.outputPath('train-unfinished.png'), fullPage: true });

  // Every step value the counter shows from now on is recorded.
  await page.evaluate(() => {
    const seen: number[] = [];
    (globalThis as unknown as { seenSteps: number[] }).seenSteps = seen;
    const read = () => {
      const el = document.querySelector('[data-testid="train-step"]');
      if (el) seen.push(Number(el.getAttribute('data-step')));
    };
    new MutationObserver(read).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-step'] });
  });
  await resume.click();
  await expect(page.getByTestId('run-status')).toHaveText('Completed', { timeout: RUN_MS });
  await expect(page.getByTestId('train-step')).toHaveText('Step 4 of 4 (100 %)');
  const seen = await page.evaluate(() => (globalThis as unknown as { seenSteps: number[] }).seenSteps);
  expect(seen.length).toBeGreaterThan(0);
  expect(Math.min(...seen)).toBeGreaterThanOrEqual(from);
  expect(seen[seen.length - 1]).toBe(4);
  // The chart holds every step once: those before the checkpoint were read back, the rest recomputed.
  await expect(lossDots(page)).toHaveCount(4);
  expect(problems).toEqual([]);
});
