import { describe, expect, it } from 'vitest';
import { TINY_MODELS, makeTinyModel } from '../../../scripts/tiny/models.ts';
import { WeightMismatchError } from '../errors.ts';
import { blobFileSet, openModelFolder, streamRawWeights, streamWeights } from '../io/model-folder.ts';
import { parseSafetensorsHeader } from '../io/safetensors.ts';
import { type QuantOptions, dequantizeMatrix, quantizeMatrix } from './format.ts';
import { quantizeFolder } from './quantize-folder.ts';

function tinyFiles(name: string): Record<string, Uint8Array> {
  const spec = TINY_MODELS.find((s) => s.name === name)!;
  return Object.fromEntries(makeTinyModel(spec).map((f) => [f.name, f.bytes]));
}

function folderOf(files: Record<string, Uint8Array>) {
  return openModelFolder(blobFileSet(Object.fromEntries(Object.entries(files).map(([n, b]) => [n, new Blob([b as Uint8Array<ArrayBuffer>])])), 'tiny'));
}

async function quantizedFiles(name: string, o: QuantOptions) {
  const files = tinyFiles(name);
  const q = quantizeFolder(await folderOf(files), o);
  const chunks: Uint8Array[] = [];
  for await (const c of q.weights) chunks.push(c);
  const bytes = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  expect(bytes.byteLength).toBe(q.totalBytes);
  const out = { ...files, 'config.json': new TextEncoder().encode(JSON.stringify(q.config)), 'model.safetensors': bytes };
  return { original: files, out, report: q.report, config: q.config };
}

const CASES: (QuantOptions & { label: string })[] = [
  { label: 'nf4 double-quant', format: 'nf4', block: 64, doubleQuant: true },
  { label: 'fp4 block 32', format: 'fp4', block: 32 },
  { label: 'int8', format: 'int8' },
  { label: 'int4 asymmetric g32', format: 'int4', block: 32, symmetric: false },
];

describe('quantizeFolder writes folders that load back', () => {
  for (const o of CASES) {
    it(`${o.label}: every projection round-trips, everything else is copied`, async () => {
      const { original, out, report, config } = await quantizedFiles('qwen2-tied-bf16', o);
      const before = await folderOf(original);
      const after = await folderOf(out);
      const raw = new Map<string, { values: Float32Array }>();
      for await (const w of streamWeights(before)) raw.set(w.name, { values: w.data });
      let projections = 0;
      for await (const w of streamRawWeights(after)) {
        const src = raw.get(w.name)!;
        if (w.name.endsWith('_proj.weight')) {
          projections++;
          expect(w.quantized?.format).toBe(o.format);
          const want = quantizeMatrix(src.values, w.shape, o);
          expect(Buffer.from(w.quantized!.codes).equals(Buffer.from(want.codes))).toBe(true);
          expect([...w.quantized!.scales]).toEqual([...want.scales]);
          if (want.aux) expect(Buffer.from(w.quantized!.aux!).equals(Buffer.from(want.aux))).toBe(true);
          expect(w.quantized!.offset).toBe(want.offset);
        } else {
          expect(w.quantized).toBeUndefined();
        }
      }
      expect(projections).toBe(14);
      for await (const w of streamWeights(after)) {
        if (!w.name.endsWith('_proj.weight')) expect([...w.data]).toEqual([...raw.get(w.name)!.values]);
      }
      expect(report.length).toBe(14);
      for (const r of report) expect(r.relError).toBeGreaterThan(0);
      for (const r of report) expect(r.relError).toBeLessThan(o.format === 'int8' ? 0.02 : 0.2);
      const qc = config.quantization_config as Record<string, unknown>;
      if (o.format === 'int4') expect(qc.quant_method).toBe('whetstone-int4');
      else expect(qc.quant_method).toBe('bitsandbytes');
    });
  }

  it('uses bitsandbytes key names, dtypes and shapes', async () => {
    const { out } = await quantizedFiles('qwen2-tied-bf16', { format: 'nf4', block: 64, doubleQuant: true });
    const st = out['model.safetensors'];
    const headerLen = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
    const index = parseSafetensorsHeader(st.subarray(8, 8 + headerLen), st.byteLength, 'model.safetensors');
    const p = 'model.layers.0.self_attn.q_proj.weight';
    const e = (n: string) => index.tensors.get(n)!;
    const [rows, cols] = [64, 64];
    expect([e(p).dtype, e(p).shape]).toEqual(['U8', [(rows * cols) / 2, 1]]);
    expect([e(`${p}.absmax`).dtype, e(`${p}.absmax`).shape]).toEqual(['U8', [(rows * cols) / 64]]);
    expect([e(`${p}.quant_map`).dtype, e(`${p}.quant_map`).shape]).toEqual(['F32', [16]]);
    expect([e(`${p}.nested_absmax`).dtype, e(`${p}.nested_absmax`).shape]).toEqual(['F32', [1]]);
    expect([e(`${p}.nested_quant_map`).dtype, e(`${p}.nested_quant_map`).shape]).toEqual(['F32', [256]]);
    const state = e(`${p}.quant_state.bitsandbytes__nf4`);
    expect(state.dtype).toBe('U8');
    const json = JSON.parse(new TextDecoder().decode(st.subarray(state.offset, state.offset + state.byteLength)));
    expect(json).toMatchObject({ quant_type: 'nf4', blocksize: 64, dtype: 'bfloat16', shape: [rows, cols], nested_blocksize: 256, nested_dtype: 'float32' });
    expect(typeof json.nested_offset).toBe('number');
    const int8 = await quantizedFiles('qwen2-tied-bf16', { format: 'int8' });
    const st8 = int8.out['model.safetensors'];
    const h8 = parseSafetensorsHeader(st8.subarray(8, 8 + Number(new DataView(st8.buffer, st8.byteOffset).getBigUint64(0, true))), st8.byteLength, 'x');
    expect([h8.tensors.get(p)!.dtype, h8.tensors.get(p)!.shape]).toEqual(['I8', [rows, cols]]);
    expect(h8.tensors.get('model.layers.0.self_attn.q_proj.SCB')!.shape).toEqual([rows]);
    expect(h8.tensors.get('model.layers.0.self_attn.q_proj.weight_format')!.shape).toEqual([]);
  });

  it('refuses an already-quantized folder and reports a broken one by tensor name', async () => {
    const { out } = await quantizedFiles('qwen2-tied-bf16', { format: 'fp4' });
    expect(() => quantizeFolder(null as never, { format: 'nf4', block: 48 })).toThrowError(/power of two/);
    const folder = await folderOf(out);
    expect(() => quantizeFolder(folder, { format: 'nf4' })).toThrowError(/already quantized/);
    // Drop the quant_map of one weight from the header: the folder no longer opens.
    const st = out['model.safetensors'];
    const headerLen = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
    const header = new TextDecoder().decode(st.subarray(8, 8 + headerLen));
    const broken = header.replace('"model.layers.1.mlp.up_proj.weight.quant_map"', '"model.layers.1.mlp.up_proj.weight.quant_mop"');
    const copy = st.slice();
    copy.set(new TextEncoder().encode(broken), 8);
    await expect(folderOf({ ...out, 'model.safetensors': copy })).rejects.toThrowError(WeightMismatchError);
    await expect(folderOf({ ...out, 'model.safetensors': copy })).rejects.toThrowError(/up_proj.weight.quant_map" is missing/);
    expect(dequantizeMatrix).toBeDefined();
  });
});
