// The on-disk layout of quantized weights in Hugging Face folders, both ways:
// - NF4/FP4 as transformers + bitsandbytes save Linear4bit (QuantState.as_dict(packed=True)):
//   `P.weight` U8 [(n + 1) / 2, 1], `P.weight.absmax` (F32, or U8 codes when double-quantized),
//   `P.weight.quant_map` F32 [16], `P.weight.nested_absmax` F32, `P.weight.nested_quant_map`
//   F32 [256], `P.weight.quant_state.bitsandbytes__nf4|__fp4` (U8 bytes of a JSON object);
// - INT8 as bitsandbytes saves Linear8bitLt (LLM.int8): `P.weight` I8 [out, in], `P.SCB` F32
//   [out], `P.weight_format` U8 scalar 0 (row-major);
// - INT4 per group, which bitsandbytes has no layout for: `P.weight` U8 [(n + 1) / 2] packed like
//   NF4, `P.weight.scales` F32, `P.weight.zeros` U8 (asymmetric only); config.json says
//   quant_method "whetstone-int4". Only this engine reads it.
// Also config.json's quantization_config. Locating and decoding parts of a folder is done here
// for io/model-folder.ts; writing a folder is cli/quantize.ts's job.

import { WeightMismatchError } from '../errors.ts';
import type { SafetensorsDType, TensorEntry } from '../io/safetensors.ts';
import { NESTED_BLOCKSIZE } from './blockwise.ts';
import { type QuantFormat, type QuantOptions, type QuantizedMatrix } from './format.ts';
import { groupsPerRow } from './int4.ts';
import { DYNAMIC_MAP, FP4_TABLE, NF4_TABLE } from './tables.ts';

export const QUANT_STATE_KEY = 'quant_state.bitsandbytes__';

/** config.json quant_method values whose folders the loader reads. */
export const READABLE_QUANT_METHODS: readonly string[] = ['bitsandbytes', 'whetstone-int4'];

/** config.json `quantization_config` for weights quantized with `o` (compute dtype as transformers spells it). */
export function quantizationConfig(o: Required<QuantOptions>, computeDtype = 'float32'): Record<string, unknown> {
  if (o.format === 'int4') {
    return { quant_method: 'whetstone-int4', bits: 4, group_size: o.block, sym: o.symmetric, modules: 'projections' };
  }
  const fourBit = o.format === 'nf4' || o.format === 'fp4';
  return {
    _load_in_4bit: fourBit,
    _load_in_8bit: !fourBit,
    bnb_4bit_compute_dtype: computeDtype,
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: fourBit ? o.format : 'fp4',
    bnb_4bit_use_double_quant: fourBit && o.doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: null,
    llm_int8_threshold: fourBit ? 6.0 : 0.0,
    load_in_4bit: fourBit,
    load_in_8bit: !fourBit,
    quant_method: 'bitsandbytes',
  };
}

/** One tensor of a serialized quantized weight: name, dtype, shape and its bytes from the matrix. */
export interface SerializedPart {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: (m: QuantizedMatrix) => ArrayBufferView;
}

function f32Bytes(a: Float32Array): ArrayBufferView {
  return a;
}

/**
 * The tensors that hold weight `name` ("….weight", shape [rows, cols]) quantized with `o`. Shapes
 * follow from the options alone, so a writer can lay the file out before quantizing anything.
 * `dtypeName` is the original dtype as torch names it ("bfloat16", "float16", "float32").
 */
export function serializedParts(name: string, rows: number, cols: number, o: Required<QuantOptions>, dtypeName: string): SerializedPart[] {
  const n = rows * cols;
  if (o.format === 'int8') {
    const prefix = name.slice(0, -'weight'.length);
    return [
      { name, dtype: 'I8', shape: [rows, cols], data: (m) => m.codes },
      { name: `${prefix}SCB`, dtype: 'F32', shape: [rows], data: (m) => f32Bytes(m.scales) },
      { name: `${prefix}weight_format`, dtype: 'U8', shape: [], data: () => new Uint8Array(1) },
    ];
  }
  if (o.format === 'int4') {
    const groups = rows * groupsPerRow(cols, o.block);
    const parts: SerializedPart[] = [
      { name, dtype: 'U8', shape: [Math.ceil(n / 2)], data: (m) => m.codes },
      { name: `${name}.scales`, dtype: 'F32', shape: [groups], data: (m) => f32Bytes(m.scales) },
    ];
    if (!o.symmetric) parts.push({ name: `${name}.zeros`, dtype: 'U8', shape: [groups], data: (m) => m.aux as Uint8Array });
    return parts;
  }
  const blocks = Math.ceil(n / o.block);
  const state = quantStateJson(o, [rows, cols], dtypeName, null);
  const parts: SerializedPart[] = [
    { name, dtype: 'U8', shape: [Math.ceil(n / 2), 1], data: (m) => m.codes },
    { name: `${name}.quant_map`, dtype: 'F32', shape: [16], data: () => (o.format === 'nf4' ? NF4_TABLE : FP4_TABLE) },
  ];
  if (o.doubleQuant) {
    parts.push(
      { name: `${name}.absmax`, dtype: 'U8', shape: [blocks], data: (m) => m.aux as Uint8Array },
      { name: `${name}.nested_absmax`, dtype: 'F32', shape: [Math.ceil(blocks / NESTED_BLOCKSIZE)], data: (m) => f32Bytes(m.scales) },
      { name: `${name}.nested_quant_map`, dtype: 'F32', shape: [256], data: (m) => m.dmap ?? DYNAMIC_MAP },
      // The JSON holds the offset, whose digits vary: its length is fixed by padding the number.
      { name: `${name}.${QUANT_STATE_KEY}${o.format}`, dtype: 'U8', shape: [state.length], data: (m) => quantStateJson(o, [rows, cols], dtypeName, m.offset) },
    );
  } else {
    parts.push(
      { name: `${name}.absmax`, dtype: 'F32', shape: [blocks], data: (m) => f32Bytes(m.scales) },
      { name: `${name}.${QUANT_STATE_KEY}${o.format}`, dtype: 'U8', shape: [state.length], data: () => state },
    );
  }
  return parts;
}

/**
 * UTF-8 JSON of bitsandbytes' packed quant state. With double quantization the offset is written
 * with 9 significant digits (enough to give its float32 back) and padded with spaces to a fixed
 * length, so the tensor's size does not depend on the value.
 */
export function quantStateJson(o: Required<QuantOptions>, shape: [number, number], dtypeName: string, offset: number | null): Uint8Array {
  const base = { quant_type: o.format, blocksize: o.block, dtype: dtypeName, shape };
  if (!o.doubleQuant) return new TextEncoder().encode(JSON.stringify(base));
  const json = JSON.stringify({ ...base, nested_blocksize: NESTED_BLOCKSIZE, nested_dtype: 'float32', nested_offset: 0 });
  const number = offset === null ? '0' : formatOffset(offset);
  const text = json.replace('"nested_offset":0', `"nested_offset":${number}`);
  const width = json.length + 24;
  return new TextEncoder().encode(text.padEnd(width, ' '));
}

function formatOffset(x: number): string {
  const s = Number(x.toPrecision(9)).toString();
  return Math.fround(Number(s)) === Math.fround(x) ? s : x.toString();
}

/** Where a quantized weight's tensors are, by role. */
export interface QuantizedParts {
  format: QuantFormat;
  /** Role → tensor (all in `file`). Roles: weight, absmax, quant_map, nested_absmax, nested_quant_map, quant_state, scb, scales, zeros. */
  entries: Record<string, TensorEntry>;
  file: string;
  /** INT4: columns per group (config.json's group_size). */
  groupSize?: number;
}

type Located = { file: string; entry: TensorEntry };

/**
 * Recognises a quantized weight `name` of logical shape [rows, cols] from the tensors around it
 * (`lookup` by tensor name), checks every part's dtype and shape, and returns where they are; null
 * when the weight is stored plainly. Throws WeightMismatchError, naming the tensor, when parts
 * are missing or malformed.
 */
export function locateQuantized(name: string, shape: readonly number[], lookup: (tensor: string) => Located | undefined): QuantizedParts | null {
  if (shape.length !== 2) return null;
  const [rows, cols] = shape;
  const n = rows * cols;
  const weight = lookup(name);
  const fail = (what: string, at?: Located) => new WeightMismatchError(`Quantized weight "${name}": ${what}`, { file: at?.file, byteOffset: at?.entry.offset });
  const expect = (role: string, tensor: string, dtype: SafetensorsDType, want: number[], entries: Record<string, TensorEntry>, file: string) => {
    const at = lookup(tensor);
    if (!at) throw fail(`"${tensor}" is missing.`);
    if (at.file !== file) throw fail(`"${tensor}" is in ${at.file}, not with the weight in ${file}; keep a weight's quantization state in its file.`);
    if (at.entry.dtype !== dtype || at.entry.shape.length !== want.length || at.entry.shape.some((d, i) => d !== want[i])) {
      throw fail(`"${tensor}" is ${at.entry.dtype} [${at.entry.shape.join(', ')}]; expected ${dtype} [${want.join(', ')}].`, at);
    }
    entries[role] = at.entry;
  };
  for (const type of ['nf4', 'fp4'] as const) {
    const stateName = `${name}.${QUANT_STATE_KEY}${type}`;
    const state = lookup(stateName);
    if (!state) continue;
    if (!weight) throw fail('the packed weight is missing.');
    const entries: Record<string, TensorEntry> = { quant_state: state.entry };
    if (state.entry.dtype !== 'U8') throw fail(`"${stateName}" must be U8 (JSON bytes); it is ${state.entry.dtype}.`, state);
    const packed = Math.ceil(n / 2);
    const file = weight.file;
    if (weight.entry.dtype !== 'U8' || weight.entry.shape.reduce((a, d) => a * d, 1) !== packed) {
      throw fail(`the packed weight is ${weight.entry.dtype} [${weight.entry.shape.join(', ')}]; expected U8 with ${packed} bytes for [${rows}, ${cols}].`, weight);
    }
    entries.weight = weight.entry;
    expect('quant_map', `${name}.quant_map`, 'F32', [16], entries, file);
    const absmax = lookup(`${name}.absmax`);
    if (!absmax) throw fail(`"${name}.absmax" is missing.`);
    if (absmax.entry.dtype === 'U8') {
      entries.absmax = absmax.entry;
      expect('nested_quant_map', `${name}.nested_quant_map`, 'F32', [256], entries, file);
      const nested = lookup(`${name}.nested_absmax`);
      if (!nested) throw fail(`"${name}.nested_absmax" is missing.`);
      if (nested.entry.dtype !== 'F32' || nested.entry.shape.length !== 1) throw fail(`"${name}.nested_absmax" must be F32 [blocks / 256].`, nested);
      entries.nested_absmax = nested.entry;
    } else if (absmax.entry.dtype !== 'F32') {
      throw fail(`"${name}.absmax" is ${absmax.entry.dtype}; expected F32, or U8 with double quantization.`, absmax);
    } else {
      entries.absmax = absmax.entry;
    }
    if (absmax.file !== file) throw fail(`"${name}.absmax" is in ${absmax.file}, not with the weight in ${file}.`);
    return { format: type, entries, file };
  }
  const prefix = name.endsWith('.weight') ? name.slice(0, -'weight'.length) : `${name}.`;
  const scb = lookup(`${prefix}SCB`);
  if (scb && weight && weight.entry.dtype === 'I8') {
    const entries: Record<string, TensorEntry> = {};
    expect('weight', name, 'I8', [rows, cols], entries, weight.file);
    expect('scb', `${prefix}SCB`, 'F32', [rows], entries, weight.file);
    return { format: 'int8', entries, file: weight.file };
  }
  const scales = lookup(`${name}.scales`);
  if (scales && weight && weight.entry.dtype === 'U8') {
    const entries: Record<string, TensorEntry> = {};
    expect('weight', name, 'U8', [Math.ceil(n / 2)], entries, weight.file);
    if (scales.entry.dtype !== 'F32' || scales.entry.shape.length !== 1) throw fail(`"${name}.scales" must be F32 [groups].`, scales);
    entries.scales = scales.entry;
    const zeros = lookup(`${name}.zeros`);
    if (zeros) expect('zeros', `${name}.zeros`, 'U8', [scales.entry.shape[0]], entries, weight.file);
    return { format: 'int4', entries, file: weight.file };
  }
  return null;
}

/** Every tensor name a located quantized weight uses. */
export function partNames(p: QuantizedParts): string[] {
  return Object.values(p.entries).map((e) => e.name);
}

function f32(bytes: Uint8Array): Float32Array {
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/**
 * Builds the QuantizedMatrix of weight `name` [rows, cols] from its parts' bytes (role → bytes),
 * checking the quant state against the tensors. INT4 group size comes from `int4GroupSize`
 * (config.json's group_size).
 */
export function assembleQuantized(name: string, shape: readonly number[], p: QuantizedParts, bytes: Record<string, Uint8Array>, int4GroupSize = 64): QuantizedMatrix {
  const [rows, cols] = shape;
  const n = rows * cols;
  const fail = (what: string) => new WeightMismatchError(`Quantized weight "${name}": ${what}`);
  if (p.format === 'int8') {
    return { format: 'int8', shape: [rows, cols], block: cols, doubleQuant: false, codes: bytes.weight, scales: f32(bytes.scb), aux: null, dmap: null, offset: 0 };
  }
  if (p.format === 'int4') {
    const G = groupsPerRow(cols, int4GroupSize);
    const scales = f32(bytes.scales);
    if (scales.length !== rows * G) throw fail(`${scales.length} scales for [${rows}, ${cols}] in groups of ${int4GroupSize}; expected ${rows * G}.`);
    return { format: 'int4', shape: [rows, cols], block: int4GroupSize, doubleQuant: false, codes: bytes.weight, scales, aux: bytes.zeros ?? null, dmap: null, offset: 0 };
  }
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(new TextDecoder().decode(bytes.quant_state)) as Record<string, unknown>;
  } catch (e) {
    throw fail(`its quant_state is not JSON (${(e as Error).message}).`);
  }
  if (state.quant_type !== p.format) throw fail(`its quant_state says quant_type ${JSON.stringify(state.quant_type)} but the key says ${p.format}.`);
  const blocksize = state.blocksize;
  if (typeof blocksize !== 'number' || !Number.isInteger(blocksize) || blocksize < 1 || blocksize > 4096) throw fail(`its quant_state has blocksize ${JSON.stringify(blocksize)}.`);
  const sh = state.shape;
  if (!Array.isArray(sh) || sh.length !== 2 || sh[0] !== rows || sh[1] !== cols) throw fail(`its quant_state has shape ${JSON.stringify(sh)}; the config needs [${rows}, ${cols}].`);
  const blocks = Math.ceil(n / blocksize);
  const map = f32(bytes.quant_map);
  const table = p.format === 'nf4' ? NF4_TABLE : FP4_TABLE;
  // bitsandbytes decodes with its own table; a checkpoint with another map cannot be decoded here.
  for (let i = 0; i < 16; i++) {
    if (Math.abs(map[i] - table[i]) > 1e-6) throw fail(`its quant_map differs from bitsandbytes' ${p.format} table at code ${i} (${map[i]} vs ${table[i]}).`);
  }
  if (p.entries.absmax.dtype === 'U8') {
    if (bytes.absmax.byteLength !== blocks) throw fail(`${bytes.absmax.byteLength} absmax codes for ${blocks} blocks of ${blocksize}.`);
    const nested = f32(bytes.nested_absmax);
    if (nested.length !== Math.ceil(blocks / NESTED_BLOCKSIZE)) throw fail(`${nested.length} nested absmax values for ${blocks} blocks.`);
    if (state.nested_blocksize !== undefined && state.nested_blocksize !== NESTED_BLOCKSIZE) throw fail(`nested_blocksize ${JSON.stringify(state.nested_blocksize)} is not supported (only 256).`);
    const offset = state.nested_offset;
    if (typeof offset !== 'number' || !Number.isFinite(offset)) throw fail(`its quant_state lacks a numeric nested_offset.`);
    return { format: p.format, shape: [rows, cols], block: blocksize, doubleQuant: true, codes: bytes.weight, scales: nested, aux: bytes.absmax, dmap: f32(bytes.nested_quant_map), offset: Math.fround(offset) };
  }
  const absmax = f32(bytes.absmax);
  if (absmax.length !== blocks) throw fail(`${absmax.length} absmax values for ${blocks} blocks of ${blocksize}.`);
  return { format: p.format, shape: [rows, cols], block: blocksize, doubleQuant: false, codes: bytes.weight, scales: absmax, aux: null, dmap: null, offset: 0 };
}
