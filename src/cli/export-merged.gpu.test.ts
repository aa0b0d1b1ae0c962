// Merged-model export beyond LoRA over f32 weights, on the demo model (public/models/demo, stored
// bf16; the merged folders are written in f32 so that only the merge itself is compared):
// `whetstone export --format merged` for DoRA and IA3 adapters writes a folder whose logits are the
// unmerged adapter's, GGUF stays LoRA's alone (refused for DoRA with the formats it has); a LoRA
// adapter over an NF4 base exports a dequantized merged folder with the quantized model's logits,
// and an in-place merge (IA3) over a quantized base is refused with a typed error.

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../engine/errors.ts';
import { readTensor } from '../engine/gpu/readback.ts';
import { type Tensor, writeTensor } from '../engine/gpu/tensor.ts';
import { testGpu } from '../engine/gpu/testing.ts';
import { blobFileSet, openModelFolder } from '../engine/io/model-folder.ts';
import { openModelDirectory } from '../engine/io/model-folder-node.ts';
import { type LlamaModel, loadModel } from '../engine/model/llama.ts';
import { type PeftAdapter, withForwardOptions } from '../engine/peft/adapter.ts';
import { createLoraConfig } from '../engine/peft/lora/config.ts';
import { createLora, exportInPlaceMerged, exportMergedModel, exportedBytes, withAdapter } from '../engine/peft/lora/model.ts';
import { findMethod, parseMethodOptions } from '../engine/peft/methods.ts';
import { Rng } from '../engine/random.ts';
import { relL2 } from '../engine/reference/compare.ts';
import { runCaptured } from './run-captured.ts';

const DEMO = 'public/models/demo';
const PROBE = [[5, 17, 60, 3, 88, 41], [12, 13, 14]];
let root = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'whetstone-export-merged-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const flat = (xs: Float32Array[]) => Float32Array.from(xs.flatMap((x) => Array.from(x)));

/** Moves every adapter value away from its initialization (deterministically). */
async function perturb(params: readonly { value: Tensor }[], seed: number): Promise<void> {
  const rng = new Rng(seed);
  for (const p of params) {
    const v = await readTensor(p.value as Tensor & { dtype: 'f32' });
    writeTensor(p.value, v.map((x) => x + 0.2 * rng.normal()));
  }
}

async function loadFolder(files: Map<string, Uint8Array>): Promise<ReturnType<typeof openModelFolder>> {
  return openModelFolder(blobFileSet(Object.fromEntries([...files].map(([name, bytes]) => [name, new Blob([bytes as Uint8Array<ArrayBuffer>])])), 'merged'));
}

describe('whetstone export --format merged', () => {
  it.each([
    ['dora', { rank: '4', alpha: '8', targets: 'q_proj,v_proj,down_proj' }],
    ['ia3', {}],
  ] as const)('%s: the merged folder gives the unmerged adapter’s logits', async (id, flags) => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await openModelDirectory(DEMO));
    const dir = join(root, id);
    let want: Float32Array;
    try {
      const method = findMethod(id);
      const adapter: PeftAdapter = await method.create(model, parseMethodOptions(method, flags), { seed: 3 });
      try {
        await perturb(adapter.params, 9);
        want = flat(await withForwardOptions(model, adapter.inferenceOptions()).logits(PROBE));
        expect(relL2(flat(await model.logits(PROBE)), want)).toBeGreaterThan(1e-3);
        await mkdir(dir, { recursive: true });
        for (const [name, bytes] of await adapter.exportFiles()) await writeFile(join(dir, name), bytes);
      } finally {
        adapter.release();
      }
    } finally {
      model.release();
    }
    const out = join(root, `${id}-merged`);
    const r = await runCaptured(['export', '--model', DEMO, '--adapter', dir, '--format', 'merged', '--out', out, '--dtype', 'f32']);
    expect(r.code, r.stderr).toBe(0);
    const merged = await loadModel(gpu, await openModelDirectory(out));
    try {
      const err = relL2(flat(await merged.logits(PROBE)), want);
      console.log(`${id}: merged folder logits relL2 vs the unmerged adapter ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-5);
    } finally {
      merged.release();
    }
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))).toMatchObject({ architectures: ['LlamaForCausalLM'] });
    if (id === 'dora') {
      const gguf = await runCaptured(['export', '--model', DEMO, '--adapter', dir, '--format', 'gguf', '--out', join(root, 'dora.gguf')]);
      expect(gguf.code).toBe(1);
      expect(gguf.stderr).toMatch(/--format gguf is not available for DoRA adapters; they export as peft, merged/);
    }
  });

  it('a LoRA adapter over an NF4 base exports dequantized weights with the quantized model’s logits; an in-place merge there is refused', async () => {
    const gpu = await testGpu();
    const source = await openModelDirectory(DEMO);
    const model: LlamaModel = await loadModel(gpu, source, { quant: { format: 'nf4', block: 64, doubleQuant: true } });
    try {
      expect(model.quantization).toBe('nf4');
      const lora = createLora(model, createLoraConfig({ r: 4, lora_alpha: 8, target_modules: 'all-linear' }), { seed: 2 });
      try {
        await perturb(lora.params, 5);
        const want = flat(await withAdapter(model, lora).logits(PROBE));
        const files = await exportedBytes(await exportMergedModel(model, lora, source, { dtype: 'f32' }));
        const config = JSON.parse(new TextDecoder().decode(files.get('config.json')));
        expect(config.quantization_config).toBeUndefined();
        const merged = await loadModel(gpu, await loadFolder(files));
        try {
          expect(merged.quantization).toBeNull();
          // The GPU decodes the same codes tile by tile; only f32 summation order differs.
          const err = relL2(flat(await merged.logits(PROBE)), want);
          console.log(`LoRA over NF4: dequantized merged folder logits relL2 vs the quantized model with the adapter ${err.toExponential(2)}`);
          expect(err).toBeLessThan(1e-5);
        } finally {
          merged.release();
        }
      } finally {
        lora.release();
      }
      const ia3Method = findMethod('ia3');
      const ia3 = await ia3Method.create(model, parseMethodOptions(ia3Method, {}), { seed: 1 });
      try {
        await expect(exportInPlaceMerged(model, ia3, source)).rejects.toThrow(InvalidArgumentError);
        await expect(exportInPlaceMerged(model, ia3, source)).rejects.toThrow(/stores them quantized \(nf4\)/);
      } finally {
        ia3.release();
      }
    } finally {
      model.release();
    }
  });
});
