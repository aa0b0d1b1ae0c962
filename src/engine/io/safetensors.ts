// safetensors: reading the header into a tensor index, reading one tensor's bytes (whole, in chunks,
// or converted to f32), and writing files (whole, or as a stream of chunks). The header parser
// bounds every length, offset and count against the file before it allocates, and follows the
// reference implementation's rules: header ≤ 100 MB, JSON object starting with `{`, optional
// `__metadata__` string map, each tensor's byte range equal to shape × dtype size, ranges that cover
// the data section exactly (no overlaps, holes or trailing bytes). The writer lays files out as the
// reference writer does (dtype alignment descending, then name; header padded with spaces to a
// multiple of 8 bytes). Data is little-endian, as on every platform WebGPU runs on. This file does
// not know about models: model-folder.ts maps tensors to a config.

import { CancelledError, InvalidArgumentError, SafetensorsFormatError, ShapeError } from '../errors.ts';
import { bf16ToF32, f16ToF32 } from './half.ts';
import type { ByteSource } from './source.ts';

export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I8' | 'U8' | 'BOOL';

export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Position of each dtype in the reference implementation's Dtype enum (increasing alignment). */
const DTYPE_RANK: Readonly<Record<SafetensorsDType, number>> = { BOOL: 0, U8: 1, I8: 2, F16: 7, BF16: 8, I32: 9, F32: 11, F64: 12, I64: 13 };

/** The largest header the reference implementation accepts. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per read when a tensor is streamed. */
export const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024;

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, s);
}

/** One tensor of a safetensors file. */
export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** [begin, end) inside the data section, as written in the header. */
  dataOffsets: [number, number];
  /** Byte offset of the tensor's first byte in the file (8 + header length + begin). */
  offset: number;
  byteLength: number;
}

export interface SafetensorsIndex {
  /** The source's name. */
  file: string;
  /** File size in bytes. */
  size: number;
  /** Length of the JSON header (including padding). */
  headerLength: number;
  /** Byte offset of the data section in the file (8 + headerLength). */
  dataOffset: number;
  /** `__metadata__`, or null when the header has none. */
  metadata: Record<string, string> | null;
  /** Every tensor, in file order. */
  tensors: Map<string, TensorEntry>;
}

/** Reads and validates the header of a safetensors file. Reads only the first 8 + header bytes. */
export async function readSafetensorsIndex(source: ByteSource): Promise<SafetensorsIndex> {
  const file = source.name;
  if (source.size < 8) {
    throw new SafetensorsFormatError(
      `The file is ${source.size} bytes long; a safetensors file starts with an 8-byte header length.`,
      { file, byteOffset: 0 },
    );
  }
  const lenBytes = await source.read(0, 8);
  const n64 = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsFormatError(`The header length is ${n64} bytes; at most ${MAX_HEADER_BYTES} bytes are allowed.`, {
      file,
      byteOffset: 0,
    });
  }
  const n = Number(n64);
  if (8 + n > source.size) {
    throw new SafetensorsFormatError(
      `The header length is ${n} bytes but the file has only ${source.size - 8} bytes after the length field; the file is truncated or not safetensors.`,
      { file, byteOffset: 0 },
    );
  }
  const headerBytes = await source.read(8, n);
  return parseSafetensorsHeader(headerBytes, source.size, file);
}

/** Validates header bytes (the `n` bytes after the length field) of a file of `fileSize` bytes. */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, file: string): SafetensorsIndex {
  const n = headerBytes.byteLength;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch (e) {
    throw new SafetensorsFormatError('The header is not valid UTF-8.', { file, byteOffset: 8, cause: e });
  }
  if (!text.startsWith('{')) {
    throw new SafetensorsFormatError(`The header must be a JSON object starting with "{", found ${JSON.stringify(text.slice(0, 16))}.`, {
      file,
      byteOffset: 8,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message);
    const at = m ? 8 + utf8Length(text.slice(0, Number(m[1]))) : 8;
    throw new SafetensorsFormatError(`The header is not valid JSON: ${(e as Error).message}`, { file, byteOffset: at, cause: e });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsFormatError('The header must be a JSON object.', { file, byteOffset: 8 });
  }

  const dataOffset = 8 + n;
  const dataSize = fileSize - dataOffset;
  const at = (name: string) => headerPosition(text, name);
  let metadata: Record<string, string> | null = null;
  const entries: TensorEntry[] = [];

  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(info, file, at(name));
      continue;
    }
    const bad = (what: string) => new SafetensorsFormatError(`Tensor "${name}": ${what}`, { file, byteOffset: at(name) });
    if (info === null || typeof info !== 'object' || Array.isArray(info)) throw bad('expected an object with dtype, shape and data_offsets.');
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (!isSafetensorsDType(dtype)) {
      throw bad(`unsupported dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}.`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`shape ${JSON.stringify(shape)} must be an array of non-negative integers.`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(`data_offsets ${JSON.stringify(offsets)} must be two non-negative integers [begin, end].`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before they begin.`);
    const expectBytes = byteSize(shape as number[], dtype);
    if (expectBytes === null) throw bad(`shape [${shape.join(', ')}] is too large to address.`);
    if (end - begin !== expectBytes) {
      throw bad(
        `shape [${shape.join(', ')}] of ${dtype} needs ${expectBytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin} bytes.`,
      );
    }
    if (end > dataSize) {
      throw new SafetensorsFormatError(
        `Tensor "${name}" ends at byte ${dataOffset + end} but the file has only ${fileSize} bytes; the file is truncated or its offsets are out of range.`,
        { file, byteOffset: dataOffset + begin },
      );
    }
    entries.push({ name, dtype, shape: [...(shape as number[])], dataOffsets: [begin, end], offset: dataOffset + begin, byteLength: end - begin });
  }

  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let pos = 0;
  let prev: TensorEntry | null = null;
  for (const e of entries) {
    const [begin, end] = e.dataOffsets;
    if (begin < pos) {
      throw new SafetensorsFormatError(
        `Tensor "${e.name}" (data_offsets [${begin}, ${end}]) overlaps tensor "${prev?.name}" which ends at ${pos}; expected it to start at ${pos}.`,
        { file, byteOffset: dataOffset + begin },
      );
    }
    if (begin > pos) {
      throw new SafetensorsFormatError(
        `There is a ${begin - pos}-byte hole before tensor "${e.name}": expected data_offsets to start at ${pos}, found ${begin}.`,
        { file, byteOffset: dataOffset + pos },
      );
    }
    pos = end;
    prev = e;
  }
  if (pos !== dataSize) {
    throw new SafetensorsFormatError(
      `The tensors cover ${pos} bytes of data but the file holds ${dataSize} bytes after the header; expected the file to be ${dataOffset + pos} bytes long.`,
      { file, byteOffset: dataOffset + pos },
    );
  }
  return { file, size: fileSize, headerLength: n, dataOffset, metadata, tensors: new Map(entries.map((e) => [e.name, e])) };
}

function parseMetadata(info: unknown, file: string, byteOffset: number): Record<string, string> {
  if (info === null || typeof info !== 'object' || Array.isArray(info)) {
    throw new SafetensorsFormatError('__metadata__ must be an object mapping strings to strings.', { file, byteOffset });
  }
  for (const [k, v] of Object.entries(info)) {
    if (typeof v !== 'string') {
      throw new SafetensorsFormatError(`__metadata__ value of "${k}" must be a string, found ${JSON.stringify(v)}.`, { file, byteOffset });
    }
  }
  return { ...(info as Record<string, string>) };
}

/** Bytes of a tensor of `shape` and `dtype`, or null when it is not a safe integer. */
function byteSize(shape: readonly number[], dtype: SafetensorsDType): number | null {
  let n = SAFETENSORS_DTYPE_BYTES[dtype];
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}

/** File offset of a tensor name's first mention in the header (best effort; 8 when not found). */
function headerPosition(text: string, name: string): number {
  const i = text.indexOf(JSON.stringify(name));
  return i < 0 ? 8 : 8 + utf8Length(text.slice(0, i));
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).byteLength;
}

export interface ReadOptions {
  /** Bytes per read (rounded down to whole elements); DEFAULT_CHUNK_BYTES by default. */
  chunkBytes?: number;
  /** Stops between reads with a CancelledError. */
  signal?: AbortSignal;
}

/** Yields one tensor's bytes in order, in chunks of whole elements. */
export async function* streamTensor(source: ByteSource, entry: TensorEntry, options: ReadOptions = {}): AsyncGenerator<Uint8Array> {
  const elem = SAFETENSORS_DTYPE_BYTES[entry.dtype];
  const chunk = Math.max(elem, Math.floor((options.chunkBytes ?? DEFAULT_CHUNK_BYTES) / elem) * elem);
  for (let done = 0; done < entry.byteLength; ) {
    if (options.signal?.aborted) throw new CancelledError(`Reading "${entry.name}" from ${source.name} was cancelled.`);
    const len = Math.min(chunk, entry.byteLength - done);
    yield await source.read(entry.offset + done, len);
    done += len;
  }
}

/** One tensor's raw little-endian bytes. */
export async function readTensor(source: ByteSource, entry: TensorEntry, options: ReadOptions = {}): Promise<Uint8Array> {
  if (entry.byteLength <= (options.chunkBytes ?? DEFAULT_CHUNK_BYTES)) {
    if (options.signal?.aborted) throw new CancelledError(`Reading "${entry.name}" from ${source.name} was cancelled.`);
    return source.read(entry.offset, entry.byteLength);
  }
  const out = new Uint8Array(entry.byteLength);
  let at = 0;
  for await (const part of streamTensor(source, entry, options)) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** One tensor converted to f32, chunk by chunk: holds the f32 result plus one chunk of raw bytes. */
export async function readTensorF32(source: ByteSource, entry: TensorEntry, options: ReadOptions = {}): Promise<Float32Array> {
  const elem = SAFETENSORS_DTYPE_BYTES[entry.dtype];
  const out = new Float32Array(entry.byteLength / elem);
  let at = 0;
  for await (const part of streamTensor(source, entry, options)) {
    decodeToF32(entry.dtype, part, out, at);
    at += part.byteLength / elem;
  }
  return out;
}

/** Converts raw little-endian elements of `dtype` into `out` starting at element `at`. */
export function decodeToF32(dtype: SafetensorsDType, bytes: Uint8Array, out: Float32Array, at = 0): Float32Array {
  const elem = SAFETENSORS_DTYPE_BYTES[dtype];
  if (bytes.byteLength % elem !== 0) {
    throw new ShapeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${elem} bytes each).`);
  }
  const count = bytes.byteLength / elem;
  if (at + count > out.length) throw new ShapeError(`Cannot write ${count} values at ${at} into an array of ${out.length}.`);
  const b = bytes.byteOffset % elem === 0 ? bytes : bytes.slice();
  const dst = out.subarray(at, at + count);
  switch (dtype) {
    case 'F32':
      dst.set(new Float32Array(b.buffer, b.byteOffset, count));
      break;
    case 'F16':
      f16ToF32(new Uint16Array(b.buffer, b.byteOffset, count), dst);
      break;
    case 'BF16':
      bf16ToF32(new Uint16Array(b.buffer, b.byteOffset, count), dst);
      break;
    case 'F64':
      dst.set(new Float64Array(b.buffer, b.byteOffset, count));
      break;
    case 'I32':
      dst.set(new Int32Array(b.buffer, b.byteOffset, count));
      break;
    case 'I64': {
      const src = new BigInt64Array(b.buffer, b.byteOffset, count);
      for (let i = 0; i < count; i++) dst[i] = Number(src[i]);
      break;
    }
    case 'I8':
      dst.set(new Int8Array(b.buffer, b.byteOffset, count));
      break;
    case 'U8':
      dst.set(b);
      break;
    case 'BOOL':
      for (let i = 0; i < count; i++) dst[i] = b[i] === 0 ? 0 : 1;
      break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A tensor to write; `data` holds its raw little-endian bytes (any typed array of the right byte length). */
export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: ArrayBufferView;
}

/** A tensor whose data may be produced only when the stream reaches it. */
export interface LazyTensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: ArrayBufferView | (() => ArrayBufferView | Promise<ArrayBufferView>);
}

export interface SafetensorsLayout {
  /** The 8-byte length plus the padded JSON header. */
  header: Uint8Array;
  /** The tensors in the order their data follows the header, with their offsets. */
  order: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[];
  /** Size of the whole file in bytes. */
  totalBytes: number;
}

/** Validates tensor specs and computes the header and data order of the file they make. */
export function safetensorsLayout(
  tensors: readonly { name: string; dtype: SafetensorsDType; shape: readonly number[] }[],
  metadata?: Record<string, string> | null,
): SafetensorsLayout {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__') {
      throw new InvalidArgumentError(`Invalid tensor name ${JSON.stringify(t.name)}.`);
    }
    if (seen.has(t.name)) throw new InvalidArgumentError(`Tensor "${t.name}" is given twice.`);
    seen.add(t.name);
    if (!isSafetensorsDType(t.dtype)) throw new InvalidArgumentError(`Tensor "${t.name}" has unsupported dtype ${JSON.stringify(t.dtype)}.`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ShapeError(`Tensor "${t.name}" has invalid shape [${t.shape.join(', ')}].`);
    }
    if (byteSize(t.shape, t.dtype) === null) throw new ShapeError(`Tensor "${t.name}" of shape [${t.shape.join(', ')}] is too large.`);
  }
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new InvalidArgumentError(`Metadata value of "${k}" must be a string.`);
    }
  }
  const sorted = [...tensors].sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const parts: string[] = [];
  if (metadata) {
    const m = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`"__metadata__":{${m.join(',')}}`);
  }
  const order: SafetensorsLayout['order'] = [];
  let offset = 0;
  for (const t of sorted) {
    const bytes = byteSize(t.shape, t.dtype) as number;
    order.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], begin: offset, end: offset + bytes });
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + bytes}]}`);
    offset += bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  header.fill(0x20, 8 + json.byteLength);
  return { header, order, totalBytes: header.byteLength + offset };
}

function dataBytes(name: string, data: ArrayBufferView, expected: number): Uint8Array {
  if (data.byteLength !== expected) {
    throw new ShapeError(`Tensor "${name}" has ${data.byteLength} bytes of data; its shape and dtype need ${expected}.`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A whole safetensors file in memory. */
export function writeSafetensors(tensors: readonly TensorToWrite[], metadata?: Record<string, string> | null): Uint8Array<ArrayBuffer> {
  const layout = safetensorsLayout(tensors, metadata);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const out = new Uint8Array(layout.totalBytes);
  out.set(layout.header);
  for (const o of layout.order) {
    out.set(dataBytes(o.name, (byName.get(o.name) as TensorToWrite).data, o.end - o.begin), layout.header.byteLength + o.begin);
  }
  return out;
}

/**
 * The same file as writeSafetensors, as a stream: first the header, then each tensor's bytes in file
 * order. Lazy data is produced only when the stream reaches its tensor, so at most one tensor's
 * data needs to exist at a time.
 */
export async function* streamSafetensors(
  tensors: readonly LazyTensorToWrite[],
  metadata?: Record<string, string> | null,
): AsyncGenerator<Uint8Array> {
  const layout = safetensorsLayout(tensors, metadata);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  yield layout.header;
  for (const o of layout.order) {
    const spec = (byName.get(o.name) as LazyTensorToWrite).data;
    const data = typeof spec === 'function' ? await spec() : spec;
    const bytes = dataBytes(o.name, data, o.end - o.begin);
    if (bytes.byteLength > 0) yield bytes;
  }
}
