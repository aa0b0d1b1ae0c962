// GGUF writing: a small writer for GGUF version 3 files (little-endian; metadata of type string,
// u32, f32, bool and array of u32; F32, F16 and BF16 tensors; data aligned to general.alignment,
// 32 by default, with every tensor padded to it) and, on top of it, llama.cpp LoRA adapters laid
// out as convert_lora_to_gguf.py writes them: general.type "adapter", adapter.type "lora",
// adapter.lora.alpha, tensors `blk.N.<name>.weight.lora_a` (ne [in, r]) and `.lora_b` (ne [r, out]),
// with the q/k row permutation of convert_hf_to_gguf applied to lora_b for arch `llama`. Also the
// Ollama Modelfile that attaches such an adapter to its base. Reading GGUF is not done here.

import { AdapterConfigError, InvalidArgumentError, ShapeError } from '../errors.ts';
import type { ModelConfig } from '../model/config.ts';
import {
  type LlamaLinearName,
  type LoraConfig,
  type LoraPair,
  type LoraTensors,
  checkLoraTensors,
  checkPlainLora,
  parseLoraConfig,
} from '../peft/lora/config.ts';
import { f32ToBf16, f32ToF16 } from './half.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_NAME: a tensor name plus its terminating NUL. */
export const GGUF_MAX_NAME_BYTES = 64;
/** ggml's GGML_MAX_DIMS. */
export const GGUF_MAX_DIMS = 4;

/** GGUF metadata value types (gguf_type). */
export const GGUF_VALUE_TYPE = { U32: 4, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const;

/** The tensor types this writer stores, with their ggml_type numbers. */
export const GGML_TYPE = { F32: 0, F16: 1, BF16: 30 } as const;
export type GgufTensorType = keyof typeof GGML_TYPE;
const TYPE_BYTES: Record<GgufTensorType, number> = { F32: 4, F16: 2, BF16: 2 };

/** llama.cpp's general.file_type (LLAMA_FTYPE) for files whose tensors are all of one type. */
export const GGUF_FILE_TYPE: Record<GgufTensorType, number> = { F32: 0, F16: 1, BF16: 32 };

export type GgufMetadataValue =
  | { type: 'string'; value: string }
  | { type: 'u32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'u32[]'; value: readonly number[] };

export interface GgufTensor {
  name: string;
  type: GgufTensorType;
  /** ggml dimensions, fastest-varying first: a row-major PyTorch [rows, cols] tensor has ne = [cols, rows]. */
  ne: readonly number[];
  /** The values in memory order (ne[0] fastest), converted to `type` when written. */
  data: Float32Array;
}

/** Grows as bytes are appended; everything little-endian. */
class ByteWriter {
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

function checkValue(key: string, v: GgufMetadataValue): void {
  const bad = (expected: string) => new InvalidArgumentError(`GGUF metadata "${key}" is ${JSON.stringify(v.value)}; expected ${expected}.`);
  switch (v.type) {
    case 'string':
      if (typeof v.value !== 'string') throw bad('a string');
      break;
    case 'u32':
      if (!isU32(v.value)) throw bad('an integer in [0, 2^32)');
      break;
    case 'f32':
      if (typeof v.value !== 'number') throw bad('a number');
      break;
    case 'bool':
      if (typeof v.value !== 'boolean') throw bad('true or false');
      break;
    case 'u32[]':
      if (!Array.isArray(v.value) || !v.value.every(isU32)) throw bad('a list of integers in [0, 2^32)');
      break;
    default:
      throw new InvalidArgumentError(`GGUF metadata "${key}" has unsupported type ${JSON.stringify((v as { type: unknown }).type)}.`);
  }
}

function writeValue(w: ByteWriter, v: GgufMetadataValue): void {
  switch (v.type) {
    case 'string':
      w.u32(GGUF_VALUE_TYPE.STRING);
      w.string(v.value);
      break;
    case 'u32':
      w.u32(GGUF_VALUE_TYPE.U32);
      w.u32(v.value);
      break;
    case 'f32':
      w.u32(GGUF_VALUE_TYPE.F32);
      w.f32(v.value);
      break;
    case 'bool':
      w.u32(GGUF_VALUE_TYPE.BOOL);
      w.u8(v.value ? 1 : 0);
      break;
    case 'u32[]':
      w.u32(GGUF_VALUE_TYPE.ARRAY);
      w.u32(GGUF_VALUE_TYPE.U32);
      w.u64(v.value.length);
      for (const x of v.value) w.u32(x);
      break;
  }
}

const padTo = (n: number, alignment: number) => Math.ceil(n / alignment) * alignment;

function tensorBytes(t: GgufTensor): Uint8Array {
  const view = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (t.type === 'F32') return view(t.data);
  return view(t.type === 'F16' ? f32ToF16(t.data) : f32ToBf16(t.data));
}

/**
 * A whole GGUF file: header (magic, version 3, tensor count, metadata count), metadata in the
 * order given, tensor infos in the order given, zero padding to the alignment, then each tensor's
 * data at an aligned offset, padded to the alignment. The alignment is the u32 `general.alignment`
 * when the metadata holds it (a power of two, at least 8), else 32. Throws InvalidArgumentError for
 * a duplicate or malformed key, value or tensor name, and ShapeError for data that does not fill ne.
 */
export function writeGguf(metadata: Iterable<readonly [string, GgufMetadataValue]>, tensors: readonly GgufTensor[]): Uint8Array {
  const kvs = [...metadata];
  const keys = new Set<string>();
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  for (const [key, v] of kvs) {
    if (typeof key !== 'string' || key === '') throw new InvalidArgumentError(`Invalid GGUF metadata key ${JSON.stringify(key)}.`);
    if (keys.has(key)) throw new InvalidArgumentError(`GGUF metadata "${key}" is given twice.`);
    keys.add(key);
    checkValue(key, v);
    if (key === 'general.alignment') {
      if (v.type !== 'u32' || v.value < 8 || (v.value & (v.value - 1)) !== 0) {
        throw new InvalidArgumentError(`general.alignment must be a u32 power of two of at least 8; got ${JSON.stringify(v)}.`);
      }
      alignment = v.value;
    }
  }
  const names = new Set<string>();
  for (const t of tensors) {
    const nameBytes = new TextEncoder().encode(t.name).length;
    if (typeof t.name !== 'string' || nameBytes === 0 || nameBytes >= GGUF_MAX_NAME_BYTES) {
      throw new InvalidArgumentError(`GGUF tensor name ${JSON.stringify(t.name)} must be 1 to ${GGUF_MAX_NAME_BYTES - 1} bytes long.`);
    }
    if (names.has(t.name)) throw new InvalidArgumentError(`GGUF tensor "${t.name}" is given twice.`);
    names.add(t.name);
    if (!(t.type in GGML_TYPE)) throw new InvalidArgumentError(`GGUF tensor "${t.name}" has unsupported type ${JSON.stringify(t.type)}.`);
    if (t.ne.length < 1 || t.ne.length > GGUF_MAX_DIMS || !t.ne.every((d) => Number.isSafeInteger(d) && d > 0)) {
      throw new ShapeError(`GGUF tensor "${t.name}" has ne [${t.ne.join(', ')}]; expected 1 to ${GGUF_MAX_DIMS} positive dimensions.`);
    }
    const count = t.ne.reduce((a, d) => a * d, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== count) {
      throw new ShapeError(`GGUF tensor "${t.name}" with ne [${t.ne.join(', ')}] needs ${count} values; got ${t.data?.length}.`);
    }
  }

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const [key, v] of kvs) {
    w.string(key);
    writeValue(w, v);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(GGML_TYPE[t.type]);
    w.u64(offset);
    offsets.push(offset);
    offset += padTo(t.ne.reduce((a, d) => a * d, 1) * TYPE_BYTES[t.type], alignment);
  }
  const header = w.result();
  const dataStart = padTo(header.length, alignment);
  const out = new Uint8Array(dataStart + offset);
  out.set(header);
  tensors.forEach((t, i) => out.set(tensorBytes(t), dataStart + offsets[i]));
  return out;
}

// ---------------------------------------------------------------------------------------------
// llama.cpp LoRA adapters

/** GGUF tensor base names of the adaptable projections (convert_hf_to_gguf's tensor map). */
export const GGUF_LINEAR_NAMES: Readonly<Record<LlamaLinearName, string>> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

/** The GGUF architecture llama.cpp gives the base model (its general.architecture). */
export function ggufArchitecture(model: ModelConfig): 'llama' | 'qwen2' | 'qwen3' {
  switch (model.architecture) {
    case 'LlamaForCausalLM':
    case 'MistralForCausalLM':
      return 'llama';
    case 'Qwen2ForCausalLM':
      return 'qwen2';
    case 'Qwen3ForCausalLM':
      return 'qwen3';
  }
}

/** The GGUF tensor name of a module's LoRA factor, e.g. "blk.0.attn_q.weight.lora_a". */
export function ggufLoraTensorName(layer: number, name: LlamaLinearName, which: 'a' | 'b'): string {
  return `blk.${layer}.${GGUF_LINEAR_NAMES[name]}.weight.lora_${which}`;
}

/**
 * convert_hf_to_gguf's q/k permutation for arch `llama` (interleaved-pair RoPE), applied to the rows
 * of a row-major (rows, cols) matrix with rows = nHead · headDim: GGUF row h·hd + 2j + half takes HF
 * row h·hd + half·hd/2 + j.
 */
export function permuteRowsForLlamaRope(src: Float32Array, nHead: number, headDim: number, cols: number): Float32Array {
  if (headDim % 2 !== 0) throw new ShapeError(`head_dim ${headDim} must be even to permute rows for RoPE.`);
  if (src.length !== nHead * headDim * cols) {
    throw new ShapeError(`Cannot permute ${src.length} values as ${nHead} heads × ${headDim} rows × ${cols} columns.`);
  }
  const half = headDim / 2;
  const out = new Float32Array(src.length);
  for (let h = 0; h < nHead; h++) {
    for (let j = 0; j < half; j++) {
      for (let p = 0; p < 2; p++) {
        const from = (h * headDim + p * half + j) * cols;
        const to = (h * headDim + 2 * j + p) * cols;
        out.set(src.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/**
 * adapter.lora.alpha for llama.cpp, which scales every module by alpha / rank: lora_alpha, or
 * lora_alpha · sqrt(r) with rsLoRA so that alpha / r equals PEFT's lora_alpha / sqrt(r).
 */
export function ggufLoraAlpha(config: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number {
  return config.use_rslora ? config.lora_alpha * Math.sqrt(config.r) : config.lora_alpha;
}

export interface ExportGgufOptions {
  config: LoraConfig;
  /** LoRA factors by module path ("model.layers.0.self_attn.q_proj"). */
  tensors: LoraTensors;
  modelConfig: ModelConfig;
  /** Tensor type: 'f32' (convert_lora_to_gguf's default), 'f16' or 'bf16'. */
  dtype?: 'f32' | 'f16' | 'bf16';
  /** general.name, when given. */
  name?: string;
}

/**
 * A llama.cpp LoRA adapter (one .gguf file) for the base model of `modelConfig`. A module whose
 * rank or alpha differs from the config's (rank_pattern, alpha_pattern) has its lora_b scaled so
 * that llama.cpp's alpha / rank equals PEFT's scale for it. Throws AdapterConfigError for a config
 * whose extra tensors cannot be written and AdapterMismatchError for missing, unknown or wrongly
 * sized modules.
 */
export function exportGgufLora(options: ExportGgufOptions): Uint8Array {
  const { tensors, modelConfig } = options;
  const dtype = options.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16') {
    throw new AdapterConfigError(`dtype ${JSON.stringify(dtype)} is not one of "f32", "f16", "bf16".`);
  }
  const type: GgufTensorType = dtype === 'f32' ? 'F32' : dtype === 'f16' ? 'F16' : 'BF16';
  const config = parseLoraConfig(options.config as unknown as Record<string, unknown>);
  checkPlainLora(config, 'the GGUF export');
  const specs = checkLoraTensors(config, modelConfig, tensors);
  const arch = ggufArchitecture(modelConfig);
  const alpha = ggufLoraAlpha(config);

  const out: GgufTensor[] = [];
  for (const s of specs) {
    const pair = tensors.get(s.path) as LoraPair;
    let b = pair.B; // (out, r)
    if (s.r !== config.r || s.alpha !== config.lora_alpha) {
      const factor = s.scaling / (alpha / s.r); // PEFT's scale over llama.cpp's alpha / rank
      if (factor !== 1) b = b.map((x) => x * factor);
    }
    if (arch === 'llama' && (s.name === 'q_proj' || s.name === 'k_proj')) {
      const heads = s.name === 'q_proj' ? modelConfig.numAttentionHeads : modelConfig.numKeyValueHeads;
      b = permuteRowsForLlamaRope(b, heads, modelConfig.headDim, s.r);
    }
    out.push({ name: ggufLoraTensorName(s.layer, s.name, 'a'), type, ne: [s.inFeatures, s.r], data: pair.A });
    out.push({ name: ggufLoraTensorName(s.layer, s.name, 'b'), type, ne: [s.r, s.outFeatures], data: b });
  }

  const metadata: [string, GgufMetadataValue][] = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.type', { type: 'string', value: 'adapter' }],
  ];
  if (options.name !== undefined) metadata.push(['general.name', { type: 'string', value: options.name }]);
  metadata.push(
    ['general.file_type', { type: 'u32', value: GGUF_FILE_TYPE[type] }],
    ['adapter.type', { type: 'string', value: 'lora' }],
    ['adapter.lora.alpha', { type: 'f32', value: alpha }],
  );
  if (config.alora_invocation_tokens !== null && config.alora_invocation_tokens.length > 0) {
    metadata.push(['adapter.alora.invocation_tokens', { type: 'u32[]', value: config.alora_invocation_tokens }]);
  }
  return writeGguf(metadata, out);
}

// ---------------------------------------------------------------------------------------------
// Ollama

export interface OllamaModelfileOptions {
  /** The base model as Ollama knows it: a library name ("llama3.2:1b") or a path to its GGUF file. */
  baseModel: string;
  /** The adapter's file name or path, e.g. "adapter.gguf"; a bare name is written relative to the Modelfile ("./adapter.gguf"). */
  adapterFile: string;
}

/** A Modelfile that layers the adapter on its base, with a comment saying how to create the model. */
export function ollamaModelfile({ baseModel, adapterFile }: OllamaModelfileOptions): string {
  const line = (what: string, v: string) => {
    if (typeof v !== 'string' || v.trim() === '' || /[\r\n]/.test(v)) {
      throw new InvalidArgumentError(`The ${what} for the Modelfile must be a non-empty single line; got ${JSON.stringify(v)}.`);
    }
    return v.trim();
  };
  const base = line('base model', baseModel);
  const file = line('adapter file', adapterFile);
  const path = /^(\/|[A-Za-z]:[\\/]|\.{1,2}\/)/.test(file) ? file : `./${file}`;
  return [
    '# Ollama Modelfile: the base model with this LoRA adapter on top.',
    '# The adapter must have been trained on this same base model.',
    '# Create the model with:  ollama create NAME -f Modelfile',
    '# then chat with it:       ollama run NAME',
    `FROM ${base}`,
    `ADAPTER ${path}`,
    '',
  ].join('\n');
}
