// A checkpoint quantized the way transformers + bitsandbytes save one, as a pre-quantized Hub model
// would be: fixtures/quant/bnb-qwen2-nf4-dq.safetensors holds the projection weights of the tiny
// qwen2-tied-bf16 model in bitsandbytes' Linear4bit layout, written by scripts/bnb_reference.py
// --write-bnb (not by this engine). Joined with the model's other tensors and a bitsandbytes
// quantization_config, the folder loads with its projections kept in NF4 on the GPU, and its loss
// matches PyTorch on the dequantized weights to 1e-4 relative.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { testGpu } from '../gpu/testing.ts';
import { blobFileSet, openModelFolder } from '../io/model-folder.ts';
import { type TensorToWrite, parseSafetensorsHeader, writeSafetensors } from '../io/safetensors.ts';
import { evaluateLoss, loadModel } from '../model/llama.ts';
import { QuantizedTensor } from './tensor.ts';

const FIXTURES = new URL('../../../fixtures/quant/', import.meta.url);

function tensorsOf(bytes: Uint8Array, file: string): TensorToWrite[] {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const index = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.byteLength, file);
  return [...index.tensors.values()].map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, data: bytes.slice(e.offset, e.offset + e.byteLength) }));
}

describe('a bitsandbytes NF4 checkpoint written by another implementation', () => {
  it('loads quantized and gives PyTorch’s loss on its dequantized weights', async () => {
    const fixture = JSON.parse(readFileSync(new URL('bnb-qwen2-nf4-dq.json', FIXTURES), 'utf8')) as { model: string; model_files: Record<string, string>; input_ids: number[][]; loss_per_row: number[] };
    const spec = TINY_MODELS.find((s) => s.name === fixture.model)!;
    const files = makeTinyModel(spec);
    for (const f of files) expect(createHash('sha256').update(f.bytes).digest('hex'), f.name).toBe(fixture.model_files[f.name]);
    const byName = Object.fromEntries(files.map((f) => [f.name, f.bytes]));
    const plain = tensorsOf(byName['model.safetensors'], 'model.safetensors').filter((t) => !t.name.endsWith('_proj.weight'));
    const quantized = tensorsOf(new Uint8Array(readFileSync(new URL('bnb-qwen2-nf4-dq.safetensors', FIXTURES))), 'bnb-qwen2-nf4-dq.safetensors');
    const config = JSON.parse(new TextDecoder().decode(byName['config.json']));
    config.quantization_config = { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'bfloat16' };
    const folderFiles: Record<string, Uint8Array> = { ...byName, 'config.json': new TextEncoder().encode(JSON.stringify(config)), 'model.safetensors': writeSafetensors([...plain, ...quantized], { format: 'pt' }) };
    const folder = await openModelFolder(blobFileSet(Object.fromEntries(Object.entries(folderFiles).map(([n, b]) => [n, new Blob([b as Uint8Array<ArrayBuffer>])])), 'bnb'));
    expect(folder.unusedTensors).toEqual([]);
    const model = await loadModel(await testGpu(), folder);
    try {
      const projections = Object.entries(model.params).filter(([n]) => n.endsWith('_proj.weight'));
      expect(projections.length).toBe(14);
      for (const [, t] of projections) {
        expect(t).toBeInstanceOf(QuantizedTensor);
        expect((t as QuantizedTensor).doubleQuant).toBe(true);
      }
      for (let i = 0; i < fixture.input_ids.length; i++) {
        const { loss } = await evaluateLoss(model, [{ inputIds: fixture.input_ids[i] }]);
        const err = Math.abs(loss - fixture.loss_per_row[i]) / fixture.loss_per_row[i];
        console.log(`bitsandbytes checkpoint row ${i}: loss ${loss.toFixed(6)} vs PyTorch ${fixture.loss_per_row[i].toFixed(6)} (rel ${err.toExponential(2)})`);
        expect(err).toBeLessThan(1e-4);
      }
    } finally {
      model.release();
    }
  });
});
