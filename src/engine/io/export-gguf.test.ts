import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GGMLQuantizationType, GGUFValueType, gguf } from '@huggingface/gguf';
import { afterAll, describe, expect, it } from 'vitest';
import { AdapterConfigError, AdapterMismatchError, InvalidArgumentError, ShapeError } from '../errors.ts';
import { type ModelConfig, parseModelConfig } from '../model/config.ts';
import { type LoraConfig, type LoraPair, createLoraConfig, expectedLoraModules, moduleScaling } from '../peft/lora/config.ts';
import { Rng } from '../random.ts';
import { type GgufMetadataValue, exportGgufLora, ggufLoraAlpha, ollamaModelfile, permuteRowsForLlamaRope, writeGguf } from './export-gguf.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';

const dir = mkdtempSync(join(tmpdir(), 'whetstone-gguf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;

/** Writes `bytes` to a temp file and parses it with @huggingface/gguf. */
async function readBack(bytes: Uint8Array) {
  const path = join(dir, `t${fileNo++}.gguf`);
  writeFileSync(path, bytes);
  const parsed = await gguf(path, { allowLocalFile: true, typedMetadata: true });
  const tensor = (name: string) => {
    const info = parsed.tensorInfos.find((t) => t.name === name);
    if (!info) throw new Error(`no tensor ${name}`);
    const start = Number(parsed.tensorDataOffset + info.offset);
    const count = info.shape.reduce((a, d) => a * Number(d), 1);
    const raw = bytes.slice(start, start + count * (info.dtype === GGMLQuantizationType.F32 ? 4 : 2));
    const values =
      info.dtype === GGMLQuantizationType.F32
        ? new Float32Array(raw.buffer)
        : info.dtype === GGMLQuantizationType.F16
          ? f16ToF32(new Uint16Array(raw.buffer))
          : bf16ToF32(new Uint16Array(raw.buffer));
    return { info, values };
  };
  return { ...parsed, tensor };
}

const model = (architecture: string, extra: Record<string, unknown> = {}): ModelConfig =>
  parseModelConfig({
    architectures: [architecture],
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 32,
    ...extra,
  });
// head_dim 4 from 16 / 4; q has 16 rows (4 heads), k and v 8 rows (2 heads).
const LLAMA = model('LlamaForCausalLM');
const QWEN2 = model('Qwen2ForCausalLM');

function randomTensors(config: LoraConfig, m: ModelConfig, seed = 1): Map<string, LoraPair> {
  const rng = new Rng(seed);
  return new Map(expectedLoraModules(config, m).map((s) => [s.path, { A: rng.fill(s.r * s.inFeatures), B: rng.fill(s.outFeatures * s.r) }]));
}

/** HF row of GGUF row `g` under convert_hf_to_gguf's permute: g = h·hd + 2j + p ← h·hd + p·hd/2 + j. */
function hfRowOf(g: number, hd: number): number {
  const h = Math.floor(g / hd);
  const within = g % hd;
  const j = Math.floor(within / 2);
  const p = within % 2;
  return h * hd + p * (hd / 2) + j;
}

const ALL = createLoraConfig({ r: 4, lora_alpha: 16, target_modules: 'all-linear' });
const GGUF_NAMES: [string, string][] = [
  ['self_attn.q_proj', 'attn_q'],
  ['self_attn.k_proj', 'attn_k'],
  ['self_attn.v_proj', 'attn_v'],
  ['self_attn.o_proj', 'attn_output'],
  ['mlp.gate_proj', 'ffn_gate'],
  ['mlp.up_proj', 'ffn_up'],
  ['mlp.down_proj', 'ffn_down'],
];

describe('writeGguf', () => {
  it('writes a version-3 file that @huggingface/gguf reads: every metadata type, aligned F32/F16 data', async () => {
    const metadata: [string, GgufMetadataValue][] = [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['test.u32', { type: 'u32', value: 4_000_000_000 }],
      ['test.f32', { type: 'f32', value: 0.25 }],
      ['test.bool', { type: 'bool', value: true }],
      ['test.ids', { type: 'u32[]', value: [1, 2, 70000] }],
      ['test.text', { type: 'string', value: 'héllo' }],
    ];
    const a = new Float32Array([1, -2, 3.5, 4, 5, 6]);
    const b = new Float32Array([0.5, -0.25, 7]);
    const bytes = writeGguf(metadata, [
      { name: 'a', type: 'F32', ne: [3, 2], data: a },
      { name: 'b', type: 'F16', ne: [3], data: b },
    ]);
    const dv = new DataView(bytes.buffer);
    expect(new TextDecoder().decode(bytes.slice(0, 4))).toBe('GGUF');
    expect(dv.getUint32(4, true)).toBe(3);
    expect(dv.getBigUint64(8, true)).toBe(2n);
    expect(dv.getBigUint64(16, true)).toBe(6n);

    const r = await readBack(bytes);
    expect(r.littleEndian).toBe(true);
    expect(r.metadata.version).toBe(3);
    const tm = r.typedMetadata;
    expect(tm['general.architecture']).toEqual({ value: 'llama', type: GGUFValueType.STRING });
    expect(tm['test.u32']).toEqual({ value: 4_000_000_000, type: GGUFValueType.UINT32 });
    expect(tm['test.f32']).toEqual({ value: 0.25, type: GGUFValueType.FLOAT32 });
    expect(tm['test.bool']).toEqual({ value: true, type: GGUFValueType.BOOL });
    expect(tm['test.ids']).toEqual({ value: [1, 2, 70000], type: GGUFValueType.ARRAY, subType: GGUFValueType.UINT32 });
    expect(tm['test.text'].value).toBe('héllo');
    expect(r.tensorInfos.map((t) => [t.name, t.n_dims, t.shape, t.dtype, t.offset])).toEqual([
      ['a', 2, [3n, 2n], GGMLQuantizationType.F32, 0n],
      ['b', 1, [3n], GGMLQuantizationType.F16, 32n],
    ]);
    expect(Number(r.tensorDataOffset) % 32).toBe(0);
    expect(bytes.length).toBe(Number(r.tensorDataOffset) + 32 + 32); // each tensor padded to 32 bytes
    expect(r.tensor('a').values).toEqual(a);
    expect(r.tensor('b').values).toEqual(b);
  });

  it('honours general.alignment', async () => {
    const bytes = writeGguf(
      [['general.alignment', { type: 'u32', value: 64 }]],
      [
        { name: 'x', type: 'F32', ne: [3], data: new Float32Array([1, 2, 3]) },
        { name: 'y', type: 'F32', ne: [1], data: new Float32Array([4]) },
      ],
    );
    const r = await readBack(bytes);
    expect(Number(r.tensorDataOffset) % 64).toBe(0);
    expect(r.tensorInfos[1].offset).toBe(64n);
    expect(bytes.length).toBe(Number(r.tensorDataOffset) + 128);
    expect(r.tensor('y').values).toEqual(new Float32Array([4]));
  });

  it('rejects malformed metadata and tensors', () => {
    const t = { name: 'x', type: 'F32' as const, ne: [2], data: new Float32Array(2) };
    expect(() => writeGguf([['k', { type: 'u32', value: 1 }], ['k', { type: 'u32', value: 2 }]], [])).toThrow(/given twice/);
    expect(() => writeGguf([['k', { type: 'u32', value: -1 }]], [])).toThrow(InvalidArgumentError);
    expect(() => writeGguf([['k', { type: 'u32[]', value: [1.5] }]], [])).toThrow(InvalidArgumentError);
    expect(() => writeGguf([['general.alignment', { type: 'u32', value: 24 }]], [])).toThrow(/power of two/);
    expect(() => writeGguf([], [t, t])).toThrow(/"x" is given twice/);
    expect(() => writeGguf([], [{ ...t, name: 'n'.repeat(64) }])).toThrow(/1 to 63 bytes/);
    expect(() => writeGguf([], [{ ...t, ne: [3] }])).toThrow(ShapeError);
    expect(() => writeGguf([], [{ ...t, ne: [1, 1, 1, 1, 2] }])).toThrow(ShapeError);
  });
});

describe('exportGgufLora', () => {
  it('writes a llama.cpp adapter for arch llama with the q/k permutation on lora_b', async () => {
    const tensors = randomTensors(ALL, LLAMA);
    const bytes = exportGgufLora({ config: ALL, tensors, modelConfig: LLAMA, name: 'tiny adapter' });
    const r = await readBack(bytes);
    const tm = r.typedMetadata;
    expect(tm['general.architecture']).toEqual({ value: 'llama', type: GGUFValueType.STRING });
    expect(tm['general.type']).toEqual({ value: 'adapter', type: GGUFValueType.STRING });
    expect(tm['adapter.type']).toEqual({ value: 'lora', type: GGUFValueType.STRING });
    expect(tm['adapter.lora.alpha']).toEqual({ value: 16, type: GGUFValueType.FLOAT32 });
    expect(tm['general.name']?.value).toBe('tiny adapter');
    expect(tm['general.file_type']).toEqual({ value: 0, type: GGUFValueType.UINT32 });
    expect(tm['general.alignment']).toBeUndefined();

    expect(r.tensorInfos.map((t) => t.name)).toEqual(
      [0, 1].flatMap((l) => GGUF_NAMES.flatMap(([, g]) => [`blk.${l}.${g}.weight.lora_a`, `blk.${l}.${g}.weight.lora_b`])),
    );
    for (const t of r.tensorInfos) {
      expect(t.dtype).toBe(GGMLQuantizationType.F32);
      expect(Number(t.offset) % 32).toBe(0);
    }
    const sizes: Record<string, [number, number]> = {
      attn_q: [16, 16],
      attn_k: [16, 8],
      attn_v: [16, 8],
      attn_output: [16, 16],
      ffn_gate: [16, 24],
      ffn_up: [16, 24],
      ffn_down: [24, 16],
    };
    for (const l of [0, 1]) {
      for (const [hf, g] of GGUF_NAMES) {
        const [inF, outF] = sizes[g];
        const pair = tensors.get(`model.layers.${l}.${hf}`)!;
        const a = r.tensor(`blk.${l}.${g}.weight.lora_a`);
        const b = r.tensor(`blk.${l}.${g}.weight.lora_b`);
        expect(a.info.shape).toEqual([BigInt(inF), 4n]); // ne = [in, r]
        expect(b.info.shape).toEqual([4n, BigInt(outF)]); // ne = [r, out]
        expect(a.values).toEqual(pair.A);
        if (g === 'attn_q' || g === 'attn_k') {
          // GGUF row g holds HF row hfRowOf(g); head_dim 4.
          const expected = new Float32Array(pair.B.length);
          for (let row = 0; row < outF; row++) {
            for (let c = 0; c < 4; c++) expected[row * 4 + c] = pair.B[hfRowOf(row, 4) * 4 + c];
          }
          expect(b.values).toEqual(expected);
          expect(b.values).not.toEqual(pair.B);
        } else {
          expect(b.values).toEqual(pair.B);
        }
      }
    }
  });

  it('permutes with the config head_dim when it differs from hidden / heads', async () => {
    // Qwen3-style explicit head_dim 8 with 2 heads (q has 16 rows) on a Llama: rows are permuted within 8-row heads.
    const wide = model('LlamaForCausalLM', { head_dim: 8, num_attention_heads: 2, num_key_value_heads: 1 });
    const config = createLoraConfig({ r: 2, lora_alpha: 2, target_modules: ['q_proj', 'k_proj'] });
    const tensors = randomTensors(config, wide, 5);
    const r = await readBack(exportGgufLora({ config, tensors, modelConfig: wide }));
    for (const [hf, g, rows] of [
      ['q_proj', 'attn_q', 16],
      ['k_proj', 'attn_k', 8],
    ] as const) {
      const B = tensors.get(`model.layers.1.self_attn.${hf}`)!.B;
      const got = r.tensor(`blk.1.${g}.weight.lora_b`).values;
      for (let row = 0; row < rows; row++) {
        for (let c = 0; c < 2; c++) expect(got[row * 2 + c]).toBe(B[hfRowOf(row, 8) * 2 + c]);
      }
    }
    expect(permuteRowsForLlamaRope(new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]), 2, 4, 1)).toEqual(new Float32Array([0, 2, 1, 3, 4, 6, 5, 7]));
  });

  it('leaves q/k unpermuted for qwen2 and qwen3 (NEOX RoPE), and names Mistral llama', async () => {
    for (const [m, arch] of [
      [QWEN2, 'qwen2'],
      [model('Qwen3ForCausalLM', { head_dim: 4 }), 'qwen3'],
    ] as const) {
      const tensors = randomTensors(ALL, m, 2);
      const r = await readBack(exportGgufLora({ config: ALL, tensors, modelConfig: m }));
      expect(r.typedMetadata['general.architecture']?.value).toBe(arch);
      for (const l of [0, 1]) {
        expect(r.tensor(`blk.${l}.attn_q.weight.lora_b`).values).toEqual(tensors.get(`model.layers.${l}.self_attn.q_proj`)!.B);
        expect(r.tensor(`blk.${l}.attn_k.weight.lora_b`).values).toEqual(tensors.get(`model.layers.${l}.self_attn.k_proj`)!.B);
      }
    }
    const mistral = model('MistralForCausalLM');
    const r = await readBack(exportGgufLora({ config: ALL, tensors: randomTensors(ALL, mistral), modelConfig: mistral }));
    expect(r.typedMetadata['general.architecture']?.value).toBe('llama');
  });

  it('expresses rsLoRA through alpha so that alpha / r equals lora_alpha / sqrt(r)', async () => {
    const config = createLoraConfig({ r: 8, lora_alpha: 16, use_rslora: true, target_modules: ['v_proj'] });
    expect(ggufLoraAlpha(config)).toBeCloseTo(16 * Math.sqrt(8), 12);
    const r = await readBack(exportGgufLora({ config, tensors: randomTensors(config, LLAMA), modelConfig: LLAMA }));
    const alpha = r.typedMetadata['adapter.lora.alpha'];
    expect(alpha.type).toBe(GGUFValueType.FLOAT32);
    expect(alpha.value).toBe(Math.fround(16 * Math.sqrt(8)));
    expect((alpha.value as number) / 8).toBeCloseTo(16 / Math.sqrt(8), 5);
  });

  it('folds rank_pattern and alpha_pattern into lora_b so llama.cpp scales each module as PEFT does', async () => {
    const config = createLoraConfig({
      r: 4,
      lora_alpha: 8,
      use_rslora: true,
      target_modules: ['v_proj', 'o_proj'],
      rank_pattern: { o_proj: 2 },
      alpha_pattern: { 'layers.1.self_attn.v_proj': 3 },
    });
    const tensors = randomTensors(config, LLAMA, 9);
    const r = await readBack(exportGgufLora({ config, tensors, modelConfig: LLAMA }));
    const alpha = r.typedMetadata['adapter.lora.alpha'].value as number;
    for (const path of tensors.keys()) {
      const [, layer, , name] = /layers\.(\d+)\.(self_attn)\.(\w+)$/.exec(path)!;
      const g = name === 'v_proj' ? 'attn_v' : 'attn_output';
      const b = r.tensor(`blk.${layer}.${g}.weight.lora_b`);
      const rank = Number(b.info.shape[0]);
      const effective = (alpha / rank) * b.values[3]; // llama.cpp: alpha / rank × B
      expect(effective).toBeCloseTo(moduleScaling(config, path) * tensors.get(path)!.B[3], 5);
    }
    expect(r.tensor('blk.0.attn_output.weight.lora_b').info.shape).toEqual([2n, 16n]);
  });

  it('writes f16 and bf16 tensors and aLoRA invocation tokens', async () => {
    const config = createLoraConfig({ r: 4, lora_alpha: 16, target_modules: ['up_proj'], alora_invocation_tokens: [5, 9, 100000] });
    const tensors = randomTensors(config, LLAMA, 4);
    for (const [dtype, ggml, ftype, round] of [
      ['f16', GGMLQuantizationType.F16, 1, (x: Float32Array) => f16ToF32(f32ToF16(x))],
      ['bf16', GGMLQuantizationType.BF16, 32, (x: Float32Array) => bf16ToF32(f32ToBf16(x))],
    ] as const) {
      const r = await readBack(exportGgufLora({ config, tensors, modelConfig: LLAMA, dtype }));
      expect(r.typedMetadata['general.file_type'].value).toBe(ftype);
      expect(r.typedMetadata['adapter.alora.invocation_tokens']).toEqual({
        value: [5, 9, 100000],
        type: GGUFValueType.ARRAY,
        subType: GGUFValueType.UINT32,
      });
      const a = r.tensor('blk.1.ffn_up.weight.lora_a');
      expect(a.info.dtype).toBe(ggml);
      expect(a.values).toEqual(round(tensors.get('model.layers.1.mlp.up_proj')!.A));
      expect(r.tensor('blk.0.ffn_up.weight.lora_b').values).toEqual(round(tensors.get('model.layers.0.mlp.up_proj')!.B));
    }
  });

  it('rejects wrong shapes, unknown modules and configs it cannot write', () => {
    const tensors = randomTensors(ALL, LLAMA);
    const bad = new Map(tensors).set('model.layers.0.self_attn.k_proj', { A: new Float32Array(64), B: new Float32Array(64) });
    expect(() => exportGgufLora({ config: ALL, tensors: bad, modelConfig: LLAMA })).toThrow(AdapterMismatchError);
    const unknown = new Map(tensors).set('model.layers.0.mlp.fc1', tensors.get('model.layers.0.mlp.up_proj')!);
    expect(() => exportGgufLora({ config: ALL, tensors: unknown, modelConfig: LLAMA })).toThrow(/not a linear layer/);
    expect(() => exportGgufLora({ config: { ...ALL, lora_bias: true }, tensors, modelConfig: LLAMA })).toThrow(AdapterConfigError);
    expect(() => exportGgufLora({ config: { ...ALL, peft_type: 'IA3' as 'LORA' }, tensors, modelConfig: LLAMA })).toThrow(/peft_type/);
  });
});

describe('ollamaModelfile', () => {
  it('writes FROM and ADAPTER lines with the create command', () => {
    expect(ollamaModelfile({ baseModel: 'smollm2:135m', adapterFile: 'my-adapter.gguf' })).toBe(
      [
        '# Ollama Modelfile: the base model with this LoRA adapter on top.',
        '# The adapter must have been trained on this same base model.',
        '# Create the model with:  ollama create NAME -f Modelfile',
        '# then chat with it:       ollama run NAME',
        'FROM smollm2:135m',
        'ADAPTER ./my-adapter.gguf',
        '',
      ].join('\n'),
    );
    expect(ollamaModelfile({ baseModel: './base.gguf', adapterFile: './a.gguf' })).toContain('\nADAPTER ./a.gguf\n');
    expect(ollamaModelfile({ baseModel: 'x', adapterFile: '/abs/a.gguf' })).toContain('\nADAPTER /abs/a.gguf\n');
    expect(() => ollamaModelfile({ baseModel: '', adapterFile: 'a.gguf' })).toThrow(InvalidArgumentError);
    expect(() => ollamaModelfile({ baseModel: 'x\nSYSTEM hi', adapterFile: 'a.gguf' })).toThrow(InvalidArgumentError);
  });
});
